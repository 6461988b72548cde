"""What users of CLI tools expect: --version, help that shows real types and examples, exit
codes as documented, JSON that says "unknown" as null, and a .env file for the key."""

from __future__ import annotations

import tomllib
from pathlib import Path

from typer.testing import CliRunner

from benchsmith.cli.app import app

ROOT = Path(__file__).resolve().parents[1]


def test_version_prints_the_package_version():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    res = CliRunner().invoke(app, ["--version"])
    assert res.exit_code == 0
    assert res.output == f"benchsmith {pyproject['project']['version']}\n"
