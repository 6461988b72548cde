"""`benchsmith skyrl synth` end to end against the fake server: scripted tasks and plans,
a plan refused and asked again with its problems, near-duplicate prompts asked again (and
left out across invocations), exact domain/complexity counts, the SkyRL files in --out and
the run dir, the raw answers, resume, batch mode and --dry-run."""

from __future__ import annotations

import datetime
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from batch_executor_support import FAST
from benchsmith import api
from benchsmith.cli.app import app
from benchsmith.skyrl.dataset import validate_file
from benchsmith.skyrl.inventory import load_inventory
from benchsmith.sources.generated import slot_seed
from benchsmith.validate.run_checks import check_run
from fake_openai import BatchScript, FakeOpenAI, Reply
from helpers import KEY_ENV, SECRET, ledger_rows, request_messages, write_yaml
from skyrl_runs_support import (
    asked,
    dataset,
    ground_truth,
    is_reask,
    prompt_for,
    raw_rows,
    read_parquet,
    synth_script,
    task_answer,
    write_inventory,
)

N = 12
FLAGS = ["--n-samples", str(N), "--domains", "alpha,beta:2",
         "--complexities", "simple:0.25,moderate:0.5,complex:0.25", "--seed", "7",
         "--val-fraction", "0.25", "--jsonl", "--quiet"]
SHARED = "Compare the quarterly invoice totals with the vendor ledger and flag gaps."


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, SECRET)


def base_config(tmp_path: Path, server: FakeOpenAI, **more: Any) -> Path:
    data = {
        "openai": {"base_url": server.base_url, "api_key_env": KEY_ENV},
        "engine": {"concurrency": 4, "max_retries": 1, "timeout_s": 10,
                   "backoff_base_s": 0.01, "backoff_max_s": 0.05},
        "prices": {"gpt-5-mini": {"input": 0.25, "output": 2.0}},
        **FAST, **more,
    }
    return write_yaml(tmp_path / "base.yaml", data)


def synth(tmp_path: Path, server: FakeOpenAI, *extra: str, **more: Any) -> Any:
    args = ["skyrl", "synth", "--config", base_config(tmp_path, server, **more),
            "--inventory", write_inventory(tmp_path), "--out", tmp_path / "out",
            "--runs-dir", tmp_path / "runs", *FLAGS, *extra]
    return CliRunner().invoke(app, [str(a) for a in args])


def run_dir(tmp_path: Path) -> Path:
    (rd,) = (tmp_path / "runs").iterdir()
    return rd


def check_dataset(tmp_path: Path, rows: int = N) -> list[dict[str, Any]]:
    """The files in --out and the run dir agree, pass validate_file and validate-run."""
    out, rd = tmp_path / "out", run_dir(tmp_path)
    got = dataset(out)
    assert len(got) == rows
    assert dataset(rd / "skyrl") == got
    inv = load_inventory(tmp_path / "tools.yaml")
    for split in ("train", "validation"):
        assert validate_file(out / f"{split}.parquet", inv) == []
        assert [json.loads(x) for x in (out / f"{split}.jsonl").read_text().splitlines()] == (
            read_parquet(out / f"{split}.parquet"))
    results = check_run(rd)
    assert all(r.ok for r in results), [(r.name, r.problems) for r in results if not r.ok]
    assert "skyrl_dataset" in [r.name for r in results]
    return got


