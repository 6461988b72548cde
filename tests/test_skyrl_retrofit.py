"""`benchsmith skyrl retrofit` against the fake server, on real prompts: SWE-bench Lite
problem statements (carriage returns, tabs, non-ASCII text, trailing whitespace) as SkyRL rows,
some already holding a plan. Prompts come out byte for byte; rows with a plan are copied
with --skip-existing and asked again without it; the row's other columns are kept."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from benchsmith.cli.app import app
from benchsmith.skyrl.dataset import validate_file
from benchsmith.skyrl.inventory import load_inventory
from benchsmith.validate.run_checks import check_run
from fake_openai import FakeOpenAI
from helpers import KEY_ENV, SECRET, request_messages, write_yaml
from skyrl_runs_support import dataset, ground_truth, raw_rows, retrofit_script, write_inventory

LITE = Path(__file__).resolve().parents[2] / "shared/data/swebench_lite/swebench_lite_test.jsonl.gz"
SYSTEM = "You are a careful software engineer.  \n"
OLD_PLAN = {"tool_sequence": [{"step": 1, "server": "files", "tool": "read_file",
                               "params": {"path": "setup.cfg"}}],
            "success": {"must_call_tool": ["files.read_file"]}}


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, SECRET)


def lite_rows(first: int, n: int) -> list[dict[str, Any]]:
    with gzip.open(LITE, "rt", encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh]
    return rows[first:first + n]


def input_rows() -> list[dict[str, Any]]:
    """Eight SkyRL rows from SWE-bench Lite instances 3-10: two hold a plan as a JSON string,
    one as an object, one an empty sequence (no plan); one prompt is a plain string."""
    out = []
    for i, r in enumerate(lite_rows(3, 8)):
        row: dict[str, Any] = {
            "data_source": "swe-bench-lite", "instance_id": r["instance_id"],
            "prompt": [{"role": "system", "content": SYSTEM},
                       {"role": "user", "content": r["problem_statement"]}],
            "env_class": "swe_tools", "extra_info": {"repo": r["repo"]},
        }
        if i in (0, 1):
            row["reward_spec"] = {"method": "rule", "ground_truth": json.dumps(OLD_PLAN)}
        elif i == 2:
            row["reward_spec"] = {"method": "rule", "ground_truth": OLD_PLAN}
        elif i == 3:
            row["reward_spec"] = {"method": "rule", "ground_truth": json.dumps(
                {"tool_sequence": []})}
        if i == 7:
            row["prompt"] = r["problem_statement"]
        out.append(row)
    return out


def write_input(tmp_path: Path, rows: list[dict[str, Any]]) -> Path:
    path = tmp_path / "prompts.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def retrofit(tmp_path: Path, server: FakeOpenAI, rows: list[dict[str, Any]], *extra: str
             ) -> Any:
    config = write_yaml(tmp_path / "base.yaml", {
        "openai": {"base_url": server.base_url, "api_key_env": KEY_ENV},
        "engine": {"concurrency": 3, "max_retries": 1, "timeout_s": 10}})
    args = ["skyrl", "retrofit", "--config", config, "--inventory", write_inventory(tmp_path),
            "--input", write_input(tmp_path, rows), "--out", tmp_path / "out",
            "--runs-dir", tmp_path / "runs", "--val-fraction", "0.25", "--quiet", *extra]
    return CliRunner().invoke(app, [str(a) for a in args])


def messages(row: dict[str, Any]) -> list[dict[str, Any]]:
    p = row["prompt"]
    return [{"role": "user", "content": p}] if isinstance(p, str) else p


def by_instance(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {r["instance_id"]: r for r in rows}


def check_common(tmp_path: Path, rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Every input row is in the output with its prompt byte for byte and its columns."""
    got = by_instance(dataset(tmp_path / "out"))
    assert set(got) == {r["instance_id"] for r in rows}
    for r in rows:
        out = got[r["instance_id"]]
        assert [(m["role"], m["content"].encode()) for m in out["prompt"]] == [
            (m["role"], m["content"].encode()) for m in messages(r)]
        assert out["data_source"] == "swe-bench-lite" and out["env_class"] == "swe_tools"
        assert out["extra_info"]["repo"] == r["extra_info"]["repo"]
    inv = load_inventory(tmp_path / "tools.yaml")
    for split in ("train", "validation"):
        assert validate_file(tmp_path / "out" / f"{split}.parquet", inv) == []
    (rd,) = (tmp_path / "runs").iterdir()
    results = check_run(rd)
    assert all(r.ok for r in results), [(r.name, r.problems) for r in results if not r.ok]
    return got


