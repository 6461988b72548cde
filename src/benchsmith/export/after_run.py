"""The derived pages a run writes once its work is done: readable Markdown and the HTML
report, side by side. The report spends most of its time in SQLite reads, which release the
GIL, while the Markdown is rendered in Python: together they take little more than the
longer of the two."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

from benchsmith.export.readable import render_after_run
from benchsmith.recipes.base import Recipe


@dataclass(frozen=True)
class AfterRun:
    readable_warning: str | None
    report: Path | None  # written here; None when not asked for or not written
    report_warning: str | None


def write_pages(root: Path, recipe: Recipe, readable_layout: str, report: bool) -> AfterRun:
    """Readable Markdown (`readable_layout`, see `outputs.readable`) and, with `report`, the
    run report. Never raises for a page that cannot be written: it returns a warning."""
    box: dict[str, str | None] = {}
    worker = None
    if report:
        from benchsmith.report.build import REPORT_NAME, write_after_run

        def _report() -> None:
            box["warning"] = write_after_run(root)

        worker = threading.Thread(target=_report, name="benchsmith-report")
        worker.start()
    try:
        readable_warning = render_after_run(root, recipe, readable_layout)
    finally:
        if worker is not None:
            worker.join()  # also on Ctrl-C: no thread left writing into the run dir
    warning = box.get("warning")
    written = root / REPORT_NAME if report and "warning" in box and warning is None else None
    return AfterRun(readable_warning, written, warning)
