"""The batch executor (`run --mode batch`) on real HumanEval tasks against the fake
Files + Batches API of tests/fakeserver/.

Expectations come from the HumanEval data, the config each test sets, the price table and
what the fake server actually received and answered (its input files, its result lines and
its default answerer, which is deterministic per request body). Request lines and bodies
are checked against the OpenAI OpenAPI spec in /work/shared/data, read at test time.
"""

from __future__ import annotations

import json
import os
import re
import signal
import threading
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from benchsmith import api, batch_ops
from fake_openai import BatchScript, FakeBatch, FakeOpenAI, Reply
from helpers import (
    KEY_ENV,
    SECRET,
    assert_no_secret,
    assert_terminal_invariants,
    attempts_by_unit,
    cfg_dict,
    cli_env,
    deep_merge,
    first_task_ids,
    ledger_rows,
    make_cfg,
    nonempty_lines,
    popen_cli,
    read_jsonl,
    request_messages,
    run_cli,
    unit_specs,
    unit_states,
    wait_for,
    write_yaml,
)
from test_fake_batches import spec_validator  # OpenAPI 3.0 -> JSON Schema 2020-12 (nullable)

MODEL = "gpt-5-mini"
PRICE = {"input": 1.25, "cached_input": 0.125, "output": 10.0}
FAST = {"batch": {"poll_interval_s": 0.01, "max_poll_interval_s": 0.05}}
NO_DIV = {"plans": {"diversity": False}}
RESPONSES, CHAT = "/v1/responses", "/v1/chat/completions"
SPEC_BODY = {RESPONSES: "CreateResponse", CHAT: "CreateChatCompletionRequest"}


@pytest.fixture(autouse=True)
def _api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, SECRET)


# --------------------------------------------------------------------------- helpers


def run_batch(tmp_path: Path, server: FakeOpenAI, overrides: dict | None = None, *,
              tasks: int = 3, run_id: str = "R", resume: bool = False,
              mode: str = "batch") -> tuple[api.RunSummary, Path]:
    cfg = make_cfg(tmp_path, server.base_url, deep_merge(FAST, overrides or {}), tasks=tasks)
    summary = api.run(cfg, run_id, resume, mode=mode)
    return summary, tmp_path / "runs" / run_id


def input_lines(server: FakeOpenAI, batch: FakeBatch) -> list[dict[str, Any]]:
    """The request lines of a batch, parsed from the uploaded input file's bytes."""
    content = server.files[batch.input_file_id].content
    return [json.loads(raw) for raw in content.split(b"\n") if raw.strip()]


def batches_in_order(server: FakeOpenAI) -> list[FakeBatch]:
    return list(server.batches.values())


def uploads(server: FakeOpenAI) -> list[Any]:
    return [f for f in server.files.values() if f.purpose == "batch"]


def response_text(body: dict[str, Any]) -> str:
    """The assistant text of a Response or ChatCompletion object."""
    if "choices" in body:
        return body["choices"][0]["message"]["content"]
    return "".join(
        part["text"]
        for item in body["output"] if item.get("type") == "message"
        for part in item["content"] if part.get("type") == "output_text"
    )


def online_answer(server: FakeOpenAI, url: str, body: dict[str, Any]) -> dict[str, Any]:
    """What the fake's online endpoint answers for exactly this request body."""
    assert url.startswith("/v1/")
    req = urllib.request.Request(
        server.base_url + url[len("/v1"):], data=json.dumps(body).encode(), method="POST",
        headers={"Content-Type": "application/json", "Authorization": "Bearer sk-test"},
    )
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read())


def check_request_line(line: dict[str, Any], endpoint: str, unit_ids: set[str]) -> None:
    """One input line: exactly {custom_id, method, url, body}, valid against the spec."""
    assert set(line) == {"custom_id", "method", "url", "body"}, line.keys()
    spec_validator("BatchRequestInput").validate(line)
    spec_validator(SPEC_BODY[endpoint]).validate(line["body"])
    cid = line["custom_id"]
    assert cid in unit_ids, cid
    assert cid.isascii() and 0 < len(cid) <= 64, cid
    assert line["method"] == "POST"
    assert line["url"] == endpoint


def settled_cost(usage: dict[str, Any], price: dict[str, float], multiplier: float) -> float:
    """USD for a usage object from a Response or ChatCompletion body."""
    if "input_tokens" in usage:
        n_in, n_out = usage["input_tokens"], usage["output_tokens"]
        cached = (usage.get("input_tokens_details") or {}).get("cached_tokens", 0)
    else:
        n_in, n_out = usage["prompt_tokens"], usage["completion_tokens"]
        cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens", 0)
    online = ((n_in - cached) * price["input"] + cached * price["cached_input"]
              + n_out * price["output"]) / 1e6
    return online * multiplier


def ledger_batches(rd: Path) -> list[dict[str, Any]]:
    cols = ("local_id", "batch_id", "status", "model", "endpoint", "input_file_id",
            "n_requests", "reserved_usd", "reconciled_at")
    rows = ledger_rows(rd, f"SELECT {', '.join(cols)} FROM batches ORDER BY created_at, local_id")
    return [dict(zip(cols, r)) for r in rows]


def local_ids(rd: Path) -> dict[str, str]:
    """provider batch id -> local id"""
    return {b["batch_id"]: b["local_id"] for b in ledger_batches(rd)}


def statuses(atts: list[dict[str, Any]]) -> list[str]:
    return [a["status"] for a in atts]


