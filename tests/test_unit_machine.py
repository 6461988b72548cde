"""One unit state machine (engine/unit_machine.py) behind the online executor, the batch
executor and offline `batch ingest`: the same attempts end a unit the same way on all three.

The rule: transient failures (429/5xx, timeouts, malformed answers, lines a batch dropped)
count across invocations, since the unit was last re-opened; past engine.max_retries the
unit fails. A crash or stop loop therefore cannot retry a unit forever.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from benchsmith import api, batch_ops
from benchsmith.engine.unit_machine import (
    Failure,
    Limits,
    UnitState,
    is_transient,
    next_step,
)
from fake_openai import BatchScript, FakeOpenAI, Reply
from helpers import (
    KEY_ENV,
    SECRET,
    attempts_by_unit,
    deep_merge,
    ledger_rows,
    make_cfg,
    read_jsonl,
    unit_states,
)
from batch_executor_support import FAST, NO_DIV
from test_batch_offline import write_jsonl

MSG = "The server had an error while processing your request."
AUTH = "Incorrect API key provided"
ONE = deep_merge(NO_DIV, {"recipe_options": {"calls_per_task": 1},
                          "engine": {"concurrency": 1, "max_retries": 2}})


@pytest.fixture(autouse=True)
def _api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, SECRET)


# --------------------------------------------------------------------------- the rule itself


def test_transient_failures_fail_the_unit_past_max_retries() -> None:
    lim = Limits(max_retries=2, max_validation_retries=1)
    s = UnitState()
    for n in (1, 2):
        d = next_step(s, Failure("transient", "HTTP 500: boom"), lim)
        assert (d.action, d.state.transient, d.reason) == ("retry", n, None)
        s = d.state
    d = next_step(s, Failure("transient", "HTTP 500: boom"), lim)
    assert (d.action, d.reason) == ("fail", "HTTP 500: boom after 3 tries")


def test_invalid_answers_are_reasked_then_the_unit_is_invalid() -> None:
    lim = Limits(max_retries=5, max_validation_retries=1)
    d = next_step(UnitState(transient=4), Failure("invalid", "a", ("plan 1 is empty",)), lim)
    assert (d.action, d.state) == ("reask", UnitState(transient=4, invalid=1))
    d = next_step(d.state, Failure("invalid", "a", ("plan 2 is empty",)), lim)
    assert (d.action, d.reason) == ("invalid", "validation: plan 2 is empty")


def test_fatal_and_stop() -> None:
    lim = Limits(max_retries=0, max_validation_retries=0)
    assert next_step(UnitState(), Failure("fatal", "HTTP 400: bad"), lim).action == "fail"
    d = next_step(UnitState(), Failure("stop", "HTTP 401: no"), lim)
    assert (d.action, d.state) == ("stop", UnitState())  # a stop is no try of the unit


def test_which_attempts_are_transient() -> None:
    assert is_transient("http_error", 500) and is_transient("http_error", 429)
    assert is_transient("timeout", None) and is_transient("missing", None)
    assert is_transient("batch_expired", None) and is_transient("malformed", 200)
    assert not is_transient("http_error", 400) and not is_transient("http_error", 401)
    assert not is_transient("invalid", 200) and not is_transient("cancelled", None)


# --------------------------------------------------------------------------- three paths agree
# A unit answered 500, 500 and 401 (the run stops) in one invocation, then 500 in the next,
# with engine.max_retries=2: three transient failures, so it ends failed, whatever the path.


def _online(tmp_path: Path) -> Path:
    with FakeOpenAI() as server:
        cfg = make_cfg(tmp_path, server.base_url, ONE, tasks=1)
        server.enqueue(Reply.error(500, MSG), Reply.error(500, MSG), Reply.error(401, AUTH))
        assert api.run(cfg, "R").stopped == "stopped_auth"
        server.enqueue(Reply.error(500, MSG))  # then valid answers
        assert api.run(cfg, "R", resume=True).stopped is None
    return tmp_path / "runs" / "R"


def _batch(tmp_path: Path) -> Path:
    replies = [500, 500, Reply.error(401, AUTH), 500]

    def plan(bid: str, lines: list[Any]) -> BatchScript | None:
        if not replies:
            return None
        status = replies.pop(0)
        reply = status if isinstance(status, Reply) else Reply.error(status, MSG)
        return BatchScript(http_errors={ln["custom_id"]: reply for ln in lines})

    with FakeOpenAI() as server:
        server.batch_plan = plan
        cfg = make_cfg(tmp_path, server.base_url, deep_merge(FAST, ONE), tasks=1)
        assert api.run(cfg, "R", mode="batch").stopped == "stopped_auth"
        assert api.run(cfg, "R", resume=True, mode="batch").stopped is None
    return tmp_path / "runs" / "R"


def _ingest(tmp_path: Path) -> Path:
    cfg = make_cfg(tmp_path, "http://127.0.0.1:9/v1", ONE, tasks=1)
    rd = api.dry_run(cfg, "R").run_dir
    batch_ops.batch_export(rd, tmp_path / "req.jsonl")
    (uid,) = [ln["custom_id"] for ln in read_jsonl(tmp_path / "req.jsonl")]

    def line(k: int, status: int, msg: str) -> dict[str, Any]:
        return {"id": f"batch_req_{k}", "custom_id": uid, "error": None, "response": {
            "status_code": status, "request_id": f"req_{k}", "body": {"error": {"message": msg}}}}

    first = [line(1, 500, MSG), line(2, 500, MSG), line(3, 401, AUTH)]
    rep = batch_ops.batch_ingest(rd, [write_jsonl(tmp_path / "out1.jsonl", first)])
    assert (rep.counts["requeued"], rep.counts["failed"]) == (3, 0)
    rep = batch_ops.batch_ingest(rd, [write_jsonl(tmp_path / "out2.jsonl", [line(4, 500, MSG)])])
    assert (rep.counts["requeued"], rep.counts["failed"]) == (0, 1)
    return rd


@pytest.mark.parametrize("path", ["online", "batch", "ingest"])
def test_transient_retries_count_across_invocations(tmp_path: Path, path: str) -> None:
    rd = {"online": _online, "batch": _batch, "ingest": _ingest}[path](tmp_path)
    ((uid, state),) = unit_states(rd).items()
    assert state == "failed"
    atts = attempts_by_unit(rd)[uid]
    assert [(a["status"], a["http_status"]) for a in atts] == [
        ("http_error", 500), ("http_error", 500), ("http_error", 401), ("http_error", 500)]
    assert [a["n"] for a in atts] == [1, 2, 3, 4]
    (reason,) = [r for (r,) in ledger_rows(rd, "SELECT reason FROM units")]
    assert reason == f"HTTP 500: {MSG} after 3 tries"
