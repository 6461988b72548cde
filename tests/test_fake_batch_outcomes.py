"""The fake server's scripted batch outcomes: shuffle, expiry, cancel, validation failures
and limits. Lines and batch objects are checked against the OpenAI OpenAPI spec.
"""

from __future__ import annotations

import json
from typing import Any

from fake_batches_support import (
    EXPIRED_LINE_ERROR,
    Client,
    check_batch,
    jsonl,
    resp_line,
    response_text,
)
from fake_openai import BatchScript, FakeOpenAI

# --------------------------------------------------------------------------- scripted outcomes


def test_shuffled_output_is_seeded_and_joins_on_custom_id(fake_openai: FakeOpenAI, client: Client) -> None:
    lines = [resp_line(i) for i in range(30)]
    fake_openai.enqueue_batch(BatchScript(shuffle=True), BatchScript(shuffle=True), BatchScript(shuffle=7))
    orders = []
    for _ in range(3):
        final, _ = client.poll(client.submit(lines)["id"])
        orders.append([o["custom_id"] for o in client.lines(final["output_file_id"])])
    assert sorted(orders[0]) == sorted(ln["custom_id"] for ln in lines)
    assert orders[0] != [ln["custom_id"] for ln in lines]
    assert orders[0] == orders[1]  # same seed -> same order
    assert orders[2] != orders[0] and sorted(orders[2]) == sorted(orders[0])
    # Joining on custom_id recovers the per-body deterministic answers.
    unshuffled, _ = client.poll(client.submit(lines)["id"])
    plain = {o["custom_id"]: response_text(o["response"]["body"]) for o in client.lines(unshuffled["output_file_id"])}
    shuffled = client.lines(fake_openai.batches[list(fake_openai.batches)[0]].output_file_id)
    assert {o["custom_id"]: response_text(o["response"]["body"]) for o in shuffled} == plain


def test_expired_batch_has_partial_output_and_expired_error_lines(fake_openai: FakeOpenAI, client: Client) -> None:
    fake_openai.enqueue_batch(BatchScript(expire_after=3))
    lines = [resp_line(i) for i in range(8)]
    final, seen = client.poll(client.submit(lines)["id"])
    assert seen == ["in_progress", "expired"]
    assert final["request_counts"] == {"total": 8, "completed": 3, "failed": 5}
    assert isinstance(final["expired_at"], int) and final["completed_at"] is None
    out = client.lines(final["output_file_id"])
    errs = client.lines(final["error_file_id"])
    assert [o["custom_id"] for o in out] == ["c0", "c1", "c2"]
    assert [e["custom_id"] for e in errs] == ["c3", "c4", "c5", "c6", "c7"]
    for e in errs:
        assert e["response"] is None and e["error"] == EXPIRED_LINE_ERROR
    assert final["usage"]["total_tokens"] == sum(o["response"]["body"]["usage"]["total_tokens"] for o in out)


def test_expire_after_zero_and_expiry_in_custom_states(fake_openai: FakeOpenAI, client: Client) -> None:
    fake_openai.enqueue_batch(
        BatchScript(expire_after=0),
        # No expire_after: whatever ran before expiry is kept (2 of 4 in_progress polls -> 2 of 6).
        BatchScript(states=["validating", "in_progress", "in_progress", "expired"]),
    )
    final, _ = client.poll(client.submit([resp_line(i) for i in range(4)])["id"])
    assert final["output_file_id"] is None
    assert final["request_counts"] == {"total": 4, "completed": 0, "failed": 4}
    assert len(client.lines(final["error_file_id"])) == 4

    bid = client.submit([resp_line(i) for i in range(6)])["id"]
    counts = [client.get(bid)["request_counts"]["completed"] for _ in range(3)]
    assert counts == [2, 4, 4]
    final = client.get(bid)
    assert final["status"] == "expired"
    assert len(client.lines(final["output_file_id"])) == 4
    assert [e["error"]["code"] for e in client.lines(final["error_file_id"])] == ["batch_expired"] * 2


