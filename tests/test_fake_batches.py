"""Tests for the Files + Batches API of the fake OpenAI server (tests/fakeserver/).

The fake is driven with plain urllib (and aiohttp for one end-to-end run).
Output/error lines are validated against ``BatchRequestOutput`` from the
OpenAI OpenAPI spec in /work/shared/data (read at test time, never copied).
"""

from __future__ import annotations

import collections
import json

import jsonschema
import pytest
from fake_batches_support import (
    PLANS_SCHEMA,
    Client,
    _drop_none,
    chat_line,
    expected_usage,
    jsonl,
    resp_line,
    response_text,
    spec_validator,
)
from fake_openai import BatchScript, FakeOpenAI

# --------------------------------------------------------------------------- spec plumbing


def test_spec_validator_is_not_trivial() -> None:
    v = spec_validator("BatchRequestOutput")
    v.validate({"id": "batch_req_1", "custom_id": "a", "response": None,
                "error": {"code": "batch_expired", "message": "m"}})
    v.validate({"id": "batch_req_1", "custom_id": "a", "error": None,
                "response": {"status_code": 200, "request_id": "req_1", "body": {}}})
    for bad in (
        {"id": 1, "custom_id": "a", "response": None, "error": None},
        {"id": "x", "custom_id": "a", "response": {"status_code": "200"}, "error": None},
        {"id": "x", "custom_id": "a", "response": {"status_code": 200, "body": "text"}, "error": None},
        {"id": "x", "custom_id": "a", "response": None, "error": {"code": 5}},
        [],
    ):
        with pytest.raises(jsonschema.ValidationError):
            v.validate(bad)
    with pytest.raises(jsonschema.ValidationError):
        spec_validator("Batch").validate({"id": "b", "object": "batch"})


# --------------------------------------------------------------------------- files


def test_file_upload_get_content_delete(fake_openai: FakeOpenAI, client: Client) -> None:
    content = jsonl([resp_line(1), resp_line(2)])
    status, data = client.upload_raw(content, filename="my input.jsonl")
    assert status == 200, data
    fobj = json.loads(data)
    spec_validator("OpenAIFile").validate(_drop_none(fobj))
    assert fobj["id"].startswith("file-") and fobj["object"] == "file"
    assert fobj["bytes"] == len(content) and fobj["filename"] == "my input.jsonl"
    assert fobj["purpose"] == "batch" and fobj["status"] == "processed"
    assert isinstance(fobj["created_at"], int)
    assert fobj["expires_at"] == fobj["created_at"] + 30 * 86400

    assert client.json("GET", f"/files/{fobj['id']}") == fobj
    assert client.content(fobj["id"]) == content
    assert fake_openai.files[fobj["id"]].content == content
    assert fake_openai.files[fobj["id"]].jsonl() == [resp_line(1), resp_line(2)]
    listed = client.json("GET", "/files?purpose=batch")
    assert [f["id"] for f in listed["data"]] == [fobj["id"]]

    deleted = client.json("DELETE", f"/files/{fobj['id']}")
    spec_validator("DeleteFileResponse").validate(deleted)
    assert deleted == {"id": fobj["id"], "object": "file", "deleted": True}
    for method, path in (("GET", f"/files/{fobj['id']}"), ("GET", f"/files/{fobj['id']}/content"),
                         ("DELETE", f"/files/{fobj['id']}")):
        status, data = client.call(method, path)
        assert status == 404 and "error" in json.loads(data)
    assert fobj["id"] not in fake_openai.files


def test_file_upload_errors(client: Client) -> None:
    status, data = client.upload_raw(b"{}", purpose="nonsense")
    assert status == 400 and json.loads(data)["error"]["param"] == "purpose"
    boundary = "b0undary"
    raw = f'--{boundary}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nbatch\r\n--{boundary}--\r\n'
    status, data = client.call("POST", "/files", raw=raw.encode(), ctype=f"multipart/form-data; boundary={boundary}")
    assert status == 400 and json.loads(data)["error"]["param"] == "file"
    status, _ = client.call("POST", "/files", {"purpose": "batch"})  # not multipart
    assert status == 400
    status, _ = client.call("PUT", "/files")
    assert status == 405


# --------------------------------------------------------------------------- lifecycle


