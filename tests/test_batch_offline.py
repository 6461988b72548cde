"""Offline batch round trips: `benchsmith batch export` -> a runner elsewhere -> `batch ingest`.

The "runner" is the fake server's online endpoint, called with urllib for each exported
body; its answers are deterministic per request body, so an offline round trip must give
exactly what the batch executor gives. Result files are written by the test in the OpenAI
output/error-file shape and in the vLLM `run-batch` shape (wire-formats.md 1.6 and 4.2).
"""

from __future__ import annotations

import json
import random
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from benchsmith import api, batch_ops
from fake_openai import FakeOpenAI, Reply
from helpers import (
    KEY_ENV,
    SECRET,
    assert_terminal_invariants,
    attempts_by_unit,
    cfg_dict,
    cli_env,
    deep_merge,
    files_under,
    first_task_ids,
    ledger_rows,
    make_cfg,
    nonempty_lines,
    read_jsonl,
    request_messages,
    run_cli,
    unit_specs,
    unit_states,
    write_yaml,
)
from batch_executor_support import (
    CHAT,
    FAST,
    MODEL,
    NO_DIV,
    PRICE,
    RESPONSES,
    online_answer,
    response_text,
    spec_validator,
)

ENV = cli_env()  # export / ingest need no API key


@pytest.fixture(autouse=True)
def _api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, SECRET)


# --------------------------------------------------------------------------- helpers


def cli_config(tmp_path: Path, server: FakeOpenAI, overrides: dict | None = None,
               tasks: int = 3) -> Path:
    return write_yaml(tmp_path / "run.yaml",
                      cfg_dict(tmp_path, server.base_url, deep_merge(FAST, overrides or {}),
                               tasks=tasks))


def dry_run_cli(cfg: Path, run_id: str = "R") -> Path:
    res = run_cli(["dry-run", "--config", str(cfg), "--run-id", run_id], env=ENV)
    assert res.returncode == 0, res.stderr
    return cfg.parent / "runs" / run_id


def export_cli(rd: Path, out: Path, endpoint: str | None = None) -> list[dict[str, Any]]:
    args = ["batch", "export", str(rd), "--out", str(out)]
    if endpoint:
        args += ["--endpoint", endpoint]
    res = run_cli(args, env=ENV)
    assert res.returncode == 0, res.stderr
    lines = read_jsonl(out)
    assert f"wrote {len(lines)} pending request(s)" in res.stderr
    return lines


def ingest_cli(rd: Path, *files: Path) -> dict[str, Any]:
    res = run_cli(["batch", "ingest", str(rd), *map(str, files), "--json"], env=ENV)
    assert res.returncode == 0, res.stderr
    assert "Traceback" not in res.stdout + res.stderr
    return json.loads(res.stdout)


