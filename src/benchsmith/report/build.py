"""`benchsmith report`: read a run (read-only, so a live run too), gather the shared sections
and the recipe's own, and write the page atomically."""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from benchsmith.errors import BenchsmithError, ConfigError
from benchsmith.recipe_of import recipe_of_run
from benchsmith.recipes.report_section import Section
from benchsmith.report import shared
from benchsmith.report.charts import plotly_js
from benchsmith.report.page import render
from benchsmith.store.io_errors import LedgerUnreadable, reading_ledger
from benchsmith.store.ledger import Ledger
from benchsmith.store.lock import live_holder
from benchsmith.store.plans import current_plan
from benchsmith.store.rundir import RunDir, atomic_write_bytes, existing_run_dir

REPORT_NAME = "report.html"
# The oldest ledger the report reads as it is (m004: pinned plans); newer migrations' tables
# are optional to its sections (m005's gold_leaks: the section says the run predates it).
OLDEST_SCHEMA = 4


@dataclass(frozen=True)
class ReportResult:
    path: Path
    bytes: int
    sections: tuple[str, ...]  # titles, in page order
    live: bool  # the run was in progress: the page shows what was committed then


def write_report(run_dir: str | Path, out: str | Path | None = None, *,
                 run_ended: bool = False) -> ReportResult:
    """Write the report of the run at `run_dir` to `out` (default RUN_DIR/report.html).
    `run_ended`: the caller is the run's own process, its work done (it still holds the lock)."""
    rd = existing_run_dir(run_dir)
    dest = Path(out) if out is not None else rd.root / REPORT_NAME
    if dest.is_dir():
        raise ConfigError(str(dest), "--out", "is a folder; name the HTML file to write")
    ledger = _open(rd)
    live = not run_ended and live_holder(rd.root) is not None
    try:
        with reading_ledger(rd.ledger):
            sections = _sections(rd, ledger, live)
    finally:
        ledger.close()
    state = "in progress (live)" if live else "not running"
    subtitle = f"{rd.root} · {state} · report written {shared.when(time.time())} UTC"
    page = render(f"benchsmith run {rd.run_id}", subtitle, sections, plotly_js())
    data = page.encode("utf-8")
    # derived from the ledger: no fsync at the end of a run (its folder is synced once)
    atomic_write_bytes(dest, data, durable=not run_ended)
    return ReportResult(dest, len(data), tuple(s.title for s in sections), live)


def write_after_run(run_dir: str | Path) -> str | None:
    """The report at the end of `run`, by the run's process: None when written, else a one-line
    warning (a report that cannot be written never fails the run)."""
    try:
        write_report(run_dir, run_ended=True)
    except Exception as e:  # the run is done; whatever stops its report stops only that
        why = str(e) if isinstance(e, (BenchsmithError, OSError)) else f"{type(e).__name__}: {e}"
        return (f"warning: the run report was not written ({why[:300]}); try "
                f"`benchsmith report {run_dir}`")
    return None


def _open(rd: RunDir) -> Ledger:
    """The run's ledger, read-only; one written by an older benchsmith is read as it is when
    it has the tables the report needs, else the one-line error of any read-only command."""
    try:
        return Ledger.open_readonly(rd.ledger)
    except LedgerUnreadable as e:
        if e.kind != "older":
            raise
        ledger = Ledger.open_readonly(rd.ledger, older_ok=True)
        if ledger.db.execute("PRAGMA user_version").fetchone()[0] < OLDEST_SCHEMA:
            ledger.close()
            raise
        return ledger


def _sections(rd: RunDir, ledger: Any, live: bool) -> list[Section]:
    db = ledger.db
    cfg = _snapshot(rd)
    n_plans = db.execute("SELECT COUNT(*) FROM plans").fetchone()[0]
    run = shared.run_section(rd.run_id, cfg, current_plan(ledger), n_plans, ledger.invocations())
    if live:
        run = Section(run.title, run.text + " The run is in progress: this shows what it had "
                      "recorded when the report was written.", run.tables)
    out = [run, shared.counts_section(db), shared.usage_section(db), shared.spend_section(db),
           shared.latency_section(db), shared.reasons_section(db),
           shared.leaks_section(db, cfg)]
    out.extend(_recipe_sections(rd, ledger))
    out.append(shared.sample_section(db))
    return out


def _snapshot(rd: RunDir) -> dict[str, Any] | None:
    try:
        data = orjson.loads(rd.config_json.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def _recipe_sections(rd: RunDir, ledger: Any) -> list[Section]:
    """What the run's recipe adds; a note instead when its recipe cannot be built."""
    try:
        recipe = recipe_of_run(rd.root)
    except ConfigError as e:
        return [Section("Recipe", f"The recipe's sections are left out: {e}")]
    if recipe.report_sections is None:
        return []
    try:
        return list(recipe.report_sections(ledger))
    except sqlite3.Error:
        raise
    except Exception as e:  # a plug-in's bug: the shared sections still make a report
        return [Section("Recipe", f"The sections of recipe {recipe.name} failed "
                        f"({type(e).__name__}: {e})"[:500])]
