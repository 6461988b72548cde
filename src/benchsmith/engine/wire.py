"""Wire formats: turn a RequestSpec into a Responses or Chat body, and parse answers back.

Structured output needs one adapter per backend:
  OpenAI Responses   text.format = {type: json_schema, name, schema, strict}
  OpenAI Chat / vLLM response_format = {type: json_schema, json_schema: {...}}
  llama-cpp-python   response_format = {type: json_object, schema}

Tools are given neutrally as function definitions {name, description?, parameters, strict?}
and `tool_choice` as "auto" | "none" | "required" | {"name": NAME}:
  OpenAI Responses   tools = [{type: function, name, ...}], tool_choice {type: function, name};
                     no `n` (one answer per request)
  OpenAI Chat / vLLM tools = [{type: function, function: {name, ...}}],
  llama-cpp-python   tool_choice {type: function, function: {name}}, n (llama-cpp ignores it)
"""

from __future__ import annotations

from typing import Any

from benchsmith.errors import ConfigError
from benchsmith.records import Choice, Completion, ToolCall, Usage

REASONING_REJECTS = ("temperature", "top_p", "seed")
PATHS = {"responses": "/responses", "chat": "/chat/completions"}


__all__ = ["Choice", "Completion", "ToolCall"]  # re-exported: the answer contract's types


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
    tools: list[dict[str, Any]] | tuple[dict[str, Any], ...] | None = None,
    tool_choice: str | dict[str, Any] | None = None,
    n: int = 1,
) -> dict[str, Any]:
    """The JSON body for one request. `params` use neutral names (max_output_tokens, ...).

    `bounds` = (max string chars, max array items), applied by the llama-cpp adapter only.
    `tools`, `tool_choice`, `n`: see the module docstring for each format's shape.
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
        if tools:
            body["tools"] = [{"type": "function", **t} for t in tools]
        if tool_choice is not None:
            body["tool_choice"] = (
                {"type": "function", "name": tool_choice["name"]}
                if isinstance(tool_choice, dict) else tool_choice
            )
        if n != 1:
            # A recipe's request no config can fix but this one: a one-line error, not a trace.
            raise ConfigError("config", "openai.api",
                              f"the Responses API answers one choice per request (n={n}); "
                              "use `api: chat` for n > 1")
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
        if tools:
            body["tools"] = [{"type": "function", "function": t} for t in tools]
        if tool_choice is not None:
            body["tool_choice"] = (
                {"type": "function", "function": {"name": tool_choice["name"]}}
                if isinstance(tool_choice, dict) else tool_choice
            )
        if n != 1:
            body["n"] = n
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
    """Every choice of a 200 answer, with its tool calls (both answer shapes, whatever `api`)."""
    if not isinstance(body, dict):
        raise MalformedAnswer("answer body is not a JSON object")
    usage = parse_usage(api, body.get("usage"))
    if "output" in body or body.get("object") == "response":
        return _responses_completion(body, usage)
    choices = body.get("choices")
    if isinstance(choices, list) and choices:
        return _chat_completion(choices, usage)
    raise MalformedAnswer("answer has neither `output` nor `choices`")


def _responses_completion(body: dict[str, Any], usage: Usage) -> Completion:
    texts, refusal, calls = [], "", []
    for item in body.get("output") or []:
        if not isinstance(item, dict):
            continue
        kind = item.get("type")
        if kind == "message":
            for part in item.get("content") or []:
                if part.get("type") == "output_text":
                    texts.append(part.get("text") or "")
                elif part.get("type") == "refusal":
                    refusal = part.get("refusal") or "refused"
        elif kind == "function_call":
            calls.append(ToolCall(str(item.get("call_id") or item.get("id") or ""),
                                  str(item.get("name") or ""), str(item.get("arguments") or "")))
    text = "".join(texts)
    tool_calls = tuple(calls)
    status = body.get("status", "completed")
    detail = ""
    if refusal:
        reason, detail = "refusal", f"refusal: {refusal}"
    elif status != "completed":
        reason = (body.get("incomplete_details") or {}).get("reason") or status
        detail = f"incomplete: {reason}"
    else:
        reason = "tool_calls" if tool_calls else "stop"
    choice = Choice(text, tool_calls, reason)
    return Completion(text, usage, not detail, detail, (choice,), tool_calls, reason)


def _chat_completion(choices: list[Any], usage: Usage) -> Completion:
    out, detail = [], ""
    for ch in choices:
        ch = ch or {}
        msg = ch.get("message") or {}
        fr = ch.get("finish_reason")
        raw_calls = msg.get("tool_calls")
        calls = tuple(
            ToolCall(str(c.get("id") or ""), str((c.get("function") or {}).get("name") or ""),
                     str((c.get("function") or {}).get("arguments") or ""))
            for c in raw_calls if isinstance(c, dict)
        ) if raw_calls else ()
        out.append(Choice(msg.get("content") or "", calls, fr))
        if detail:
            continue
        if msg.get("refusal"):
            detail = f"refusal: {msg['refusal']}"
        elif fr not in (None, "stop", "tool_calls", "function_call"):
            detail = f"incomplete: finish_reason={fr}"
    first = out[0]
    return Completion(first.text, usage, not detail, detail, tuple(out), first.tool_calls,
                      first.finish_reason)


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
