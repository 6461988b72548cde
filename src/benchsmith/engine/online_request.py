"""One online request of a unit, ready to send: its body, and what it may cost in dollars
and tokens before it is sent."""

from __future__ import annotations

from typing import Any, NamedTuple

import orjson

from benchsmith.config_sections import Price
from benchsmith.engine.exec_common import EngineSettings
from benchsmith.engine.pricing import prompt_token_bound
from benchsmith.engine.unit_machine import max_output_tokens, reserve_usd
from benchsmith.engine.wire import build_body
from benchsmith.recipes.base import RequestSpec


class Request(NamedTuple):
    payload: bytes  # the JSON body
    reserve: float  # worst-case USD, reserved from the budget before the send
    tokens: int  # worst-case tokens, for the rate limiter
    too_long: str | None  # the skip reason when the prompt cannot fit the model


def build_request(s: EngineSettings, spec: RequestSpec, messages: list[dict[str, Any]],
                  price: Price | None) -> Request:
    body = build_body(
        api=s.api, structured=s.structured, model=spec.model, messages=messages,
        schema=spec.schema, schema_name=spec.schema_name, params=spec.params,
        extra=s.extra_body or None, bounds=s.schema_bounds, tools=spec.tools,
        tool_choice=spec.tool_choice, n=spec.n,
    )
    payload = orjson.dumps(body)
    max_out = max_output_tokens(spec.params)
    too_long = s.context.check(spec.model, len(payload), messages, max_out) if s.context else None
    return Request(
        payload,
        reserve_usd(len(payload), len(messages), max_out, spec.n, price),
        prompt_token_bound(len(payload), len(messages)) + max_out,
        too_long,
    )
