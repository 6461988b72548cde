"""The unit state machine: what ends a unit, and what its next request may cost.

One rule for the online executor, the batch executor's reconcile and offline ingest:

  ok         a valid answer: the unit is done (callers finish it without asking here)
  invalid    an answer that fails validation: re-asked with the issues fed back, up to the
             stage's max_validation_retries; then the unit is `invalid`
  transient  429 / 5xx / 408 / 409, timeouts, connection errors, malformed answers, and
             batch lines that never ran (expired, cancelled, missing): sent again, up to
             engine.max_retries; then the unit is `failed`
  fatal      other 4xx: the unit is `failed` with the server's message
  fallback   a 400 refusing a parameter the request carried (engine/param_fallback.py): sent
             again at once without it, counted against no limit (the next refusal is fatal)
  stop       401 / 403 / exhausted quota: the whole run stops; the unit stays pending

Both counts are kept across invocations, since the unit was last re-opened (`--retry-failed`
/ `--retry-invalid`, store/reopen.py): a run that keeps crashing or stopping must not retry a
unit forever. `UnitState` is rebuilt from the ledger's attempts (`is_transient`, or
`TRANSIENT_SQL` where attempts are counted in SQL) by whoever resumes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from benchsmith.config_sections import Price
from benchsmith.engine.pricing import worst_case_usd

# Attempt statuses that are transient failures (besides a retryable `http_error`).
TRANSIENT_STATUSES = (
    "malformed", "timeout", "connection_error", "missing", "batch_expired", "batch_cancelled",
    "request_timeout", "batch_error",
)
RETRYABLE_HTTP = (408, 409, 429)  # and every status >= 500

# `is_transient` as an SQL condition on `attempts` rows.
TRANSIENT_SQL = (
    f"(status IN ({','.join(repr(s) for s in TRANSIENT_STATUSES)}) OR (status='http_error' "
    f"AND (http_status IN {RETRYABLE_HTTP} OR http_status>=500)))"
)


def classify_status(status: int, message: str) -> str:
    """'transient', 'fatal' or 'stop' for a non-200 HTTP status."""
    if status in (401, 403) or (status == 429 and "quota" in message.lower()):
        return "stop"
    if status in RETRYABLE_HTTP or status >= 500:
        return "transient"
    return "fatal"


def is_transient(status: str, http_status: int | None) -> bool:
    """Whether a recorded attempt counts against engine.max_retries. By status alone: a
    429 that stopped the run (exhausted quota) counts too, its message is not kept apart."""
    if status == "http_error":
        return http_status is not None and (http_status in RETRYABLE_HTTP or http_status >= 500)
    return status in TRANSIENT_STATUSES


@dataclass(frozen=True)
class Limits:
    max_retries: int  # engine.max_retries
    max_validation_retries: int  # the stage's


@dataclass(frozen=True)
class UnitState:
    """A unit's failed tries since it was last re-opened, over all invocations."""

    transient: int = 0
    invalid: int = 0


@dataclass(frozen=True)
class Failure:
    """How an attempt went wrong: kind ('invalid', 'transient', 'fatal', 'fallback' or
    'stop') and why ('HTTP 500: message', 'timeout', 'malformed answers', ...); `issues` of
    an invalid answer."""

    kind: str
    why: str
    issues: tuple[str, ...] = ()


@dataclass(frozen=True)
class Decision:
    """`action`: 'retry' (send the same request again), 'reask' (send it with the issues fed
    back), 'fail' / 'invalid' (the unit ends so, with `reason`), or 'stop' (the run stops,
    the unit stays pending). `state`: the unit's counts with this attempt."""

    action: str
    state: UnitState
    reason: str | None = None


def http_failure(status: int, message: str) -> Failure:
    """The failure of a non-200 HTTP answer (online or a batch line)."""
    return Failure(classify_status(status, message), f"HTTP {status}: {message}")


def next_step(state: UnitState, failure: Failure, limits: Limits) -> Decision:
    """What follows a failed attempt of a unit in `state`."""
    kind = failure.kind
    if kind == "transient":
        n = state.transient + 1
        state = UnitState(n, state.invalid)
        if n > limits.max_retries:
            return Decision("fail", state, f"{failure.why} after {n} tries"[:500])
        return Decision("retry", state)
    if kind == "invalid":
        n = state.invalid + 1
        state = UnitState(state.transient, n)
        if n > limits.max_validation_retries:
            return Decision("invalid", state, f"validation: {failure.issues[0]}"[:500])
        return Decision("reask", state)
    if kind == "fatal":
        return Decision("fail", state, failure.why[:500])
    if kind == "fallback":
        return Decision("retry", state)
    if kind == "stop":
        return Decision("stop", state, failure.why)
    raise ValueError(f"unknown failure kind {kind!r}")


def validation_exhausted(state: UnitState, limits: Limits) -> bool:
    """A pending unit already past its re-asks (e.g. the limit was lowered): never sent."""
    return state.invalid > limits.max_validation_retries


def max_output_tokens(params: dict[str, Any]) -> int:
    return int(params.get("max_output_tokens", 0) or 0)


def reserve_usd(body_bytes: int, n_messages: int, max_out: int, n: int, price: Price | None,
                multiplier: float = 1.0) -> float:
    """A request's worst-case cost, reserved before it is sent: every one of its `n` choices
    is billed up to `max_out` (`max_output_tokens` of its params)."""
    return worst_case_usd(body_bytes, n_messages, max_out * n, price, multiplier)