def first_batch_plan(make: Any) -> Any:
    """A `batch_plan` applying `make(custom_ids)` to the first batch only."""
    seen: list[str] = []

    def plan(bid: str, lines: list[Any]) -> BatchScript | None:
        seen.append(bid)
        if len(seen) == 1:
            return make(sorted(ln["custom_id"] for ln in lines))
        return None

    return plan


# --------------------------------------------------------------------------- happy paths


def test_happy_path_responses_diversity_chain(tmp_path: Path) -> None:
    n_tasks = 4
    ids = first_task_ids(n_tasks)
    with FakeOpenAI(cached_tokens=64) as server:
        summary, rd = run_batch(tmp_path, server, {"prices": {MODEL: PRICE}}, tasks=n_tasks)

        assert summary.stopped is None, summary.message
        assert summary.counts == {"ok": 3 * n_tasks}
        assert_terminal_invariants(rd)
        specs = unit_specs(rd)
        assert len(specs) == 3 * n_tasks

        # plans.jsonl: 12 plans per task, every call slot filled, plan ids name their task
        plans = read_jsonl(rd / "datasets/humaneval/plans.jsonl")
        assert Counter(p["task_id"] for p in plans) == {t: 12 for t in ids}
        assert len({p["plan_id"] for p in plans}) == len(plans)
        for p in plans:
            assert p["plan_id"].startswith(p["task_id"] + "#")
            assert specs[p["request_id"]]["task_id"] == p["task_id"]
            assert p["model"] == MODEL
        for t in ids:
            slots = {(p["call_index"], p["plan_index"]) for p in plans if p["task_id"] == t}
            assert slots == {(c, j) for c in range(3) for j in range(4)}

        # diversity on: call k+1 is only planned once call k is done -> one batch per round
        batches = batches_in_order(server)
        assert len(batches) == 3
        for rnd, b in enumerate(batches):
            assert b.status == "completed" and b.endpoint == RESPONSES
            lines = input_lines(server, b)
            assert len(lines) == n_tasks
            assert sorted(specs[ln["custom_id"]]["task_id"] for ln in lines) == ids
            assert {specs[ln["custom_id"]]["sample_index"] for ln in lines} == {rnd}
            for ln in lines:
                check_request_line(ln, RESPONSES, set(specs))
                body = ln["body"]
                assert body["model"] == MODEL
                fmt = body["text"]["format"]
                assert fmt["type"] == "json_schema" and fmt["strict"] is True
                assert request_messages(body)[: len(specs[ln["custom_id"]]["messages"])] == (
                    specs[ln["custom_id"]]["messages"]
                )
            if rnd:  # later calls are shown the plans already accepted for the task
                assert all("already accepted" in request_messages(ln["body"])[0]["content"]
                           for ln in lines)
        assert server.custom_id_counts() == Counter({uid: 1 for uid in specs})
        assert len(uploads(server)) == 3

        # the ledger's batch rows mirror the provider's batches
        rows = ledger_batches(rd)
        assert [r["batch_id"] for r in rows] == [b.id for b in batches]
        for r, b in zip(rows, batches):
            assert r["status"] == "completed" and r["reconciled_at"] is not None
            assert r["endpoint"] == RESPONSES and r["model"] == MODEL
            assert r["input_file_id"] == b.input_file_id
            assert r["n_requests"] == b.n
            assert b.metadata == {"benchsmith_local_id": r["local_id"]}
            assert b.completion_window == "24h"

        # cost settled at the batch price: 0.5 x the online price of the reported usage
        by_unit = attempts_by_unit(rd)
        answered = {o["custom_id"]: o["response"]["body"] for b in batches for o in b.outputs}
        assert set(answered) == set(specs)
        total = 0.0
        for uid, atts in by_unit.items():
            (a,) = atts
            body = answered[uid]
            u = body["usage"]
            assert a["status"] == "ok" and a["http_status"] == 200
            assert (a["input_tokens"], a["cached_input_tokens"], a["output_tokens"]) == (
                u["input_tokens"], u["input_tokens_details"]["cached_tokens"], u["output_tokens"]
            )
            assert a["cached_input_tokens"] == 64
            assert a["cost_usd"] == pytest.approx(settled_cost(u, PRICE, 0.5), rel=1e-9)
            assert a["cost_usd"] == pytest.approx(settled_cost(u, PRICE, 1.0) / 2, rel=1e-9)
            assert a["reserved_usd"] >= a["cost_usd"] > 0
            # the answer recorded is the one the server gave for this custom_id
            assert a["raw_output"] == response_text(body)
            total += a["cost_usd"]
        assert summary.spent_usd == pytest.approx(total, rel=1e-9)

        # logs/batch_calls.jsonl: one line per attempt
        calls = read_jsonl(rd / "logs/batch_calls.jsonl")
        all_atts = [a for atts in by_unit.values() for a in atts]
        assert sorted(c["id"] for c in calls) == sorted(a["id"] for a in all_atts)
        lid = local_ids(rd)
        owner = {o["custom_id"]: lid[b.id] for b in batches for o in b.outputs}
        for c in calls:
            assert c["status"] == "ok" and c["http_status"] == 200
            assert c["key"] == f"batch:{owner[c['request_id']]}"
            assert c["cost_usd"] == pytest.approx(
                next(a["cost_usd"] for a in all_atts if a["id"] == c["id"]))

        # every Files/Batches call carried the key; it is written nowhere
        batch_calls = [r for r in server.requests
                       if r.path.startswith(("/v1/files", "/v1/batches"))]
        assert batch_calls and all(r.headers["Authorization"] == f"Bearer {SECRET}"
                                   for r in batch_calls)
        assert not [r for r in server.requests if r.path in (RESPONSES, CHAT)]  # nothing online
        assert_no_secret(rd, SECRET)
        runs = read_jsonl(rd / "runs.jsonl")
        assert [(r["mode"], r["status"]) for r in runs] == [("batch", "completed")]