def test_synth_end_to_end(tmp_path: Path, fake_openai: FakeOpenAI) -> None:
    """slot-00003's first plan names a parameter the tool does not take and has too many
    steps; slots 5 and 6 first answer the same prompt, so whichever is parsed second is a
    near duplicate. Each is asked again with its problems and then answers well."""
    def script(received: Any, index: int) -> Reply | None:
        a = asked(received.body)
        assert a is not None
        answer = task_answer(a["slot"], a["domain"], a["complexity"])
        if not is_reask(received.body):
            if a["slot"] == "slot-00003":
                answer["tool_sequence"] = [  # 9 steps, past --max-turns 8
                    {"step": k, "server": "files", "tool": "read_file",
                     "params_json": json.dumps({"path": f"{k}.md"})} for k in range(1, 10)]
                answer["tool_sequence"][0]["params_json"] = '{"path": "a.md", "colour": "red"}'
            if a["slot"] in ("slot-00005", "slot-00006"):
                answer["user_prompt"] = SHARED
        return Reply.text(answer, usage={"reasoning_tokens": 42})

    fake_openai.script = script
    res = synth(tmp_path, fake_openai)
    assert res.exit_code == 0, res.output
    rd = run_dir(tmp_path)
    assert rd.name.startswith("skyrl-synth-gpt-5-mini-")
    assert len(fake_openai.requests) == N + 2

    # The re-asks carry the previous answer and its problems.
    reasks = {asked(r.body)["slot"]: request_messages(r.body) for r in fake_openai.requests
              if is_reask(r.body)}
    assert set(reasks) in ({"slot-00003", "slot-00005"}, {"slot-00003", "slot-00006"})
    bad = reasks.pop("slot-00003")
    assert json.loads(bad[2]["content"])["tool_sequence"][0]["params_json"].endswith('"red"}')
    feedback = bad[3]["content"]
    assert "parameter 'colour' is not allowed" in feedback
    assert "the plan has 9 steps; at most 8" in feedback
    ((dup_slot, dup),) = reasks.items()
    assert SHARED in dup[2]["content"]
    other = "slot-00006" if dup_slot == "slot-00005" else "slot-00005"
    assert f"near duplicate: the user_prompt is 100% similar to one already accepted in this " \
           f"run ({other})" in dup[3]["content"]

    # Every request: strict schema of the task, reasoning effort high, the inventory shown.
    for r in fake_openai.requests:
        fmt = r.body["text"]["format"]
        assert fmt["type"] == "json_schema" and fmt["strict"] and fmt["name"] == "skyrl_task"
        assert fmt["schema"]["properties"]["tool_sequence"]["items"]["properties"]["server"][
            "enum"] == ["files", "search"]
        assert r.body["reasoning"] == {"effort": "high"} and r.body["model"] == "gpt-5-mini"
        assert "- search.web: Search the web." in request_messages(r.body)[1]["content"]

    rows = check_dataset(tmp_path)
    # Exact counts, and the plans are the ones asked for (steps by complexity).
    info = [r["extra_info"] for r in rows]
    assert Counter(i["domain"] for i in info) == {"alpha": 4, "beta": 8}
    assert Counter(i["complexity"] for i in info) == {"simple": 3, "moderate": 6, "complex": 3}
    assert Counter(i["split"] for i in info) == {"train": 9, "validation": 3}
    for r in rows:
        steps = ground_truth(r)["tool_sequence"]
        assert len(steps) == {"simple": 1, "moderate": 2, "complex": 3}[
            r["extra_info"]["complexity"]]
        assert steps[0]["params"]["path"].startswith("notes/slot-")
        assert r["env_class"] == "MCPToolEnv" and r["reward_spec"]["method"] == "rule"
        assert r["extra_info"]["max_turns"] == 8
    prompts = [r["prompt"] for r in rows]
    assert all(len(p) == 1 and p[0]["role"] == "user" for p in prompts)
    assert len({p[0]["content"] for p in prompts}) == N

    # task_metadata names the raw answer: its request id, run, model, seed, tokens, time.
    raw = raw_rows(tmp_path / "out" / "raw_llm" / f"{rd.name}.jsonl.gz")
    assert raw == raw_rows(rd / "raw_llm" / f"{rd.name}.jsonl.gz")
    assert Counter(r["status"] for r in raw) == {"ok": N, "invalid": 2}
    ok = {r["request_id"]: r for r in raw if r["status"] == "ok"}
    for r in rows:
        meta = r["extra_info"]["task_metadata"]
        answer = ok[meta["request_id"]]
        assert json.loads(answer["raw"])["user_prompt"] == r["prompt"][0]["content"]
        assert answer["usage"]["reasoning_tokens"] == meta["reasoning_tokens"] == 42
        slot = json.loads(meta["other"])["task_id"]
        assert meta["seed"] == slot_seed(7, int(slot.removeprefix("slot-")))
        assert (meta["mode"], meta["model"], meta["reasoning_effort"], meta["run_id"]) == (
            "synth", "gpt-5-mini", "high", rd.name)
        assert datetime.datetime.fromisoformat(meta["timestamp"]).tzinfo is not None
    assert "wrote:" in res.stdout and "(9 rows)" in res.stdout and "(3 rows)" in res.stdout
    st = api.run_status(rd)
    assert st["recipe_lines"] == [f"skyrl: {N} row(s) (see skyrl/)"]


