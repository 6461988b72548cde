"""CLI command: report (a run's self-contained HTML report)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from benchsmith.cli.console import fail
from benchsmith.errors import BenchsmithError


def report_cmd(
    run_dir: Path = typer.Argument(..., metavar="RUN_DIR", help="The run directory, e.g. runs/R."),
    out: Optional[Path] = typer.Option(
        None, "--out", "-o", metavar="PATH",
        help="Write the page here instead of RUN_DIR/report.html.",
    ),
) -> None:
    """Write a run's report: one HTML file with charts, readable offline.

    Shows the config summary and plan fingerprint, requests per state per dataset and model,
    cost and tokens by model (with the cache-hit ratio), spend over time against the budget,
    latency and retries, failure and invalid reasons with examples, the recipe's own
    sections, and a sample of records. Reads the run without locking it (a live run too).
    `run` writes it at the end unless --no-report.

    Examples:

      benchsmith report runs/plans_v1

      benchsmith report runs/bugfix_v1 --out bugfix_report.html
    """
    from benchsmith import api

    try:
        rep = api.write_report(run_dir, out)
    except BenchsmithError as e:
        fail(e)
    live = " (the run is in progress: what it had recorded)" if rep.live else ""
    typer.echo(f"wrote:     {rep.path}  ({rep.bytes / 1e6:.1f} MB){live}")
    typer.echo(f"sections:  {', '.join(rep.sections)}")


def register(app: typer.Typer) -> None:
    """Add this module's commands to the app."""
    app.command("report")(report_cmd)