def test_chat_api_one_round(tmp_path: Path) -> None:
    n_tasks = 3
    with FakeOpenAI() as server:
        summary, rd = run_batch(
            tmp_path, server, {**NO_DIV, "openai": {"api": "chat"}, "prices": {MODEL: PRICE}},
            tasks=n_tasks,
        )
        assert summary.stopped is None, summary.message
        assert summary.counts == {"ok": 3 * n_tasks}
        assert_terminal_invariants(rd)
        specs = unit_specs(rd)
        (batch,) = batches_in_order(server)  # diversity off: every call in one round
        assert batch.endpoint == CHAT
        lines = input_lines(server, batch)
        assert sorted(ln["custom_id"] for ln in lines) == sorted(specs)
        for ln in lines:
            check_request_line(ln, CHAT, set(specs))
            body = ln["body"]
            assert body["messages"] == specs[ln["custom_id"]]["messages"]
            rf = body["response_format"]
            assert rf["type"] == "json_schema" and rf["json_schema"]["strict"] is True
            assert body["max_completion_tokens"] == 4000
        by_unit = attempts_by_unit(rd)
        for out in batch.outputs:
            (a,) = by_unit[out["custom_id"]]
            body = out["response"]["body"]
            assert a["raw_output"] == response_text(body)
            assert a["input_tokens"] == body["usage"]["prompt_tokens"] > 0
            assert a["cost_usd"] == pytest.approx(settled_cost(body["usage"], PRICE, 0.5), rel=1e-9)
        assert len(read_jsonl(rd / "logs/batch_calls.jsonl")) == 3 * n_tasks
        plans = read_jsonl(rd / "datasets/humaneval/plans.jsonl")
        assert Counter(p["task_id"] for p in plans) == {t: 12 for t in first_task_ids(n_tasks)}


def test_spec_validation_is_not_trivial() -> None:
    """The spec validators used above do reject wrong lines and bodies."""
    import jsonschema

    bad = [
        ("BatchRequestInput", {"custom_id": 7, "method": "POST", "url": RESPONSES, "body": {}}),
        ("BatchRequestInput", {"custom_id": "a", "method": "GET", "url": RESPONSES, "body": {}}),
        ("CreateResponse", {"model": MODEL, "input": 5}),
        ("CreateChatCompletionRequest", {"model": MODEL}),
        ("CreateChatCompletionRequest", {"model": MODEL, "messages": "hi"}),
    ]
    for name, obj in bad:
        with pytest.raises(jsonschema.ValidationError):
            spec_validator(name).validate(obj)


# --------------------------------------------------------------------------- file limits


def test_max_requests_per_file_splits(tmp_path: Path) -> None:
    n_tasks = 4
    with FakeOpenAI() as server:
        summary, rd = run_batch(
            tmp_path, server, {**NO_DIV, "batch": {"max_requests_per_file": 5}}, tasks=n_tasks
        )
        assert summary.stopped is None and summary.counts == {"ok": 12}
        assert_terminal_invariants(rd)
        sizes = sorted(len(input_lines(server, b)) for b in batches_in_order(server))
        assert sizes == [2, 5, 5]
        assert server.custom_id_counts() == Counter({uid: 1 for uid in unit_specs(rd)})
        assert sorted(r["n_requests"] for r in ledger_batches(rd)) == [2, 5, 5]


def test_one_model_per_file(tmp_path: Path) -> None:
    n_tasks = 2
    models = ["fake-alpha", "fake-beta", "fake-gamma"]
    over = {**NO_DIV, "multi_model": True, "model1": models[0], "model2": models[1],
            "model3": models[2]}
    with FakeOpenAI() as server:
        summary, rd = run_batch(tmp_path, server, over, tasks=n_tasks)
        assert summary.stopped is None and summary.counts == {"ok": 3 * n_tasks}
        assert_terminal_invariants(rd)
        specs = unit_specs(rd)
        batches = batches_in_order(server)
        assert len(batches) == 3  # one batch job per model
        seen = []
        for b in batches:
            lines = input_lines(server, b)
            names = {ln["body"]["model"] for ln in lines}
            assert len(names) == 1 and b.model in names
            assert len(lines) == n_tasks
            assert all(specs[ln["custom_id"]]["model"] == b.model for ln in lines)
            seen.append(b.model)
        assert sorted(seen) == models
        assert {r["batch_id"]: r["model"] for r in ledger_batches(rd)} == {b.id: b.model
                                                                             for b in batches}
        plans = read_jsonl(rd / "datasets/humaneval/plans.jsonl")
        assert {(p["call_index"], p["model"]) for p in plans} == set(enumerate(models))


