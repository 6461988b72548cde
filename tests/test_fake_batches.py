"""Tests for the Files + Batches API of the fake OpenAI server (tests/fakeserver/).

The fake is driven with plain urllib (and aiohttp for one end-to-end run).
Output/error lines are validated against ``BatchRequestOutput`` from the
OpenAI OpenAPI spec in /work/shared/data (read at test time, never copied).
"""

from __future__ import annotations

import asyncio
import collections
import json
import os
import threading
import time
import urllib.error
import urllib.request
import uuid
from functools import lru_cache
from typing import Any

import aiohttp
import jsonschema
import orjson
import pytest

from fake_openai import BatchScript, FakeOpenAI, Reply

SPEC_PATH = "/work/shared/data/openai_openapi/openapi_2025-04-29.yaml"
SPEC_URI = "urn:openai:openapi-2025-04-29"

PLANS_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["plans"],
    "properties": {
        "plans": {
            "type": "array",
            "minItems": 2,
            "maxItems": 2,
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["title", "steps"],
                "properties": {
                    "title": {"type": "string"},
                    "steps": {"type": "array", "minItems": 2, "items": {"type": "string"}},
                },
            },
        }
    },
}

EXPIRED_LINE_ERROR = {
    "code": "batch_expired",
    "message": "This request could not be executed before the completion window expired.",
}


# --------------------------------------------------------------------------- spec


