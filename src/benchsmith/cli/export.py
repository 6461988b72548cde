"""CLI command: export (a run's datasets as JSONL, parquet or a Hugging Face DatasetDict)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from benchsmith.cli.console import fail
from benchsmith.errors import BenchsmithError


def export_cmd(
    run_dir: Path = typer.Argument(..., metavar="RUN_DIR", help="The run directory, e.g. runs/R."),
    fmt: str = typer.Option(
        "jsonl", "--format", "-f", metavar="jsonl|parquet|hf",
        help="jsonl, parquet, or hf (a datasets.DatasetDict saved with save_to_disk; needs "
        "pip install 'benchsmith[hf]').",
    ),
    out: Optional[Path] = typer.Option(
        None, "--out", "-o", help="Write here instead of RUN_DIR/export/<format>/ (a new, "
        "empty or previously exported folder).",
    ),
) -> None:
    """Write every dataset of a run (and a rollout's predictions) with a dataset card.

    One file per table (JSONL or parquet: each dataset's records, then the recipe's own
    tables), or one DatasetDict with a split per table; README.md holds the run's config
    summary, counts, cost and the fields. Reads the run without locking it.

    Examples:

      benchsmith export runs/plans_v1 --format parquet

      benchsmith export runs/bugfix_v1 --format hf --out data/bugfix_hf
    """
    from benchsmith import api

    try:
        rep = api.export_datasets(run_dir, fmt.lower(), out)
    except BenchsmithError as e:
        fail(e)
    typer.echo(f"wrote:     {rep.out}  ({rep.format})")
    for name, n in rep.tables:
        typer.echo(f"table:     {name}: {n} rows")


def register(app: typer.Typer) -> None:
    """Add this module's commands to the app."""
    app.command("export")(export_cmd)
