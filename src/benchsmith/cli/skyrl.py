"""CLI commands: `skyrl validate` (logic in benchsmith.skyrl)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from benchsmith.cli.console import fail
from benchsmith.cli.options import command_group, json_option
from benchsmith.errors import BenchsmithError, ConfigError

skyrl_app = command_group(
    "skyrl",
    "SkyRL tool-use datasets: tasks with ground-truth MCP tool plans, in SkyRL's parquet "
    "format, and a check of any such file.",
    "benchsmith skyrl validate data/skyrl/train.parquet --inventory tools.yaml",
)


@skyrl_app.command("validate")
def validate(
    file: Path = typer.Argument(..., help="A SkyRL dataset file: .parquet, .jsonl or .json."),
    inventory: Optional[Path] = typer.Option(
        None, "--inventory", "-i", metavar="FILE",
        help="Tool inventory (YAML or JSON): also check that every step names a real "
        "server and tool with parameters its schema allows.",
    ),
    as_json: bool = json_option("the file, its row count and the problems"),
) -> None:
    """Check a SkyRL dataset file: the columns and their types (data_source, prompt
    messages and roles, env_class, reward_spec with method and a JSON ground_truth holding a
    tool_sequence and success.must_call_tool, extra_info) and, with --inventory, every plan
    against the tools. Prints one line per problem; exit 1 when there is any.

    Examples:

      benchsmith skyrl validate data/skyrl/train.parquet

      benchsmith skyrl validate data/skyrl/validation.jsonl --inventory tools.yaml

      benchsmith skyrl validate data/skyrl/train.parquet --inventory tools.yaml --json
    """
    from benchsmith.skyrl.check import check_file
    from benchsmith.skyrl.inventory import load_inventory

    try:
        if file.is_dir():
            raise ConfigError(str(file), "", "is a folder; give a dataset file (.parquet, "
                              ".jsonl or .json), e.g. data/skyrl/train.parquet")
        if not file.exists():
            raise ConfigError(str(file), "", "file not found")
        inv = load_inventory(inventory) if inventory is not None else None
        report = check_file(file, inv)
    except BenchsmithError as e:
        fail(e)
    if as_json:
        typer.echo(json.dumps({"file": str(file), "rows": report.rows,
                               "problems": report.problems}, indent=2))
    else:
        for p in report.problems:
            typer.echo(f"problem: {p}")
        checked = f" against {inventory}" if inventory is not None else ""
        verdict = f"{len(report.problems)} problem(s)" if report.problems else "ok"
        typer.echo(f"{file}: {report.rows} row(s){checked}: {verdict}")
    if report.problems:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add this module's commands to the app."""
    import benchsmith.cli.skyrl_run  # noqa: F401 - attaches `synth` and `retrofit`
    app.add_typer(skyrl_app, name="skyrl")