def test_cancel_goes_cancelling_then_cancelled(fake_openai: FakeOpenAI, client: Client) -> None:
    bid = client.submit([resp_line(i) for i in range(6)])["id"]
    assert client.get(bid)["status"] == "in_progress"  # half the requests have run
    cancelled = client.json("POST", f"/batches/{bid}/cancel")
    check_batch(cancelled)
    assert cancelled["status"] == "cancelling" and isinstance(cancelled["cancelling_at"], int)
    again = client.json("POST", f"/batches/{bid}/cancel")  # idempotent while cancelling
    assert again["status"] == "cancelling"
    final = client.get(bid)
    assert final["status"] == "cancelled" and isinstance(final["cancelled_at"], int)
    assert final["request_counts"] == {"total": 6, "completed": 3, "failed": 3}
    assert [o["custom_id"] for o in client.lines(final["output_file_id"])] == ["c0", "c1", "c2"]
    errs = client.lines(final["error_file_id"])
    assert [e["custom_id"] for e in errs] == ["c3", "c4", "c5"]
    assert all(e["response"] is None and e["error"]["code"] == "batch_cancelled" for e in errs)
    assert client.get(bid)["status"] == "cancelled"
    status, data = client.call("POST", f"/batches/{bid}/cancel")  # terminal: refused
    assert status == 409 and "error" in json.loads(data)
    assert fake_openai.batches[bid].cancel_requested


def test_cancel_variants(fake_openai: FakeOpenAI, client: Client) -> None:
    # cancel=N: exactly the first N requests finish.
    fake_openai.enqueue_batch(BatchScript(cancel=1))
    bid = client.submit([resp_line(i) for i in range(4)])["id"]
    client.get(bid)
    client.json("POST", f"/batches/{bid}/cancel")
    final = client.get(bid)
    assert final["status"] == "cancelled"
    assert [o["custom_id"] for o in client.lines(final["output_file_id"])] == ["c0"]
    assert len(client.lines(final["error_file_id"])) == 3

    # Cancelled while validating: nothing ran, no result files.
    bid = client.submit([resp_line(i) for i in range(4)])["id"]
    assert client.json("POST", f"/batches/{bid}/cancel")["status"] == "cancelling"
    final = client.get(bid)
    assert final["status"] == "cancelled"
    assert final["output_file_id"] is None and final["error_file_id"] is None
    assert final["request_counts"] == {"total": 0, "completed": 0, "failed": 0}

    # cancel=False: the cancel is refused and the batch completes.
    fake_openai.enqueue_batch(BatchScript(cancel=False))
    bid = client.submit([resp_line(i) for i in range(2)])["id"]
    status, _ = client.call("POST", f"/batches/{bid}/cancel")
    assert status == 409
    assert client.poll(bid)[0]["status"] == "completed"

    # The walk itself can cancel (e.g. cancelled from the dashboard).
    fake_openai.enqueue_batch(BatchScript(states=["validating", "in_progress", "cancelling", "cancelled"], cancel=2))
    final, seen = client.poll(client.submit([resp_line(i) for i in range(5)])["id"])
    assert seen == ["in_progress", "cancelling", "cancelled"]
    assert final["request_counts"] == {"total": 5, "completed": 2, "failed": 3}


