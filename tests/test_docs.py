"""The README and --help stay true: generated sections in sync, every command documented."""

from __future__ import annotations

from pathlib import Path

import typer
from typer.testing import CliRunner

from benchsmith.cli.app import app
from benchsmith.readme_sync import synced

ROOT = Path(__file__).resolve().parents[1]


def test_readme_config_reference_in_sync():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert synced(text) == text, "run `make docs` to regenerate the README config reference"


def _commands():
    """Leaf commands by their full name, e.g. 'batch ingest'."""

    out = {}

    def walk(group, prefix):
        for name, cmd in group.commands.items():
            full = f"{prefix}{name}"
            if hasattr(cmd, "commands"):
                walk(cmd, full + " ")
            else:
                out[full] = cmd

    walk(typer.main.get_command(app), "")
    return out


def test_every_command_and_option_has_help_and_readme_entry():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    runner = CliRunner()
    for name, cmd in _commands().items():
        assert cmd.help and "Example" in cmd.help, f"{name}: docstring needs examples"
        for p in cmd.params:
            if p.param_type_name == "option" and p.name != "help":
                assert p.help, f"{name} {p.opts}: option without help text"
        assert f"`{name}" in readme, f"README does not document `{name}`"
        res = runner.invoke(app, [*name.split(), "--help"])
        assert res.exit_code == 0 and "Example" in res.output
