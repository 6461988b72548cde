"""`recipe:` + `recipe_options:`, validated by the registry; the old `plans:` / `rollout:`
sections still run (with a warning), and runs made with them resume unchanged."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from benchsmith.cli.app import app
from benchsmith.config import parse_config, with_recipe
from benchsmith.errors import ConfigError
from benchsmith.recipes import names
from benchsmith.validate.run_checks import check_run
from fake_openai import FakeOpenAI
from helpers import KEY_ENV, SECRET, cfg_dict, write_yaml

OLD_PLANS = {"calls_per_task": 1, "plans_per_call": 2, "diversity": False}


def test_builtin_recipes_are_registered() -> None:
    assert {"plans", "agentless_bugfix", "agentless_testgen"} <= set(names())


def test_recipe_options_are_validated_by_the_recipe() -> None:
    cfg = parse_config({"recipe": "agentless_bugfix", "recipe_options": {"passk": 3}})
    assert cfg.options().passk == 3 and cfg.recipe_options["max_files"] == 5
    assert cfg.deprecations == ()
    with pytest.raises(ConfigError) as e:
        parse_config({"recipe": "agentless_bugfix", "recipe_options": {"calls_per_task": 2}},
                     file="c.yaml")
    assert e.value.field == "recipe_options.calls_per_task" and "passk" in e.value.problem
    with pytest.raises(ConfigError) as e:
        parse_config({"recipe_options": {"plans_per_call": 0}}, file="c.yaml")
    assert e.value.field == "recipe_options.plans_per_call" and "got 0" in e.value.problem


def test_unknown_recipe_names_the_installed_ones() -> None:
    with pytest.raises(ConfigError) as e:
        parse_config({"recipe": "plan"}, file="c.yaml")
    assert e.value.field == "recipe"
    assert "unknown recipe 'plan'" in e.value.problem and "agentless_bugfix" in e.value.problem


def test_old_section_names_are_aliases() -> None:
    cfg = parse_config({"plans": {"calls_per_task": 2}}, file="c.yaml")
    assert cfg.recipe_options["calls_per_task"] == 2
    assert cfg.deprecations == ("c.yaml: `plans:` deprecated; move these settings under "
                                "`recipe_options:`",)
    # A rollout took its re-ask limit from `plans:`; it still does.
    cfg = parse_config({"recipe": "agentless_testgen", "rollout": {"passk": 2},
                        "plans": {"max_validation_retries": 4}}, file="c.yaml")
    assert (cfg.options().passk, cfg.options().max_validation_retries) == (2, 4)
    # A bad old-style option is named as written.
    with pytest.raises(ConfigError) as e:
        parse_config({"recipe": "agentless_bugfix", "rollout": {"passk": 0}}, file="c.yaml")
    assert e.value.field == "rollout.passk"
    # Both spellings at once: which one is meant is unknown.
    with pytest.raises(ConfigError) as e:
        parse_config({"plans": {"calls_per_task": 2}, "recipe_options": {"calls_per_task": 3}},
                     file="c.yaml")
    assert e.value.field == "plans" and "set only recipe_options" in e.value.problem
    with pytest.raises(ConfigError) as e:
        parse_config({"plans": [1]}, file="c.yaml")
    assert e.value.field == "plans"
    # An old section read by another recipe's options is in use: not "remove it".
    cfg = parse_config({"recipe": "agentless_bugfix", "plans": {"max_validation_retries": 4}},
                       file="c.yaml")
    assert cfg.options().max_validation_retries == 4
    assert cfg.deprecations == ("c.yaml: `plans:` deprecated; move these settings under "
                                "`recipe_options:`",)
    cfg = parse_config({"recipe": "agentless_bugfix", "plans": {"calls_per_task": 4}},
                       file="c.yaml")
    assert cfg.deprecations == ("c.yaml: `plans:` not used by recipe agentless_bugfix; remove it",)


def test_a_command_recipe_keeps_options_it_shares() -> None:
    """`rollout testgen` on a bug-fixer config keeps the options (same options model); on a
    plans config it uses its own defaults and says so."""
    data = {"recipe": "agentless_bugfix", "recipe_options": {"passk": 3}}
    cfg = parse_config(data, recipe="agentless_testgen")
    assert cfg.recipe == "agentless_testgen" and cfg.options().passk == 3
    cfg = parse_config({"recipe": "plans", "recipe_options": {"calls_per_task": 1}},
                       file="c.yaml", recipe="agentless_testgen")
    assert cfg.options().passk == 1
    assert cfg.deprecations == ("c.yaml: recipe_options are recipe plans's; not used by "
                                "agentless_testgen",)
    # Command-line options are validated like the file's.
    assert with_recipe(cfg, passk=4).options().passk == 4
    with pytest.raises(ConfigError) as e:
        with_recipe(cfg, passk=0)
    assert e.value.field == "recipe_options.passk"
    # An option named like a parameter is an option; an explicit null is set, not ignored.
    with pytest.raises(ConfigError) as e:
        with_recipe(cfg, **{"recipe": "plans"})
    assert e.value.field == "recipe_options.recipe" and "unknown key" in e.value.problem
    assert with_recipe(with_recipe(cfg, start=3), start=None).options().start is None


def _run(config: Path, *args: str) -> tuple[int, str]:
    res = CliRunner().invoke(app, ["run", "--config", str(config), "--quiet", *args])
    return res.exit_code, res.output


def test_a_run_made_with_old_section_names_resumes_with_new_ones(
    tmp_path: Path, fake_openai: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The plan pin names options as the first layout did, so switching a config from
    `plans:` to `recipe_options:` changes nothing about the run; its old-layout snapshot
    still builds the recipe for validate-run."""
    monkeypatch.setenv(KEY_ENV, SECRET)
    old = write_yaml(tmp_path / "old.yaml",
                     cfg_dict(tmp_path, fake_openai.base_url, {"plans": OLD_PLANS}, tasks=2))
    code, out = _run(old, "--run-id", "R")
    assert code == 0, out
    assert "warning: " in out and "`plans:` deprecated" in out
    rd = tmp_path / "runs" / "R"
    snapshot = json.loads((rd / "config/run_config.json").read_text())
    assert "plans" not in snapshot and snapshot["recipe_options"]["calls_per_task"] == 1
    sent = len(fake_openai.requests)

    new = write_yaml(tmp_path / "new.yaml", cfg_dict(
        tmp_path, fake_openai.base_url, {"recipe": "plans", "recipe_options": OLD_PLANS}, tasks=2))
    code, out = _run(new, "--run-id", "R", "--resume")
    assert code == 0, out
    assert "warning" not in out and "changed" not in out
    assert len(fake_openai.requests) == sent  # nothing planned again

    # A snapshot written before recipe_options existed (both old sections, all defaults).
    legacy = {k: v for k, v in snapshot.items() if k not in ("recipe_options",)}
    legacy["plans"] = {**snapshot["recipe_options"]}
    legacy["rollout"] = {"passk": 1, "max_files": 5}
    (rd / "config/run_config.json").write_text(json.dumps(legacy))
    results = check_run(rd)
    assert all(r.ok for r in results), [(r.name, r.problems) for r in results if not r.ok]
    assert "plans_per_task" in {r.name for r in results}


