"""The model's context window: a request whose prompt does not fit is never sent.

Its unit ends `skipped` with the reason `prompt_too_long: ~N tokens > limit M`, at plan time
(dry-run and run, online and batch) and again before each send (a unit planned during the
run, a re-ask that grew). N estimates the request at BYTES_PER_TOKEN bytes a token (the usual
rate for English and code), plus message framing and `max_output_tokens`, which the server
reserves too. An estimate, not the budget's one-token-a-byte worst case: that would skip
prompts that fit (a 100 KB prompt is ~25k tokens, not 100k), and a prompt the estimate lets
through that is still too long is only refused by the server (a failed unit, not billed).
With the local provider the limit is `local.n_ctx`, only the messages' text counts (the
schema becomes a grammar, not prompt text) and the output does not (the server shortens it
to fit).

A skipped unit does not continue a chain: its successors would be as long. When the limit is
raised, the next dry-run or run re-opens the units that now fit.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from benchsmith.engine.history import load_histories
from benchsmith.engine.pricing import prompt_token_bound
from benchsmith.engine.unit_machine import max_output_tokens
from benchsmith.engine.wire import build_body
from benchsmith.store.ledger import Ledger
from benchsmith.store.ledger_reads import CURRENT_PLAN

DEFAULT_MAX_CONTEXT_TOKENS = 400_000
BYTES_PER_TOKEN = 4
REASON = "prompt_too_long"
# A request body is its spec's messages, schema and params in another wrapping: a spec this
# much shorter than the limit cannot be too long (only longer specs are built and measured).
_SPEC_SLACK_BYTES = 65_536


def estimated_tokens(n_bytes: int, n_messages: int) -> int:
    """Prompt tokens of `n_bytes` of request in `n_messages` messages (framing included)."""
    return -(-n_bytes // BYTES_PER_TOKEN) + prompt_token_bound(0, n_messages)


@dataclass(frozen=True)
class ContextLimits:
    by_model: dict[str, int]
    default: int
    local: bool
    api: str
    structured: str
    bounds: tuple[int, int] | None = None
    max_output: int = 0  # the largest max_output_tokens of the configured models

    @classmethod
    def from_config(cls, cfg: Any, api: str, structured: str) -> ContextLimits:
        """`api`/`structured`: the wire the requests go out on (planner.wire_for)."""
        local = cfg.provider == "local"
        bounds = (
            (cfg.local.max_string_chars, cfg.local.max_array_items)
            if structured == "llama_cpp" else None
        )
        default = cfg.local.n_ctx if local else DEFAULT_MAX_CONTEXT_TOKENS
        models = [cfg.model, *cfg.all_models()]
        by_model = {m.name: m.max_context_tokens or default for m in models}
        max_out = max(m.max_output_tokens for m in models)
        return cls(by_model, default, local, api, structured, bounds, max_out)

    def limit(self, model: str) -> int:
        return self.by_model.get(model, self.default)

    def need(self, body_bytes: int, messages: Sequence[dict[str, Any]], max_out: int) -> int:
        """Estimated tokens of one request (see the module docstring)."""
        if self.local:
            text = sum(len(str(m.get("content", "")).encode()) for m in messages)
            return estimated_tokens(text, len(messages))
        return estimated_tokens(body_bytes, len(messages)) + max_out

    def check(self, model: str, body_bytes: int, messages: Sequence[dict[str, Any]],
              max_out: int) -> str | None:
        """The skip reason when the request cannot fit the model's context, else None."""
        need, lim = self.need(body_bytes, messages, max_out), self.limit(model)
        return f"{REASON}: ~{need} tokens > limit {lim}" if need > lim else None

    def check_spec(self, spec: dict[str, Any], messages: Sequence[dict[str, Any]] | None = None
                   ) -> str | None:
        msgs = list(messages if messages is not None else spec["messages"])
        body = build_body(
            api=self.api, structured=self.structured, model=spec["model"], messages=msgs,
            schema=spec["schema"], schema_name=spec["schema_name"], params=spec["params"],
            bounds=self.bounds,
        )
        max_out = max_output_tokens(spec["params"])
        return self.check(spec["model"], len(orjson.dumps(body)), msgs, max_out)


def skip_too_long(ledger: Ledger, limits: ContextLimits, *, scan: bool = True) -> tuple[int, int]:
    """Skip the pending units that cannot fit; re-open skipped ones that now do.

    Returns (skipped, re-opened). Only specs within `_SPEC_SLACK_BYTES` of the smallest
    limit (in bytes) are measured, so a run of ordinary prompts costs one query. `scan=False`
    only re-opens: for callers that check each request as they build it (batch lines).
    """
    smallest = min([limits.default, *limits.by_model.values()])
    room = smallest if limits.local else smallest - limits.max_output
    threshold = room * BYTES_PER_TOKEN - _SPEC_SLACK_BYTES
    db = ledger.db
    # A unit with a request in flight (a submitted batch, a crashed send) is left to it.
    long_ids = [] if not scan else [r[0] for r in db.execute(
        "SELECT unit_id FROM units WHERE state='pending' AND length(spec_json) > ? "
        "AND unit_id NOT IN (SELECT unit_id FROM attempts WHERE status='sent')", (threshold,)
    )]
    skip = []
    if long_ids:
        histories = load_histories(ledger)
        for u in ledger.units_by_id(long_ids).values():
            h = histories.get(u.unit_id)
            why = limits.check_spec(u.spec, h.messages if h and h.messages else None)
            if why:
                skip.append((u.unit_id, "skipped", why, None))
    reopen = []
    # Only the current plan's: a superseded plan's requests are never sent again.
    was_skipped = [r[0] for r in db.execute(
        f"SELECT unit_id FROM units WHERE state='skipped' AND reason LIKE ? AND {CURRENT_PLAN}",
        (REASON + ":%",),
    )]
    if was_skipped:
        for u in ledger.units_by_id(was_skipped).values():
            if limits.check_spec(u.spec) is None:
                reopen.append((time.time(), u.unit_id))
    if skip or reopen:
        with ledger.tx():
            if skip:
                ledger.finish_units(skip)
            db.executemany(
                "UPDATE units SET state='pending', reason=NULL, updated_at=? "
                "WHERE unit_id=? AND state='skipped'", reopen,
            )
    return len(skip), len(reopen)


def skip_units(ledger: Ledger, rows: list[tuple[str, str]]) -> None:
    """End units `skipped` with their reason: (unit id, reason) each, in one transaction."""
    if rows:
        with ledger.tx():
            ledger.finish_units([(uid, "skipped", why, None) for uid, why in rows])


def is_too_long(reason: str | None) -> bool:
    return bool(reason) and str(reason).startswith(REASON + ":")