def test_max_bytes_per_file_splits(tmp_path: Path) -> None:
    n_tasks = 3
    with FakeOpenAI() as server:
        # Learn the real line sizes from an unlimited run first.
        run_batch(tmp_path / "probe", server, NO_DIV, tasks=n_tasks)
        (probe,) = batches_in_order(server)
        sizes = [len(raw) + 1 for raw in server.files[probe.input_file_id].content.split(b"\n")
                 if raw.strip()]
        limit = max(1000, 2 * max(sizes) + 10)  # room for two lines, never three
        assert 3 * min(sizes) > limit
        server.reset()

        summary, rd = run_batch(tmp_path, server,
                                {**NO_DIV, "batch": {"max_bytes_per_file": limit}}, tasks=n_tasks)
        assert summary.stopped is None and summary.counts == {"ok": 3 * n_tasks}
        assert_terminal_invariants(rd)
        batches = batches_in_order(server)
        file_sizes = [server.files[b.input_file_id].bytes for b in batches]
        assert all(s <= limit for s in file_sizes), (file_sizes, limit)
        assert len(batches) == 5  # 9 lines, two per file
        assert sum(len(input_lines(server, b)) for b in batches) == 3 * n_tasks
        ledger_sizes = [n for (n,) in ledger_rows(rd, "SELECT bytes FROM batches")]
        assert sorted(ledger_sizes) == sorted(file_sizes)
        assert server.custom_id_counts() == Counter({uid: 1 for uid in unit_specs(rd)})


# --------------------------------------------------------------------------- result files


def test_shuffled_output_joined_on_custom_id(tmp_path: Path) -> None:
    n_tasks = 3
    with FakeOpenAI() as server:
        server.batch_plan = lambda bid, lines: BatchScript(shuffle=7)
        summary, rd = run_batch(tmp_path, server, NO_DIV, tasks=n_tasks)
        assert summary.stopped is None and summary.counts == {"ok": 9}
        assert_terminal_invariants(rd)
        (batch,) = batches_in_order(server)
        lines = input_lines(server, batch)
        out_order = [o["custom_id"] for o in batch.outputs]
        assert out_order != [ln["custom_id"] for ln in lines]  # really out of order
        specs = unit_specs(rd)
        by_unit = attempts_by_unit(rd)
        plans = read_jsonl(rd / "datasets/humaneval/plans.jsonl")
        for ln in lines:
            uid = ln["custom_id"]
            (a,) = by_unit[uid]
            # The answer the default answerer gives for exactly this body ...
            expected = response_text(online_answer(server, ln["url"], ln["body"]))
            assert a["raw_output"] == expected
            # ... and the plans recorded for the unit are that answer's plans, for its task.
            mine = [p for p in plans if p["request_id"] == uid]
            assert [p["title"] for p in mine] == [x["title"] for x in json.loads(expected)["plans"]]
            assert {p["plan_id"].split("#")[0] for p in mine} == {specs[uid]["task_id"]}


def test_expired_partial_output_resubmitted(tmp_path: Path) -> None:
    with FakeOpenAI() as server:
        server.enqueue_batch(BatchScript(expire_after=4, shuffle=True))
        summary, rd = run_batch(tmp_path, server, NO_DIV, tasks=3)
        assert summary.stopped is None and summary.counts == {"ok": 9}
        assert_terminal_invariants(rd)
        first, second = batches_in_order(server)
        assert first.status == "expired" and second.status == "completed"
        done = [o["custom_id"] for o in first.outputs]
        expired = [e["custom_id"] for e in first.error_lines]
        assert len(done) == 4 and len(expired) == 5
        assert all(e["error"]["code"] == "batch_expired" for e in first.error_lines)
        assert sorted(ln["custom_id"] for ln in input_lines(server, second)) == sorted(expired)
        counts = server.custom_id_counts()
        assert {counts[u] for u in done} == {1}  # nothing completed is submitted twice
        assert {counts[u] for u in expired} == {2}
        by_unit = attempts_by_unit(rd)
        for u in done:
            assert statuses(by_unit[u]) == ["ok"]
        for u in expired:
            assert statuses(by_unit[u]) == ["batch_expired", "ok"]
            assert by_unit[u][0]["cost_usd"] == 0
        assert [r["status"] for r in ledger_batches(rd)] == ["expired", "completed"]


def test_cancel_while_running_reconciles_partial_results(tmp_path: Path) -> None:
    with FakeOpenAI() as server:
        # stuck in_progress until cancelled; the cancel lets exactly 4 requests finish
        server.enqueue_batch(BatchScript(states=["validating", "in_progress"], cancel=4))
        cfg = make_cfg(tmp_path, server.base_url, deep_merge(FAST, NO_DIV), tasks=3)
        rd = tmp_path / "runs" / "R"
        result: list[Any] = []
        th = threading.Thread(target=lambda: result.append(api.run(cfg, "R", mode="batch")))
        th.start()
        try:
            wait_for(lambda: any(b.status == "in_progress" and b.polls >= 3
                                 for b in server.batches.values()), what="a polled batch")
            cancelled = batch_ops.batch_cancel(rd)
        finally:
            th.join(60)
        assert not th.is_alive()
        first = batches_in_order(server)[0]
        assert cancelled == [first.id]
        (summary,) = result
        assert summary.stopped is None and summary.counts == {"ok": 9}
        assert_terminal_invariants(rd)
        assert first.status == "cancelled"
        done = {o["custom_id"] for o in first.outputs}
        rest = {e["custom_id"] for e in first.error_lines}
        assert len(done) == 4 and len(rest) == 5
        later = [c for b in batches_in_order(server)[1:] for c in b.custom_ids]
        assert sorted(later) == sorted(rest)
        by_unit = attempts_by_unit(rd)
        assert all(statuses(by_unit[u]) == ["ok"] for u in done)
        assert all(statuses(by_unit[u]) == ["batch_cancelled", "ok"] for u in rest)


