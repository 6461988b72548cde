"""A Batch API result line's answer: which lines are answers (`ok_answer_parts`), and an
answer judged against its unit's spec (`judge_answer`), the same way for `reconcile` and for
the judging ahead of ingest."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import orjson

from benchsmith.config_sections import Price
from benchsmith.engine.outcome import judge
from benchsmith.engine.pricing import cost_usd
from benchsmith.engine.result_status import http_status
from benchsmith.engine.wire import MalformedAnswer, parse_completion
from benchsmith.recipes.base import Recipe, RequestSpec


class Answer(NamedTuple):
    """A 200 answer judged against its unit's spec (`judge_answer`). It depends only on the
    unit's spec and model, which never change, so it may be worked out ahead (or in another
    process: flat fields, cheap to pickle)."""

    malformed: str | None  # the MalformedAnswer message (then nothing else is set)
    text: str = ""  # the completion's text
    usage: tuple[int, int, int, int] = (0, 0, 0, 0)  # Usage fields, in order
    cost: float = 0.0
    ok: bool = False
    records: bytes | None = None  # ok: the records, as `orjson.dumps` writes them to the ledger
    issues: tuple[str, ...] = ()


def judge_answer(
    recipe: Recipe, api: str, price_for: Callable[[str], Price | None], multiplier: float,
    model: str, spec: RequestSpec, body: Any,
) -> Answer:
    try:
        comp = parse_completion(api, body)
    except MalformedAnswer as e:
        return Answer(str(e))
    cost = cost_usd(comp.usage, price_for(model), multiplier)
    stage = recipe.stage(spec.stage)
    j = judge(stage, spec, comp)
    u = comp.usage
    usage = (u.input_tokens, u.cached_input_tokens, u.output_tokens, u.reasoning_tokens)
    if j.ok:
        return Answer(None, comp.text, usage, cost, True, orjson.dumps(j.records), ())
    return Answer(None, comp.text, usage, cost, False, None, j.issues)


def answer_body(resp: Any) -> dict[str, Any] | None:
    """The answer of a line's `response`, if it is a 200 answer (the one rule for both
    `apply` and the judging ahead of ingest)."""
    if not isinstance(resp, dict):
        return None
    body = resp.get("body")
    status = resp.get("status_code")
    if isinstance(body, dict) and (status == 200 or http_status(status) == 200):
        return body
    return None


def ok_answer_parts(line: Any) -> tuple[str, dict[str, Any]] | None:
    """(custom_id, body) when `apply` would judge this line as an answer, else None."""
    if not isinstance(line, dict):
        return None
    uid = line.get("custom_id")
    if not isinstance(uid, str) or not uid:
        return None
    body = answer_body(line.get("response"))
    return None if body is None else (uid, body)
