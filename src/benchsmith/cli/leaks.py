"""CLI command: leaks. Loads a config's datasets, prints their gold-leak table."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from benchsmith.cli.options import json_option


def leaks(
    config: Path = typer.Argument(..., help="YAML config naming the datasets (see init-config)."),
    as_json: bool = json_option("the leak table"),
) -> None:
    """Which tasks' own text (primary and context fields) carries their gold answer verbatim.

    Checks every task of the config's datasets, loaded as a run loads them, against its
    gold fields with the config's `leaks` settings. Calls no model and writes nothing.

    Examples:

      benchsmith leaks swebench_verified.yaml

      benchsmith leaks swebench_verified.yaml --json
    """
    from benchsmith.cli.console import err_console, fail, load_config_noting
    from benchsmith.errors import BenchsmithError
    from benchsmith.leaks.table import config_leaks, summary

    try:
        cfg = load_config_noting(config, err_console())
        counts, rows = config_leaks(cfg)
    except BenchsmithError as e:
        fail(e, config)
    by_field = summary(rows)
    if as_json:
        out = {
            "datasets": {
                ds: {"tasks": n, "leaking_tasks": len({r.task_id for r in rows if r.dataset == ds}),
                     "by_field": by_field.get(ds, {})}
                for ds, n in counts.items()
            },
            "leaks": [r.to_dict() for r in rows],
        }
        typer.echo(json.dumps(out, indent=2))
        return
    for r in rows:
        gold = ",".join(r.gold_fields)
        typer.echo(f"{r.dataset}  {r.task_id}  {r.field}  {gold}  {r.matched} line(s)  "
                   f"{r.sample!r}")
    for ds, n in counts.items():
        leaking = len({r.task_id for r in rows if r.dataset == ds})
        fields = ", ".join(f"{f} {k}" for f, k in by_field.get(ds, {}).items()) or "none"
        typer.echo(f"{ds}: {leaking} of {n} task(s) leak their gold ({fields})")


def register(app: typer.Typer) -> None:
    """Add this module's commands to the app."""
    app.command("leaks")(leaks)