def test_failed_validation_line_errors(tmp_path: Path) -> None:
    errors = [
        {"code": "invalid_value", "line": 2, "message": "Invalid 'body.input': bad item.",
         "param": "body.input"},
        {"code": "invalid_value", "line": 5, "message": "Unsupported parameter.", "param": "body"},
    ]
    file_level = [{"code": "token_limit_exceeded", "line": None, "param": None,
                   "message": "Enqueued token limit reached for gpt-5-mini."}]
    with FakeOpenAI() as server:
        server.enqueue_batch(BatchScript(fail_validation=errors),
                             BatchScript(fail_validation=file_level))
        summary, rd = run_batch(tmp_path, server, NO_DIV, tasks=3)
        assert summary.stopped is None, summary.message
        first, second, *later = batches_in_order(server)
        assert first.status == second.status == "failed"
        lines = input_lines(server, first)
        bad = {lines[1]["custom_id"]: errors[0], lines[4]["custom_id"]: errors[1]}
        states = unit_states(rd)
        rows = dict(ledger_rows(rd, "SELECT unit_id, reason FROM units"))
        for uid, err in bad.items():
            assert states[uid] == "failed"
            assert f"line {err['line']}" in rows[uid] and err["message"] in rows[uid]
        assert summary.counts == {"ok": 7, "failed": 2}
        assert_terminal_invariants(rd)
        rest = sorted(set(states) - set(bad))
        # the other lines go in the next file; a file-level failure (no line) sends all again
        assert sorted(second.custom_ids) == rest
        assert sorted(c for b in later for c in b.custom_ids) == rest
        counts = server.custom_id_counts()
        assert all(counts[u] == 1 for u in bad)
        assert all(counts[u] == 3 for u in rest)
        by_unit = attempts_by_unit(rd)
        assert all(statuses(by_unit[u])[-1] == "ok" and len(by_unit[u]) == 3 for u in rest)
        assert [r["status"] for r in ledger_batches(rd)][:2] == ["failed", "failed"]
        assert ledger_batches(rd)[1]["reconciled_at"] is not None


def test_schema_invalid_answers_reasked_with_feedback(tmp_path: Path) -> None:
    bad_answer = {"plans": []}
    picked: dict[str, str] = {}
    asked: Counter[str] = Counter()

    def answer(cid: str, body: dict) -> Any:
        asked[cid] += 1
        if cid == picked["always"] or (cid == picked["once"] and asked[cid] == 1):
            return bad_answer
        return None

    def plan(bid: str, lines: list[Any]) -> BatchScript:
        if not picked:
            cids = sorted(ln["custom_id"] for ln in lines)
            picked.update(always=cids[0], once=cids[1])
        return BatchScript(answer=answer)

    with FakeOpenAI() as server:
        server.batch_plan = plan
        summary, rd = run_batch(tmp_path, server, {"plans": {"diversity": False,
                                                             "max_validation_retries": 2}}, tasks=2)
        assert summary.stopped is None, summary.message
        always, once = picked["always"], picked["once"]
        assert summary.counts == {"ok": 5, "invalid": 1}
        assert_terminal_invariants(rd)
        by_unit = attempts_by_unit(rd)
        assert statuses(by_unit[always]) == ["invalid"] * 3  # 1 + max_validation_retries
        assert statuses(by_unit[once]) == ["invalid", "ok"]
        assert unit_states(rd)[always] == "invalid"
        reason = dict(ledger_rows(rd, "SELECT unit_id, reason FROM units"))[always]
        assert reason.startswith("validation")

        batches = batches_in_order(server)
        assert [sorted(b.custom_ids) for b in batches[1:]] == [sorted([always, once]), [always]]
        specs = unit_specs(rd)
        # each re-ask carries the previous answer and its validation issues
        for uid, k in ((always, 1), (always, 2), (once, 1)):
            (line,) = [ln for ln in input_lines(server, batches[k]) if ln["custom_id"] == uid]
            msgs = request_messages(line["body"])
            orig = specs[uid]["messages"]
            assert msgs[: len(orig)] == orig and len(msgs) == len(orig) + 2
            assert msgs[-2] == {"role": "assistant", "content": json.dumps(bad_answer,
                                                                             separators=(",", ":"))}
            issues = by_unit[uid][k - 1]["issues"]
            assert issues and all(i in msgs[-1]["content"] for i in issues)
            assert msgs[-1]["role"] == "user"

        failed = read_jsonl(rd / "failed_plans/datasets/humaneval/plans.jsonl")
        assert Counter(f["request_id"] for f in failed) == {always: 3, once: 1}
        assert all(f["validation_error"] and json.loads(f["raw_output"]) == bad_answer
                   for f in failed)
        plans = read_jsonl(rd / "datasets/humaneval/plans.jsonl")
        assert len(plans) == 5 * 4
        assert {p["attempt"] for p in plans if p["request_id"] == once} == {2}