def test_validation_failure_reports_line_numbers(fake_openai: FakeOpenAI, client: Client) -> None:
    good = resp_line(1)
    rows: list[Any] = [
        good,                                                   # 1 ok
        b"{not json",                                           # 2
        b"",                                                    # 3 blank: skipped
        {**resp_line(4), "url": "/v1/chat/completions"},        # 4 url mismatch
        {**resp_line(5), "custom_id": "c1"},                    # 5 duplicate of line 1
        {**resp_line(6), "method": "GET"},                      # 6
        resp_line(7, model="other-model"),                      # 7 second model
        {k: v for k, v in resp_line(8).items() if k != "body"},  # 8
        {k: v for k, v in resp_line(9).items() if k != "custom_id"},  # 9
        [1, 2],                                                 # 10 not an object
        {**resp_line(11), "body": "text"},                      # 11
    ]
    created = client.create(client.upload(jsonl(rows))["id"])
    assert created["status"] == "validating"
    final, seen = client.poll(created["id"])
    assert seen == ["failed"]
    assert isinstance(final["failed_at"], int) and final["in_progress_at"] is None
    assert final["output_file_id"] is None and final["error_file_id"] is None
    assert final["request_counts"] == {"total": 0, "completed": 0, "failed": 0}
    errors = final["errors"]
    assert errors["object"] == "list"
    got = [(e["line"], e["code"], e["param"]) for e in errors["data"]]
    assert got == [
        (2, "invalid_json_line", None),
        (4, "url_mismatch", "url"),
        (5, "duplicate_custom_id", "custom_id"),
        (6, "invalid_value", "method"),
        (7, "model_mismatch", "body.model"),
        (8, "missing_required_parameter", "body"),
        (9, "missing_required_parameter", "custom_id"),
        (10, "invalid_json_line", None),
        (11, "invalid_type", "body"),
    ]
    assert all(set(e) == {"code", "line", "message", "param"} and e["message"] for e in errors["data"])
    state = fake_openai.batches[final["id"]]
    assert len(state.lines) == 10 and state.lines[1] is None  # the blank line is not a request
    assert state.line_numbers == [1, 2, 4, 5, 6, 7, 8, 9, 10, 11]


def test_scripted_validation_failures(fake_openai: FakeOpenAI, client: Client) -> None:
    lines = [resp_line(i) for i in range(3)]
    fake_openai.enqueue_batch(
        BatchScript(fail_validation=True),
        BatchScript(fail_validation=[3, {"code": "token_limit_exceeded", "message": "too many tokens"}]),
        BatchScript(fail_validation=True, states=["validating", "validating", "validating", "failed"]),
        BatchScript(states=["validating", "failed"]),  # valid input, scripted failure
    )
    final, _ = client.poll(client.submit(lines)["id"])
    assert [(e["line"], e["code"]) for e in final["errors"]["data"]] == [(1, "invalid_request")]

    final, _ = client.poll(client.submit(lines)["id"])
    data = final["errors"]["data"]
    assert [(e["line"], e["code"]) for e in data] == [(3, "invalid_request"), (None, "token_limit_exceeded")]
    assert data[1] == {"code": "token_limit_exceeded", "line": None, "message": "too many tokens", "param": None}

    final, seen = client.poll(client.submit(lines)["id"])
    assert seen == ["validating", "validating", "failed"]

    final, _ = client.poll(client.submit(lines)["id"])
    assert final["status"] == "failed" and final["errors"]["data"][0]["code"] == "batch_failed"


def test_size_line_and_empty_limits(fake_openai: FakeOpenAI, client: Client) -> None:
    fake_openai.max_batch_lines = 3
    final, _ = client.poll(client.submit([resp_line(i) for i in range(4)])["id"])
    assert final["status"] == "failed"
    assert [(e["code"], e["line"]) for e in final["errors"]["data"]] == [("too_many_tasks", None)]
    final, _ = client.poll(client.submit([resp_line(i) for i in range(3)])["id"])
    assert final["status"] == "completed"

    fake_openai.max_batch_bytes = 200
    final, _ = client.poll(client.submit([resp_line(i) for i in range(3)])["id"])
    assert [e["code"] for e in final["errors"]["data"]] == ["file_too_large"]
    final, _ = client.poll(client.submit([resp_line(1)])["id"])
    assert final["status"] == "completed"

    final, _ = client.poll(client.create(client.upload(b"\n\n")["id"])["id"])
    assert [e["code"] for e in final["errors"]["data"]] == ["empty_file"]
