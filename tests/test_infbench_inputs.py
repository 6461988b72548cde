"""Prediction runs: keys and endpoint from OPENAI_KEYS / OPENAI_KEY / BASE_URL (the config
wins), bad input in one line, one budget for all models, and the recipe on the generic path
(`benchsmith run --config` with recipe edit_predict and a dataset of source infbench)."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from benchsmith.config import parse_config, with_env_endpoint
from benchsmith.errors import ConfigError
from benchsmith.validate.run_checks import check_run
from helpers import KEY_ENV, SECRET, assert_no_secret, write_yaml
from infbench_run_support import asked, invoke, read_lines, run_args

ENV = ("OPENAI_KEYS", "OPENAI_KEY", "BASE_URL", "OPENAI_API_KEY")


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ENV:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_env_fallback_and_the_config_wins(clean_env: pytest.MonkeyPatch) -> None:
    cfg = parse_config({})
    assert with_env_endpoint(cfg) is cfg  # nothing set: unchanged
    clean_env.setenv("OPENAI_KEY", "one")
    clean_env.setenv("BASE_URL", "http://127.0.0.1:8123/v1")
    got = with_env_endpoint(cfg).openai
    assert (got.api_key_env, got.base_url) == ("OPENAI_KEY", "http://127.0.0.1:8123/v1")
    clean_env.setenv("OPENAI_KEYS", "a,b")
    assert with_env_endpoint(cfg).openai.api_key_env == "OPENAI_KEYS"
    mine = parse_config({"openai": {"api_key_env": "MY_KEY", "base_url": "http://h:1/v1"}})
    assert with_env_endpoint(mine).openai == mine.openai
    clean_env.setenv("BASE_URL", "ftp://nope")
    with pytest.raises(ConfigError) as e:
        with_env_endpoint(cfg)
    assert e.value.field == "BASE_URL" and "http://" in str(e.value)


def test_keys_round_robin_from_openai_keys(ib: dict[str, Any],
                                           clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("OPENAI_KEYS", "sk-first-key-0001,sk-second-key-0002")
    clean_env.setenv("BASE_URL", ib["server"].base_url)
    bare = write_yaml(ib["tmp"] / "bare.yaml", {"engine": {"concurrency": 1}})
    res = invoke("infbench", "run", "--infbench-dir", ib["infbench"], "--config", bare,
                 "--results-dir", ib["results"], "--runs-dir", ib["runs"],
                 "--model", "gpt-4.1", "--dataset-name", "all", "--run-id", "0.2")
    assert res.exit_code == 0, res.output
    auth = [r.headers.get("Authorization") for r in ib["server"].requests]
    assert sorted(set(auth)) == ["Bearer sk-first-key-0001", "Bearer sk-second-key-0002"]
    assert_no_secret(ib["tmp"], "sk-first-key-0001", "sk-second-key-0002")
    # the config's endpoint and key win over the environment
    clean_env.setenv("BASE_URL", "http://127.0.0.1:9/v1")
    res = invoke(*run_args(ib, "--model", "gpt-4o", "--dataset-name", "all", "--run-id", "0.2"))
    assert res.exit_code == 0, res.output
    assert ib["server"].requests[-1].headers["Authorization"] == f"Bearer {SECRET}"


def _one_line_error(res: Any, *needles: str) -> None:
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert res.exit_code == 1 and len(lines) == 1, res.output
    assert "Traceback" not in res.output
    for n in needles:
        assert n in lines[0], lines[0]


def test_bad_input_is_one_line(ib: dict[str, Any]) -> None:
    run = ["--model", "gpt-4.1", "--dataset-name", "all"]
    bad = ib["tmp"] / "ids.json"
    bad.write_text("{not json")
    _one_line_error(invoke(*run_args(ib, *run, "--run-id", "0.2", "--sampled-ids-file", bad)),
                    str(bad), "not valid JSON")
    bad.write_text(json.dumps({"ids": ["x"]}))
    _one_line_error(invoke(*run_args(ib, *run, "--run-id", "0.2", "--sampled-ids-file", bad)),
                    "sampled_instance_ids", "must be a list")
    _one_line_error(invoke(*run_args(ib, "--model", "m", "--dataset-name", "nobody/here",
                                     "--run-id", "0.2")),
                    "nobody-here-task-instances_0.2.jsonl", "no infbench file here")
    _one_line_error(invoke(*run_args(ib, *run, "--run-id", "../0.2")), "is not a run id")
    _one_line_error(invoke(*run_args(ib, *run)), "--run-id", "needed")
    _one_line_error(invoke(*run_args(ib, "--dataset-name", "all", "--run-id", "0.2")),
                    "--model")
    table = ib["tmp"] / "models.yaml"
    table.write_text(yaml.safe_dump({"gpt-4.1": {"temprature": 0}}))
    _one_line_error(invoke(*run_args(ib, *run, "--run-id", "0.2", "--model-table", table)),
                    str(table), "gpt-4.1.temprature", "unknown field")
    table.write_text(yaml.safe_dump({"gpt-4.1": {"n": 0}}))
    _one_line_error(invoke(*run_args(ib, *run, "--run-id", "0.2", "--model-table", table)),
                    "gpt-4.1.n")
    # n > 1 needs the Chat API
    table.write_text(yaml.safe_dump({"gpt-4.1": {"n": 2}}))
    resp = write_yaml(ib["tmp"] / "resp.yaml", {"openai": {
        "base_url": ib["server"].base_url, "api_key_env": KEY_ENV, "api": "responses"}})
    res = invoke("infbench", "run", "--infbench-dir", ib["infbench"], "--config", resp,
                 "--results-dir", ib["results"], "--runs-dir", ib["runs"], *run,
                 "--run-id", "0.2", "--model-table", table)
    _one_line_error(res, "gpt-4.1.n", "openai.api: chat")
    # a budget needs prices
    _one_line_error(invoke(*run_args(ib, "--model", "unpriced", "--dataset-name", "all",
                                     "--run-id", "0.2", "--budget", "1")),
                    "unpriced.input_price")
    assert not ib["server"].requests and not ib["results"].exists()


def test_one_budget_for_all_models(ib: dict[str, Any]) -> None:
    res = invoke(*run_args(ib, "--model", "gpt-4.1", "gpt-4o", "--dataset-name", "all",
                           "--run-id", "0.2", "--budget", "0"))
    assert res.exit_code == 2, res.output
    assert "gpt-4.1: stopped_budget" in res.stdout and "gpt-4o" not in res.stdout
    assert not ib["server"].requests and not ib["results"].exists()
    # room for one request's worst case (~$0.05): the first model stops after one answer,
    # which is appended; the second model is not run
    args = run_args(ib, "--model", "gpt-4.1", "gpt-4o", "--dataset-name", "all", "--run-id",
                    "0.2")
    res = invoke(*args, "--budget", "0.08")
    assert res.exit_code == 2, res.output
    assert "gpt-4.1: stopped_budget; appended all-task-instances_0.2.jsonl: +1" in res.stdout
    assert "gpt-4o" not in res.stdout
    path = ib["results"] / "gpt-4.1" / "T=0" / "n=1" / "all-task-instances_0.2.jsonl"
    (line,) = read_lines(path)
    assert 0 < line["cost"] <= 0.08 and asked(ib["server"]) == [line["instance_id"]]
    # more money: the same command asks the rest, then the second model
    res = invoke(*args, "--budget", "1")
    assert res.exit_code == 0, res.output
    assert sorted(x["instance_id"] for x in read_lines(path)) == sorted(ib["ids"])
    assert sorted(asked(ib["server"])) == sorted(ib["ids"] * 2)


def test_recipe_on_the_generic_run_path(ib: dict[str, Any]) -> None:
    config = write_yaml(ib["tmp"] / "x.yaml", {
        "recipe": "edit_predict", "recipe_options": {"require_patch": False},
        "run_dir": str(ib["runs"]),
        "datasets": {"ib": {"source": "infbench",
                            "path": str(ib["infbench"] / "all-task-instances_0.2.jsonl")}},
        "model": {"name": "gpt-4.1", "temperature": 0},
        "openai": {"base_url": ib["server"].base_url, "api_key_env": KEY_ENV, "api": "chat"},
    })
    res = invoke("run", "--config", config, "--run-id", "G", "--quiet")
    assert res.exit_code == 0, res.output
    rd = ib["runs"] / "G"
    preds = read_lines(rd / "predictions.jsonl")
    assert sorted(p["instance_id"] for p in preds) == sorted(ib["ids"])
    assert all(p["model_name_or_path"] == "gpt-4.1" and p["model_patch"] == "" for p in preds)
    results = check_run(rd)
    assert all(r.ok for r in results), [(r.name, r.problems) for r in results if not r.ok]
    assert "predictions" in [r.name for r in results]
    res = invoke("status", rd)
    assert res.exit_code == 0 and "edit_predict: 3 prediction(s), 0 with a patch" in res.stdout
    # the check fails on an edited file
    (rd / "predictions.jsonl").write_text(json.dumps(preds[0]) + "\n")
    (bad,) = [r for r in check_run(rd) if r.name == "predictions"]
    assert not bad.ok and "missing (the ledger has an answer)" in bad.problems[0]

