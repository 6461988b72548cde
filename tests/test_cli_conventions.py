"""What users of CLI tools expect: --version, help that shows real types and examples, exit
codes as documented, JSON that says "unknown" as null, and a .env file for the key."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

from helpers import cfg_dict, write_yaml
from typer.testing import CliRunner

from benchsmith.cli.app import app

ROOT = Path(__file__).resolve().parents[1]


def test_version_prints_the_package_version():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    res = CliRunner().invoke(app, ["--version"])
    assert res.exit_code == 0
    assert res.output == f"benchsmith {pyproject['project']['version']}\n"


def _config(tmp_path: Path, overrides: dict | None = None) -> Path:
    # A port nothing listens on: these commands must not call a model.
    return write_yaml(tmp_path / "c.yaml", cfg_dict(tmp_path, "http://127.0.0.1:9", overrides))


def test_dry_run_json_gives_null_for_an_unknown_cost(tmp_path):
    runner = CliRunner()
    unpriced = runner.invoke(app, ["dry-run", "-c", str(_config(tmp_path)), "--json"])
    assert unpriced.exit_code == 0, unpriced.output
    est = json.loads(unpriced.stdout)
    assert est["priced"] is False and est["requests"] > 0
    assert est["estimate_first_attempts_usd"] is None
    assert est["estimate_upper_bound_usd"] is None

    # gpt-5-mini: the model of every plan request of this config (the default models)
    price = {"input": 0.25, "cached_input": 0.025, "output": 2.0}
    priced_cfg = _config(tmp_path, {"prices": {"gpt-5-mini": price}})
    priced = runner.invoke(app, ["dry-run", "-c", str(priced_cfg), "--json"])
    assert priced.exit_code == 0, priced.output
    est = json.loads(priced.stdout)
    assert est["priced"] is True
    assert 0 < est["estimate_first_attempts_usd"] <= est["estimate_upper_bound_usd"]