def test_recipes_command_lists_every_recipe_with_its_options() -> None:
    res = CliRunner().invoke(app, ["recipes", "--json"])
    assert res.exit_code == 0, res.output
    rows = {r["name"]: r for r in json.loads(res.stdout)}
    assert rows["agentless_bugfix"]["command"] == "benchsmith rollout bugfix"
    assert rows["plans"]["command"] == "benchsmith run --recipe plans"
    assert rows["plans"]["options"]["calls_per_task"] == 3
    assert rows["agentless_testgen"]["options"]["passk"] == 1


def test_option_flags_set_recipe_options(tmp_path: Path, fake_openai: FakeOpenAI) -> None:
    cfg = write_yaml(tmp_path / "c.yaml", cfg_dict(tmp_path, fake_openai.base_url, tasks=3))

    def dry(*args: str) -> tuple[int, str]:
        res = CliRunner().invoke(app, ["dry-run", "--config", str(cfg), "--json", *args])
        return res.exit_code, res.output

    code, out = dry("--option", "diversity=false", "-O", "calls_per_task=2")
    assert code == 0, out
    assert json.loads(out[out.index("{"):])["requests"] == 6  # 3 tasks x 2 calls, all at once
    code, out = dry("--option", "calls_per_tsk=2")
    assert code == 1 and "recipe_options.calls_per_tsk: unknown key" in out, out
    code, out = dry("--option", "calls_per_task")
    assert code == 1 and "--option: 'calls_per_task': expected NAME=VALUE" in out, out
    code, out = dry("--recipe", "nope")
    assert code == 1 and "recipe: unknown recipe 'nope'" in out and "Traceback" not in out, out
