"""`benchsmith infbench run` given what a careless or hostile user gives it: two runs of one
model at once, sampled ids that match nothing, secrets in the environment, keys lists with
empty items, a model the table does not know."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from fake_openai import Reply
from helpers import KEY_ENV, cli_env, nonempty_lines, popen_cli, run_cli, wait_for, write_yaml
from infbench_run_support import invoke, read_lines, run_args

ENV = ("OPENAI_KEYS", "OPENAI_KEY", "BASE_URL", "OPENAI_API_KEY")


def one_error_line(res: Any) -> str:
    assert res.exit_code == 1, res.output
    assert res.exception is None or isinstance(res.exception, SystemExit), res.exception
    lines = nonempty_lines(res.stderr)
    assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr
    return lines[0]


def results_file(ib: dict[str, Any], model: str = "gpt-4.1") -> Path:
    return ib["results"] / model / "T=0" / "n=1" / "all-task-instances_0.2.jsonl"


# --------------------------------------------------------------------------- two at once


def test_a_second_run_of_the_same_model_refuses_and_writes_nothing(ib: dict[str, Any]
                                                                   ) -> None:
    ib["server"].script = lambda _r, i: Reply.delay(4.0 if i else 0.0)
    args = [str(a) for a in run_args(ib, "--model", "gpt-4.1", "--dataset-name", "all",
                                     "--run-id", "0.2", "--max-workers", "1")]
    env = cli_env(**{KEY_ENV: "sk-test-concurrent"})
    first = popen_cli(args, env=env, cwd=ib["tmp"])
    try:
        path = results_file(ib)
        # one answered (not yet appended), the next in flight for 4 s
        wait_for(lambda: len(ib["server"].requests) >= 2, what="the first run asking")
        ids = ib["tmp"] / "ids.json"
        ids.write_text(json.dumps({"sampled_instance_ids": ib["ids"][:1]}))
        for extra in ([], ["--sampled-ids-file", str(ids)]):  # same run, and another one
            r = run_cli([*args, *extra], env=env, cwd=ib["tmp"])
            assert r.returncode == 1, (r.stdout, r.stderr)
            lines = nonempty_lines(r.stderr)
            assert len(lines) == 1 and "another `infbench run`" in lines[0], r.stderr
            assert "wait for it" in lines[0] and "Traceback" not in r.stderr
            assert not path.exists() or path.read_text() == ""
        out, err = first.communicate(timeout=60)
        assert first.returncode == 0, (out, err)
    finally:
        if first.poll() is None:
            first.kill()
    got = [x["instance_id"] for x in read_lines(path)]
    assert sorted(got) == sorted(ib["ids"])  # each once


# --------------------------------------------------------------------------- sampled ids


def test_sampled_ids_that_match_no_instance_are_an_error(ib: dict[str, Any]) -> None:
    ids = ib["tmp"] / "ids.json"
    ids.write_text(json.dumps({"sampled_instance_ids": ["typo-1", "typo-2"]}))
    msg = one_error_line(invoke(*run_args(ib, "--model", "gpt-4.1", "--dataset-name", "all",
                                          "--run-id", "0.2", "--sampled-ids-file", ids)))
    assert f"{ids}: sampled_instance_ids: none of the 2 ids" in msg, msg
    assert not ib["server"].requests


def test_sampled_ids_partly_unknown_are_noted_and_a_bom_is_read(ib: dict[str, Any]) -> None:
    ids = ib["tmp"] / "ids.json"
    body = json.dumps({"sampled_instance_ids": [ib["ids"][0], "typo-1"]})
    ids.write_bytes(b"\xef\xbb\xbf" + body.encode())
    res = invoke(*run_args(ib, "--model", "gpt-4.1", "--dataset-name", "all", "--run-id",
                           "0.2", "--sampled-ids-file", ids))
    assert res.exit_code == 0, res.output
    assert "note: 1 of the 2 sampled ids are in no dataset of this run: typo-1" in res.stderr
    assert [x["instance_id"] for x in read_lines(results_file(ib))] == ib["ids"][:1]


# --------------------------------------------------------------------------- environment


@pytest.fixture
def env_only(ib: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """`ib` without a base config: endpoint and keys from the environment."""
    for name in ENV:
        monkeypatch.delenv(name, raising=False)
    return ib


def _env_run(ib: dict[str, Any], model: str = "gpt-4.1") -> Any:
    return invoke("infbench", "run", "--infbench-dir", ib["infbench"], "--results-dir",
                  ib["results"], "--runs-dir", ib["runs"], "--model", model,
                  "--dataset-name", "all", "--run-id", "0.2")


@pytest.mark.parametrize("url", ["http://127.0.0.1:9/v1?key=sk-live-QUERYSECRET",
                                 "http://127.0.0.1:9/v1#sk-live-QUERYSECRET",
                                 "sk-live-QUERYSECRET"])
def test_a_secret_in_base_url_is_never_echoed(env_only: dict[str, Any],
                                              monkeypatch: pytest.MonkeyPatch,
                                              url: str) -> None:
    monkeypatch.setenv("OPENAI_KEY", "sk-k")
    monkeypatch.setenv("BASE_URL", url)
    res = _env_run(env_only)
    msg = one_error_line(res)
    assert "BASE_URL" in msg and "QUERYSECRET" not in res.output, res.output


def test_empty_items_of_openai_keys(env_only: dict[str, Any],
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    ib = env_only
    monkeypatch.setenv("BASE_URL", ib["server"].base_url)
    monkeypatch.setenv("OPENAI_KEYS", " , ,")
    msg = one_error_line(_env_run(ib))
    assert msg.startswith("error: environment: OPENAI_KEYS: holds no key"), msg
    # a usable OPENAI_KEY is not hidden by an OPENAI_KEYS of empty items
    monkeypatch.setenv("OPENAI_KEY", "sk-one")
    res = _env_run(ib)
    assert res.exit_code == 0, res.output
    auth = {r.headers.get("authorization") for r in ib["server"].requests}
    assert auth == {"Bearer sk-one"}


def test_neither_key_variable_set_names_both(env_only: dict[str, Any],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BASE_URL", env_only["server"].base_url)
    monkeypatch.setenv("OPENAI_KEY", "")
    msg = one_error_line(_env_run(env_only))
    assert "OPENAI_KEYS" in msg and "OPENAI_KEY" in msg, msg


# --------------------------------------------------------------------------- model table


def test_a_model_the_table_does_not_name_is_noted(ib: dict[str, Any]) -> None:
    res = invoke(*run_args(ib, "--model", "gpt-4.l", "--dataset-name", "all", "--run-id",
                           "0.2"))
    assert res.exit_code == 0, res.output
    assert ("note: gpt-4.l is not in the model table: default settings (T=0, top_p 0.95, "
            "n 1, context 128000), no prices") in res.stderr, res.stderr


# --------------------------------------------------------------------------- numbers


@pytest.mark.parametrize("args,option", [
    (["run", "--max-workers", "0"], "--max-workers"),
    (["run", "--timeout", "-1"], "--timeout"),
    (["run", "--budget", "-1"], "--budget"),
    (["merge-results", "--model-name", "m", "--n", "0"], "--n"),
    (["build", "--bench", "b.jsonl", "--save-path", "x.jsonl", "--topn", "0"], "--topn"),
])
def test_out_of_range_numbers_are_one_line(tmp_path: Path, args: list[str],
                                           option: str) -> None:
    if args[0] == "run":
        args = [*args, "--model", "m", "--dataset-name", "all", "--run-id", "0.2"]
    r = run_cli(["infbench", *args], cwd=tmp_path)
    assert r.returncode == 1, (r.stdout, r.stderr)
    lines = nonempty_lines(r.stderr)
    assert len(lines) == 1 and lines[0].startswith(f"error: {option}: must be "), r.stderr


# --------------------------------------------------------------------------- infbench rows


@pytest.mark.parametrize("change,expect", [
    ({"context_files": "x"}, "context_files: must be a list of {path, content}"),
    ({"context_files": [{"path": "a.py"}]}, "context_files: must be a list of {path, content}"),
    ({"pre_edits": "diff"}, "pre_edits: must be a list of steps"),
    ({"prompt": 5}, "prompt: must be a string"),
    ({"requirement": ["x"]}, "requirement: must be a string"),
    ({"prompt": None}, "prompt: missing"),
])
def test_a_bad_infbench_row_is_named_before_any_run(ib: dict[str, Any], change: dict,
                                                     expect: str) -> None:
    path = ib["infbench"] / "all-task-instances_0.2.jsonl"
    rows = read_lines(path)
    rows[1].update(change)
    rows[1] = {k: v for k, v in rows[1].items() if v is not None}
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    res = invoke(*run_args(ib, "--model", "gpt-4.1", "--dataset-name", "all", "--run-id",
                           "0.2"))
    msg = one_error_line(res)
    assert f"{path}: line 2 ({rows[1]['instance_id']}): {expect}" in msg, msg
    assert "infbench build" in msg and not ib["server"].requests


def test_an_empty_infbench_file_is_an_error(ib: dict[str, Any]) -> None:
    path = ib["infbench"] / "all-task-instances_0.2.jsonl"
    path.write_text("")
    msg = one_error_line(invoke(*run_args(ib, "--model", "gpt-4.1", "--dataset-name", "all",
                                          "--run-id", "0.2")))
    assert f"{path}: " in msg and "no instance" in msg, msg


def test_one_file_named_twice_is_asked_once(ib: dict[str, Any]) -> None:
    path = "infbench/all-task-instances_0.2.jsonl"  # relative: the fixture's cwd is tmp
    res = invoke(*run_args(ib, "--model", "gpt-4.1", "--dataset-name", "all", path,
                           "--run-id", "0.2"))
    assert res.exit_code == 0, res.output
    assert len(ib["server"].requests) == len(ib["ids"])
    assert "appended all-task-instances_0.2.jsonl: +3" in res.stdout, res.stdout


def test_two_files_with_one_results_name_are_refused(ib: dict[str, Any]) -> None:
    other = ib["tmp"] / "other" / "all-task-instances_0.2.jsonl"
    other.parent.mkdir()
    other.write_bytes((ib["infbench"] / "all-task-instances_0.2.jsonl").read_bytes())
    msg = one_error_line(invoke(*run_args(ib, "--model", "gpt-4.1", "--dataset-name", "all",
                                          other, "--run-id", "0.2")))
    assert "all-task-instances_0.2.jsonl" in msg and "same results file" in msg, msg
    assert not ib["server"].requests


def test_a_bad_infbench_row_on_the_generic_run_path(ib: dict[str, Any]) -> None:
    path = ib["infbench"] / "all-task-instances_0.2.jsonl"
    rows = read_lines(path)
    rows[0]["context_files"] = "x"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    config = write_yaml(ib["tmp"] / "x.yaml", {
        "recipe": "edit_predict", "run_dir": str(ib["runs"]),
        "datasets": {"ib": {"source": "infbench", "path": str(path)}},
        "model": {"name": "gpt-4.1", "temperature": 0},
        "openai": {"base_url": ib["server"].base_url, "api_key_env": KEY_ENV, "api": "chat"},
    })
    msg = one_error_line(invoke("run", "--config", config, "--run-id", "G", "--quiet"))
    assert f"datasets.ib: {rows[0]['instance_id']}: context_files: must be a list" in msg, msg
    assert not ib["server"].requests