def test_default_lifecycle_responses(fake_openai: FakeOpenAI, client: Client) -> None:
    lines = [resp_line(i) for i in range(6)]
    created = client.submit(lines, metadata={"run": "r1"})
    bid = created["id"]
    assert bid.startswith("batch_") and created["object"] == "batch"
    assert created["status"] == "validating"
    assert created["endpoint"] == "/v1/responses" and created["completion_window"] == "24h"
    assert created["metadata"] == {"run": "r1"} and created["model"] == "gpt-test"
    assert created["request_counts"] == {"total": 0, "completed": 0, "failed": 0}
    assert created["expires_at"] == created["created_at"] + 86400
    assert created["output_file_id"] is None and created["errors"] is None

    seen = []
    for _ in range(3):
        obj = client.get(bid)
        seen.append((obj["status"], obj["request_counts"], obj["output_file_id"]))
    assert [s for s, _, _ in seen] == ["in_progress", "finalizing", "completed"]
    assert seen[0][1] == {"total": 6, "completed": 3, "failed": 0}  # progress is visible
    assert seen[1][1] == {"total": 6, "completed": 6, "failed": 0}
    assert seen[0][2] is None and seen[1][2] is None  # results appear with "completed"
    final = client.get(bid)  # terminal: stays put
    assert final["status"] == "completed"
    assert final["request_counts"] == {"total": 6, "completed": 6, "failed": 0}
    for key in ("in_progress_at", "finalizing_at", "completed_at"):
        assert isinstance(final[key], int)
    for key in ("failed_at", "expired_at", "cancelling_at", "cancelled_at"):
        assert final[key] is None
    assert final["error_file_id"] is None

    out_file = client.json("GET", f"/files/{final['output_file_id']}")
    spec_validator("OpenAIFile").validate(_drop_none(out_file))
    assert out_file["purpose"] == "batch_output"
    out = client.lines(final["output_file_id"])
    assert [o["custom_id"] for o in out] == [f"c{i}" for i in range(6)]  # unshuffled = input order
    assert len({o["id"] for o in out}) == 6

    by_cid = {ln["custom_id"]: ln for ln in lines}
    totals = collections.Counter()
    for o in out:
        assert o["error"] is None and o["response"]["status_code"] == 200
        body = o["response"]["body"]
        assert body["object"] == "response" and body["status"] == "completed"
        assert body["model"] == "gpt-test" and body["id"].startswith("resp_")
        text = response_text(body)
        n_in, n_out = expected_usage(by_cid[o["custom_id"]]["body"], text)
        usage = body["usage"]
        assert usage["input_tokens"] == n_in and usage["output_tokens"] == n_out
        assert usage["total_tokens"] == n_in + n_out
        assert usage["input_tokens_details"] == {"cached_tokens": 0}
        assert usage["output_tokens_details"] == {"reasoning_tokens": 0}
        totals.update(input_tokens=n_in, output_tokens=n_out)
    assert final["usage"] == {
        "input_tokens": totals["input_tokens"],
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": totals["output_tokens"],
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": totals["input_tokens"] + totals["output_tokens"],
    }

    state = fake_openai.batches[bid]
    assert state.lines == lines and state.custom_ids == [f"c{i}" for i in range(6)]
    assert state.line_numbers == [1, 2, 3, 4, 5, 6]
    assert state.polls == 4 and state.status == "completed" and state.processed == 6
    assert [o["custom_id"] for o in state.outputs] == [o["custom_id"] for o in out]


def test_batch_answers_match_online_answers(client: Client) -> None:
    """Deterministic per body: the batch line and the online call agree."""
    line = resp_line("same", text={"format": {"type": "json_schema", "name": "p", "strict": True,
                                              "schema": PLANS_SCHEMA}})
    batch, _ = client.poll(client.submit([line])["id"])
    (out,) = client.lines(batch["output_file_id"])
    batch_value = json.loads(response_text(out["response"]["body"]))
    jsonschema.validate(batch_value, PLANS_SCHEMA)
    online = client.json("POST", "/responses", line["body"])
    assert json.loads(response_text(online)) == batch_value


def test_chat_completions_batch_usage_and_structured_output(client: Client) -> None:
    rf = {"type": "json_schema", "json_schema": {"name": "p", "strict": True, "schema": PLANS_SCHEMA}}
    lines = [chat_line(i, response_format=rf, reasoning_effort="low") for i in range(4)]
    final, seen = client.poll(client.submit(lines, "/v1/chat/completions")["id"])
    assert seen == ["in_progress", "finalizing", "completed"]
    out = client.lines(final["output_file_id"])
    assert len(out) == 4
    chat_validator = spec_validator("CreateChatCompletionResponse")
    sums = collections.Counter()
    for o, line in zip(out, lines):
        body = o["response"]["body"]
        chat_validator.validate(body)
        assert body["object"] == "chat.completion" and body["id"].startswith("chatcmpl-")
        text = response_text(body)
        jsonschema.validate(json.loads(text), PLANS_SCHEMA)
        n_in, n_out = expected_usage(line["body"], text, reasoning=7)
        u = body["usage"]
        assert (u["prompt_tokens"], u["completion_tokens"]) == (n_in, n_out)
        assert u["completion_tokens_details"] == {"reasoning_tokens": 7}
        sums.update(i=n_in, o=n_out)
    assert final["usage"] == {
        "input_tokens": sums["i"], "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": sums["o"], "output_tokens_details": {"reasoning_tokens": 28},
        "total_tokens": sums["i"] + sums["o"],
    }


def test_cached_tokens_flow_into_line_and_batch_usage() -> None:
    with FakeOpenAI(cached_tokens=3) as server:
        client = Client(server)
        final, _ = client.poll(client.submit([resp_line(i) for i in range(3)])["id"])
        out = client.lines(final["output_file_id"])
        assert all(o["response"]["body"]["usage"]["input_tokens_details"]["cached_tokens"] == 3 for o in out)
        assert final["usage"]["input_tokens_details"]["cached_tokens"] == 9


def test_usage_on_batch_can_be_switched_off(fake_openai: FakeOpenAI, client: Client) -> None:
    fake_openai.enqueue_batch(BatchScript(usage_on_batch=False))
    final, _ = client.poll(client.submit([resp_line(1)])["id"])
    assert final["status"] == "completed" and "usage" not in final
    (out,) = client.lines(final["output_file_id"])
    assert out["response"]["body"]["usage"]["total_tokens"] > 0  # per-line usage stays
