"""What users of CLI tools expect: --version, help that shows real types and examples, exit
codes as documented, JSON that says "unknown" as null, and a .env file for the key."""

from __future__ import annotations

import json
import os
import re
import tomllib
from pathlib import Path

import pytest
import typer
from helpers import KEY_ENV, SECRET, cfg_dict, make_cfg, write_yaml
from typer.testing import CliRunner

from benchsmith.cli.app import app
from benchsmith.config import api_keys, env_var
from benchsmith.errors import ConfigError

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


def _help(*words: str) -> str:
    res = CliRunner().invoke(app, [*words, "--help"], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    return res.output


def _groups_and_commands() -> list[tuple[str, ...]]:
    out = []

    def walk(group, prefix):
        for name, cmd in group.commands.items():
            out.append((*prefix, name))
            if hasattr(cmd, "commands"):
                walk(cmd, (*prefix, name))

    walk(typer.main.get_command(app), ())
    return out


def test_help_shows_no_type_for_flags_and_the_real_type_for_values():
    for words in [(), *_groups_and_commands()]:
        assert "<bool>" not in _help(*words), f"{' '.join(words)} --help"
    run = _help("run")
    assert re.search(r"--quiet\s+-q\s+No progress \(bar or log lines\)", run)
    assert re.search(r"--json\s+Print the summary", run)
    assert re.search(r"--config\s+-c\s+<path>", run)
    assert re.search(r"--option\s+-O\s+NAME=VALUE", run)
    sections = _help("prepare-sections")
    assert re.search(r"--section-size\s+<int>", sections)
    assert re.search(r"--force\s+Rewrite sections", sections)
    assert "Run ids are <prefix>_section_01, ..." in sections


def test_every_command_group_has_an_example():
    groups = [w for w in _groups_and_commands()
              if hasattr(typer.main.get_command(app).commands[w[0]], "commands") and len(w) == 1]
    assert ("rollout",) in groups and ("batch",) in groups
    for (name,) in groups:
        text = _help(name)
        assert re.search(rf"Example:\s+benchsmith {name} \S+", text), f"{name} --help"


def test_usage_errors_exit_2_and_the_readme_lists_every_exit_code(tmp_path):
    runner = CliRunner()
    missing_arg = runner.invoke(app, ["status"])
    assert missing_arg.exit_code == 2 and "Missing argument" in missing_arg.output
    missing_opt = runner.invoke(app, ["dry-run"])
    assert missing_opt.exit_code == 2 and "Missing option" in missing_opt.output
    bad_input = runner.invoke(app, ["status", str(tmp_path / "no-such-run")])
    assert bad_input.exit_code == 1

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    table = dict(re.findall(r"^\| (\d+) \| (.+) \|$", readme, re.MULTILINE))
    assert sorted(table, key=int) == ["0", "1", "2", "3", "4", "130"]
    assert "budget" in table["2"] and "missing argument" in table["2"]
    assert "authentication" in table["3"] and "interrupted" in table["130"]


def test_commands_of_several_runs_exit_with_the_stop_over_the_failures():
    """`infbench run` runs one model after another: a later budget stop is what the user
    must act on first; failures in an earlier run still show when nothing stopped."""
    from benchsmith.cli.exits import exit_code

    assert exit_code([]) == 0 and exit_code(["completed", "nothing_to_do"]) == 0
    assert exit_code(["completed_with_failures", "completed"]) == 4
    assert exit_code(["completed_with_failures", "stopped_budget"]) == 2
    assert exit_code(["completed", "stopped_auth"]) == 3 and exit_code(["interrupted"]) == 130


def test_dotenv_of_the_working_directory_gives_the_named_key_never_over_the_environment(
        tmp_path, monkeypatch):
    cfg = make_cfg(tmp_path, "http://127.0.0.1:9")  # openai.api_key_env: KEY_ENV
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(KEY_ENV, raising=False)
    monkeypatch.delenv("OTHER", raising=False)
    with pytest.raises(ConfigError, match="is not set"):
        api_keys(cfg)
    (tmp_path / ".env").write_text(
        "# keys for this folder\n\n"
        f"export {KEY_ENV}=\"{SECRET},sk-two\"  # two keys\n"
        "OTHER='a # not a comment'\n"
        "PLAIN = b # a comment\n",
        encoding="utf-8")
    assert api_keys(cfg) == [SECRET, "sk-two"]
    assert env_var("OTHER") == "a # not a comment" and env_var("PLAIN") == "b"
    assert "OTHER" not in os.environ  # read for the config, never exported

    monkeypatch.setenv(KEY_ENV, "sk-real")
    assert api_keys(cfg) == ["sk-real"]
    monkeypatch.setenv(KEY_ENV, "")  # set, even empty: the environment still wins
    with pytest.raises(ConfigError, match="is not set"):
        api_keys(cfg)


def test_a_bad_dotenv_line_names_the_line_not_its_value(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(KEY_ENV, raising=False)
    (tmp_path / ".env").write_text(f"# ok\n{SECRET}\n", encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        api_keys(make_cfg(tmp_path, "http://127.0.0.1:9"))
    assert str(err.value).endswith(".env: line 2: expected KEY=VALUE (KEY: letters, digits, _)")
    assert SECRET not in str(err.value)
