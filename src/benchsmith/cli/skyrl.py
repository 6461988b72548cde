"""CLI: the `skyrl` command group (stand-in until the library's cli/skyrl.py, which adds
`skyrl validate`, is merged). `synth` and `retrofit` are in cli/skyrl_run.py."""

from __future__ import annotations

import typer

from benchsmith.cli.options import command_group

skyrl_app = command_group(
    "skyrl",
    "SkyRL tool-use datasets: tasks with ground-truth MCP tool plans, in SkyRL's parquet "
    "format.",
    "benchsmith skyrl synth --inventory tools.yaml --out data/skyrl/ --n-samples 200",
)


def register(app: typer.Typer) -> None:
    """Add this group (and the commands of cli/skyrl_run.py) to the app."""
    import benchsmith.cli.skyrl_run  # noqa: F401 - attaches synth and retrofit to the group

    app.add_typer(skyrl_app, name="skyrl")
