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

    Prints a table of checks; exits 1 if any check fails. On a live run (a process writes it)
    only the checks that hold meanwhile run (ledger, recipe, no_secret); the others are
    reported "skipped: run is live" and do not fail it (exit 0 when the rest pass). Run it
    again once the run has ended for every check.

    Examples:

      benchsmith validate-run runs/plans_v1

      benchsmith validate-run runs/plans_v1 --json
    """
    from benchsmith.cli.console import fail, print_check_table
    from benchsmith.errors import BenchsmithError
    from benchsmith.validate.run_checks import check_run_report

    try:
        report = check_run_report(run_dir)
    except BenchsmithError as e:
        fail(e)
    results = report.results
    live = report.live.as_dict() if report.live else None
    ok = all(r.ok for r in results)
    if as_json:
        out = {"run_dir": str(run_dir), "ok": ok, "checks": [r.to_dict() for r in results],
               "live": live, "skipped": [r.name for r in results if r.skipped]}
        typer.echo(json.dumps(out, indent=2))
    else:
        print_check_table(f"validate-run {run_dir}", results, live)
    if not ok:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add this module's commands to the app."""
    app.command("validate-run")(validate_run)