def test_the_same_command_again_resumes_and_sends_nothing_new(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    fake_openai.script = synth_script
    assert synth(tmp_path, fake_openai).exit_code == 0
    before = (tmp_path / "out" / "train.jsonl").read_bytes()
    n = len(fake_openai.requests)
    res = synth(tmp_path, fake_openai)
    assert res.exit_code == 0, res.output
    assert len(fake_openai.requests) == n
    assert "(resumed)" in res.output
    assert (tmp_path / "out" / "train.jsonl").read_bytes() == before
    assert len(list((tmp_path / "runs").iterdir())) == 1
    # An option that shapes no request (the split) changes only the files.
    res = synth(tmp_path, fake_openai, "--val-fraction", "0.5")
    assert res.exit_code == 0, res.output
    assert len(fake_openai.requests) == n and len(list((tmp_path / "runs").iterdir())) == 1
    assert len(read_parquet(tmp_path / "out" / "validation.parquet")) == N // 2

    # validate-run's skyrl_dataset check fails on files that no longer match the ledger.
    import pyarrow as pa
    import pyarrow.parquet as pq

    rd = run_dir(tmp_path)
    path = rd / "skyrl" / "train.parquet"
    table = pq.read_table(path)
    lost = table.slice(0, 1).to_pylist()[0]["extra_info"]["task_metadata"]["request_id"]
    rows = table.slice(1).to_pylist()
    rows[0]["reward_spec"]["ground_truth"] = json.dumps({
        "tool_sequence": [{"step": 1, "server": "files", "tool": "delete", "params": {}}],
        "success": {"must_call_tool": ["files.read_file"]}})
    pq.write_table(pa.Table.from_pylist(rows, schema=table.schema), path)
    (bad,) = [r for r in check_run(rd) if not r.ok]
    assert bad.name == "skyrl_dataset"
    assert f"skyrl/: the accepted answer {lost} has no row (resume the run to write the " \
           "files again)" in bad.problems
    assert any("unknown tool 'delete'" in p for p in bad.problems), bad.problems


def test_a_task_without_a_valid_plan_exits_4_and_is_left_out(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    """slot-00000 always answers a complexity it was not asked for; after the re-asks it is
    invalid: no row, exit 4, and `status` counts it."""
    def script(received: Any, index: int) -> Reply | None:
        a = asked(received.body)
        if a is not None and a["slot"] == "slot-00000":
            wrong = "simple" if a["complexity"] != "simple" else "complex"
            answer = task_answer(a["slot"], a["domain"], wrong)
            return Reply.text(answer)
        return synth_script(received, index)

    fake_openai.script = script
    res = synth(tmp_path, fake_openai)
    assert res.exit_code == 4, res.output
    assert "run the same command again" in res.output
    rows = check_dataset(tmp_path, N - 1)
    assert all("slot-00000" not in r["extra_info"]["task_metadata"]["other"] for r in rows)
    rd = run_dir(tmp_path)
    # the default 2 re-asks: three answers, each refused for its complexity
    issues = ledger_rows(rd, "SELECT a.issues_json FROM attempts a JOIN units u USING "
                             "(unit_id) WHERE u.task_id='slot-00000'")
    assert len(issues) == 3
    assert all("but this task was asked to be" in json.loads(i)[0] for (i,) in issues)
    assert api.run_status(rd)["recipe_lines"] == [
        f"skyrl: {N - 1} row(s), 1 without a plan yet (see skyrl/)"]


def test_near_duplicates_across_invocations_are_left_out_of_the_files(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    """A resumed run's parse has not seen the prompts accepted before: the writer drops the
    later slot of a near-duplicate pair (slot order), and says so."""
    fake_openai.script = lambda r, i: (Reply.error(500, "down") if asked(r.body)["slot"] != (
        "slot-00000") else synth_script(r, i))
    assert synth(tmp_path, fake_openai).exit_code == 4
    first = dataset(tmp_path / "out")
    assert len(first) == 1

    def again(received: Any, index: int) -> Reply | None:
        a = asked(received.body)
        assert a is not None and a["slot"] != "slot-00000"
        prompt = prompt_for("slot-00000") if a["slot"] == "slot-00004" else None
        return Reply.text(task_answer(a["slot"], a["domain"], a["complexity"], prompt))

    fake_openai.script = again
    res = synth(tmp_path, fake_openai)
    assert res.exit_code == 0, res.output
    rows = check_dataset(tmp_path, N - 1)
    slots = {json.loads(r["extra_info"]["task_metadata"]["other"])["task_id"] for r in rows}
    assert "slot-00000" in slots and "slot-00004" not in slots
    line = api.run_status(run_dir(tmp_path))["recipe_lines"][0]
    assert line == f"skyrl: {N - 1} row(s), 1 near duplicate(s) left out (see skyrl/)"


def test_synth_in_batch_mode(tmp_path: Path, fake_openai: FakeOpenAI) -> None:
    """The same tasks through the Batch API: an invalid first answer goes again in a later
    file with its problems; the counts stay exact."""
    def answer(_cid: str, body: dict[str, Any]) -> Any:
        a = asked(body)
        assert a is not None
        out = task_answer(a["slot"], a["domain"], a["complexity"])
        if a["slot"] == "slot-00001" and not is_reask(body):
            out["tool_sequence"][0]["server"] = "nowhere"
        return out

    fake_openai.batch_plan = lambda _bid, _lines: BatchScript(answer=answer)
    res = synth(tmp_path, fake_openai, "--mode", "batch")
    assert res.exit_code == 0, res.output
    sizes = [len(b.lines) for b in fake_openai.batches.values()]
    assert sizes == [N, 1]
    (reask,) = list(fake_openai.batches.values())[1].lines
    assert "unknown server 'nowhere'" in request_messages(reask["body"])[-1]["content"]
    assert not [r for r in fake_openai.requests if r.path.endswith("/responses")]
    rows = check_dataset(tmp_path)
    assert Counter(r["extra_info"]["domain"] for r in rows) == {"alpha": 4, "beta": 8}
    assert Counter(r["extra_info"]["complexity"] for r in rows) == {
        "simple": 3, "moderate": 6, "complex": 3}


def test_dry_run_calls_nothing_and_writes_nothing(tmp_path: Path, fake_openai: FakeOpenAI
                                                  ) -> None:
    res = synth(tmp_path, fake_openai, "--dry-run")
    assert res.exit_code == 0, res.output
    assert not fake_openai.requests
    assert not (tmp_path / "out").exists() and not (tmp_path / "runs").exists()
    out = res.stdout
    assert f"would ask:  {N} request(s) for {N} task slot(s); no model is called" in out
    assert "domains:    alpha 4, beta 8" in out
    assert "complexity: simple 3, moderate 6, complex 3" in out
    assert "cost:       at most $" in out and "with every validation retry" in out
    assert 'Task slot-00000: domain "' in out and "(the inventory: 3 tools on 2 servers)" in out
    # The same seed gives the same allocation and prompts.
    assert synth(tmp_path, fake_openai, "--dry-run").stdout == out


def test_a_refused_reasoning_effort_is_left_out_and_recorded_as_null(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    """An endpoint without reasoning: one warning, every task still answered, and the rows
    say the answers were made without the effort."""
    fake_openai.script = synth_script
    fake_openai.reject_params = ("reasoning",)
    res = synth(tmp_path, fake_openai)
    assert res.exit_code == 0, res.output
    warnings = [ln for ln in res.output.splitlines() if ln.startswith("warning:")]
    assert len(warnings) == 1 and "refused the reasoning effort" in warnings[0]
    assert "model gpt-5-mini" in warnings[0]
    refused = [r for r in fake_openai.requests if "reasoning" in r.body]
    assert 1 <= len(refused) <= 4  # the first requests in flight
    assert len(fake_openai.requests) == N + len(refused)
    rows = check_dataset(tmp_path)
    assert {r["extra_info"]["task_metadata"]["reasoning_effort"] for r in rows} == {None}