def test_retrofit_skip_existing_copies_rows_with_a_plan(tmp_path: Path,
                                                        fake_openai: FakeOpenAI) -> None:
    fake_openai.script = retrofit_script
    rows = input_rows()
    assert any("\r" in m["content"] for r in rows for m in messages(r))
    assert any(any(ord(c) > 127 for c in m["content"]) for r in rows for m in messages(r))
    res = retrofit(tmp_path, fake_openai, rows, "--skip-existing")
    assert res.exit_code == 0, res.output
    # Only the five rows without a plan were asked; each request shows the prompt as JSON.
    assert len(fake_openai.requests) == 5
    shown = [request_messages(r.body)[1]["content"] for r in fake_openai.requests]
    for r in rows[3:]:
        dumped = json.dumps(messages(r), ensure_ascii=False, indent=1)
        assert sum(dumped in s for s in shown) == 1
    for r in fake_openai.requests:
        assert r.body["text"]["format"]["name"] == "skyrl_plan"
        assert "user_prompt" not in r.body["text"]["format"]["schema"]["properties"]

    got = check_common(tmp_path, rows)
    for r in rows[:3]:  # copied: their own plan, as a JSON string, nothing added
        out = got[r["instance_id"]]
        assert ground_truth(out) == OLD_PLAN
        assert out["extra_info"]["task_metadata"] is None
    (rd,) = (tmp_path / "runs").iterdir()
    raw = {a["request_id"]: a for a in raw_rows(tmp_path / "out" / "raw_llm"
                                                / f"{rd.name}.jsonl.gz")}
    for r in rows[3:]:  # asked: the scripted plan, the answer named
        out = got[r["instance_id"]]
        gt = ground_truth(out)
        assert gt["tool_sequence"] == [{"step": 1, "server": "files", "tool": "read_file",
                                        "params": {"path": "notes/row.md"}}]
        assert gt["success"] == {"must_call_tool": ["files.read_file"]}
        assert out["reward_spec"]["rubric"] == "reads the notes\nwrites the summary"
        meta = out["extra_info"]["task_metadata"]
        assert meta["mode"] == "retrofit" and meta["reasoning_tokens"] == 5
        assert raw[meta["request_id"]]["status"] == "ok"
        assert out["extra_info"]["limits"] == {"max_servers": 1, "max_tools": 1}
    assert "(6 rows)" in res.stdout and "(2 rows)" in res.stdout


def test_retrofit_without_skip_existing_asks_every_row(tmp_path: Path,
                                                       fake_openai: FakeOpenAI) -> None:
    fake_openai.script = retrofit_script
    rows = input_rows()
    res = retrofit(tmp_path, fake_openai, rows, "--limit", "6")
    assert res.exit_code == 0, res.output
    assert len(fake_openai.requests) == 6
    got = check_common(tmp_path, rows[:6])
    for out in got.values():
        assert ground_truth(out)["tool_sequence"][0]["params"] == {"path": "notes/row.md"}


def test_a_row_without_a_prompt_is_a_one_line_error(tmp_path: Path,
                                                    fake_openai: FakeOpenAI) -> None:
    rows = input_rows()
    rows[4] = {"instance_id": "x", "question": "no prompt here"}
    res = retrofit(tmp_path, fake_openai, rows)
    assert res.exit_code == 1
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in res.output
    assert "prompts.jsonl" in lines[0] and "line 5" in lines[0] and "`prompt`" in lines[0]
    assert not fake_openai.requests and not (tmp_path / "out").exists()
    assert not (tmp_path / "runs").exists()


def test_retrofit_dry_run(tmp_path: Path, fake_openai: FakeOpenAI) -> None:
    res = retrofit(tmp_path, fake_openai, input_rows(), "--skip-existing", "--dry-run")
    assert res.exit_code == 0, res.output
    assert not fake_openai.requests
    assert not (tmp_path / "out").exists() and not (tmp_path / "runs").exists()
    assert "would ask:  5 request(s) for 8 row(s); no model is called" in res.stdout
    assert "rows:       3 already hold a plan; 3 copied as they are (--skip-existing)" in (
        res.stdout)
    assert "An AI agent that can call the MCP tools" in res.stdout
