"""`skyrl synth` / `retrofit` / `validate` given what a careless or hostile user gives: every
bad input is one `error:` line naming the flag, file or field, a non-zero exit, no
traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from benchsmith.cli.app import app
from benchsmith.engine.param_fallback import rejected_param
from benchsmith.skyrl.dataset import skyrl_row, validate_file, write_dataset
from fake_openai import FakeOpenAI
from helpers import KEY_ENV, SECRET, write_yaml
from skyrl_runs_support import dataset, write_inventory


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, SECRET)


def cli(*args: object) -> tuple[int, str]:
    res = CliRunner().invoke(app, [str(a) for a in args])
    assert res.exception is None or isinstance(res.exception, SystemExit), res.exception
    return res.exit_code, res.output


def one_error(code: int, output: str) -> str:
    lines = [ln for ln in output.splitlines() if ln.strip()]
    assert code != 0 and len(lines) == 1 and lines[0].startswith("error: "), output
    assert "Traceback" not in output
    return lines[0]


def test_more_samples_than_a_run_can_hold_is_one_line(tmp_path: Path) -> None:
    line = one_error(*cli("skyrl", "synth", "--out", tmp_path / "o", "--dry-run",
                          "--n-samples", "99999999999999999999", "--runs-dir", tmp_path))
    assert "--n-samples" in line and "10,000,000" in line


def test_a_bad_domains_list_shows_a_domains_example(tmp_path: Path) -> None:
    line = one_error(*cli("skyrl", "synth", "--out", tmp_path / "o", "--n-samples", "2",
                          "--dry-run", "--domains", ",,"))
    assert "--domains" in line and "complex" not in line and "devops" in line


def test_an_unknown_complexity_is_named_before_its_weight(tmp_path: Path) -> None:
    line = one_error(*cli("skyrl", "synth", "--out", tmp_path / "o", "--n-samples", "2",
                          "--dry-run", "--complexities", "a:0"))
    assert "'a' is not a complexity" in line


def _rows(tmp_path: Path, *rows: dict) -> Path:
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


USER = [{"role": "user", "content": "List the files."}]


@pytest.mark.parametrize("prompt, words", [
    ([{"role": "bogus", "content": "hi"}, *USER], "role 'bogus'"),
    ([{"role": "system", "content": "Be brief."}], "no user message"),
    ([{"role": "assistant", "content": "Hello"}], "no user message"),
])
def test_retrofit_refuses_a_prompt_its_output_could_not_hold(tmp_path: Path, prompt: list,
                                                             words: str) -> None:
    inp = _rows(tmp_path, {"prompt": USER}, {"prompt": prompt})
    line = one_error(*cli("skyrl", "retrofit", "--input", inp, "--out", tmp_path / "o",
                          "--dry-run"))
    assert "rows.jsonl: line 2" in line and words in line


def test_retrofit_limit_0_names_the_flag(tmp_path: Path) -> None:
    line = one_error(*cli("skyrl", "retrofit", "--input", _rows(tmp_path, {"prompt": USER}),
                          "--out", tmp_path / "o", "--dry-run", "--limit", "0"))
    assert "--limit" in line


def _base(tmp_path: Path, server: FakeOpenAI) -> Path:
    return write_yaml(tmp_path / "base.yaml", {
        "openai": {"base_url": server.base_url, "api_key_env": KEY_ENV},
        "engine": {"concurrency": 2, "max_retries": 1, "timeout_s": 10}})


PLAN = {"tool_sequence": [{"step": 1, "server": "files", "tool": "read_file",
                           "params": {"path": "a.txt"}}],
        "success": {"must_call_tool": ["files.read_file"]}}


def test_skip_existing_with_every_row_planned_asks_nothing_and_writes_them(
        tmp_path: Path, fake_openai: FakeOpenAI) -> None:
    inp = _rows(tmp_path, *({"prompt": USER, "id": i, "reward_spec": {
        "method": "rule", "ground_truth": json.dumps(PLAN)}} for i in range(3)))
    args = ["skyrl", "retrofit", "--config", _base(tmp_path, fake_openai), "--input", inp,
            "--inventory", write_inventory(tmp_path), "--out", tmp_path / "o",
            "--runs-dir", tmp_path / "runs", "--skip-existing", "--quiet"]
    for _ in range(2):  # and again: nothing asked, the same files
        code, out = cli(*args)
        assert code == 0, out
        assert not fake_openai.requests
        assert sorted(r["id"] for r in dataset(tmp_path / "o")) == [0, 1, 2]
    # Rows without data_source / env_class get the run's, as asked rows do: the files pass
    # `skyrl validate`.
    for r in dataset(tmp_path / "o"):
        assert (r["data_source"], r["env_class"]) == ("benchsmith/skyrl_tools", "MCPToolEnv")
    assert validate_file(tmp_path / "o" / "train.parquet") == []


@pytest.mark.parametrize("message", [
    "Unsupported parameter: 'temperature' is not supported with reasoning models.",
    "Unsupported parameter: 'max_tokens' is not supported with this model. Use "
    "'max_completion_tokens' instead (reasoning models).",
    "'max_output_tokens' is not supported with reasoning effort high",
    "Unrecognized request argument supplied: temperature. Note: reasoning_effort is set",
])
def test_a_400_refusing_another_parameter_is_no_reasoning_refusal(message: str) -> None:
    """Sent again without reasoning, such a request would be refused again, and the run's
    later requests would lose the reasoning effort for nothing."""
    assert rejected_param(400, message) is None


@pytest.mark.parametrize("name", ["missing.parquet", "folder.jsonl"])
def test_validate_a_file_that_is_not_there_is_one_error_line(tmp_path: Path, name: str) -> None:
    (tmp_path / "folder.jsonl").mkdir()
    line = one_error(*cli("skyrl", "validate", tmp_path / name))
    assert str(tmp_path / name) in line
    assert ("not found" if name.startswith("missing") else "is a folder") in line


def test_validate_names_a_byte_order_mark_and_still_checks_the_rows(tmp_path: Path) -> None:
    write_dataset([skyrl_row({"prompt": USER, "tool_sequence": PLAN["tool_sequence"],
                              "success": PLAN["success"], "rubric": "r"},
                             data_source="d", env_class="MCPToolEnv", index=0, split="train",
                             meta={})], [], tmp_path, jsonl=True)
    bom = tmp_path / "bom.jsonl"
    bom.write_bytes(b"\xef\xbb\xbf" + (tmp_path / "train.jsonl").read_bytes())
    (problem,) = validate_file(bom)
    assert "line 1: the file starts with a UTF-8 byte order mark" in problem
    assert "save it as UTF-8 without one" in problem and "utf-8-sig" not in problem


@pytest.mark.parametrize("flag", ["--out", "--runs-dir"])
def test_a_file_where_a_folder_goes_is_refused_before_any_request(
        tmp_path: Path, fake_openai: FakeOpenAI, flag: str) -> None:
    (tmp_path / "afile").write_text("x")
    paths = {"--out": tmp_path / "o", "--runs-dir": tmp_path / "runs", flag: tmp_path / "afile"}
    line = one_error(*cli("skyrl", "synth", "--config", _base(tmp_path, fake_openai),
                          "--inventory", write_inventory(tmp_path), "--n-samples", "1",
                          "--quiet", *(x for k, v in paths.items() for x in (k, v))))
    assert flag in line and str(tmp_path / "afile") in line and "folder" in line
    assert not fake_openai.requests


@pytest.mark.parametrize("command", ["synth", "retrofit"])
@pytest.mark.parametrize("model", ["", "  "])
def test_an_empty_model_name_is_refused(tmp_path: Path, command: str, model: str) -> None:
    more = (["--n-samples", "1"] if command == "synth"
            else ["--input", _rows(tmp_path, {"prompt": USER})])
    line = one_error(*cli("skyrl", command, "--out", tmp_path / "o", "--dry-run",
                          "--model", model, *more))
    assert "--model" in line


@pytest.mark.parametrize("rows, words", [
    ([{"prompt": USER, "tag": 1}, {"prompt": USER, "tag": "x"}], "column tag"),
    ([{"prompt": USER, "tag": [1]}, {"prompt": USER, "tag": {"a": 1}}], "column tag"),
    ([{"prompt": USER, "extra_info": {"repo": 1}}, {"prompt": USER,
                                                    "extra_info": {"repo": "a/b"}}],
     "column extra_info.repo"),
    ([{"prompt": USER}, {"prompt": USER, "extra_info": "notes"}], "line 2: extra_info"),
    ([{"prompt": USER}, {"prompt": USER, "data_source": 5}], "line 2: data_source"),
    ([{"prompt": USER}, {"prompt": USER, "env_class": ["x"]}], "line 2: env_class"),
])
def test_input_columns_the_output_cannot_hold_stop_retrofit_before_any_request(
        tmp_path: Path, rows: list, words: str) -> None:
    """Found when the files are written, after every answer was paid for."""
    line = one_error(*cli("skyrl", "retrofit", "--input", _rows(tmp_path, *rows), "--out",
                          tmp_path / "o", "--dry-run"))
    assert "rows.jsonl" in line and words in line
