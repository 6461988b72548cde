"""Batch request lines: build `{custom_id, method, url, body}` for pending units, and cut them
into input files that respect the API limits (one model per file, 50,000 requests, 200 MB)
and the budget. Lines are streamed to disk, never held whole in memory.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import orjson

from benchsmith.config_sections import Price
from benchsmith.engine.budget import Budget
from benchsmith.engine.context import BYTES_PER_TOKEN, ContextLimits
from benchsmith.engine.history import UnitHistory
from benchsmith.engine.param_fallback import ParamFallback
from benchsmith.engine.unit_machine import max_output_tokens, reserve_usd
from benchsmith.engine.wire import PATHS, build_body
from benchsmith.store.ledger import Unit

ENDPOINTS = {"/v1/responses": "responses", "/v1/chat/completions": "chat"}


def endpoint_for(api: str) -> str:
    return "/v1" + PATHS[api]


@dataclass(frozen=True)
class Line:
    unit_id: str
    model: str
    data: bytes  # one JSONL line, newline included
    reserve_usd: float
    too_long: str | None = None  # the skip reason when the prompt cannot fit the model


# Bytes a line adds around its body: {"custom_id":"...","method":"POST","url":"...","body":...}
_WRAP = len(orjson.dumps({"custom_id": "", "method": "POST", "url": "", "body": None})) - 4
# Tokens that framing (a few per message) can add: well above what any request carries.
_NEAR = 4096


def request_lines(
    units: Iterable[Unit],
    histories: dict[str, UnitHistory],
    *,
    api: str,
    structured: str,
    price_for: Callable[[str], Price | None],
    multiplier: float,
    bounds: tuple[int, int] | None = None,
    context: ContextLimits | None = None,
    fallback: ParamFallback | None = None,
) -> Iterator[Line]:
    """With `context`, a line whose prompt cannot fit its model says why (`too_long`);
    `fallback`: the parameters the endpoint refused, left out."""
    url = endpoint_for(api)
    limits = context.by_model if context is not None else {}
    for u in units:
        spec = u.spec
        h = histories.get(u.unit_id)
        messages = list(h.messages) if h and h.messages else spec["messages"]
        params = spec["params"]
        if fallback is not None:
            params = fallback.params_for(spec["model"], params)
        body = build_body(
            api=api, structured=structured, model=spec["model"], messages=messages,
            schema=spec["schema"], schema_name=spec["schema_name"], params=params,
            bounds=bounds, tools=spec.get("tools"), tool_choice=spec.get("tool_choice"),
            n=spec.get("n", 1),
        )
        data = orjson.dumps({"custom_id": u.unit_id, "method": "POST", "url": url, "body": body})
        max_out = max_output_tokens(spec["params"])
        reserve = reserve_usd(len(data), len(messages), max_out, spec.get("n", 1),
                              price_for(spec["model"]), multiplier)
        why = None
        # Only a request near its model's limit is measured in full (most are far below).
        if context is not None and len(data) // BYTES_PER_TOKEN + max_out + _NEAR > limits.get(
            spec["model"], context.default
        ):
            body_bytes = len(data) - _WRAP - len(u.unit_id) - len(url)
            why = context.check(spec["model"], body_bytes, messages, max_out)
        yield Line(u.unit_id, spec["model"], data + b"\n", reserve, why)


@dataclass
class Chunk:
    """One batch input file on disk: one model, within the request and byte limits."""

    model: str
    path: Path
    unit_ids: list[str] = field(default_factory=list)
    reserves: list[float] = field(default_factory=list)
    bytes: int = 0
    _fh: IO[bytes] | None = None

    @property
    def reserved_usd(self) -> float:
        return sum(self.reserves)

    def add(self, line: Line) -> None:
        assert self._fh is not None
        self._fh.write(line.data)
        self.unit_ids.append(line.unit_id)
        self.reserves.append(line.reserve_usd)
        self.bytes += len(line.data)

    def close(self) -> None:
        if self._fh is not None:
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self._fh.close()
            self._fh = None


@dataclass
class ChunkPlan:
    chunks: list[Chunk]
    budget_stopped: bool
    refused_usd: float = 0.0  # worst case of the first line that did not fit
    too_big: list[tuple[str, str]] = field(default_factory=list)  # (unit id, reason)
    too_long: list[tuple[str, str]] = field(default_factory=list)  # (unit id, skip reason)


def too_big_reason(n_bytes: int, max_bytes: int) -> str:
    return f"request line of {n_bytes} bytes exceeds the per-file cap of {max_bytes} bytes"


def plan_chunks(
    lines: Iterable[Line], *, workdir: Path, max_requests: int, max_bytes: int, budget: Budget | None,
) -> ChunkPlan:
    """Cut lines into chunk files. With a budget, each line's worst case is reserved first;
    the first line that does not fit stops the plan (later lines stay pending). A line over
    `max_bytes` alone goes in no file (the provider would refuse the file): it is returned in
    `too_big`, for its unit to fail."""
    workdir.mkdir(parents=True, exist_ok=True)
    open_by_model: dict[str, Chunk] = {}
    done: list[Chunk] = []

    def new_chunk(model: str) -> Chunk:
        fd, name = tempfile.mkstemp(dir=workdir, prefix="batch_input_", suffix=".jsonl")
        return Chunk(model=model, path=Path(name), _fh=os.fdopen(fd, "wb"))

    stopped, refused = False, 0.0
    too_big: list[tuple[str, str]] = []
    too_long: list[tuple[str, str]] = []
    for line in lines:
        if line.too_long is not None:  # never sent: the model could not take it
            too_long.append((line.unit_id, line.too_long))
            continue
        if len(line.data) > max_bytes:
            too_big.append((line.unit_id, too_big_reason(len(line.data), max_bytes)))
            continue
        if budget is not None and not budget.try_reserve(line.reserve_usd):
            stopped, refused = True, line.reserve_usd
            break
        ch = open_by_model.get(line.model)
        if ch is not None and (
            len(ch.unit_ids) >= max_requests or ch.bytes + len(line.data) > max_bytes
        ):
            ch.close()
            done.append(ch)
            ch = None
        if ch is None:
            ch = open_by_model[line.model] = new_chunk(line.model)
        ch.add(line)
    for ch in open_by_model.values():
        ch.close()
        done.append(ch)
    return ChunkPlan([c for c in done if c.unit_ids], stopped, refused, too_big, too_long)
