"""CLI command: validate-run. Calls benchsmith.validate.run_checks, renders the table."""

from __future__ import annotations

import json
from pathlib import Path

import typer


def validate_run(
    run_dir: Path = typer.Argument(..., help="The run directory, e.g. runs/R."),
    as_json: bool = typer.Option(
        False, "--json", help="Print the check results as JSON on stdout."
    ),
) -> None:
    """Re-check every artifact of a run against the ledger and the schemas.

    Checks, for every recipe: ledger states; each stage's records,
    tasks.jsonl and failed_plans hold exactly what the ledger says;
    manifests; costs in logs/batch_calls.jsonl and runs.jsonl (recomputed
    from usage and the price table); every expected file is there, every
    .json/.jsonl file parses, no temp file is left; the API key (from the
    configured variable, if set here) is in no file. Then the checks the
    run's recipe declares (plans: plan count of each complete task, each plan
    row against the schema, unique plan ids; rollouts: output.jsonl,
    failures.jsonl and preds files match the ledger, sample files match it
    and parse).

    Prints a table of checks; exits 1 if any check fails. Works during a run and says that
    the run is live (its derived files are rewritten when it ends).

    Examples:

      benchsmith validate-run runs/plans_v1

      benchsmith validate-run runs/plans_v1 --json
    """
    from benchsmith.cli.console import fail, print_check_table
    from benchsmith.errors import BenchsmithError
    from benchsmith.store.lock import live_holder
    from benchsmith.validate.run_checks import check_run

    holder = live_holder(run_dir)
    try:
        results = check_run(run_dir)
    except BenchsmithError as e:
        fail(e)
    ok = all(r.ok for r in results)
    if as_json:
        out = {"run_dir": str(run_dir), "ok": ok, "checks": [r.to_dict() for r in results],
               "live": holder.as_dict() if holder else None}
        typer.echo(json.dumps(out, indent=2))
    else:
        print_check_table(f"validate-run {run_dir}", results,
                          holder.as_dict() if holder else None)
    if not ok:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add this module's commands to the app."""
    app.command("validate-run")(validate_run)