def _oas_to_jsonschema(node: Any) -> Any:
    """OpenAPI 3.0 schema object -> JSON Schema 2020-12 (``nullable`` becomes a
    null branch; ``example``/``x-*`` dropped; ``$ref`` kept as is)."""
    if isinstance(node, list):
        return [_oas_to_jsonschema(x) for x in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "nullable" or key == "example" or key.startswith("x-"):
            continue
        if key == "properties" and isinstance(value, dict):
            out[key] = {name: _oas_to_jsonschema(sub) for name, sub in value.items()}
        elif key in ("items", "additionalProperties", "not") and isinstance(value, dict):
            out[key] = _oas_to_jsonschema(value)
        elif key in ("allOf", "anyOf", "oneOf") and isinstance(value, list):
            out[key] = [_oas_to_jsonschema(x) for x in value]
        else:
            out[key] = value
    if node.get("nullable") is True:
        return {"anyOf": [out, {"type": "null"}]}
    return out


@lru_cache(maxsize=1)
def _spec_registry() -> Any:
    yaml = pytest.importorskip("yaml")
    from referencing import Registry
    from referencing.jsonschema import DRAFT202012

    if not os.path.exists(SPEC_PATH):
        pytest.skip(f"OpenAPI spec not found at {SPEC_PATH}")
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with open(SPEC_PATH, "rb") as fh:
        spec = yaml.load(fh, Loader=loader)
    schemas = spec["components"]["schemas"]
    doc = {"components": {"schemas": {name: _oas_to_jsonschema(s) for name, s in schemas.items()}}}
    return Registry().with_resource(SPEC_URI, DRAFT202012.create_resource(doc))


@lru_cache(maxsize=None)
def spec_validator(name: str) -> jsonschema.Draft202012Validator:
    registry = _spec_registry()
    return jsonschema.Draft202012Validator({"$ref": f"{SPEC_URI}#/components/schemas/{name}"}, registry=registry)


def _drop_none(obj: dict) -> dict:
    # The 2025-04-29 spec types the Batch timestamps / file ids and the list
    # cursors as plain strings/integers, while the API (and the SDK types)
    # send null for unset ones; compare the set fields only.
    return {k: v for k, v in obj.items() if v is not None}


def check_output_line(line: Any) -> None:
    spec_validator("BatchRequestOutput").validate(line)
    # The spec marks nothing required; the wire format has all four keys.
    assert set(line) == {"id", "custom_id", "response", "error"}, line
    assert line["id"].startswith("batch_req_")
    assert isinstance(line["custom_id"], str)
    assert (line["response"] is None) != (line["error"] is None), line
    if line["response"] is not None:
        assert set(line["response"]) == {"status_code", "request_id", "body"}
        assert line["response"]["request_id"].startswith("req_")
    else:
        assert set(line["error"]) == {"code", "message"}


def check_batch(obj: dict) -> None:
    spec_validator("Batch").validate(_drop_none(obj))
    for key in ("in_progress_at", "expires_at", "finalizing_at", "completed_at", "failed_at",
                "expired_at", "cancelling_at", "cancelled_at", "output_file_id", "error_file_id",
                "errors", "metadata", "model", "request_counts"):
        assert key in obj, key


# --------------------------------------------------------------------------- client


class Client:
    """A tiny urllib client for the fake's Files + Batches endpoints."""

    def __init__(self, server: FakeOpenAI) -> None:
        self.base = server.base_url

    def call(self, method: str, path: str, body: Any = None, *, raw: bytes | None = None,
             ctype: str = "application/json") -> tuple[int, bytes]:
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        req = urllib.request.Request(
            self.base + path, data=data, method=method,
            headers={"Content-Type": ctype, "Authorization": "Bearer sk-test"},
        )
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as err:
            return err.code, err.read()

    def json(self, method: str, path: str, body: Any = None, *, want: int = 200, **kw: Any) -> dict:
        status, data = self.call(method, path, body, **kw)
        assert status == want, (status, data)
        return json.loads(data)

    def upload_raw(self, content: bytes, purpose: str = "batch", filename: str = "input.jsonl") -> tuple[int, bytes]:
        boundary = uuid.uuid4().hex
        raw = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\n{purpose}\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
            "Content-Type: application/jsonl\r\n\r\n"
        ).encode() + content + f"\r\n--{boundary}--\r\n".encode()
        return self.call("POST", "/files", raw=raw, ctype=f"multipart/form-data; boundary={boundary}")

    def upload(self, content: bytes | list[Any], purpose: str = "batch") -> dict:
        if isinstance(content, list):
            content = jsonl(content)
        status, data = self.upload_raw(content, purpose)
        assert status == 200, data
        return json.loads(data)

    def create(self, file_id: str, endpoint: str = "/v1/responses", *, want: int = 200, **extra: Any) -> dict:
        body = {"input_file_id": file_id, "endpoint": endpoint, "completion_window": "24h", **extra}
        obj = self.json("POST", "/batches", body, want=want)
        if want == 200:
            check_batch(obj)
        return obj

    def submit(self, lines: list[Any], endpoint: str = "/v1/responses", **extra: Any) -> dict:
        return self.create(self.upload(lines)["id"], endpoint, **extra)

    def get(self, batch_id: str) -> dict:
        obj = self.json("GET", f"/batches/{batch_id}")
        check_batch(obj)
        return obj

    def poll(self, batch_id: str, limit: int = 50) -> tuple[dict, list[str]]:
        """Poll until a terminal status; returns (final object, statuses seen)."""
        seen = []
        for _ in range(limit):
            obj = self.get(batch_id)
            seen.append(obj["status"])
            if obj["status"] in ("completed", "failed", "expired", "cancelled"):
                return obj, seen
        raise AssertionError(f"batch {batch_id} did not finish: {seen}")

    def content(self, file_id: str) -> bytes:
        status, data = self.call("GET", f"/files/{file_id}/content")
        assert status == 200, data
        return data

    def lines(self, file_id: str | None) -> list[dict]:
        if file_id is None:
            return []
        out = [json.loads(x) for x in self.content(file_id).splitlines() if x.strip()]
        for line in out:
            check_output_line(line)
        return out


def jsonl(rows: list[Any]) -> bytes:
    return b"".join((r if isinstance(r, bytes) else json.dumps(r).encode()) + b"\n" for r in rows)


def resp_line(i: int | str, model: str = "gpt-test", **body: Any) -> dict:
    cid = i if isinstance(i, str) else f"c{i}"
    return {"custom_id": cid, "method": "POST", "url": "/v1/responses",
            "body": {"model": model, "input": [{"role": "user", "content": f"question {cid}"}], **body}}


def chat_line(i: int, model: str = "gpt-test", **body: Any) -> dict:
    return {"custom_id": f"c{i}", "method": "POST", "url": "/v1/chat/completions",
            "body": {"model": model, "messages": [{"role": "user", "content": f"question {i}"}], **body}}


