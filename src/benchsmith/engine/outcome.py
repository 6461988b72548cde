"""What an answer or an error means, shared by the online and batch executors.

  ok / invalid   a 200 answer, judged by the stage's parser (cut-off answers are invalid)
  retry          429 / 5xx / 408 / 409: send again later, within engine.max_retries
  fail           other 4xx: the unit fails with the server's message
  stop           401 / 403 / exhausted quota: the whole run stops
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from benchsmith.engine.wire import error_message
from benchsmith.recipes.base import RequestSpec, Stage
from benchsmith.records import Completion


@dataclass(frozen=True)
class Judgement:
    ok: bool
    records: list[dict[str, Any]]
    issues: tuple[str, ...]


def judge(stage: Stage, spec: RequestSpec, comp: Completion) -> Judgement:
    if not comp.finished:
        return Judgement(False, [], (f"answer was cut off ({comp.detail})",))
    parsed = stage.parse(spec, comp)
    if parsed.ok:
        return Judgement(True, list(parsed.records), ())
    return Judgement(False, [], parsed.issues)


def classify_status(status: int, message: str) -> str:
    """'retry', 'fail' or 'stop' for a non-200 HTTP status."""
    if status in (401, 403) or (status == 429 and "quota" in message.lower()):
        return "stop"
    if status in (408, 409, 429) or status >= 500:
        return "retry"
    return "fail"


def http_error_text(status: int, body: bytes) -> str:
    """The server's message of a non-200 answer (JSON error body or plain text)."""
    text = body.decode("utf-8", "replace")
    try:
        err_body: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        err_body = text
    return error_message(err_body, text or f"HTTP {status}")


def stop_message(status: int, message: str, base_url: str) -> str:
    """Why a `stop` status (classify_status) ends the whole run, and what to do."""
    what = "authentication failed" if status in (401, 403) else "quota exhausted"
    return (f"{what} (HTTP {status}) at {base_url}: {message}; "
            "check the API key and its permissions, then resume the run")
