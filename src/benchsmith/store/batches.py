"""Batch jobs in the ledger: each input file, its provider ids and state, and its attempts.

Written before anything is uploaded, so a crashed or stopped run re-attaches to the batches
it already submitted instead of paying twice.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import orjson

from benchsmith.store.ledger import Ledger

TERMINAL_BATCH = ("completed", "failed", "expired", "cancelled")
_COLS = (
    "local_id, batch_id, invocation, model, endpoint, input_file_id, output_file_id, "
    "error_file_id, status, request_counts, errors, usage, n_requests, bytes, reserved_usd, "
    "created_at, updated_at, reconciled_at"
)
_JSON_COLS = ("request_counts", "errors", "usage")


def add_batch(
    ledger: Ledger, *, local_id: str, invocation: int, model: str, endpoint: str,
    n_requests: int, n_bytes: int, reserved_usd: float, items: list[tuple[str, int]],
) -> None:
    """Record a prepared (not yet uploaded) batch and the attempt of each of its requests.

    Call inside the transaction that wrote the attempts.
    """
    now = time.time()
    ledger.db.execute(
        "INSERT INTO batches (local_id, invocation, model, endpoint, status, n_requests, bytes, "
        "reserved_usd, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
        (local_id, invocation, model, endpoint, "prepared", n_requests, n_bytes, reserved_usd, now, now),
    )
    ledger.db.executemany(
        "INSERT INTO batch_items (local_id, unit_id, attempt_id) VALUES (?,?,?)",
        [(local_id, uid, aid) for uid, aid in items],
    )


def update_batch(ledger: Ledger, local_id: str, **fields: Any) -> None:
    if not fields:
        return
    cols, vals = [], []
    for k, v in fields.items():
        cols.append(f"{k}=?")
        vals.append(orjson.dumps(v).decode() if k in _JSON_COLS and v is not None else v)
    cols.append("updated_at=?")
    vals.append(time.time())
    ledger.db.execute(f"UPDATE batches SET {', '.join(cols)} WHERE local_id=?", (*vals, local_id))


def _row(r: tuple[Any, ...]) -> dict[str, Any]:
    d = dict(zip([c.strip() for c in _COLS.split(",")], r))
    for k in _JSON_COLS:
        if d[k] is not None:
            d[k] = orjson.loads(d[k])
    return d


def batches(ledger: Ledger, *, unreconciled: bool = False) -> list[dict[str, Any]]:
    q = f"SELECT {_COLS} FROM batches"
    if unreconciled:
        q += " WHERE reconciled_at IS NULL"
    return [_row(r) for r in ledger.db.execute(q + " ORDER BY created_at, local_id")]


def batch(ledger: Ledger, local_id: str) -> dict[str, Any] | None:
    r = ledger.db.execute(f"SELECT {_COLS} FROM batches WHERE local_id=?", (local_id,)).fetchone()
    return _row(r) if r else None


def items(ledger: Ledger, local_id: str) -> dict[str, int]:
    """unit_id -> attempt id, for the requests of one batch."""
    return dict(
        ledger.db.execute("SELECT unit_id, attempt_id FROM batch_items WHERE local_id=?", (local_id,))
    )


def units_in_flight(ledger: Ledger) -> set[str]:
    """Units carried by batches not yet reconciled (never put them in another batch)."""
    return {
        r[0]
        for r in ledger.db.execute(
            "SELECT i.unit_id FROM batch_items i JOIN batches b USING (local_id) "
            "WHERE b.reconciled_at IS NULL"
        )
    }


def mark_overbilled(
    ledger: Ledger, local_id: str, note: Callable[[float, float], str]
) -> list[tuple[float, float]]:
    """Set `note(reserved, cost)` as the error of each settled attempt of a batch that cost
    more than its reservation; (reserved, cost) of each. Inside the caller's transaction."""
    rows = ledger.db.execute(
        "SELECT a.id, a.reserved_usd, a.cost_usd FROM attempts a JOIN batch_items i "
        "ON a.id = i.attempt_id WHERE i.local_id=? AND a.reserved_usd > 0 "
        "AND a.cost_usd > a.reserved_usd + 1e-12", (local_id,),
    ).fetchall()
    ledger.db.executemany(
        "UPDATE attempts SET error=? WHERE id=?", [(note(r, c), aid) for aid, r, c in rows]
    )
    return [(r, c) for _aid, r, c in rows]


def seen_lines(ledger: Ledger, hashes: list[str]) -> set[str]:
    out: set[str] = set()
    for i in range(0, len(hashes), 500):
        part = hashes[i : i + 500]
        q = "SELECT line_hash FROM ingested_lines WHERE line_hash IN (%s)" % ",".join("?" * len(part))
        out.update(r[0] for r in ledger.db.execute(q, part))
    return out


def mark_lines(ledger: Ledger, hashes: list[str], source: str) -> None:
    now = time.time()
    ledger.db.executemany(
        "INSERT OR IGNORE INTO ingested_lines VALUES (?,?,?)", [(h, source, now) for h in hashes]
    )