def test_http_error_lines(tmp_path: Path) -> None:
    picked: dict[str, str] = {}
    msg400 = "Invalid value for 'text.format.schema': bad schema."

    def plan(bid: str, lines: list[Any]) -> BatchScript:
        if not picked:
            cids = sorted(ln["custom_id"] for ln in lines)
            picked.update(r429=cids[0], r500=cids[1], r400=cids[2])
        return BatchScript(http_errors={picked["r429"]: 429, picked["r500"]: 500,
                                        picked["r400"]: Reply.error(400, msg400)})

    with FakeOpenAI() as server:
        server.batch_plan = plan
        summary, rd = run_batch(tmp_path, server, {**NO_DIV, "engine": {"max_retries": 2}},
                                tasks=2)
        assert summary.stopped is None, summary.message
        assert summary.counts == {"ok": 3, "failed": 3}
        assert_terminal_invariants(rd)
        by_unit = attempts_by_unit(rd)
        reasons = dict(ledger_rows(rd, "SELECT unit_id, reason FROM units"))
        for key, code in (("r429", 429), ("r500", 500)):
            uid = picked[key]
            atts = by_unit[uid]
            assert statuses(atts) == ["http_error"] * 3  # 1 + engine.max_retries
            assert {a["http_status"] for a in atts} == {code}
            assert str(code) in reasons[uid]
        uid = picked["r400"]
        assert statuses(by_unit[uid]) == ["http_error"]  # fails at once
        assert by_unit[uid][0]["http_status"] == 400
        assert msg400 in reasons[uid]
        counts = server.custom_id_counts()
        assert counts[picked["r429"]] == counts[picked["r500"]] == 3
        assert counts[picked["r400"]] == 1
        assert len(batches_in_order(server)) == 3


def test_dropped_ids_resubmitted(tmp_path: Path) -> None:
    dropped: list[str] = []

    def make(cids: list[str]) -> BatchScript:
        dropped.extend(cids[:2])
        return BatchScript(drop=set(cids[:2]))

    with FakeOpenAI() as server:
        server.batch_plan = first_batch_plan(make)
        summary, rd = run_batch(tmp_path, server, NO_DIV, tasks=2)
        assert summary.stopped is None and summary.counts == {"ok": 6}
        assert_terminal_invariants(rd)
        first, second = batches_in_order(server)
        assert not {*dropped} & {o["custom_id"] for o in first.outputs + first.error_lines}
        assert sorted(second.custom_ids) == sorted(dropped)
        by_unit = attempts_by_unit(rd)
        for u in dropped:
            assert statuses(by_unit[u]) == ["missing", "ok"]
        assert {n for u, n in server.custom_id_counts().items() if u not in dropped} == {1}


# --------------------------------------------------------------------------- budget


def test_budget_stops_at_batch_price_then_resume(tmp_path: Path) -> None:
    max_out = 1000
    prices = {MODEL: {"input": 1.0, "output": 4.0}}
    over = {**NO_DIV, "model": {"max_output_tokens": max_out}, "prices": prices}
    with FakeOpenAI() as server:
        # Answers that report the whole output cap, so spend tracks the worst case closely.
        full = {"output_tokens": max_out}
        inflate = BatchScript(answer=lambda cid, body: Reply("text", usage=full))
        server.batch_plan = lambda bid, lines: inflate

        # The online worst case of each request, for comparison.
        server.script = lambda r, i: Reply("text", usage={"output_tokens": max_out})
        run_batch(tmp_path / "online", server, over, tasks=3, mode="online")
        online_reserve = {uid: atts[0]["reserved_usd"]
                          for uid, atts in attempts_by_unit(tmp_path / "online/runs/R").items()}
        server.reset()
        server.batch_plan = lambda bid, lines: inflate

        max_usd = 0.01
        summary, rd = run_batch(tmp_path, server, {**over, "budget": {"max_usd": max_usd}}, tasks=3)
        assert summary.stopped == "stopped_budget", summary
        states = unit_states(rd)
        ok = {u for u, s in states.items() if s == "ok"}
        assert ok and set(states.values()) == {"ok", "pending"}
        assert_terminal_invariants(rd, allow_pending=True)
        settled, unsettled = ledger_rows(
            rd, "SELECT COALESCE(SUM(cost_usd),0), COALESCE(SUM(CASE WHEN status='sent' "
                "THEN reserved_usd ELSE 0 END),0) FROM attempts")[0]
        assert unsettled == 0
        assert 0 < settled + unsettled <= max_usd
        assert summary.spent_usd <= max_usd
        # nothing past the budget was submitted
        assert set(server.custom_id_counts()) == ok
        # each worst case was reserved at the batch price (half the online one; the batch
        # line is the body plus a small wrapper)
        by_unit = attempts_by_unit(rd)
        for uid in ok:
            ratio = by_unit[uid][0]["reserved_usd"] / online_reserve[uid]
            assert 0.5 <= ratio < 0.53, ratio
        # each submitted file fit in what was left when it was prepared
        spent_before = 0.0
        for b in ledger_batches(rd):
            assert spent_before + b["reserved_usd"] <= max_usd + 1e-12
            spent_before += ledger_rows(
                rd, "SELECT COALESCE(SUM(a.cost_usd),0) FROM attempts a JOIN batch_items i "
                    "ON i.attempt_id=a.id WHERE i.local_id=?", (b["local_id"],))[0][0]
        # The stop names the request that did not fit (its worst case at the batch price) and
        # what was left for it; the first must exceed the second.
        m = re.search(r"could cost up to \$([\d.]+) at the batch price and only \$([\d.]+) of "
                      r"\$([\d.]+) is left", summary.message)
        assert m, summary.message
        cost, left, cap = map(float, m.groups())
        assert cap == max_usd
        pending = [u for u, s in states.items() if s == "pending"]
        assert any(0.48 <= cost / online_reserve[u] <= 0.55 for u in pending), cost

        summary2, _ = run_batch(tmp_path, server, {**over, "budget": {"max_usd": 1.0}}, tasks=3,
                                resume=True)
        assert summary2.stopped is None and summary2.counts == {"ok": 9}
        assert_terminal_invariants(rd)
        assert server.custom_id_counts() == Counter({u: 1 for u in states})
        assert summary2.spent_usd <= 1.0
        runs = read_jsonl(rd / "runs.jsonl")
        assert [r["status"] for r in runs] == ["stopped_budget", "completed"]

        # Last (see the stop message above): the stop message must be consistent.
        assert cost > left, summary.message