def write_jsonl(path: Path, rows: list[Any]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def ok_line(line: dict[str, Any], body: dict[str, Any], *, vllm: bool = False) -> dict[str, Any]:
    """A success line as OpenAI's output file (or vLLM run-batch) writes it."""
    rid = uuid.uuid4().hex
    row = {
        "id": f"vllm-{rid}" if vllm else f"batch_req_{rid}",
        "custom_id": line["custom_id"],
        "response": {"status_code": 200,
                     "request_id": f"vllm-batch-{rid}" if vllm else f"req_{rid}", "body": body},
        "error": None,
    }
    if not vllm:
        spec_validator("BatchRequestOutput").validate(row)
    return row


def error_line(custom_id: str, *, status: int | None = None, body: Any = None,
               error: Any = None, vllm: bool = False) -> dict[str, Any]:
    rid = uuid.uuid4().hex
    resp = None
    if status is not None:
        resp = {"status_code": status, "request_id": f"vllm-batch-{rid}" if vllm else f"req_{rid}",
                "body": body}
    return {"id": f"vllm-{rid}" if vllm else f"batch_req_{rid}", "custom_id": custom_id,
            "response": resp, "error": error}


def answer(server: FakeOpenAI, lines: list[dict[str, Any]], *, vllm: bool = False) -> list[dict]:
    """Send every exported body to the fake's online endpoint; wrap the answers as result lines."""
    return [ok_line(ln, online_answer(server, ln["url"], ln["body"]), vllm=vllm) for ln in lines]


def check_export(lines: list[dict[str, Any]], rd: Path, endpoint: str) -> None:
    pending = {u for u, s in unit_states(rd).items() if s == "pending"}
    assert sorted(ln["custom_id"] for ln in lines) == sorted(pending)
    for ln in lines:
        assert set(ln) == {"custom_id", "method", "url", "body"}
        spec_validator("BatchRequestInput").validate(ln)
        spec_validator({RESPONSES: "CreateResponse", CHAT: "CreateChatCompletionRequest"}[endpoint]
                       ).validate(ln["body"])
        assert ln["method"] == "POST" and ln["url"] == endpoint
        assert ln["custom_id"].isascii() and len(ln["custom_id"]) <= 64


def snapshot(rd: Path) -> dict[str, Any]:
    """What ingest may change: ledger rows and the derived dataset files."""
    snap: dict[str, Any] = {
        t: ledger_rows(rd, f"SELECT COUNT(*) FROM {t}")[0][0]
        for t in ("units", "attempts", "batches", "batch_items", "ingested_lines")
    }
    snap["units_rows"] = ledger_rows(rd, "SELECT unit_id, state, reason, result_json FROM units "
                                         "ORDER BY unit_id")
    snap["attempt_rows"] = ledger_rows(rd, "SELECT id, unit_id, status, cost_usd, raw_output "
                                           "FROM attempts ORDER BY id")
    for sub in ("datasets", "failed_plans", "manifests"):
        for p in files_under(rd / sub):
            snap[str(p.relative_to(rd))] = p.read_bytes()
    return snap


# --------------------------------------------------------------------------- round trips


def test_export_answer_ingest_rounds(tmp_path: Path) -> None:
    n_tasks = 3
    with FakeOpenAI() as server:
        cfg = cli_config(tmp_path, server, {"prices": {MODEL: PRICE}}, tasks=n_tasks)
        rd = dry_run_cli(cfg)
        assert set(unit_states(rd).values()) == {"pending"}
        answered: dict[str, dict[str, Any]] = {}
        rounds = 0
        while True:
            lines = export_cli(rd, tmp_path / f"requests_{rounds}.jsonl")
            if not lines:
                break
            check_export(lines, rd, RESPONSES)
            # diversity on: one call per task per round, call `rounds` of each task
            specs = unit_specs(rd)
            tids = sorted(specs[ln["custom_id"]]["task_id"] for ln in lines)
            assert tids == first_task_ids(n_tasks)
            assert {specs[ln["custom_id"]]["sample_index"] for ln in lines} == {rounds}
            outs = answer(server, lines)
            random.Random(rounds).shuffle(outs)
            assert [o["custom_id"] for o in outs] != [ln["custom_id"] for ln in lines]
            answered.update({o["custom_id"]: o["response"]["body"] for o in outs})
            rep = ingest_cli(rd, write_jsonl(tmp_path / f"results_{rounds}.jsonl", outs))
            assert rep["lines"] == len(lines) and rep["ok"] == len(lines)
            assert rep["already_ingested"] == 0 and rep["unknown_ids"] == []
            rounds += 1
        assert rounds == 3

        assert set(unit_states(rd).values()) == {"ok"}
        assert_terminal_invariants(rd)
        plans = read_jsonl(rd / "datasets/humaneval/plans.jsonl")
        assert Counter(p["task_id"] for p in plans) == {t: 12 for t in first_task_ids(n_tasks)}
        assert json.loads((rd / "manifests/humaneval_complete_task_ids.json").read_text()) == (
            first_task_ids(n_tasks))
        for uid, atts in attempts_by_unit(rd).items():
            (a,) = atts
            body = answered[uid]
            assert a["status"] == "ok" and a["raw_output"] == response_text(body)
            assert a["input_tokens"] == body["usage"]["input_tokens"] > 0
            assert a["output_tokens"] == body["usage"]["output_tokens"]
            online = (a["input_tokens"] * PRICE["input"]
                      + a["output_tokens"] * PRICE["output"]) / 1e6
            assert a["cost_usd"] == pytest.approx(online * 0.5, rel=1e-9)  # batch price
        calls = read_jsonl(rd / "logs/batch_calls.jsonl")
        assert len(calls) == 3 * n_tasks and {c["status"] for c in calls} == {"ok"}
        runs = read_jsonl(rd / "runs.jsonl")
        assert [r["mode"] for r in runs] == ["ingest"] * 3


def _offline_rounds(cfg: Any, server: FakeOpenAI, run_id: str, tmp_path: Path) -> Path:
    rd = api.dry_run(cfg, run_id).run_dir
    for rnd in range(10):
        out = tmp_path / f"{run_id}_req_{rnd}.jsonl"
        if batch_ops.batch_export(rd, out) == 0:
            return rd
        outs = answer(server, read_jsonl(out))
        random.Random(rnd).shuffle(outs)
        batch_ops.batch_ingest(rd, [write_jsonl(tmp_path / f"{run_id}_res_{rnd}.jsonl", outs)])
    raise AssertionError("export never ran dry")


@pytest.mark.parametrize("over", [{}, NO_DIV, {"openai": {"api": "chat"}}],
                         ids=["diversity", "no-diversity", "chat"])
def test_round_trip_equals_executor(tmp_path: Path, over: dict) -> None:
    with FakeOpenAI() as server:
        cfg = make_cfg(tmp_path, server.base_url, deep_merge(FAST, over), tasks=3)
        summary = api.run(cfg, "EXEC", mode="batch")
        assert summary.stopped is None and summary.counts == {"ok": 9}
        offline = _offline_rounds(cfg, server, "OFFLINE", tmp_path)
        via_exec = read_jsonl(summary.run_dir / "datasets/humaneval/plans.jsonl")
        via_files = read_jsonl(offline / "datasets/humaneval/plans.jsonl")
        assert len(via_exec) == 36
        assert via_files == via_exec
        assert unit_specs(offline) == unit_specs(summary.run_dir)
        assert_terminal_invariants(offline)


# --------------------------------------------------------------------------- result formats


def test_vllm_run_batch_output(tmp_path: Path) -> None:
    with FakeOpenAI() as server:
        cfg = cli_config(tmp_path, server, {**NO_DIV, "prices": {MODEL: PRICE}}, tasks=2)
        rd = dry_run_cli(cfg)
        lines = export_cli(rd, tmp_path / "vllm_in.jsonl", endpoint=CHAT)
        check_export(lines, rd, CHAT)
        for ln in lines:
            assert ln["body"]["response_format"]["type"] == "json_schema"
            assert "input" not in ln["body"] and ln["body"]["messages"]
        ok_part, bad = lines[:4], lines[4:]
        stream_msg = "Request must not be sent in stream mode"
        ctx_msg = "This model's maximum context length is 4096 tokens."
        results = answer(server, ok_part, vllm=True) + [
            error_line(bad[0]["custom_id"], status=400, body=None, error=stream_msg, vllm=True),
            error_line(bad[1]["custom_id"], status=400, body=None, vllm=True,
                       error={"object": "error", "message": ctx_msg, "type": "BadRequestError",
                              "param": None, "code": 400}),
        ]  # one file, input order, as run-batch writes it
        rep = ingest_cli(rd, write_jsonl(tmp_path / "vllm_out.jsonl", results))
        assert rep["lines"] == 6 and rep["ok"] == 4 and rep["failed"] == 2

        states = unit_states(rd)
        reasons = dict(ledger_rows(rd, "SELECT unit_id, reason FROM units"))
        assert {states[ln["custom_id"]] for ln in ok_part} == {"ok"}
        assert states[bad[0]["custom_id"]] == states[bad[1]["custom_id"]] == "failed"
        assert stream_msg in reasons[bad[0]["custom_id"]]
        assert ctx_msg in reasons[bad[1]["custom_id"]]
        assert_terminal_invariants(rd)
        assert export_cli(rd, tmp_path / "again.jsonl") == []  # nothing pending
        plans = read_jsonl(rd / "datasets/humaneval/plans.jsonl")
        assert len(plans) == 4 * 4

        # Chat Completion usage is recorded (and priced) even though the run's own API is
        # `responses`: the answers are ChatCompletion objects.
        by_unit = attempts_by_unit(rd)
        for row in results[:4]:
            (a,) = by_unit[row["custom_id"]]
            usage = row["response"]["body"]["usage"]
            assert (a["input_tokens"], a["output_tokens"]) == (
                usage["prompt_tokens"], usage["completion_tokens"]), a
            assert a["cost_usd"] > 0


def test_openai_error_file_requeues(tmp_path: Path) -> None:
    with FakeOpenAI() as server:
        cfg = cli_config(tmp_path, server, {**NO_DIV, "engine": {"max_retries": 1}}, tasks=2)
        rd = dry_run_cli(cfg)
        lines = export_cli(rd, tmp_path / "req1.jsonl")
        by_id = {ln["custom_id"]: ln for ln in lines}
        ok_part = lines[:3]
        r500, expired, cancelled = (ln["custom_id"] for ln in lines[3:])
        out = write_jsonl(tmp_path / "out1.jsonl", answer(server, ok_part))
        err_rows = [
            error_line(r500, status=500, body={"error": {
                "message": "The server had an error processing your request.",
                "type": "server_error", "param": None, "code": None}}),
            error_line(expired, error={"code": "batch_expired", "message":
                       "This request could not be executed before the completion window expired."}),
            error_line(cancelled, error={"code": "batch_cancelled", "message":
                       "This request was cancelled before it could be executed."}),
        ]
        for row in err_rows:
            spec_validator("BatchRequestOutput").validate(row)
        errs = write_jsonl(tmp_path / "err1.jsonl", err_rows)
        rep = ingest_cli(rd, out, errs)
        assert rep["lines"] == 6 and rep["ok"] == 3 and rep["requeued"] == 3 and rep["failed"] == 0

        states = unit_states(rd)
        assert {states[u] for u in (r500, expired, cancelled)} == {"pending"}
        by_unit = attempts_by_unit(rd)
        assert [(a["status"], a["http_status"]) for a in by_unit[r500]] == [("http_error", 500)]
        assert [a["status"] for a in by_unit[expired]] == ["batch_expired"]
        assert [a["status"] for a in by_unit[cancelled]] == ["batch_cancelled"]

        # resubmittable: in the next export, unchanged (no feedback for transient failures)
        again = export_cli(rd, tmp_path / "req2.jsonl")
        assert sorted(ln["custom_id"] for ln in again) == sorted([r500, expired, cancelled])
        assert all(ln == by_id[ln["custom_id"]] for ln in again)

        # a second 500 exceeds engine.max_retries=1: that unit fails; the others complete
        rows2 = [error_line(r500, status=500, body={"error": {"message": "boom again"}})]
        rows2 += answer(server, [by_id[expired], by_id[cancelled]])
        rep = ingest_cli(rd, write_jsonl(tmp_path / "res2.jsonl", rows2))
        assert rep["ok"] == 2 and rep["failed"] == 1
        states = unit_states(rd)
        assert states[r500] == "failed" and states[expired] == states[cancelled] == "ok"
        reason = dict(ledger_rows(rd, "SELECT unit_id, reason FROM units"))[r500]
        assert "500" in reason
        assert_terminal_invariants(rd)
        assert export_cli(rd, tmp_path / "req3.jsonl") == []


def test_invalid_answer_ingested_then_feedback_exported(tmp_path: Path) -> None:
    bad = {"plans": []}
    with FakeOpenAI() as server:
        cfg = cli_config(tmp_path, server, NO_DIV, tasks=1)
        rd = dry_run_cli(cfg)
        lines = export_cli(rd, tmp_path / "req1.jsonl")
        target = lines[0]
        server.enqueue(Reply.json(bad))  # the next online answer is schema-invalid
        rep = ingest_cli(rd, write_jsonl(tmp_path / "res1.jsonl", answer(server, lines)))
        assert rep["ok"] == 2 and rep["invalid"] == 1

        uid = target["custom_id"]
        assert unit_states(rd)[uid] == "pending"
        failed = read_jsonl(rd / "failed_plans/datasets/humaneval/plans.jsonl")
        assert len(failed) == 1 and failed[0]["request_id"] == uid
        assert failed[0]["validation_error"] and json.loads(failed[0]["raw_output"]) == bad
        (att,) = attempts_by_unit(rd)[uid]
        assert att["status"] == "invalid" and att["issues"]

        (re_ask,) = export_cli(rd, tmp_path / "req2.jsonl")
        assert re_ask["custom_id"] == uid
        msgs = request_messages(re_ask["body"])
        orig = request_messages(target["body"])
        assert msgs[: len(orig)] == orig and len(msgs) == len(orig) + 2
        assert msgs[-2]["role"] == "assistant" and json.loads(msgs[-2]["content"]) == bad
        assert msgs[-1]["role"] == "user"
        assert all(i in msgs[-1]["content"] for i in att["issues"])

        rep = ingest_cli(rd, write_jsonl(tmp_path / "res2.jsonl", answer(server, [re_ask])))
        assert rep["ok"] == 1
        assert set(unit_states(rd).values()) == {"ok"}
        assert_terminal_invariants(rd)
        plans = read_jsonl(rd / "datasets/humaneval/plans.jsonl")
        assert {p["attempt"] for p in plans if p["request_id"] == uid} == {2}
        assert len(plans) == 12


# --------------------------------------------------------------------------- robustness


def test_ingest_idempotent_unknown_ids_and_bad_files(tmp_path: Path) -> None:
    with FakeOpenAI() as server:
        cfg = cli_config(tmp_path, server, NO_DIV, tasks=2)
        rd = dry_run_cli(cfg)
        lines = export_cli(rd, tmp_path / "req.jsonl")
        rows = answer(server, lines)

        # A malformed line: one-line error naming the file, exit 1, nothing applied.
        broken = tmp_path / "broken.jsonl"
        broken.write_text(json.dumps(rows[0]) + "\n{\"custom_id\": \"r1_x\", oops\n", "utf-8")
        before = snapshot(rd)
        res = run_cli(["batch", "ingest", str(rd), str(broken)], env=ENV)
        assert res.returncode == 1
        assert "Traceback" not in res.stdout + res.stderr
        err = nonempty_lines(res.stderr)
        assert len(err) == 1 and err[0].startswith("error:") and str(broken) in err[0]
        after = snapshot(rd)
        assert after == before
        assert set(unit_states(rd).values()) == {"pending"}

        for content, what in (("[1, 2]\n", "JSON object"), (None, "not found")):
            path = tmp_path / f"bad_{what.replace(' ', '_')}.jsonl"
            if content is not None:
                path.write_text(content, "utf-8")
            res = run_cli(["batch", "ingest", str(rd), str(path)], env=ENV)
            assert res.returncode == 1, res.stdout
            err = nonempty_lines(res.stderr)
            assert len(err) == 1 and str(path) in err[0] and what in err[0], err
            assert "Traceback" not in res.stderr

        res = run_cli(["batch", "export", str(rd), "--out", str(tmp_path / "e.jsonl"),
                       "--endpoint", "/v1/embeddings"], env=ENV)
        assert res.returncode == 1 and "Traceback" not in res.stderr
        assert len(nonempty_lines(res.stderr)) == 1 and "--endpoint" in res.stderr

        # The real results, plus a line for an id this run does not have.
        unknown = "r1_" + "0" * 40
        stray = dict(rows[0], custom_id=unknown, id="batch_req_stray")
        results = write_jsonl(tmp_path / "results.jsonl", [*rows, stray])
        rep = ingest_cli(rd, results)
        assert rep["lines"] == 7 and rep["ok"] == 6 and rep["already_ingested"] == 0
        assert rep["unknown"] == 1 and rep["unknown_ids"] == [unknown]
        assert set(unit_states(rd).values()) == {"ok"}
        assert_terminal_invariants(rd)
        assert not ledger_rows(rd, "SELECT 1 FROM units WHERE unit_id=?", (unknown,))
        once = snapshot(rd)

        # The same file again changes nothing.
        rep = ingest_cli(rd, results)
        assert rep["lines"] == 7 and rep["already_ingested"] == 7 and rep["ok"] == 0
        assert snapshot(rd) == once

        # The same answers written differently (other bytes): units are already done.
        respelled = tmp_path / "respelled.jsonl"
        respelled.write_text("".join(json.dumps(r, indent=None, separators=(", ", ": "),
                                                sort_keys=True) + "\n" for r in rows), "utf-8")
        rep = ingest_cli(rd, respelled)
        assert rep["already_done"] == 6 and rep["ok"] == 0
        twice = snapshot(rd)
        assert {k: v for k, v in twice.items() if k != "ingested_lines"} == {
            k: v for k, v in once.items() if k != "ingested_lines"}
        # the invocations log grows by one line per ingest; nothing else does
        assert [r["mode"] for r in read_jsonl(rd / "runs.jsonl")] == ["ingest"] * 5


@pytest.mark.parametrize("target", ["ledger.sqlite", "ledger.sqlite-wal", ".lock",
                                    "config/run_config.json"])
def test_export_never_writes_over_the_runs_own_files(tmp_path: Path, target: str) -> None:
    """`--out runs/R/ledger.sqlite` replaced the run's ledger with request lines: the run was
    gone (`status`: not a SQLite database). Refused in one line; the run stays usable."""
    with FakeOpenAI() as server:
        cfg = cli_config(tmp_path, server, NO_DIV, tasks=2)
        rd = dry_run_cli(cfg)
        before = snapshot(rd), (rd / "config" / "run_config.json").read_bytes()
        res = run_cli(["batch", "export", str(rd), "--out", str(rd / target)], env=ENV)
        assert res.returncode == 1, res.stdout + res.stderr
        err = nonempty_lines(res.stderr)
        assert len(err) == 1 and err[0].startswith("error:") and "--out" in err[0], err
        assert (snapshot(rd), (rd / "config" / "run_config.json").read_bytes()) == before
        assert run_cli(["status", str(rd)], env=ENV).returncode == 0
