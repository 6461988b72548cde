"""The default answerer: a Responses or ChatCompletion object for any request."""

from __future__ import annotations

import time
from typing import Any, Callable, Mapping

import orjson

from .common import _REASONING_TOKENS, _RESPONSES, Received
from .schema_gen import _compiled, _Ctx, _phrase, _seed_of


def _find_schema(path: str, body: dict) -> tuple[bool, Any]:
    """(wants_json, schema_or_None) for a request body."""
    if path == _RESPONSES:
        text = body.get("text")
        fmt = text.get("format") if isinstance(text, dict) else None
    else:
        fmt = body.get("response_format")
    if not isinstance(fmt, dict):
        return False, None
    ftype = fmt.get("type")
    if ftype == "json_schema":
        if "schema" in fmt:  # Responses API
            return True, fmt["schema"]
        js = fmt.get("json_schema")
        if isinstance(js, dict):  # Chat Completions API
            return True, js.get("schema", {})
        return True, None
    if ftype == "json_object":
        return True, fmt.get("schema")  # llama-cpp style when present
    return False, None


def _wants_reasoning(body: dict | None) -> bool:
    if not body:
        return False
    return body.get("reasoning") is not None or body.get("reasoning_effort") is not None


class _Answerer:
    """The default answerer of :class:`FakeOpenAI` (a mixin): the Responses / Chat
    object for a request, schema-valid JSON when it asks for structured output."""

    cached_tokens: int
    force_output_tokens: int | None
    _new_id: Callable[[], str]

    def _default_text(self, received: Received) -> str:
        body = received.body
        if body is None:
            return "Fake answer."
        seed_src = orjson.dumps(
            [body.get("instructions"), body.get("input"), body.get("messages")],
            option=orjson.OPT_SORT_KEYS,
        )
        wants_json, schema = _find_schema(received.path, body)
        ctx = _Ctx(_seed_of(seed_src))
        if wants_json:
            if schema is None or schema is True or schema == {}:
                return orjson.dumps({"answer": _phrase(ctx)}).decode()
            return orjson.dumps(_compiled(schema)(ctx, 0)).decode()
        return f"Fake answer: {_phrase(ctx)}."

    def _payload(
        self, received: Received, text: str | None, usage: Mapping[str, int] | None, incomplete: bool,
        choices: tuple | None = None,
    ) -> dict | None:
        """The Responses / ChatCompletion object for ``received`` (by its
        path), or ``None`` when there is no text and no parseable body.
        ``choices``: ((text, tool calls), ...) scripted by ``Reply``; else one choice
        (``n`` of them for a Chat request with ``n``), the default answer."""
        body = received.body
        if text is None:
            if body is None:
                return None
            text = self._default_text(received)
            if incomplete:
                text = text[: max(1, len(text) // 2)]
        body = body or {}
        if choices is None:
            n = body.get("n") if received.path != _RESPONSES else None
            choices = ((text, ()),) * (n if isinstance(n, int) and n > 1 else 1)
        model = body.get("model") or "fake-model"
        reasoning = _wants_reasoning(body)

        n_in = max(1, len(received.raw) // 4)
        n_reason = _REASONING_TOKENS if reasoning else 0
        n_out = sum(max(1, len(t) // 4) for t, _ in choices) + n_reason
        n_cached = min(self.cached_tokens, n_in)
        n_total = None
        if usage:
            n_in = usage.get("input_tokens", usage.get("prompt_tokens", n_in))
            n_out = usage.get("output_tokens", usage.get("completion_tokens", n_out))
            n_cached = usage.get("cached_tokens", n_cached)
            n_reason = usage.get("reasoning_tokens", n_reason)
            n_total = usage.get("total_tokens")
        if self.force_output_tokens is not None:
            n_out, n_total = int(self.force_output_tokens), None
        if n_total is None:
            n_total = n_in + n_out
        now = int(time.time())
        rid = self._new_id()

        if received.path == _RESPONSES:
            output: list[dict] = []
            if reasoning:
                output.append({"type": "reasoning", "id": f"rs_{rid}", "summary": []})
            text, calls = choices[0]  # the Responses API has no `n`
            if text or not calls:
                output.append(
                    {
                        "type": "message",
                        "id": f"msg_{rid}",
                        "role": "assistant",
                        "status": "incomplete" if incomplete else "completed",
                        "content": [{"type": "output_text", "text": text, "annotations": []}],
                    }
                )
            output += [
                {"type": "function_call", "id": f"fc_{rid}_{i}", "call_id": c["id"],
                 "name": c["name"], "arguments": c["arguments"], "status": "completed"}
                for i, c in enumerate(calls)
            ]
            payload = {
                "id": f"resp_{rid}",
                "object": "response",
                "created_at": now,
                "model": model,
                "status": "incomplete" if incomplete else "completed",
                "error": None,
                "incomplete_details": {"reason": "max_output_tokens"} if incomplete else None,
                "output": output,
                "usage": {
                    "input_tokens": n_in,
                    "input_tokens_details": {"cached_tokens": n_cached},
                    "output_tokens": n_out,
                    "output_tokens_details": {"reasoning_tokens": n_reason},
                    "total_tokens": n_total,
                },
            }
        else:
            payload = {
                "id": f"chatcmpl-{rid}",
                "object": "chat.completion",
                "created": now,
                "model": model,
                "choices": [
                    {
                        "index": i,
                        "message": _message(t, calls),
                        "logprobs": None,
                        "finish_reason": "length" if incomplete else "tool_calls" if calls else "stop",
                    }
                    for i, (t, calls) in enumerate(choices)
                ],
                "usage": {
                    "prompt_tokens": n_in,
                    "completion_tokens": n_out,
                    "total_tokens": n_total,
                    "prompt_tokens_details": {"cached_tokens": n_cached},
                    "completion_tokens_details": {"reasoning_tokens": n_reason},
                },
            }
        return payload


def _message(text: str, calls: tuple[dict, ...]) -> dict:
    msg: dict[str, Any] = {"role": "assistant", "content": text, "refusal": None}
    if calls:
        msg["content"] = text or None
        msg["tool_calls"] = [
            {"id": c["id"], "type": "function",
             "function": {"name": c["name"], "arguments": c["arguments"]}}
            for c in calls
        ]
    return msg
