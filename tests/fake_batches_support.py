"""Shared by the tests of the fake server's Files + Batches API: an OpenAPI-spec validator
for batch objects and result lines, a small urllib client and line builders.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
import uuid
from functools import lru_cache
from typing import Any

import jsonschema
import orjson
import pytest
from fake_openai import FakeOpenAI

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
