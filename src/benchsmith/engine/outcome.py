"""What an answer or an error says, shared by the online and batch executors: a 200 answer
judged by the stage's parser (cut-off answers are invalid), the server's message of an error,
and why a stop status ends the run. What then happens to the unit is engine/unit_machine's.
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


def http_error_text(status: int, body: bytes) -> str:
    """The server's message of a non-200 answer (JSON error body or plain text)."""
    text = body.decode("utf-8", "replace")
    try:
        err_body: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        err_body = text
    return error_message(err_body, text or f"HTTP {status}")


def stop_message(status: int, message: str, base_url: str) -> str:
    """Why a `stop` status (unit_machine.classify_status) ends the whole run, and what to do."""
    what = "authentication failed" if status in (401, 403) else "quota exhausted"
    return (f"{what} (HTTP {status}) at {base_url}: {message}; "
            "check the API key and its permissions, then resume the run")
