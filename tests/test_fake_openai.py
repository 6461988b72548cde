"""Tests for the local OpenAI-compatible fake server (tests/fakeserver/, run as tests/fake_openai.py)."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from typing import Any

import aiohttp
import jsonschema
import pytest

from fake_openai import FakeOpenAI, Received, Reply, generate_instance

PLANS_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["plans"],
    "properties": {
        "plans": {
            "type": "array",
            "minItems": 4,
            "maxItems": 4,
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["title", "steps"],
                "properties": {
                    "title": {"type": "string"},
                    "steps": {"type": "array", "minItems": 3, "items": {"type": "string"}},
                },
            },
        }
    },
}

RICH_SCHEMA = {
    "$defs": {
        "Level": {"type": "string", "enum": ["easy", "medium", "hard"]},
        "Case": {
            "type": "object",
            "additionalProperties": False,
            "required": ["input", "expected", "weight", "note"],
            "properties": {
                "input": {"type": "string", "minLength": 40},
                "expected": {"type": "string", "maxLength": 12},
                "weight": {"type": "number", "minimum": 0.5, "maximum": 2},
                "note": {"type": ["string", "null"]},
            },
        },
    },
    "type": "object",
    "additionalProperties": False,
    "required": ["level", "count", "cases", "tags", "flag", "maybe", "nothing", "mode"],
    "properties": {
        "level": {"$ref": "#/$defs/Level"},
        "count": {"type": "integer", "minimum": 10},
        "cases": {"type": "array", "items": {"$ref": "#/$defs/Case"}, "minItems": 3},
        "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 1},
        "flag": {"type": "boolean"},
        "maybe": {"anyOf": [{"type": "null"}, {"type": "integer", "minimum": -5, "maximum": -1}]},
        "nothing": {"type": "null"},
        "mode": {"const": "strict"},
    },
}


# --------------------------------------------------------------------------- helpers


def call(
    server: FakeOpenAI,
    path: str,
    body: Any = None,
    *,
    headers: dict[str, str] | None = None,
    method: str | None = None,
    timeout: float = 10.0,
    raw: bytes | None = None,
) -> tuple[int, dict[str, str], bytes]:
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    hdrs = {"Content-Type": "application/json", "Authorization": "Bearer sk-test"}
    hdrs.update(headers or {})
    req = urllib.request.Request(server.base_url + path, data=data, headers=hdrs, method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


def responses_body(prompt: str = "Say hi", **extra: Any) -> dict:
    return {"model": "gpt-test", "input": [{"role": "user", "content": prompt}], **extra}


def chat_body(prompt: str = "Say hi", **extra: Any) -> dict:
    return {"model": "gpt-test", "messages": [{"role": "user", "content": prompt}], **extra}


def responses_schema_body(prompt: str, schema: dict) -> dict:
    return responses_body(
        prompt, text={"format": {"type": "json_schema", "name": "out", "strict": True, "schema": schema}}
    )


def output_text(resp: dict) -> str:
    msgs = [o for o in resp["output"] if o["type"] == "message"]
    assert len(msgs) == 1
    return msgs[0]["content"][0]["text"]


def post_json(server: FakeOpenAI, path: str, body: Any, **kw: Any) -> dict:
    status, _, data = call(server, path, body, **kw)
    assert status == 200, data
    return json.loads(data)


# --------------------------------------------------------------------------- shapes


def test_responses_shape(fake_openai: FakeOpenAI) -> None:
    body = responses_body()
    status, headers, data = call(fake_openai, "/responses", body)
    assert status == 200
    assert headers["Content-Type"].startswith("application/json")
    resp = json.loads(data)
    assert resp["id"].startswith("resp_")
    assert resp["object"] == "response"
    assert isinstance(resp["created_at"], int)
    assert resp["model"] == "gpt-test"
    assert resp["status"] == "completed"
    assert len(resp["output"]) == 1
    msg = resp["output"][0]
    assert msg["type"] == "message" and msg["id"].startswith("msg_")
    assert msg["role"] == "assistant" and msg["status"] == "completed"
    assert msg["content"][0]["type"] == "output_text"
    assert msg["content"][0]["annotations"] == []
    text = msg["content"][0]["text"]
    assert isinstance(text, str) and text

    raw_len = len(fake_openai.requests[0].raw)
    usage = resp["usage"]
    assert usage["input_tokens"] == max(1, raw_len // 4)
    assert usage["output_tokens"] == max(1, len(text) // 4)
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
    assert usage["input_tokens_details"] == {"cached_tokens": 0}
    assert usage["output_tokens_details"] == {"reasoning_tokens": 0}


def test_responses_reasoning_item_comes_first(fake_openai: FakeOpenAI) -> None:
    resp = post_json(fake_openai, "/responses", responses_body(reasoning={"effort": "low"}))
    assert [o["type"] for o in resp["output"]] == ["reasoning", "message"]
    assert resp["output"][0]["id"].startswith("rs_") and resp["output"][0]["summary"] == []
    usage = resp["usage"]
    text = output_text(resp)
    assert usage["output_tokens_details"]["reasoning_tokens"] == 7
    assert usage["output_tokens"] == max(1, len(text) // 4) + 7
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]


def test_chat_shape(fake_openai: FakeOpenAI) -> None:
    resp = post_json(fake_openai, "/chat/completions", chat_body())
    assert resp["id"].startswith("chatcmpl-")
    assert resp["object"] == "chat.completion"
    assert isinstance(resp["created"], int)
    assert resp["model"] == "gpt-test"
    (choice,) = resp["choices"]
    assert choice["index"] == 0 and choice["finish_reason"] == "stop"
    assert choice["message"]["role"] == "assistant"
    assert choice["message"]["refusal"] is None
    content = choice["message"]["content"]
    assert isinstance(content, str) and content
    usage = resp["usage"]
    assert usage["prompt_tokens"] == max(1, len(fake_openai.requests[0].raw) // 4)
    assert usage["completion_tokens"] == max(1, len(content) // 4)
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert usage["prompt_tokens_details"] == {"cached_tokens": 0}
    assert usage["completion_tokens_details"] == {"reasoning_tokens": 0}


def test_cached_tokens_capped_by_input() -> None:
    with FakeOpenAI(cached_tokens=5) as server:
        resp = post_json(server, "/responses", responses_body("x" * 200))
        assert resp["usage"]["input_tokens_details"]["cached_tokens"] == 5
        server.cached_tokens = 10**6
        resp = post_json(server, "/chat/completions", chat_body())
        usage = resp["usage"]
        assert usage["prompt_tokens_details"]["cached_tokens"] == usage["prompt_tokens"]


def test_models_and_unknown_paths(fake_openai: FakeOpenAI) -> None:
    status, _, data = call(fake_openai, "/models", method="GET")
    assert status == 200
    models = json.loads(data)
    assert models["object"] == "list" and models["data"][0]["id"] == "fake-model"

    status, _, data = call(fake_openai, "/nope", {"x": 1})
    assert status == 404
    err = json.loads(data)["error"]
    assert set(err) == {"message", "type", "param", "code"}

    status, _, data = call(fake_openai, "/responses", method="GET")
    assert status == 405
    assert "error" in json.loads(data)
    assert [r.path for r in fake_openai.requests] == ["/v1/models", "/v1/nope", "/v1/responses"]


def test_unparseable_request_body_is_400(fake_openai: FakeOpenAI) -> None:
    status, _, data = call(fake_openai, "/responses", raw=b"{nope")
    assert status == 400
    assert json.loads(data)["error"]["type"] == "invalid_request_error"
    assert fake_openai.requests[0].body is None and fake_openai.requests[0].raw == b"{nope"


# --------------------------------------------------------------------------- structured output


def test_strict_schema_default_answer_is_valid_and_distinct(fake_openai: FakeOpenAI) -> None:
    resp = post_json(fake_openai, "/responses", responses_schema_body("Plan it", PLANS_SCHEMA))
    value = json.loads(output_text(resp))
    jsonschema.validate(value, PLANS_SCHEMA)
    plans = value["plans"]
    assert len(plans) == 4
    titles = [p["title"] for p in plans]
    assert len(set(titles)) == 4
    steps = [s for p in plans for s in p["steps"]]
    assert all(len(p["steps"]) == 3 for p in plans)
    assert len(set(steps)) == len(steps)
    assert not set(steps) & set(titles)
    for s in titles + steps:
        assert 4 <= len(s.split()) <= 8 and all(w.isalpha() for w in s.split())

    # Same body -> same answer; a different prompt -> different strings.
    again = json.loads(output_text(post_json(fake_openai, "/responses", responses_schema_body("Plan it", PLANS_SCHEMA))))
    assert again == value
    other = json.loads(output_text(post_json(fake_openai, "/responses", responses_schema_body("Plan more", PLANS_SCHEMA))))
    jsonschema.validate(other, PLANS_SCHEMA)
    assert not {p["title"] for p in other["plans"]} & set(titles)


def test_chat_json_schema_form(fake_openai: FakeOpenAI) -> None:
    body = chat_body(
        "Plan it",
        response_format={"type": "json_schema", "json_schema": {"name": "out", "strict": True, "schema": PLANS_SCHEMA}},
    )
    resp = post_json(fake_openai, "/chat/completions", body)
    value = json.loads(resp["choices"][0]["message"]["content"])
    jsonschema.validate(value, PLANS_SCHEMA)
    assert len({p["title"] for p in value["plans"]}) == 4


def test_llama_cpp_json_object_with_schema(fake_openai: FakeOpenAI) -> None:
    body = chat_body("Plan it", response_format={"type": "json_object", "schema": PLANS_SCHEMA})
    resp = post_json(fake_openai, "/chat/completions", body)
    value = json.loads(resp["choices"][0]["message"]["content"])
    jsonschema.validate(value, PLANS_SCHEMA)

    # json_object without a schema still yields a JSON object.
    resp = post_json(fake_openai, "/chat/completions", chat_body("x", response_format={"type": "json_object"}))
    assert isinstance(json.loads(resp["choices"][0]["message"]["content"]), dict)


def test_rich_schema_features_over_many_seeds(fake_openai: FakeOpenAI) -> None:
    validator = jsonschema.Draft202012Validator(RICH_SCHEMA)
    for seed in range(50):
        value = generate_instance(RICH_SCHEMA, seed)
        validator.validate(value)
        assert len(value["cases"]) == 3 and len(value["tags"]) == 1
        assert value["mode"] == "strict" and value["nothing"] is None
        assert value["maybe"] is not None  # first non-null branch
        assert all(c["note"] is not None for c in value["cases"])
    # ... and through the HTTP path
    resp = post_json(fake_openai, "/responses", responses_schema_body("rich", RICH_SCHEMA))
    validator.validate(json.loads(output_text(resp)))


def test_generator_misc_keywords() -> None:
    schema = {
        "type": "object",
        "properties": {
            "a": {"allOf": [{"type": "object", "properties": {"x": {"type": "integer", "exclusiveMinimum": 3}}}]},
            "b": {"type": "array", "items": {"type": "integer", "minimum": 0, "maximum": 0}, "maxItems": 1},
            "c": {"oneOf": [{"type": "string", "format": "date-time"}, {"type": "integer"}]},
            "d": {"type": "array", "prefixItems": [{"type": "boolean"}, {"type": "null"}], "items": False},
            "e": {},
            "tree": {"$ref": "#/$defs/Node"},
        },
        "$defs": {
            "Node": {
                "type": "object",
                "required": ["name", "children"],
                "properties": {"name": {"type": "string"}, "children": {"type": "array", "items": {"$ref": "#/$defs/Node"}}},
            }
        },
    }
    value = generate_instance(schema, "seed")
    jsonschema.Draft202012Validator(schema).validate(value)
    assert value["a"]["x"] >= 4 and value["b"] == [0]
    assert generate_instance(schema, "seed") == value


def test_plain_text_default_is_short_and_deterministic(fake_openai: FakeOpenAI) -> None:
    a = output_text(post_json(fake_openai, "/responses", responses_body("one")))
    b = output_text(post_json(fake_openai, "/responses", responses_body("one")))
    c = output_text(post_json(fake_openai, "/responses", responses_body("two")))
    assert a == b != c
    assert len(a) < 200


# --------------------------------------------------------------------------- scripting


def test_enqueue_is_fifo_then_default(fake_openai: FakeOpenAI) -> None:
    fake_openai.enqueue(Reply.text("first"), Reply.text({"k": [1, 2]}))
    assert fake_openai.pending == 2
    assert output_text(post_json(fake_openai, "/responses", responses_body())) == "first"
    resp = post_json(fake_openai, "/chat/completions", chat_body())
    assert json.loads(resp["choices"][0]["message"]["content"]) == {"k": [1, 2]}
    assert fake_openai.pending == 0
    assert output_text(post_json(fake_openai, "/responses", responses_body())).startswith("Fake answer")


def test_script_index_and_fallthrough(fake_openai: FakeOpenAI) -> None:
    seen: list[tuple[str, int]] = []

    def script(received: Received, index: int) -> Reply | None:
        seen.append((received.path, index))
        if index == 1:
            return Reply.text("scripted", usage={"input_tokens": 11, "output_tokens": 22, "cached_tokens": 3})
        return None

    fake_openai.script = script
    fake_openai.enqueue(Reply.text("queued"))  # consumed before the script
    assert output_text(post_json(fake_openai, "/responses", responses_body())) == "queued"
    resp = post_json(fake_openai, "/responses", responses_body())
    assert output_text(resp) == "scripted"
    assert resp["usage"]["input_tokens"] == 11 and resp["usage"]["output_tokens"] == 22
    assert resp["usage"]["total_tokens"] == 33
    assert resp["usage"]["input_tokens_details"]["cached_tokens"] == 3
    assert output_text(post_json(fake_openai, "/responses", responses_body())).startswith("Fake answer")
    assert seen == [("/v1/responses", 1), ("/v1/responses", 2)]


def test_script_exception_becomes_500(fake_openai: FakeOpenAI) -> None:
    fake_openai.script = lambda received, index: 1 / 0
    status, _, data = call(fake_openai, "/responses", responses_body())
    assert status == 500
    assert json.loads(data)["error"]["type"] == "server_error"
    assert isinstance(fake_openai.errors[0], ZeroDivisionError)


def test_429_with_retry_after_and_other_errors(fake_openai: FakeOpenAI) -> None:
    fake_openai.enqueue(
        Reply.error(429, "slow down", headers={"Retry-After": "0.1"}),
        Reply.error(500),
        Reply.error(400, "bad", code="bad_thing"),
        Reply.error(401, "who"),
        Reply.error(403, "no", type="permission_error"),
        Reply.error(404, "gone"),
    )
    status, headers, data = call(fake_openai, "/responses", responses_body())
    assert status == 429
    assert headers["Retry-After"] == "0.1"
    err = json.loads(data)["error"]
    assert err == {"message": "slow down", "type": "requests", "param": None, "code": "rate_limit_exceeded"}

    expected = [(500, "server_error"), (400, "invalid_request_error"), (401, "invalid_request_error"),
                (403, "permission_error"), (404, "invalid_request_error")]
    for want_status, want_type in expected:
        status, _, data = call(fake_openai, "/chat/completions", chat_body())
        assert status == want_status
        err = json.loads(data)["error"]
        assert set(err) == {"message", "type", "param", "code"}
        assert err["type"] == want_type
        if want_status == 400:
            assert err["code"] == "bad_thing"


def test_malformed(fake_openai: FakeOpenAI) -> None:
    fake_openai.enqueue(Reply.malformed())
    status, _, data = call(fake_openai, "/responses", responses_body())
    assert status == 200
    with pytest.raises(ValueError):
        json.loads(data)


def test_incomplete(fake_openai: FakeOpenAI) -> None:
    fake_openai.enqueue(Reply.incomplete('{"plans": [{"ti'), Reply.incomplete("cut"), Reply.incomplete())
    resp = post_json(fake_openai, "/responses", responses_body())
    assert resp["status"] == "incomplete"
    assert resp["incomplete_details"] == {"reason": "max_output_tokens"}
    assert output_text(resp) == '{"plans": [{"ti'

    resp = post_json(fake_openai, "/chat/completions", chat_body())
    assert resp["choices"][0]["finish_reason"] == "length"
    assert resp["choices"][0]["message"]["content"] == "cut"

    # Default incomplete answer = truncated default answer (invalid JSON here).
    resp = post_json(fake_openai, "/responses", responses_schema_body("p", PLANS_SCHEMA))
    assert resp["status"] == "incomplete"
    with pytest.raises(ValueError):
        json.loads(output_text(resp))


def test_hang_makes_client_time_out(fake_openai: FakeOpenAI) -> None:
    fake_openai.enqueue(Reply.hang(3))
    t0 = time.monotonic()
    with pytest.raises((TimeoutError, socket.timeout, urllib.error.URLError)):
        call(fake_openai, "/responses", responses_body(), timeout=0.3)
    assert time.monotonic() - t0 < 2.9  # the 3 s hang was cut short by the client timeout
    # The next request is answered normally and promptly.
    assert output_text(post_json(fake_openai, "/responses", responses_body()))


def test_hang_then_answer_and_delay(fake_openai: FakeOpenAI) -> None:
    fake_openai.enqueue(Reply.hang(0.2), Reply.delay(0.2, Reply.text("late")))
    t0 = time.monotonic()
    assert output_text(post_json(fake_openai, "/responses", responses_body())).startswith("Fake answer")
    assert output_text(post_json(fake_openai, "/responses", responses_body())) == "late"
    assert time.monotonic() - t0 >= 0.4


def test_latency_is_mutable(fake_openai: FakeOpenAI) -> None:
    fake_openai.latency = 0.25
    t0 = time.monotonic()
    post_json(fake_openai, "/responses", responses_body())
    assert time.monotonic() - t0 >= 0.25
    fake_openai.latency = 0
    assert fake_openai.latency == 0
    post_json(fake_openai, "/responses", responses_body())


def test_request_log_and_reset(fake_openai: FakeOpenAI) -> None:
    call(fake_openai, "/responses", responses_body("a"), headers={"Authorization": "Bearer sk-one"})
    call(fake_openai, "/chat/completions", chat_body("b"), headers={"Authorization": "Bearer sk-two", "X-Extra": "1"})
    reqs = fake_openai.requests
    assert [r.path for r in reqs] == ["/v1/responses", "/v1/chat/completions"]
    assert reqs[0].headers["Authorization"] == "Bearer sk-one"
    assert reqs[1].headers["authorization"] == "Bearer sk-two"  # case-insensitive lookup
    assert "x-extra" in reqs[1].headers and isinstance(reqs[1].headers, dict)
    assert reqs[0].body == responses_body("a")
    assert json.loads(reqs[1].raw) == chat_body("b")
    assert reqs[0].t <= reqs[1].t
    assert fake_openai.bodies() == [responses_body("a"), chat_body("b")]
    assert fake_openai.bodies("/v1/chat/completions") == [chat_body("b")]

    fake_openai.enqueue(Reply.error(500))
    fake_openai.script = lambda r, i: Reply.error(500)
    fake_openai.reset()
    assert fake_openai.requests == [] and fake_openai.pending == 0 and fake_openai.script is None
    assert post_json(fake_openai, "/responses", responses_body())["status"] == "completed"
    assert len(fake_openai.requests) == 1


def test_concurrent_requests_overlap() -> None:
    async def run(base_url: str) -> list[int]:
        async with aiohttp.ClientSession() as session:
            async def one(i: int) -> int:
                async with session.post(f"{base_url}/responses", json=responses_body(str(i))) as r:
                    await r.read()
                    return r.status

            return await asyncio.gather(*(one(i) for i in range(200)))

    with FakeOpenAI(latency=0.2) as server:
        t0 = time.monotonic()
        statuses = asyncio.run(run(server.base_url))
        elapsed = time.monotonic() - t0
        assert statuses == [200] * 200
        assert len(server.requests) == 200
        assert elapsed < 20.0  # 200 requests x 0.2 s would take 40 s if served one at a time


def test_cli_prints_ready_and_serves() -> None:
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fake_openai.py")
    with subprocess.Popen(
        [sys.executable, script, "--port", "0", "--latency", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        try:
            line = proc.stdout.readline().strip()
            assert line.startswith("READY http://127.0.0.1:") and line.endswith("/v1"), line
            base_url = line.split()[1]
            req = urllib.request.Request(
                base_url + "/responses",
                data=json.dumps(responses_body()).encode(),
                headers={"Content-Type": "application/json"},
            )
            with urllib.request.urlopen(req, timeout=10) as resp:
                assert json.loads(resp.read())["status"] == "completed"
        finally:
            proc.terminate()
            try:
                _, err = proc.communicate(timeout=10)
            except subprocess.TimeoutExpired:  # pragma: no cover
                proc.kill()
                _, err = proc.communicate()
    assert proc.returncode == 0, err
