"""The derived pages a run writes once its work is done, readable Markdown and the HTML
report, each in its own thread while the run's files are written: they read the ledger through
their own connections, and their SQLite reads and file writes release the GIL, so the three
take little more than the longest of them."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from benchsmith.export.readable import render_after_run
from benchsmith.recipes.base import Recipe


@dataclass(frozen=True)
class AfterRun:
    readable_warning: str | None
    report: Path | None  # written; None when not asked for or not written
    report_warning: str | None


@dataclass(frozen=True)
class Pages:
    """The pages being written; `finish` waits for them."""

    root: Path
    report: bool
    threads: tuple[threading.Thread, ...]
    results: dict[str, str | None]

    def finish(self) -> AfterRun:
        for t in self.threads:
            t.join()  # also on Ctrl-C or an error: no thread left writing into the run dir
        warning = self.results.get("report", "warning: the run report was not written")
        from benchsmith.report.build import REPORT_NAME

        written = self.root / REPORT_NAME if self.report and warning is None else None
        return AfterRun(self.results.get("readable"), written,
                        warning if self.report else None)


def start_pages(root: Path, recipe: Recipe, readable_layout: str, report: bool) -> Pages:
    """Start the readable Markdown (`readable_layout`, see `outputs.readable`) and, with
    `report`, the run report. Neither raises: a page that cannot be written is a warning."""
    results: dict[str, str | None] = {}

    def job(name: str, fn: Callable[[], str | None]) -> threading.Thread:
        def body() -> None:
            results[name] = fn()

        t = threading.Thread(target=body, name=f"benchsmith-{name}")
        t.start()
        return t

    threads = [job("readable", lambda: render_after_run(root, recipe, readable_layout))]
    if report:
        from benchsmith.report.build import write_after_run

        threads.append(job("report", lambda: write_after_run(root)))
    return Pages(root, report, tuple(threads), results)
