"""Fault handling of the online engine, driven through benchsmith.api.run against FakeOpenAI.

Most tests use one HumanEval task and one call (one unit) at concurrency 1 so the server's
reply queue maps one-to-one onto the unit's attempts.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from benchsmith import api
from benchsmith.store.ledger import TERMINAL
from fake_openai import FakeOpenAI, Received, Reply
from helpers import (
    KEY_ENV,
    SECRET,
    assert_no_secret,
    assert_terminal_invariants,
    attempts_by_unit,
    cfg_dict,
    cli_env,
    first_task_ids,
    humaneval_problems,
    make_cfg,
    match_unit,
    nonempty_lines,
    read_json,
    read_jsonl,
    request_messages,
    run_cli,
    unit_specs,
    unit_states,
    write_yaml,
)

ONE_UNIT = {
    "recipe_options": {"calls_per_task": 1, "max_validation_retries": 2},
    "engine": {"concurrency": 1, "max_retries": 3},
}


@pytest.fixture(autouse=True)
def _key(monkeypatch) -> None:
    monkeypatch.setenv(KEY_ENV, SECRET)


def _run(tmp_path: Path, server: FakeOpenAI, overrides: dict | None = None, *, tasks: int = 1,
         run_id: str = "R", resume: bool = False) -> tuple[api.RunSummary, Path]:
    cfg = make_cfg(tmp_path, server.base_url, overrides, tasks=tasks)
    return api.run(cfg, run_id, resume), tmp_path / "runs" / run_id


def _only_unit(rd: Path) -> tuple[str, str, list[dict[str, Any]]]:
    states = unit_states(rd)
    assert len(states) == 1
    (uid, state), = states.items()
    return uid, state, attempts_by_unit(rd).get(uid, [])


def _plans(n: int, steps: list[str] | None = None) -> dict[str, Any]:
    return {
        "plans": [
            {
                "title": f"Approach {i}",
                "summary": f"Solve it with idea number {i}.",
                "steps": steps if steps is not None else [f"step one of {i}", f"step two of {i}"],
            }
            for i in range(n)
        ]
    }


# --------------------------------------------------------------------------- transient errors


def test_429_retry_after_is_honoured(fake_openai: FakeOpenAI, tmp_path: Path) -> None:
    fake_openai.enqueue(Reply.error(429, "Rate limit reached", headers={"Retry-After": "0.3"}))
    summary, rd = _run(tmp_path, fake_openai, ONE_UNIT)
    assert summary.stopped is None
    uid, state, atts = _only_unit(rd)
    assert state == "ok"
    assert [(a["status"], a["http_status"]) for a in atts] == [("http_error", 429), ("ok", 200)]
    assert "Rate limit reached" in atts[0]["error"]
    reqs = fake_openai.requests
    assert len(reqs) == 2
    gap = reqs[1].t - reqs[0].t
    assert 0.3 <= gap < 10, gap
    assert len(read_jsonl(rd / "datasets/humaneval/plans.jsonl")) == 4


def test_retry_after_ms_header(fake_openai: FakeOpenAI, tmp_path: Path) -> None:
    fake_openai.enqueue(Reply.error(429, "slow down", headers={"retry-after-ms": "250"}))
    _, rd = _run(tmp_path, fake_openai, ONE_UNIT)
    reqs = fake_openai.requests
    assert len(reqs) == 2 and reqs[1].t - reqs[0].t >= 0.25
    assert _only_unit(rd)[1] == "ok"


def test_500_then_ok(fake_openai: FakeOpenAI, tmp_path: Path) -> None:
    fake_openai.enqueue(Reply.error(500, "The server had an error"), Reply.error(503, "overloaded"))
    summary, rd = _run(tmp_path, fake_openai, ONE_UNIT)
    assert summary.stopped is None
    _, state, atts = _only_unit(rd)
    assert state == "ok"
    assert [(a["status"], a["http_status"]) for a in atts] == [
        ("http_error", 500), ("http_error", 503), ("ok", 200)
    ]
    assert [a["n"] for a in atts] == [1, 2, 3]


def test_500_beyond_max_retries_fails_unit(fake_openai: FakeOpenAI, tmp_path: Path) -> None:
    fake_openai.script = lambda r, i: Reply.error(500, "upstream exploded")
    over = {**ONE_UNIT, "engine": {"concurrency": 1, "max_retries": 2}}
    summary, rd = _run(tmp_path, fake_openai, over)
    assert summary.stopped is None
    uid, state, atts = _only_unit(rd)
    assert state == "failed"
    assert len(fake_openai.requests) == 3 == len(atts)  # 1 try + 2 retries
    assert all(a["status"] == "http_error" and a["http_status"] == 500 for a in atts)
    (reason,) = [r for (r,) in _rows(rd, "SELECT reason FROM units")]
    assert "500" in reason and "upstream exploded" in reason
    assert read_jsonl(rd / "datasets/humaneval/plans.jsonl") == []
    tid = first_task_ids(1)[0]
    assert read_json(rd / "manifests/humaneval_incomplete_task_ids.json") == [tid]


def test_timeout_is_retried(fake_openai: FakeOpenAI, tmp_path: Path) -> None:
    fake_openai.enqueue(Reply.hang(2.0))
    over = {**ONE_UNIT, "engine": {"concurrency": 1, "max_retries": 3, "timeout_s": 0.5}}
    summary, rd = _run(tmp_path, fake_openai, over)
    assert summary.stopped is None
    _, state, atts = _only_unit(rd)
    assert state == "ok"
    assert [a["status"] for a in atts] == ["timeout", "ok"]
    assert atts[0]["http_status"] is None
    assert len(fake_openai.requests) == 2


def test_timeouts_beyond_max_retries_fail(fake_openai: FakeOpenAI, tmp_path: Path) -> None:
    fake_openai.script = lambda r, i: Reply.hang(2.0)
    over = {**ONE_UNIT, "engine": {"concurrency": 1, "max_retries": 1, "timeout_s": 0.3}}
    _, rd = _run(tmp_path, fake_openai, over)
    _, state, atts = _only_unit(rd)
    assert state == "failed"
    assert [a["status"] for a in atts] == ["timeout", "timeout"]
    (reason,) = [r for (r,) in _rows(rd, "SELECT reason FROM units")]
    assert "timeout" in reason


def test_malformed_body_is_retried(fake_openai: FakeOpenAI, tmp_path: Path) -> None:
    fake_openai.enqueue(
        Reply.malformed(),
        Reply.raw(200, b'{"id": "x", "object": "nothing useful"}'),
    )
    summary, rd = _run(tmp_path, fake_openai, ONE_UNIT)
    assert summary.stopped is None
    _, state, atts = _only_unit(rd)
    assert state == "ok"
    assert [a["status"] for a in atts] == ["malformed", "malformed", "ok"]
    assert len(fake_openai.requests) == 3
    # a malformed body is a transport problem: the request is re-sent unchanged
    assert fake_openai.requests[0].raw == fake_openai.requests[1].raw == fake_openai.requests[2].raw


# --------------------------------------------------------------------------- validation


def _feedback_ok(req: Received, first: Received, prev_answer: str, issues: list[str]) -> None:
    msgs = request_messages(req.body)
    orig = request_messages(first.body)
    assert msgs[: len(orig)] == orig, "the re-ask keeps the original prompt"
    assert len(msgs) == len(orig) + 2
    assert msgs[-2]["role"] == "assistant" and msgs[-2]["content"] == prev_answer
    assert msgs[-1]["role"] == "user"
    assert issues
    for issue in issues:
        assert issue in msgs[-1]["content"]


def test_schema_invalid_is_reasked_with_feedback(fake_openai: FakeOpenAI, tmp_path: Path) -> None:
    bad = json.dumps(_plans(3))
    fake_openai.enqueue(Reply.text(bad))
    summary, rd = _run(tmp_path, fake_openai, ONE_UNIT)
    assert summary.stopped is None
    uid, state, atts = _only_unit(rd)
    assert state == "ok"
    assert [a["status"] for a in atts] == ["invalid", "ok"]
    assert any("3" in i and "4" in i for i in atts[0]["issues"]), atts[0]["issues"]
    r0, r1 = fake_openai.requests
    _feedback_ok(r1, r0, bad, atts[0]["issues"])

    failed = read_jsonl(rd / "failed_plans/datasets/humaneval/plans.jsonl")
    assert len(failed) == 1
    assert failed[0]["raw_output"] == bad and failed[0]["validation_error"]
    assert failed[0]["request_id"] == uid
    ftasks = read_jsonl(rd / "failed_plans/datasets/humaneval/tasks.jsonl")
    assert [t["task_id"] for t in ftasks] == first_task_ids(1)
    assert len(read_jsonl(rd / "datasets/humaneval/plans.jsonl")) == 4


def test_invalid_until_exhausted(fake_openai: FakeOpenAI, tmp_path: Path) -> None:
    answers = [
        json.dumps(_plans(4, steps=["Sort the list", "sort  the LIST"])),  # duplicate steps
        json.dumps(_plans(5)),  # too many plans
        "not json at all",
    ]
    fake_openai.enqueue(*(Reply.text(a) for a in answers))
    fake_openai.script = lambda r, i: Reply.text("{}")  # must not be reached
    summary, rd = _run(tmp_path, fake_openai, ONE_UNIT)
    assert summary.stopped is None
    uid, state, atts = _only_unit(rd)
    assert state == "invalid"
    assert [a["status"] for a in atts] == ["invalid"] * 3  # 1 + max_validation_retries
    assert len(fake_openai.requests) == 3
    assert any("repeats an earlier step" in i for i in atts[0]["issues"])
    reqs = fake_openai.requests
    for k in (1, 2):
        _feedback_ok(reqs[k], reqs[0], answers[k - 1], atts[k - 1]["issues"])
    (reason,) = [r for (r,) in _rows(rd, "SELECT reason FROM units")]
    assert reason and "valid" in reason

    failed = read_jsonl(rd / "failed_plans/datasets/humaneval/plans.jsonl")
    assert [f["raw_output"] for f in failed] == answers
    assert all(f["validation_error"] and f["request_id"] == uid for f in failed)
    assert "repeats an earlier step" in failed[0]["validation_error"]
    ftasks = read_jsonl(rd / "failed_plans/datasets/humaneval/tasks.jsonl")
    tid = first_task_ids(1)[0]
    assert [t["task_id"] for t in ftasks] == [tid]
    assert ftasks[0]["primary"] == humaneval_problems()[tid]["prompt"]
    assert read_jsonl(rd / "datasets/humaneval/plans.jsonl") == []
    assert read_json(rd / "manifests/humaneval_incomplete_task_ids.json") == [tid]


def test_validation_retries_zero(fake_openai: FakeOpenAI, tmp_path: Path) -> None:
    fake_openai.enqueue(Reply.text(json.dumps(_plans(2))))
    over = {**ONE_UNIT, "recipe_options": {"calls_per_task": 1, "max_validation_retries": 0}}
    _, rd = _run(tmp_path, fake_openai, over)
    _, state, atts = _only_unit(rd)
    assert state == "invalid" and len(atts) == 1 and len(fake_openai.requests) == 1


def test_incomplete_answer_is_reasked(fake_openai: FakeOpenAI, tmp_path: Path) -> None:
    fake_openai.enqueue(Reply.incomplete())
    summary, rd = _run(tmp_path, fake_openai, ONE_UNIT)
    assert summary.stopped is None
    _, state, atts = _only_unit(rd)
    assert state == "ok"
    assert [a["status"] for a in atts] == ["invalid", "ok"]
    r0, r1 = fake_openai.requests
    msgs = request_messages(r1.body)
    assert len(msgs) == len(request_messages(r0.body)) + 2
    assert msgs[-2]["role"] == "assistant" and msgs[-2]["content"] == atts[0]["raw_output"]
    assert atts[0]["issues"] and atts[0]["issues"][0] in msgs[-1]["content"]
    failed = read_jsonl(rd / "failed_plans/datasets/humaneval/plans.jsonl")
    assert len(failed) == 1 and failed[0]["validation_error"]


# --------------------------------------------------------------------------- fatal errors


@pytest.mark.parametrize("status, message", [
    (400, "Invalid schema for response_format 'implementation_plans'"),
    (404, "The model `gpt-5-mini` does not exist or you do not have access to it."),
    (422, "Unprocessable: bad params"),
])
def test_client_errors_fail_without_retry(fake_openai: FakeOpenAI, tmp_path: Path,
                                          status: int, message: str) -> None:
    fake_openai.enqueue(Reply.error(status, message))
    summary, rd = _run(tmp_path, fake_openai, ONE_UNIT)
    assert summary.stopped is None
    _, state, atts = _only_unit(rd)
    assert state == "failed"
    assert len(fake_openai.requests) == 1 and len(atts) == 1
    assert atts[0]["http_status"] == status
    (reason,) = [r for (r,) in _rows(rd, "SELECT reason FROM units")]
    assert message in reason and str(status) in reason


# --------------------------------------------------------------------------- auth stops the run


@pytest.mark.parametrize("status", [401, 403])
def test_auth_error_stops_run_then_resume(fake_openai: FakeOpenAI, tmp_path: Path, monkeypatch,
                                          status: int) -> None:
    over = {"engine": {"concurrency": 1}}
    msg = "Incorrect API key provided: sk-te****" if status == 401 else "Project lacks access"
    fake_openai.script = lambda r, i: Reply.error(status, msg) if i == 2 else None
    summary, rd = _run(tmp_path, fake_openai, over, tasks=2)
    assert summary.stopped == "stopped_auth"
    assert str(status) in summary.message and msg in summary.message
    assert "\n" not in summary.message
    assert len(fake_openai.requests) == 3  # stopped at once: nothing sent after the error
    # 2 ok; the rest pending (how many are planned yet depends on call chaining)
    assert summary.counts["ok"] == 2 and summary.counts["pending"] >= 1
    assert set(summary.counts) == {"ok", "pending"}
    assert_terminal_invariants(rd, allow_pending=True)
    invs = _rows(rd, "SELECT status FROM invocations ORDER BY id")
    assert invs == [("stopped_auth",)]

    # resume with a good key completes the remaining units, never re-sending the ok ones
    ok_before = {u for u, s in unit_states(rd).items() if s == "ok"}
    fake_openai.script = None
    cut = len(fake_openai.requests)
    monkeypatch.setenv(KEY_ENV, "sk-good-key-0000")
    summary2, _ = _run(tmp_path, fake_openai, over, tasks=2, resume=True)
    assert summary2.stopped is None
    assert summary2.counts == {"ok": 6}
    specs = unit_specs(rd)
    later = [match_unit(r.body, specs) for r in fake_openai.requests[cut:]]
    assert len(later) == 4 and not set(later) & ok_before
    assert all(r.headers["Authorization"] == "Bearer sk-good-key-0000"
               for r in fake_openai.requests[cut:])
    assert_terminal_invariants(rd)
    assert len(read_jsonl(rd / "datasets/humaneval/plans.jsonl")) == 24
    assert_no_secret(rd, SECRET, "sk-good-key-0000")


def test_auth_error_with_concurrency_stops_at_once(fake_openai: FakeOpenAI, tmp_path: Path) -> None:
    fake_openai.script = lambda r, i: Reply.error(401, "Incorrect API key provided")
    summary, rd = _run(tmp_path, fake_openai, {"engine": {"concurrency": 4}}, tasks=5)
    assert summary.stopped == "stopped_auth"
    assert len(fake_openai.requests) <= 4
    assert unit_states(rd) and set(unit_states(rd).values()) == {"pending"}
    assert_terminal_invariants(rd, allow_pending=True)


def test_quota_429_stops_run(fake_openai: FakeOpenAI, tmp_path: Path) -> None:
    fake_openai.enqueue(Reply.error(429, "You exceeded your current quota, please check your plan",
                                    code="insufficient_quota"))
    summary, rd = _run(tmp_path, fake_openai, ONE_UNIT)
    assert summary.stopped == "stopped_auth"
    assert "quota" in summary.message
    assert len(fake_openai.requests) == 1
    assert _only_unit(rd)[1] == "pending"


def test_auth_error_cli(fake_openai: FakeOpenAI, tmp_path: Path) -> None:
    fake_openai.script = lambda r, i: Reply.error(401, "Incorrect API key provided")
    cfg = write_yaml(tmp_path / "run.yaml", cfg_dict(tmp_path, fake_openai.base_url, tasks=2))
    res = run_cli(["run", "--config", str(cfg), "--run-id", "A", "--quiet"],
                  env=cli_env(**{KEY_ENV: "sk-bad-key-1111"}))
    out = res.stdout + res.stderr
    assert res.returncode != 0
    assert "Traceback" not in out
    hits = [ln for ln in nonempty_lines(out) if "authentication failed" in ln]
    assert len(hits) == 1 and "401" in hits[0] and "Incorrect API key provided" in hits[0]
    assert "--resume" in out
    rd = tmp_path / "runs" / "A"
    assert set(unit_states(rd).values()) == {"pending"}

    fake_openai.script = None
    res = run_cli(["run", "--config", str(cfg), "--run-id", "A", "--resume", "--quiet"],
                  env=cli_env(**{KEY_ENV: "sk-good-key-2222"}))
    assert res.returncode == 0, res.stderr
    assert set(unit_states(rd).values()) == {"ok"}
    assert_no_secret(rd, "sk-bad-key-1111", "sk-good-key-2222")


# --------------------------------------------------------------------------- invariants


def test_mixed_faults_every_unit_terminal(fake_openai: FakeOpenAI, tmp_path: Path) -> None:
    """Under a mix of faults at concurrency, every unit ends in exactly one terminal state,
    with never more than one ok attempt, and every API call is logged once."""

    def script(r: Received, i: int) -> Reply | None:
        if i % 7 == 1:
            return Reply.error(500, "flaky")
        if i % 7 == 3:
            return Reply.malformed()
        if i % 7 == 5:
            return Reply.text(json.dumps(_plans(2)))
        if i % 11 == 4:
            return Reply.error(429, "busy", headers={"Retry-After": "0.01"})
        if i % 13 == 6:
            return Reply.incomplete()
        if i % 17 == 9:
            return Reply.error(400, "bad request")
        return None

    fake_openai.script = script
    fake_openai.latency = 0.005
    summary, rd = _run(tmp_path, fake_openai, {"engine": {"concurrency": 5, "max_retries": 2}},
                       tasks=5)
    assert summary.stopped is None
    states = unit_states(rd)
    assert 5 <= len(states) <= 15  # later calls of a task may depend on earlier ones
    assert set(states.values()) <= set(TERMINAL)
    assert sum(summary.counts.values()) == len(states) and "pending" not in summary.counts
    assert_terminal_invariants(rd)
    calls = read_jsonl(rd / "logs/batch_calls.jsonl")
    assert len(calls) == len(fake_openai.requests)
    assert len({c["id"] for c in calls}) == len(calls)
    assert not [c for c in calls if c["status"] in ("sent", "cancelled")]
    specs = unit_specs(rd)
    per_unit = attempts_by_unit(rd)
    for r in fake_openai.requests:
        assert match_unit(r.body, specs) is not None
    ok_rows = read_jsonl(rd / "datasets/humaneval/plans.jsonl")
    n_ok = sum(1 for s in states.values() if s == "ok")
    assert len(ok_rows) == 4 * n_ok
    for uid, atts in per_unit.items():
        assert [a["n"] for a in atts] == list(range(1, len(atts) + 1))
    assert fake_openai.errors == []
    assert_no_secret(rd, SECRET)


def _rows(rd: Path, sql: str) -> list[tuple[Any, ...]]:
    from helpers import ledger_rows

    return ledger_rows(rd, sql)
