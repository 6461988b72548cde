"""The write side of the ledger's `attempts` table: every API call is a row written before it
is sent (its worst-case cost reserved) and settled after, or recorded whole when its result
arrives without a send (ingested batch output). A mixin of `Ledger` (uses its connection)."""

from __future__ import annotations

import sqlite3
import time
from typing import Any

from benchsmith.records import Usage
from benchsmith.store.units import dumps_value as _dumps


class LedgerAttempts:
    db: sqlite3.Connection

    def begin_attempt(
        self, unit_id: str, invocation: int, n: int, model: str, reserved_usd: float, key_hint: str
    ) -> int:
        cur = self.db.execute(
            "INSERT INTO attempts (unit_id, invocation, n, model, started_at, status, "
            "reserved_usd, key_hint) VALUES (?,?,?,?,?,?,?,?)",
            (unit_id, invocation, n, model, time.time(), "sent", reserved_usd, key_hint),
        )
        return int(cur.lastrowid or 0)

    def record_attempt(
        self, unit_id: str, invocation: int, model: str, key_hint: str, *, status: str,
        http_status: int | None, usage: Usage, cost_usd: float, raw_output: str | None = None,
        error: str | None = None, issues: list[str] | tuple[str, ...] | None = None,
    ) -> int:
        """A finished attempt in one INSERT (results that arrive without a prior send, e.g.
        ingested batch output). Numbered after the unit's earlier attempts."""
        now = time.time()
        cur = self.db.execute(
            "INSERT INTO attempts (unit_id, invocation, n, model, started_at, ended_at, status, "
            "http_status, input_tokens, cached_input_tokens, output_tokens, reasoning_tokens, "
            "reserved_usd, cost_usd, key_hint, raw_output, error, issues_json) "
            "VALUES (?,?,(SELECT COUNT(*) + 1 FROM attempts WHERE unit_id=?),?,?,?,?,?,?,?,?,?,"
            "0,?,?,?,?,?)",
            (unit_id, invocation, unit_id, model, now, now, status, http_status,
             usage.input_tokens, usage.cached_input_tokens, usage.output_tokens,
             usage.reasoning_tokens, cost_usd, key_hint, raw_output, error,
             _dumps(list(issues)) if issues else None),
        )
        return int(cur.lastrowid or 0)

    @staticmethod
    def attempt_row(
        unit_id: str, invocation: int, model: str, key_hint: str, *, status: str,
        http_status: int | None, usage: Usage, cost_usd: float, raw_output: str | None = None,
        error: str | None = None, issues: list[str] | tuple[str, ...] | None = None,
    ) -> tuple[Any, ...]:
        """The parameters of one `record_attempt`, for `record_attempts`."""
        now = time.time()
        return (unit_id, invocation, unit_id, model, now, now, status, http_status,
                usage.input_tokens, usage.cached_input_tokens, usage.output_tokens,
                usage.reasoning_tokens, cost_usd, key_hint, raw_output, error,
                _dumps(list(issues)) if issues else None)

    def record_attempts(self, rows: list[tuple[Any, ...]]) -> None:
        """Many `record_attempt`s (rows from `attempt_row`) in one statement, in order: each row
        is numbered after the unit's earlier attempts, including earlier rows of the same call."""
        self.db.executemany(
            "INSERT INTO attempts (unit_id, invocation, n, model, started_at, ended_at, status, "
            "http_status, input_tokens, cached_input_tokens, output_tokens, reasoning_tokens, "
            "reserved_usd, cost_usd, key_hint, raw_output, error, issues_json) "
            "VALUES (?,?,(SELECT COUNT(*) + 1 FROM attempts WHERE unit_id=?),?,?,?,?,?,?,?,?,?,"
            "0,?,?,?,?,?)",
            rows,
        )

    def record_ok_attempts(
        self, invocation: int, key_hint: str,
        rows: list[tuple[str, str, tuple[int, int, int, int], float, str]],
    ) -> None:
        """`record_attempt(..., status="ok", http_status=200, ...)` for many answers, in order:
        rows of (unit_id, model, usage as (input, cached input, output, reasoning) tokens,
        cost in USD, raw output)."""
        now = time.time()
        self.record_attempts([
            (uid, invocation, uid, model, now, now, "ok", 200, u[0], u[1], u[2], u[3], cost,
             key_hint, raw, None, None)
            for uid, model, u, cost, raw in rows
        ])

    def end_attempt(
        self,
        attempt_id: int,
        *,
        status: str,
        http_status: int | None,
        latency_s: float | None,
        usage: Usage | None,
        cost_usd: float | None,
        raw_output: str | None = None,
        error: str | None = None,
        issues: list[str] | tuple[str, ...] | None = None,
    ) -> None:
        u = usage or Usage()
        self.db.execute(
            "UPDATE attempts SET ended_at=?, status=?, http_status=?, latency_s=?, "
            "input_tokens=?, cached_input_tokens=?, output_tokens=?, reasoning_tokens=?, "
            "cost_usd=?, raw_output=?, error=?, issues_json=? WHERE id=?",
            (
                time.time(),
                status,
                http_status,
                latency_s,
                u.input_tokens,
                u.cached_input_tokens,
                u.output_tokens,
                u.reasoning_tokens,
                cost_usd,
                raw_output,
                error,
                _dumps(list(issues)) if issues else None,
                attempt_id,
            ),
        )
