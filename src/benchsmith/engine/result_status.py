"""What a Batch API result line that carries no answer means: the HTTP status it stands for.

Runners write failures in several shapes. OpenAI's error file has `response.status_code` with
the error body, or `response: null` and `error: {code, message}` for failures that are not
HTTP (`batch_expired`). vLLM `run-batch` puts the status in `response.status_code` and the
error in `error`: a string, or an error object whose integer `code` is the status (flat, or
nested under `error`). Other runners give the status only as `error.code` (an integer or a
numeric string), or only name it (`"type": "InternalServerError"`, `"code":
"rate_limit_exceeded"`). The status is read in that order, so a line is treated as the online
executor treats that status (`unit_machine.classify_status`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# Failures where the request never ran: sent again later, within engine.max_retries.
REQUEUE_CODES = ("batch_expired", "batch_cancelled", "request_timeout")

# Error names (SDK exception names, OpenAI/vLLM `type` and `code` values), compared without
# case or punctuation, and the status they stand for.
_NAMED = {
    400: ("BadRequestError", "bad_request", "invalid_request_error", "invalid_request",
          "invalid_prompt", "context_length_exceeded", "string_above_max_length"),
    401: ("AuthenticationError", "authentication_error", "invalid_api_key", "unauthorized"),
    403: ("PermissionDeniedError", "permission_error", "permission_denied", "forbidden"),
    404: ("NotFoundError", "not_found", "not_found_error", "model_not_found"),
    408: ("APITimeoutError", "timeout", "timeout_error"),
    409: ("ConflictError", "conflict"),
    422: ("UnprocessableEntityError", "unprocessable_entity"),
    # insufficient_quota keeps its name in the message: classify_status stops on "quota"
    429: ("RateLimitError", "rate_limit_exceeded", "rate_limit_error", "rate_limit",
          "too_many_requests", "insufficient_quota"),
    500: ("InternalServerError", "internal_server_error", "server_error", "internal_error",
          "APIError", "api_error"),
    502: ("bad_gateway",),
    503: ("ServiceUnavailableError", "service_unavailable", "overloaded", "overloaded_error",
          "engine_overloaded"),
    504: ("gateway_timeout",),
}


def _norm(name: str) -> str:
    return "".join(c for c in name.lower() if c.isalnum())


_STATUS_OF_NAME = {_norm(n): status for status, names in _NAMED.items() for n in names}
_REQUEUE_OF_NAME = {_norm(c): c for c in REQUEUE_CODES}


def http_status(value: Any) -> int | None:
    """An HTTP status given as an integer (500, 500.0) or a numeric string ("500"), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        n = value
    elif isinstance(value, float) and value.is_integer():
        n = int(value)
    elif isinstance(value, str) and value.strip().isdigit():
        n = int(value.strip())
    else:
        return None
    return n if 100 <= n <= 599 else None


@dataclass(frozen=True)
class LineError:
    """One of: `requeue` set (the request never ran), `status` set (the HTTP status the line
    stands for; 200 is an answer line without a usable body), or neither (no way to tell)."""

    status: int | None
    requeue: str | None
    message: str


def read_line_error(resp: Any, err: Any) -> LineError:
    """The line's `response` and `error` fields, read as described above."""
    body = resp.get("body") if isinstance(resp, dict) else None
    objs = _error_objects(body, err)
    message = _message(objs, body, err)
    status = http_status(resp.get("status_code")) if isinstance(resp, dict) else None
    if status is not None:
        return LineError(status, None, message)
    for o in objs:
        status = http_status(o.get("code"))
        if status is not None:
            return LineError(status, None, message)
    names = [o.get(k) for o in objs for k in ("code", "type")]
    if isinstance(err, str):
        names.append(err)  # an error that is only a name
    for name in names:
        if isinstance(name, str) and name:
            key = _norm(name)
            if key in _REQUEUE_OF_NAME:
                return LineError(None, _REQUEUE_OF_NAME[key], message)
            if key in _STATUS_OF_NAME:
                named = message if name in message else f"{name}: {message}"
                return LineError(_STATUS_OF_NAME[key], None, named[:500])
    return LineError(None, None, message)


def _error_objects(body: Any, err: Any) -> list[dict[str, Any]]:
    """The dicts that may describe the error, most specific first."""
    out: list[dict[str, Any]] = []
    for holder in (body, err):
        if isinstance(holder, dict):
            inner = holder.get("error")
            if isinstance(inner, dict):
                out.append(inner)
            out.append(holder)  # flat: {"message", "type", "code"}
    return out


def _message(objs: list[dict[str, Any]], body: Any, err: Any) -> str:
    for o in objs:
        m = o.get("message")
        if m:
            return str(m)[:500]
    for holder in (*objs, body, err):
        inner = holder.get("error") if isinstance(holder, dict) else holder
        if isinstance(inner, str) and inner:
            return inner[:500]
    return "no error message in the result line"
