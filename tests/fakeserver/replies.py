"""``Reply``: what the fake server answers to one online request, and OpenAI-style error bodies."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import orjson

from .common import _JSON


@dataclass(frozen=True, eq=False)
class Reply:
    """What the fake server should answer. Build with the classmethods."""

    kind: str
    content: Any = None
    usage: Mapping[str, int] | None = None
    status: int = 200
    message: str | None = None
    headers: Mapping[str, str] | None = None
    err_type: str | None = None
    code: str | None = None
    seconds: float = 0.0
    inner: "Reply | None" = None
    body: bytes | None = None
    content_type: str = _JSON
    # ((text, tool calls), ...): one per choice, when scripted (else one, the default answer)
    choices: "tuple[tuple[str, tuple[dict, ...]], ...] | None" = None
    param: str | None = None  # an error's `param`

    @classmethod
    def text(
        cls, text: Any, usage: Mapping[str, int] | None = None, tool_calls: Any = None
    ) -> "Reply":
        """A normal successful answer whose assistant text is ``text``
        (dicts/lists are JSON-dumped). ``usage`` overrides any of
        ``input_tokens``/``prompt_tokens``, ``output_tokens``/``completion_tokens``,
        ``cached_tokens``, ``reasoning_tokens``, ``total_tokens``. ``tool_calls``:
        ``[{"name", "arguments" (dict or JSON string), "id"?}, ...]``, sent as Chat
        ``message.tool_calls`` or Responses ``function_call`` output items."""
        content = _as_text(text)
        choices = ((content, _calls(tool_calls)),) if tool_calls else None
        return cls("text", content=content, usage=usage, choices=choices)

    @classmethod
    def choices_of(cls, *choices: Any, usage: Mapping[str, int] | None = None) -> "Reply":
        """An answer with several Chat choices (as for a request with ``n``): each is a text,
        or ``(text, tool_calls)``. A Responses request gets the first one only (that API
        has no ``n``)."""
        items = tuple(
            (_as_text(c[0]), _calls(c[1])) if isinstance(c, tuple) else (_as_text(c), ())
            for c in choices
        )
        return cls("text", content=items[0][0], usage=usage, choices=items)

    @classmethod
    def json(cls, obj: Any, usage: Mapping[str, int] | None = None) -> "Reply":
        """Alias of :meth:`text` for JSON payloads."""
        return cls.text(obj, usage=usage)

    @classmethod
    def error(
        cls,
        status: int,
        message: str = "fake error",
        headers: Mapping[str, str] | None = None,
        type: str | None = None,  # noqa: A002 - mirrors the OpenAI field name
        code: str | None = None,
        param: str | None = None,
    ) -> "Reply":
        """An OpenAI-style error: ``{"error": {"message", "type", "param", "code"}}``."""
        return cls(
            "error",
            status=status,
            message=message,
            headers=dict(headers) if headers else None,
            err_type=type,
            code=code,
            param=param,
        )

    @classmethod
    def hang(cls, seconds: float, reply: "Reply | None" = None) -> "Reply":
        """Sleep ``seconds`` before answering (normally, or with ``reply``)."""
        return cls("delay", seconds=float(seconds), inner=reply)

    @classmethod
    def delay(cls, seconds: float, reply: "Reply | None" = None) -> "Reply":
        """Answer ``reply`` (default answer if ``None``) after ``seconds``."""
        return cls("delay", seconds=float(seconds), inner=reply)

    @classmethod
    def malformed(cls, body: bytes = b'{"id": "resp_broken", "output": [<<not json>>') -> "Reply":
        """HTTP 200 with a body that is not valid JSON."""
        return cls("raw", status=200, body=body)

    @classmethod
    def incomplete(cls, text: Any = None, usage: Mapping[str, int] | None = None) -> "Reply":
        """A truncated answer: Responses ``status: "incomplete"`` with
        ``incomplete_details.reason == "max_output_tokens"``; Chat
        ``finish_reason: "length"``. ``text=None`` means "the first half of
        the default answer" (i.e. truncated JSON for structured requests)."""
        return cls("incomplete", content=None if text is None else _as_text(text), usage=usage)

    @classmethod
    def raw(
        cls,
        status: int,
        body: bytes | str,
        headers: Mapping[str, str] | None = None,
        content_type: str = _JSON,
    ) -> "Reply":
        """Arbitrary status and body bytes."""
        if isinstance(body, str):
            body = body.encode()
        return cls(
            "raw",
            status=status,
            body=body,
            headers=dict(headers) if headers else None,
            content_type=content_type,
        )


def _calls(calls: Any) -> tuple[dict, ...]:
    """Tool calls with JSON-string arguments and an id each."""
    out = []
    for i, c in enumerate(calls or ()):
        args = c.get("arguments", {})
        out.append({"id": c.get("id") or f"call_{i}", "name": c["name"],
                    "arguments": args if isinstance(args, str) else orjson.dumps(args).decode()})
    return tuple(out)


def _as_text(text: Any) -> str:
    if isinstance(text, str):
        return text
    if isinstance(text, (dict, list)):
        return orjson.dumps(text).decode()
    return str(text)


_ERROR_TYPES = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("permission_error", None),
    404: ("invalid_request_error", "model_not_found"),
    405: ("invalid_request_error", None),
    408: ("timeout", None),
    409: ("conflict_error", None),
    413: ("invalid_request_error", None),
    422: ("invalid_request_error", None),
    429: ("requests", "rate_limit_exceeded"),
}


def _error_body(
    status: int, message: str, type_: str | None, code: str | None, param: str | None = None
) -> bytes:
    dtype, dcode = _ERROR_TYPES.get(status, ("server_error" if status >= 500 else "error", None))
    return orjson.dumps(
        {
            "error": {
                "message": message,
                "type": type_ if type_ is not None else dtype,
                "param": param,
                "code": code if code is not None else dcode,
            }
        }
    )


# What real endpoints answer to a body key they refuse (``FakeOpenAI.reject_params``):
# OpenAI Responses for a model without reasoning, Azure / older servers on Chat.
_REFUSALS = {
    "reasoning": ("Unsupported parameter: 'reasoning.effort' is not supported with this "
                  "model.", "reasoning.effort", "unsupported_parameter"),
    "reasoning_effort": ("Unrecognized request argument supplied: reasoning_effort", None, None),
}


def refusal(body: Any, keys: "tuple[str, ...] | list[str]") -> "Reply | None":
    """The 400 a server refusing any of the top-level body ``keys`` answers, or None."""
    if not isinstance(body, dict):
        return None
    for key in keys:
        if key in body:
            message, param, code = _REFUSALS.get(key, (
                f"Unsupported parameter: '{key}' is not supported with this model.", key,
                "unsupported_parameter"))
            return Reply.error(400, message, type="invalid_request_error", code=code,
                               param=param)
    return None
