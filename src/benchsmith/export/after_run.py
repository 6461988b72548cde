"""The derived pages a run writes once its work is done: readable Markdown and the HTML
report. One after the other: in threads they took as long (the report's SQLite reads give up
the GIL and wait to get it back while the Markdown is rendered)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from benchsmith.export.readable import render_after_run
from benchsmith.recipes.base import Recipe


@dataclass(frozen=True)
class AfterRun:
    readable_warning: str | None
    report: Path | None  # written; None when not asked for or not written
    report_warning: str | None


def write_pages(root: Path, recipe: Recipe, readable_layout: str, report: bool) -> AfterRun:
    """The readable Markdown (`readable_layout`, see `outputs.readable`) and, with `report`,
    the run report. Never raises for a page that cannot be written: it returns a warning."""
    readable_warning = render_after_run(root, recipe, readable_layout)
    if not report:
        return AfterRun(readable_warning, None, None)
    from benchsmith.report.build import REPORT_NAME, write_after_run

    warning = write_after_run(root)
    return AfterRun(readable_warning, None if warning else root / REPORT_NAME, warning)