# --------------------------------------------------------------------------- crash and resume


def _cli_cfg(tmp_path: Path, server: FakeOpenAI, tasks: int = 3) -> Path:
    return write_yaml(tmp_path / "run.yaml",
                      cfg_dict(tmp_path, server.base_url, deep_merge(FAST, NO_DIV), tasks=tasks))


def _kill(proc: Any) -> None:
    assert proc.poll() is None, proc.communicate()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(20)
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL


def _no_traceback(res: Any) -> None:
    assert "Traceback" not in res.stdout + res.stderr, res.stderr


def test_kill9_while_polling_then_resume_reattaches(fake_openai: FakeOpenAI,
                                                    tmp_path: Path) -> None:
    server = fake_openai
    server.batch_advance_on_get = False  # polls do not move the batch: the run keeps polling
    server.enqueue_batch(BatchScript(
        states=["validating", "in_progress", "in_progress", "finalizing", "completed"]))
    cfg = _cli_cfg(tmp_path, server)
    env = cli_env(**{KEY_ENV: SECRET})
    rd = tmp_path / "runs" / "K"
    proc = popen_cli(["run", "--config", str(cfg), "--run-id", "K", "--mode", "batch", "--quiet"],
                     env=env)
    try:
        wait_for(lambda: any(b.polls >= 3 for b in server.batches.values())
                 or proc.poll() is not None, timeout=60, what="a batch polled 3 times")
        _kill(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(20)
    (batch,) = batches_in_order(server)
    (row,) = ledger_batches(rd)
    assert row["batch_id"] == batch.id and row["reconciled_at"] is None
    assert set(unit_states(rd).values()) == {"pending"}
    assert {s for (s,) in ledger_rows(rd, "SELECT status FROM attempts")} == {"sent"}

    server.batch_advance_on_get = True
    cut = len(server.requests)
    res = run_cli(["run", "--config", str(cfg), "--run-id", "K", "--mode", "batch", "--resume",
                   "--quiet"], env=env)
    assert res.returncode == 0, res.stderr
    _no_traceback(res)

    after = server.requests[cut:]
    # re-attached: no new upload, no new batch; the existing batch id was polled
    assert not [r for r in after if r.method == "POST" and r.path in ("/v1/files", "/v1/batches")]
    assert [r for r in after if r.method == "GET" and r.path == f"/v1/batches/{batch.id}"]
    assert len(server.batches) == 1 and len(uploads(server)) == 1
    assert server.custom_id_counts() == Counter({u: 1 for u in unit_specs(rd)})
    assert set(unit_states(rd).values()) == {"ok"}
    assert_terminal_invariants(rd)
    (row,) = ledger_batches(rd)
    assert row["batch_id"] == batch.id and row["status"] == "completed"
    assert ledger_rows(rd, "SELECT status FROM invocations ORDER BY id") == [("interrupted",),
                                                                              ("completed",)]
    # the interrupted invocation's attempts were settled by the resumed run (one per unit)
    assert Counter(s for (s,) in ledger_rows(rd, "SELECT status FROM attempts")) == {"ok": 9}
    assert_no_secret(rd, SECRET)


@pytest.mark.parametrize("created", [True, False], ids=["created-remotely", "never-created"])
def test_kill9_between_upload_and_create(fake_openai: FakeOpenAI, tmp_path: Path,
                                         created: bool) -> None:
    server = fake_openai
    entered, release = threading.Event(), threading.Event()

    def slow_create(bid: str, lines: list[Any]) -> BatchScript | None:
        entered.set()
        release.wait(30)
        if not created:
            raise RuntimeError("create lost (simulated)")
        return None

    server.batch_plan = slow_create
    cfg = _cli_cfg(tmp_path, server)
    env = cli_env(**{KEY_ENV: SECRET})
    rd = tmp_path / "runs" / "K"
    proc = popen_cli(["run", "--config", str(cfg), "--run-id", "K", "--mode", "batch", "--quiet"],
                     env=env)
    try:
        wait_for(lambda: entered.is_set() or proc.poll() is not None, timeout=60,
                 what="the create call")
        _kill(proc)
    finally:
        release.set()
        if proc.poll() is None:
            proc.kill()
            proc.wait(20)
    if created:
        wait_for(lambda: len(server.batches) == 1, what="the batch")
    else:
        wait_for(lambda: len(server.errors) == 1, what="the lost create")
        assert not server.batches
    (row,) = ledger_batches(rd)
    assert row["batch_id"] is None and row["input_file_id"] is not None
    (upload,) = uploads(server)
    assert row["input_file_id"] == upload.id

    server.batch_plan = None
    cut = len(server.requests)
    res = run_cli(["run", "--config", str(cfg), "--run-id", "K", "--mode", "batch", "--resume",
                   "--quiet"], env=env)
    assert res.returncode == 0, res.stderr
    _no_traceback(res)
    after = server.requests[cut:]
    assert not [r for r in after if r.method == "POST" and r.path == "/v1/files"]  # no re-upload
    # the provider's batch list was searched for the local id before anything was created
    assert [r for r in after if r.method == "GET" and r.path == "/v1/batches"]
    creates = [r for r in after if r.method == "POST" and r.path == "/v1/batches"]
    assert len(creates) == (0 if created else 1)
    (batch,) = batches_in_order(server)
    assert batch.input_file_id == upload.id
    assert batch.metadata == {"benchsmith_local_id": row["local_id"]}
    (row2,) = ledger_batches(rd)
    assert row2["batch_id"] == batch.id and row2["local_id"] == row["local_id"]
    assert server.custom_id_counts() == Counter({u: 1 for u in unit_specs(rd)})
    assert set(unit_states(rd).values()) == {"ok"}
    assert_terminal_invariants(rd)


def test_cli_batch_status_cancel_then_resume(fake_openai: FakeOpenAI, tmp_path: Path) -> None:
    server = fake_openai
    server.batch_advance_on_get = False
    server.enqueue_batch(BatchScript(
        states=["validating", "in_progress", "finalizing", "completed"], cancel=4))
    cfg = _cli_cfg(tmp_path, server)
    env = cli_env(**{KEY_ENV: SECRET})
    rd = tmp_path / "runs" / "K"

    res = run_cli(["batch", "status", str(rd)], env=env)  # no run yet
    assert res.returncode == 1 and nonempty_lines(res.stderr)[0].startswith("error:")
    assert len(nonempty_lines(res.stderr)) == 1
    _no_traceback(res)

    proc = popen_cli(["run", "--config", str(cfg), "--run-id", "K", "--mode", "batch", "--quiet"],
                     env=env)
    try:
        wait_for(lambda: any(b.polls >= 2 for b in server.batches.values())
                 or proc.poll() is not None, timeout=60, what="a polled batch")
        _kill(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(20)
    (batch,) = batches_in_order(server)
    (row,) = ledger_batches(rd)
    server.advance_batch(batch.id)  # now in_progress
    # requests carried by a live batch are not exported for an offline runner
    res = run_cli(["batch", "export", str(rd), "--out", str(tmp_path / "x.jsonl")], env=env)
    assert res.returncode == 0, res.stderr
    assert read_jsonl(tmp_path / "x.jsonl") == []
    assert batch.status == "in_progress"

    res = run_cli(["batch", "status", str(rd), "--no-refresh"], env=env)
    assert res.returncode == 0, res.stderr
    (line,) = nonempty_lines(res.stdout)
    assert row["local_id"] in line and batch.id in line and "validating" in line

    polls = batch.polls
    res = run_cli(["batch", "status", str(rd)], env=env)
    assert res.returncode == 0, res.stderr
    (line,) = nonempty_lines(res.stdout)
    assert batch.id in line and "in_progress" in line and "reconciled" not in line
    assert batch.polls == polls + 1

    res = run_cli(["batch", "status", str(rd), "--json", "--no-refresh"], env=env)
    assert res.returncode == 0
    (obj,) = json.loads(res.stdout)
    assert obj["batch_id"] == batch.id and obj["status"] == "in_progress"
    assert obj["request_counts"]["total"] == 9

    res = run_cli(["batch", "cancel", str(rd)], env=env)
    assert res.returncode == 0, res.stderr
    _no_traceback(res)
    assert nonempty_lines(res.stdout) == [batch.id]
    assert "cancel requested for 1 batch(es)" in res.stderr
    assert batch.cancel_requested and batch.status == "cancelling"

    server.batch_advance_on_get = True
    res = run_cli(["batch", "status", str(rd)], env=env)
    assert res.returncode == 0
    assert "cancelled" in res.stdout
    res = run_cli(["batch", "cancel", str(rd)], env=env)  # nothing left to cancel
    assert res.returncode == 0 and nonempty_lines(res.stdout) == []
    assert "cancel requested for 0 batch(es)" in res.stderr

    # the resumed run reconciles the 4 finished requests and resubmits the other 5
    res = run_cli(["run", "--config", str(cfg), "--run-id", "K", "--mode", "batch", "--resume",
                   "--quiet"], env=env)
    assert res.returncode == 0, res.stderr
    first, *later = batches_in_order(server)
    assert first.id == batch.id and first.status == "cancelled"
    done = {o["custom_id"] for o in first.outputs}
    rest = {e["custom_id"] for e in first.error_lines}
    assert len(done) == 4 and len(rest) == 5
    assert sorted(c for b in later for c in b.custom_ids) == sorted(rest)
    assert set(unit_states(rd).values()) == {"ok"}
    assert_terminal_invariants(rd)
    by_unit = attempts_by_unit(rd)
    assert all(statuses(by_unit[u]) == ["ok"] for u in done)
    assert all(statuses(by_unit[u]) == ["batch_cancelled", "ok"] for u in rest)
    res = run_cli(["batch", "status", str(rd), "--no-refresh"], env=env)
    lines = nonempty_lines(res.stdout)
    assert len(lines) == 1 + len(later) and all("reconciled" in ln for ln in lines)
