"""CLI command: render-readable (the run's plans as Markdown)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from benchsmith.cli.console import fail
from benchsmith.errors import BenchsmithError


def render_readable_cmd(
    run_dir_arg: Optional[Path] = typer.Argument(
        None, metavar="RUN_DIR", help="The run directory, e.g. runs/R (must contain ledger.sqlite)."
    ),
    run_dir_opt: Optional[Path] = typer.Option(
        None, "--run-dir", help="The run directory (the older spelling of RUN_DIR).", hidden=True
    ),
    output_dir: Optional[Path] = typer.Option(
        None,
        "--out", "--output-dir", "-o",
        help="Write index.md, `<dataset>/...` and failed_plans/... in this folder instead of "
        "runs/R/readable and runs/R/failed_plans/readable.",
    ),
    no_task_text: bool = typer.Option(
        False, "--no-task-text", help="Leave the task text ([PRIMARY_TASK] ...) out of each file."
    ),
    layout: str = typer.Option(
        "per_record", "--layout", metavar="per_record|bulk",
        help="per_record: one file per accepted answer; bulk: a few large files per dataset "
        "and model (what `run` writes, see outputs.readable).",
    ),
) -> None:
    """Render a run's plans as Markdown, one file per accepted answer.

    Reads the ledger (the source of truth). Writes readable/index.md and
    one file per answer; invalid attempts, with their validation error and
    raw output, go under failed_plans/readable. With --layout bulk: the
    answers of each dataset and model in part files instead. Re-rendering
    replaces the previous output, of either layout.

    Examples:

      benchsmith render-readable runs/plans_v1

      benchsmith render-readable runs/R --out review --no-task-text

      benchsmith render-readable runs/R --layout bulk
    """
    from benchsmith.errors import ConfigError
    from benchsmith.export.readable import render_readable

    run_dir = run_dir_arg or run_dir_opt
    try:
        if run_dir is None or (run_dir_arg and run_dir_opt and run_dir_arg != run_dir_opt):
            raise ConfigError("command line", "RUN_DIR", "give the run directory once, e.g. "
                              "`benchsmith render-readable runs/R`")
        rep = render_readable(run_dir, output_dir, include_task_text=not no_task_text,
                              layout=layout)
    except BenchsmithError as e:
        fail(e)
    typer.echo(f"index:    {rep.index}")
    typer.echo(f"invalid:  {rep.failed_index}")
    if layout == "bulk":
        typer.echo(f"files:    {len(rep.files)} parts ({rep.plans} plans, {rep.tasks} tasks), "
                   f"{len(rep.failed_files)} parts of invalid attempts")
    else:
        typer.echo(
            f"files:    {len(rep.files)} answers ({rep.plans} plans, {rep.tasks} tasks), "
            f"{len(rep.failed_files)} invalid attempts"
        )


def register(app: typer.Typer) -> None:
    """Add this module's commands to the app."""
    app.command("render-readable")(render_readable_cmd)
