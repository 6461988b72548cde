"""What an answer or an error means, shared by the online and batch executors.

  ok / invalid   a 200 answer, judged by the stage's parser (cut-off answers are invalid)
  retry          429 / 5xx / 408 / 409: send again later, within engine.max_retries
  fail           other 4xx: the unit fails with the server's message
  stop           401 / 403 / exhausted quota: the whole run stops
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from benchsmith.engine.wire import Completion
from benchsmith.recipes.base import RequestSpec, Stage


@dataclass(frozen=True)
class Judgement:
    ok: bool
    records: list[dict[str, Any]]
    issues: tuple[str, ...]


def judge(stage: Stage, spec: RequestSpec, comp: Completion) -> Judgement:
    if not comp.finished:
        return Judgement(False, [], (f"answer was cut off ({comp.detail})",))
    parsed = stage.parse(spec, comp.text)
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