def response_text(body: dict) -> str:
    if body["object"] == "response":
        return "".join(c["text"] for o in body["output"] if o["type"] == "message"
                       for c in o["content"] if c["type"] == "output_text")
    return body["choices"][0]["message"]["content"]


def expected_usage(body: dict, text: str, reasoning: int = 0) -> tuple[int, int]:
    n_in = max(1, len(orjson.dumps(body)) // 4)
    return n_in, max(1, len(text) // 4) + reasoning


@pytest.fixture
def client(fake_openai: FakeOpenAI) -> Client:
    return Client(fake_openai)


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


def test_http_error_lines(fake_openai: FakeOpenAI, client: Client) -> None:
    fake_openai.enqueue_batch(BatchScript(http_errors={
        "c1": 429,
        "c3": Reply.error(400, "Invalid prompt: flagged.", code="invalid_prompt"),
    }))
    final, _ = client.poll(client.submit([resp_line(i) for i in range(5)])["id"])
    assert final["status"] == "completed"
    assert final["request_counts"] == {"total": 5, "completed": 3, "failed": 2}
    out = client.lines(final["output_file_id"])
    errs = {e["custom_id"]: e for e in client.lines(final["error_file_id"])}
    assert [o["custom_id"] for o in out] == ["c0", "c2", "c4"]
    assert set(errs) == {"c1", "c3"}
    e1, e3 = errs["c1"], errs["c3"]
    assert e1["error"] is None and e1["response"]["status_code"] == 429
    assert e1["response"]["body"]["error"]["code"] == "rate_limit_exceeded"
    assert e3["response"]["status_code"] == 400
    assert e3["response"]["body"] == {"error": {"message": "Invalid prompt: flagged.", "type": "invalid_request_error",
                                                "param": None, "code": "invalid_prompt"}}
    assert final["usage"]["total_tokens"] == sum(o["response"]["body"]["usage"]["total_tokens"] for o in out)


def test_result_lines_written_as_given(fake_openai: FakeOpenAI, client: Client) -> None:
    vllm_err = {"custom_id": "c1", "response": None,
                "error": {"message": "boom", "type": "InternalServerError", "code": 500}}
    nameless = {"response": None, "error": {"message": "no id", "code": "server_error"}}
    fake_openai.enqueue_batch(BatchScript(result_lines={"c1": vllm_err, "c2": nameless,
                                                         "c3": "not json {"}))
    final, _ = client.poll(client.submit([resp_line(i) for i in range(5)])["id"])
    assert final["status"] == "completed"
    assert final["request_counts"] == {"total": 5, "completed": 2, "failed": 3}
    assert [o["custom_id"] for o in client.lines(final["output_file_id"])] == ["c0", "c4"]
    raw = client.content(final["error_file_id"]).splitlines()
    assert [json.loads(raw[0]), json.loads(raw[1]), raw[2]] == [vllm_err, nameless, b"not json {"]


def test_answer_function_and_drop(fake_openai: FakeOpenAI, client: Client) -> None:
    calls: list[str] = []

    def answer(custom_id: str, body: dict) -> Any:
        calls.append(custom_id)
        assert body["model"] == "gpt-test"
        if custom_id == "c0":
            return '{"plans": "not a list"}'  # schema-invalid JSON
        if custom_id == "c1":
            return {"plans": []}
        if custom_id == "c2":
            return Reply.incomplete('{"plans": [{"ti')
        if custom_id == "c3":
            return Reply.text("custom", usage={"input_tokens": 100, "output_tokens": 50, "reasoning_tokens": 5})
        if custom_id == "c4":
            raise RuntimeError("boom")
        if custom_id == "c5":
            return Reply.error(500, "upstream broke")
        return None  # default answer

    fake_openai.enqueue_batch(BatchScript(answer=answer, drop={"c6"}))
    lines = [resp_line(i) for i in range(8)]
    final, _ = client.poll(client.submit(lines)["id"])
    assert sorted(calls) == [f"c{i}" for i in range(8)]
    out = {o["custom_id"]: o["response"]["body"] for o in client.lines(final["output_file_id"])}
    errs = {e["custom_id"]: e for e in client.lines(final["error_file_id"])}
    assert set(out) == {"c0", "c1", "c2", "c3", "c7"} and set(errs) == {"c4", "c5"}  # c6 dropped
    assert response_text(out["c0"]) == '{"plans": "not a list"}'
    assert json.loads(response_text(out["c1"])) == {"plans": []}
    assert out["c2"]["status"] == "incomplete"
    assert out["c2"]["incomplete_details"] == {"reason": "max_output_tokens"}
    assert out["c3"]["usage"]["input_tokens"] == 100 and out["c3"]["usage"]["total_tokens"] == 150
    assert response_text(out["c7"]).startswith("Fake answer")
    assert errs["c4"]["response"]["status_code"] == 500
    assert "boom" in errs["c4"]["response"]["body"]["error"]["message"]
    assert isinstance(fake_openai.errors[0], RuntimeError)
    assert errs["c5"]["response"]["body"]["error"]["message"] == "upstream broke"
    # A dropped request still counts as completed: clients must join on custom_id.
    assert final["request_counts"] == {"total": 8, "completed": 6, "failed": 2}
    assert final["usage"]["total_tokens"] == sum(b["usage"]["total_tokens"] for b in out.values())


def test_custom_states_progress_and_stuck_batch(fake_openai: FakeOpenAI, client: Client) -> None:
    fake_openai.enqueue_batch(
        BatchScript(states=["validating", "validating", "in_progress", "in_progress", "in_progress",
                            "finalizing", "completed", "in_progress"]),
        BatchScript(states=["validating", "in_progress"]),  # never finishes
    )
    bid = client.submit([resp_line(i) for i in range(8)])["id"]
    walk = [(o["status"], o["request_counts"]["completed"]) for o in (client.get(bid) for _ in range(8))]
    assert walk == [("validating", 0), ("in_progress", 2), ("in_progress", 4), ("in_progress", 6),
                    ("finalizing", 8), ("completed", 8), ("completed", 8), ("completed", 8)]

    stuck = client.submit([resp_line(1)])["id"]
    assert {client.get(stuck)["status"] for _ in range(5)} == {"in_progress"}
    assert fake_openai.batches[stuck].states == ["validating", "in_progress"]
    with pytest.raises(ValueError):
        BatchScript(states=["validating", "done"])
    with pytest.raises(ValueError):
        BatchScript(states="completed")


def test_batch_plan_queue_precedence_and_errors(fake_openai: FakeOpenAI, client: Client) -> None:
    seen: list[tuple[str, int]] = []

    def plan(batch_id: str, input_lines: list[Any]) -> BatchScript | None:
        seen.append((batch_id, len(input_lines)))
        assert all(isinstance(ln, dict) for ln in input_lines)
        return BatchScript(expire_after=1) if len(input_lines) == 3 else None

    fake_openai.batch_plan = plan
    fake_openai.enqueue_batch(BatchScript(http_errors={"c0": 503}))
    assert fake_openai.pending_batches == 1
    first, _ = client.poll(client.submit([resp_line(i) for i in range(3)])["id"])  # the queued script wins
    assert first["status"] == "completed" and first["request_counts"]["failed"] == 1
    assert fake_openai.pending_batches == 0 and seen == []
    second, _ = client.poll(client.submit([resp_line(i) for i in range(3)])["id"])
    assert second["status"] == "expired"
    third, _ = client.poll(client.submit([resp_line(i) for i in range(2)])["id"])
    assert third["status"] == "completed"
    assert seen == [(second["id"], 3), (third["id"], 2)]

    fake_openai.batch_plan = lambda bid, lines: 1 / 0
    status, data = client.call("POST", "/batches", {"input_file_id": client.upload([resp_line(1)])["id"],
                                                    "endpoint": "/v1/responses", "completion_window": "24h"})
    assert status == 500 and json.loads(data)["error"]["type"] == "server_error"
    assert isinstance(fake_openai.errors[-1], ZeroDivisionError)
    with pytest.raises(TypeError):
        fake_openai.enqueue_batch("not a script")  # type: ignore[arg-type]


def test_create_rejections_and_unknown_ids(fake_openai: FakeOpenAI, client: Client) -> None:
    fid = client.upload([resp_line(1)])["id"]
    base = {"input_file_id": fid, "endpoint": "/v1/responses", "completion_window": "24h"}

    def rejected(body: dict, param: str | None) -> None:
        status, data = client.call("POST", "/batches", body)
        assert status == 400, data
        err = json.loads(data)["error"]
        assert set(err) == {"message", "type", "param", "code"} and err["param"] == param

    rejected({**base, "completion_window": "1h"}, "completion_window")
    rejected({**base, "endpoint": "/v1/nope"}, "endpoint")
    rejected({**base, "endpoint": "/v1/embeddings"}, "endpoint")  # valid upstream, not faked
    rejected({**base, "input_file_id": "file-missing"}, "input_file_id")
    rejected({**base, "input_file_id": client.upload([resp_line(1)], purpose="user_data")["id"]}, "input_file_id")
    rejected({k: v for k, v in base.items() if k != "endpoint"}, "endpoint")
    rejected({**base, "metadata": {"k": 1}}, "metadata")
    rejected({**base, "metadata": {f"k{i}": "v" for i in range(17)}}, "metadata")
    status, _ = client.call("POST", "/batches", raw=b"{broken")
    assert status == 400
    assert fake_openai.batches == {}

    for method, path in (("GET", "/batches/batch_nope"), ("POST", "/batches/batch_nope/cancel")):
        status, data = client.call(method, path)
        assert status == 404 and "error" in json.loads(data)
    for method, path in (("DELETE", "/batches"), ("POST", "/batches/x"), ("GET", "/batches/x/cancel")):
        status, _ = client.call(method, path)
        assert status == 405
    # Online endpoints are untouched by the batch API.
    assert client.json("POST", "/responses", resp_line(1)["body"])["object"] == "response"


def test_listing_pages_newest_first_without_advancing(fake_openai: FakeOpenAI, client: Client) -> None:
    fid = client.upload([resp_line(1)])["id"]
    ids = [client.create(fid)["id"] for _ in range(5)]
    page = client.json("GET", "/batches?limit=2")
    spec_validator("ListBatchesResponse").validate({**_drop_none(page), "data": [_drop_none(b) for b in page["data"]]})
    assert page["object"] == "list" and page["has_more"] is True
    assert [b["id"] for b in page["data"]] == [ids[4], ids[3]]
    assert page["first_id"] == ids[4] and page["last_id"] == ids[3]
    page2 = client.json("GET", f"/batches?limit=2&after={page['last_id']}")
    assert [b["id"] for b in page2["data"]] == [ids[2], ids[1]] and page2["has_more"] is True
    page3 = client.json("GET", f"/batches?limit=2&after={page2['last_id']}")
    assert [b["id"] for b in page3["data"]] == [ids[0]] and page3["has_more"] is False
    default = client.json("GET", "/batches")
    assert len(default["data"]) == 5 and default["has_more"] is False
    for b in default["data"]:
        check_batch(b)
        assert b["status"] == "validating"  # listing does not advance
    for bad in ("0", "101", "x"):
        status, _ = client.call("GET", f"/batches?limit={bad}")
        assert status == 400
    empty = client.json("GET", "/batches?after=batch_unknown")
    assert empty["data"] == [] and empty["first_id"] is None and empty["has_more"] is False
    list_reqs = [r for r in fake_openai.requests if r.path == "/v1/batches" and r.method == "GET"]
    assert list_reqs[1].query == "limit=2&after=" + page["last_id"]


def test_request_log_files_and_cross_batch_custom_ids(fake_openai: FakeOpenAI, client: Client) -> None:
    a, _ = client.poll(client.submit([resp_line(i) for i in range(3)])["id"])
    b, _ = client.poll(client.submit([resp_line(i) for i in range(2, 5)])["id"])
    counts = fake_openai.custom_id_counts()
    assert counts["c2"] == 2 and counts["c0"] == 1 and sum(counts.values()) == 6
    assert [len(s.lines) for s in fake_openai.batches.values()] == [3, 3]
    assert list(fake_openai.batches) == [a["id"], b["id"]]

    reqs = fake_openai.requests
    assert [(r.method, r.path) for r in reqs[:2]] == [("POST", "/v1/files"), ("POST", "/v1/batches")]
    assert reqs[0].body is None and b"custom_id" in reqs[0].raw  # multipart body kept raw
    assert reqs[1].body["input_file_id"] == a["input_file_id"]
    assert reqs[0].headers["authorization"] == "Bearer sk-test"
    assert sum(1 for r in reqs if r.method == "GET" and r.path == f"/v1/batches/{a['id']}") == 3

    files = fake_openai.files
    purposes = collections.Counter(f.purpose for f in files.values())
    assert purposes == {"batch": 2, "batch_output": 2}
    assert files[a["output_file_id"]].filename.endswith(".jsonl")

    fake_openai.enqueue_batch(BatchScript())
    fake_openai.batch_plan = lambda bid, lines: None
    fake_openai.reset()
    assert fake_openai.files == {} and fake_openai.batches == {}
    assert fake_openai.pending_batches == 0 and fake_openai.batch_plan is None and fake_openai.requests == []


def test_advance_without_polling(fake_openai: FakeOpenAI, client: Client) -> None:
    fake_openai.batch_advance_on_get = False
    bid = client.submit([resp_line(i) for i in range(2)])["id"]
    assert client.get(bid)["status"] == "validating"
    assert client.get(bid)["status"] == "validating"
    assert fake_openai.advance_batch(bid) == "in_progress"
    assert client.get(bid)["status"] == "in_progress"
    assert fake_openai.finish_batch(bid) == "completed"
    assert fake_openai.finish_batch(bid) == "completed"
    final = client.get(bid)
    assert final["status"] == "completed" and len(client.lines(final["output_file_id"])) == 2
    with pytest.raises(KeyError):
        fake_openai.advance_batch("batch_nope")


def test_large_batch_is_fast(fake_openai: FakeOpenAI, client: Client) -> None:
    lines = [resp_line(i) for i in range(5000)]
    t0 = time.monotonic()
    final, _ = client.poll(client.submit(lines)["id"])
    out = client.content(final["output_file_id"]).splitlines()
    assert len(out) == 5000 and final["request_counts"]["completed"] == 5000
    assert time.monotonic() - t0 < 20


# --------------------------------------------------------------------------- aiohttp + threads


def test_aiohttp_client_end_to_end_and_concurrency(fake_openai: FakeOpenAI) -> None:
    base = fake_openai.base_url

    async def one(session: aiohttp.ClientSession, k: int) -> tuple[str, list[dict]]:
        form = aiohttp.FormData()
        form.add_field("purpose", "batch")
        form.add_field("file", jsonl([resp_line(f"b{k}-{i}") for i in range(4)]),
                       filename=f"batch {k}.jsonl", content_type="application/jsonl")
        async with session.post(f"{base}/files", data=form) as r:
            assert r.status == 200, await r.text()
            fobj = await r.json()
        assert fobj["filename"] == f"batch {k}.jsonl"
        body = {"input_file_id": fobj["id"], "endpoint": "/v1/responses", "completion_window": "24h"}
        async with session.post(f"{base}/batches", json=body) as r:
            batch = await r.json()
        while batch["status"] not in ("completed", "failed", "expired", "cancelled"):
            async with session.get(f"{base}/batches/{batch['id']}") as r:
                batch = await r.json()
        async with session.get(f"{base}/files/{batch['output_file_id']}/content") as r:
            raw = await r.read()
        return batch["status"], [json.loads(x) for x in raw.splitlines()]

    async def run() -> list[tuple[str, list[dict]]]:
        async with aiohttp.ClientSession() as session:
            return await asyncio.gather(*(one(session, k) for k in range(20)))

    # Meanwhile another thread pokes the server-side state.
    stop = threading.Event()
    peeks: list[int] = []

    def peek() -> None:
        while not stop.is_set():
            peeks.append(sum(len(b.lines) for b in fake_openai.batches.values()))
            fake_openai.custom_id_counts()
            time.sleep(0.001)

    t = threading.Thread(target=peek)
    t.start()
    try:
        results = asyncio.run(run())
    finally:
        stop.set()
        t.join(5)
    assert [status for status, _ in results] == ["completed"] * 20
    for k, (_, lines) in enumerate(results):
        for line in lines:
            check_output_line(line)
        assert [ln["custom_id"] for ln in lines] == [f"b{k}-{i}" for i in range(4)]
    assert len(fake_openai.batches) == 20 and peeks
    assert max(fake_openai.custom_id_counts().values()) == 1
