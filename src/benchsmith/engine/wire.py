"""Wire formats: turn a RequestSpec into a Responses or Chat body, and parse answers back.

Structured output needs one adapter per backend:
  OpenAI Responses   text.format = {type: json_schema, name, schema, strict}
  OpenAI Chat / vLLM response_format = {type: json_schema, json_schema: {...}}
  llama-cpp-python   response_format = {type: json_object, schema}
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from benchsmith.records import Usage

REASONING_REJECTS = ("temperature", "top_p", "seed")
PATHS = {"responses": "/responses", "chat": "/chat/completions"}


@dataclass(frozen=True)
class Completion:
    """A parsed 200 answer."""

    text: str
    usage: Usage
    finished: bool  # False when cut off (max tokens, content filter)
    detail: str = ""


def drop_for_reasoning(params: dict[str, Any], is_reasoning: bool) -> tuple[dict[str, Any], list[str]]:
    if not is_reasoning:
        return params, []
    dropped = [k for k in REASONING_REJECTS if k in params]
    return {k: v for k, v in params.items() if k not in dropped}, dropped


def bound_schema(schema: Any, max_chars: int, max_items: int) -> Any:
    """A copy of `schema` with every string and array bounded.

    Grammar-constrained local models never close an open string or array by themselves, so
    the llama-cpp adapter bounds them (the grammar honours maxLength/maxItems) and excludes
    raw control characters, which that grammar otherwise lets into strings.
    """
    if isinstance(schema, list):
        return [bound_schema(s, max_chars, max_items) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: bound_schema(v, max_chars, max_items) for k, v in schema.items()}
    types = out.get("type")
    types = types if isinstance(types, list) else [types]
    if "string" in types and "enum" not in out and "pattern" not in out:
        # The pattern carries the length: the grammar uses a pattern instead of maxLength.
        out["pattern"] = "^[^\\x00-\\x1f\"\\\\]{1,%d}$" % max_chars
    if "array" in types:
        lo = out.get("minItems", 0)
        out["maxItems"] = max(lo, min(out.get("maxItems", max_items), max_items))
    return out


def build_body(
    *,
    api: str,
    structured: str,
    model: str,
    messages: list[dict[str, str]] | tuple[dict[str, str], ...],
    schema: dict[str, Any] | None,
    schema_name: str,
    params: dict[str, Any],
    extra: dict[str, Any] | None = None,
    bounds: tuple[int, int] | None = None,
) -> dict[str, Any]:
    """The JSON body for one request. `params` use neutral names (max_output_tokens, ...).

    `bounds` = (max string chars, max array items), applied by the llama-cpp adapter only.
    """
    body: dict[str, Any] = {"model": model}
    p = dict(params)
    max_out = p.pop("max_output_tokens", None)
    effort = p.pop("reasoning_effort", None)
    if api == "responses":
        body["input"] = list(messages)
        if max_out is not None:
            body["max_output_tokens"] = max_out
        if effort is not None:
            body["reasoning"] = {"effort": effort}
        p.pop("seed", None)  # not a Responses parameter
        if schema is not None:
            body["text"] = {
                "format": {"type": "json_schema", "name": schema_name, "schema": schema, "strict": True}
            }
    else:
        body["messages"] = list(messages)
        if max_out is not None:
            key = "max_tokens" if structured == "llama_cpp" else "max_completion_tokens"
            body[key] = max_out
        if effort is not None and structured != "llama_cpp":
            body["reasoning_effort"] = effort
        if schema is not None:
            if structured == "llama_cpp":
                if bounds is not None:
                    schema = bound_schema(schema, *bounds)
                body["response_format"] = {"type": "json_object", "schema": schema}
            else:
                body["response_format"] = {
                    "type": "json_schema",
                    "json_schema": {"name": schema_name, "schema": schema, "strict": True},
                }
    body.update(p)
    if extra:
        body.update(extra)
    return body


def _int(d: Any, *keys: str) -> int:
    for k in keys:
        if not isinstance(d, dict):
            return 0
        d = d.get(k)
    return int(d) if isinstance(d, (int, float)) else 0


def parse_usage(api: str, usage: Any) -> Usage:
    if not isinstance(usage, dict):
        return Usage()
    # The usage keys tell the shape (an ingested file may hold either kind of answer).
    if "input_tokens" in usage or ("prompt_tokens" not in usage and api == "responses"):
        return Usage(
            input_tokens=_int(usage, "input_tokens"),
            cached_input_tokens=_int(usage, "input_tokens_details", "cached_tokens"),
            output_tokens=_int(usage, "output_tokens"),
            reasoning_tokens=_int(usage, "output_tokens_details", "reasoning_tokens"),
        )
    return Usage(
        input_tokens=_int(usage, "prompt_tokens"),
        cached_input_tokens=_int(usage, "prompt_tokens_details", "cached_tokens"),
        output_tokens=_int(usage, "completion_tokens"),
        reasoning_tokens=_int(usage, "completion_tokens_details", "reasoning_tokens"),
    )


class MalformedAnswer(ValueError):
    """A 200 whose body is not a recognisable completion."""


def parse_completion(api: str, body: Any) -> Completion:
    if not isinstance(body, dict):
        raise MalformedAnswer("answer body is not a JSON object")
    usage = parse_usage(api, body.get("usage"))
    if "output" in body or body.get("object") == "response":
        texts, refusal = [], ""
        for item in body.get("output") or []:
            if not isinstance(item, dict) or item.get("type") != "message":
                continue
            for part in item.get("content") or []:
                if part.get("type") == "output_text":
                    texts.append(part.get("text") or "")
                elif part.get("type") == "refusal":
                    refusal = part.get("refusal") or "refused"
        status = body.get("status", "completed")
        if refusal:
            return Completion("".join(texts), usage, False, f"refusal: {refusal}")
        if status != "completed":
            reason = (body.get("incomplete_details") or {}).get("reason") or status
            return Completion("".join(texts), usage, False, f"incomplete: {reason}")
        return Completion("".join(texts), usage, True)
    choices = body.get("choices")
    if isinstance(choices, list) and choices:
        ch = choices[0] or {}
        msg = ch.get("message") or {}
        text = msg.get("content") or ""
        if msg.get("refusal"):
            return Completion(text, usage, False, f"refusal: {msg['refusal']}")
        fr = ch.get("finish_reason")
        if fr not in (None, "stop", "tool_calls", "function_call"):
            return Completion(text, usage, False, f"incomplete: finish_reason={fr}")
        return Completion(text, usage, True)
    raise MalformedAnswer("answer has neither `output` nor `choices`")


def error_message(body: Any, fallback: str) -> str:
    """The server's error message, from OpenAI, vLLM (old and new) or plain bodies."""
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])[:500]
        if isinstance(err, str):
            return err[:500]
        if body.get("message"):
            return str(body["message"])[:500]
    return fallback[:500]
