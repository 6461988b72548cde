"""The batch executor (`run --mode batch`) on the result files a batch can come back with:
shuffled, expired, cancelled, failed validation, schema-invalid answers, HTTP error
lines, dropped ids. Against the fake Files + Batches API of tests/fakeserver/.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from batch_executor_support import (
    FAST,
    NO_DIV,
    batches_in_order,
    first_batch_plan,
    input_lines,
    ledger_batches,
    online_answer,
    response_text,
    run_batch,
    statuses,
)
from fake_openai import BatchScript, FakeOpenAI, Reply
from helpers import (
    KEY_ENV,
    SECRET,
    assert_terminal_invariants,
    attempts_by_unit,
    deep_merge,
    ledger_rows,
    make_cfg,
    read_jsonl,
    request_messages,
    unit_specs,
    unit_states,
    wait_for,
)

from benchsmith import api, batch_ops


@pytest.fixture(autouse=True)
def _api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, SECRET)


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
        summary, rd = run_batch(tmp_path, server, {"recipe_options": {"diversity": False,
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
