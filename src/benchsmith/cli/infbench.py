"""CLI group `benchsmith infbench ...` (edit-history benches and prediction runs).

Minimal here: the group itself; the builder's commands and the prediction runs'
(cli/infbench_run.py) attach to `infbench_app`."""

from __future__ import annotations

import typer

from benchsmith.cli.options import command_group

infbench_app = command_group(
    "infbench",
    "Edit-history benches: infbench files (previous edits -> the rest), prediction runs "
    "per model, merged results and scores.",
    "benchsmith infbench run --dataset-name all --model gpt-4.1 --run-id 0.2",
)


def register(app: typer.Typer) -> None:
    """Add this module's commands to the app."""
    import benchsmith.cli.infbench_run  # noqa: F401 - attaches its commands to the group

    app.add_typer(infbench_app, name="infbench")
