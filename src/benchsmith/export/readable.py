"""Render a run as Markdown for people to read: the run's recipe decides what and how.

A recipe's `readable` hook (None: the recipe has no readable output) receives the open
ledger, the run dir, the output folder (None: its default inside the run dir), whether to
include task text and the layout (`bulk`: a few large files, what `run` writes by default;
`per_record`: a file per record, what `render-readable` writes by default); it returns a
`ReadableReport`. This module opens the run, checks the
output folder, takes the run lock when writing inside the run, and maps read/write errors
to one-line messages. The plans renderer is `recipes/plans_readable.py`.
"""

from __future__ import annotations

import sqlite3
from contextlib import nullcontext
from pathlib import Path

from benchsmith.errors import BenchsmithError, ConfigError
from benchsmith.export.markdown import safe_name
from benchsmith.export.readable_report import BULK, LAYOUTS, PER_RECORD, READABLE, ReadableReport
from benchsmith.recipes.base import Recipe
from benchsmith.recipe_of import recipe_of_run
from benchsmith.store.io_errors import StorageError, reading_ledger
from benchsmith.store.ledger import Ledger
from benchsmith.store.lock import run_lock
from benchsmith.store.rundir import existing_run_dir

__all__ = [
    "BULK",
    "LAYOUTS",
    "PER_RECORD",
    "READABLE",
    "ReadableReport",
    "render_after_run",
    "render_readable",
    "safe_name",
]


def render_readable(
    run_dir: Path | str, output_dir: Path | str | None = None, *, include_task_text: bool = True,
    recipe: Recipe | None = None, layout: str = PER_RECORD, lock: bool = True,
) -> ReadableReport:
    """Render the run with its recipe's renderer (`recipe`: default, the run's own), in
    `layout` (`per_record` or `bulk`). `lock=False`: the caller holds the run's lock (in
    another thread: the run itself, rendering at its end)."""
    if layout not in LAYOUTS:
        raise ConfigError("command line", "--layout", f"{layout!r}: expected one of "
                          + ", ".join(LAYOUTS))
    rd = existing_run_dir(run_dir)
    out = None if output_dir is None else Path(output_dir)
    if out is not None:
        if out.exists() and not out.is_dir():
            raise ConfigError(str(out), "--output-dir", "exists and is not a folder")
        if out.resolve() == rd.root.resolve():
            raise ConfigError(str(out), "--output-dir", "must not be the run directory itself")
    if recipe is None:
        recipe = recipe_of_run(rd.root)
    if recipe.readable is None:
        raise ConfigError(str(rd.root), "", f"recipe {recipe.name} has no readable rendering; "
                          "its outputs are the files in the run dir")
    inside = out is None or out.resolve().is_relative_to(rd.root.resolve())
    with run_lock(rd.root, "render-readable") if inside and lock else nullcontext():
        with reading_ledger(rd.ledger):
            ledger = Ledger.open_readonly(rd.ledger)  # the rendering only writes files
        try:
            report: ReadableReport = recipe.readable(ledger, rd, out, include_task_text, layout)
            return report
        except StorageError:
            raise
        except sqlite3.Error as e:
            raise BenchsmithError(f"{rd.ledger}: cannot read the ledger: {e}") from None
        except OSError as e:
            raise BenchsmithError(f"cannot write readable output: {e}") from None
        finally:
            ledger.close()


def render_after_run(run_dir: Path | str, recipe: Recipe | None = None,
                     layout: str = BULK) -> str | None:
    """Render into the run dir at the end of a run, by the run's process (it holds the run's
    lock), in `layout` (`outputs.readable`; `off`: not at all), if the recipe has a readable
    rendering. Never raises: returns a warning or None."""
    if layout == "off":
        return None
    try:
        if recipe is None:
            recipe = recipe_of_run(Path(run_dir))
        if recipe.readable is None:
            return None
        render_readable(Path(run_dir), recipe=recipe, layout=layout, lock=False)
    except Exception as e:  # a rendering problem must never fail the run
        msg = " ".join(str(e).split()) or type(e).__name__
        return f"warning: could not render readable output for {run_dir}: {msg}"
    return None
