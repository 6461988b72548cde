"""Re-opening failed and invalid units (`run --resume --retry-failed / --retry-invalid`).

A re-opened unit goes back to `pending` for a new attempt; its earlier attempts stay in
`attempts`. Each state change is a row of `unit_resets` keeping the state and reason the unit
left and its last attempt id then: retry counters (validation re-asks, transient errors)
count only the attempts after it, so a unit that exhausted its retries gets a fresh set.

Chains (a stage that needs itself, e.g. plans with diversity): a call that ended without an
answer was followed by the next call, shown only the plans accepted before it. Re-opening that
call sets aside (`skipped`, reason CHAIN_SUPERSEDED) the rest of its chain when none of it has
an answer yet, so the retried call plans the chain again, with its own plans shown. If it
fails again, the set-aside calls come back (`revive_superseded`). When a later call already
has an answer, nothing is set aside and the retried call plans no new call.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from benchsmith.store.ledger import Ledger
from benchsmith.store.ledger_reads import CURRENT_PLAN

CHAIN_SUPERSEDED = "superseded: an earlier call of its chain was re-opened"
_LIVE = ("pending", "failed", "invalid")  # states of a chain call that has no answer yet


@dataclass(frozen=True)
class Reopened:
    failed: int = 0
    invalid: int = 0
    superseded: int = 0  # later chain calls set aside, planned again after the retried call

    @property
    def total(self) -> int:
        return self.failed + self.invalid


def reopen_units(ledger: Ledger, *, failed: bool, invalid: bool) -> Reopened:
    """Put `failed` and/or `invalid` units back to `pending`, in one transaction."""
    states = [s for s, on in (("failed", failed), ("invalid", invalid)) if on]
    if not states:
        return Reopened()
    db = ledger.db
    rows = db.execute(f"SELECT unit_id, parent_id, state, {CURRENT_PLAN} FROM units").fetchall()
    state = {uid: st for uid, _p, st, _c in rows}
    # Units of a superseded plan are not the run's output: sending them again would pay
    # for answers no export holds.
    current = {uid for uid, _p, _s, cur in rows if cur}
    parent = {uid: p for uid, p, _s, _c in rows}
    kids: dict[str, list[str]] = {}
    for uid, p, _s, _c in rows:
        if p is not None:
            kids.setdefault(p, []).append(uid)
    in_flight = {r[0] for r in db.execute("SELECT DISTINCT unit_id FROM attempts WHERE status='sent'")}

    def depth(uid: str) -> int:
        n, p = 0, parent.get(uid)
        while p is not None:
            n, p = n + 1, parent.get(p)
        return n

    chosen = sorted((uid for uid, st in state.items() if st in states and uid in current), key=depth)
    reopen: list[str] = []
    aside: set[str] = set()
    for uid in chosen:
        if uid in aside:
            continue
        reopen.append(uid)
        below = _descendants(uid, kids)
        # Set aside only a chain tail with no answer and nothing awaiting one.
        if below and all(state[d] in _LIVE + ("skipped",) and d not in in_flight for d in below):
            aside.update(d for d in below if state[d] in _LIVE)
    counts = {"failed": 0, "invalid": 0}
    for uid in reopen:
        counts[state[uid]] += 1
    with ledger.tx():
        _reset(ledger, reopen, "pending", None)
        _reset(ledger, sorted(aside), "skipped", CHAIN_SUPERSEDED)
    return Reopened(counts["failed"], counts["invalid"], len(aside))


def revive_superseded(ledger: Ledger, ids: list[str]) -> list[str]:
    """Of `ids`, the chain calls set aside by a re-open, back to `pending` (the re-opened call
    ended without an answer again, so the chain goes on as before). Returns those ids."""
    back = [uid for uid, st, reason in _states(ledger, ids)
            if st == "skipped" and reason == CHAIN_SUPERSEDED]
    _reset(ledger, back, "pending", None)
    return back


def has_live_child(ledger: Ledger, parent_id: str) -> bool:
    """Whether a unit already has a child that was not set aside (its chain went on)."""
    return ledger.db.execute(
        "SELECT 1 FROM units WHERE parent_id=? AND NOT (state='skipped' AND reason=?) LIMIT 1",
        (parent_id, CHAIN_SUPERSEDED),
    ).fetchone() is not None


def was_reopened(ledger: Ledger, unit_id: str) -> bool:
    return ledger.db.execute(
        "SELECT 1 FROM unit_resets WHERE unit_id=? AND new_state='pending' LIMIT 1", (unit_id,)
    ).fetchone() is not None


def _descendants(uid: str, kids: dict[str, list[str]]) -> list[str]:
    out, todo = [], list(kids.get(uid, ()))
    while todo:
        d = todo.pop()
        out.append(d)
        todo.extend(kids.get(d, ()))
    return out


def _states(ledger: Ledger, ids: list[str]) -> list[tuple[str, str, str | None]]:
    out: list[tuple[str, str, str | None]] = []
    for i in range(0, len(ids), 500):
        part = ids[i : i + 500]
        out += ledger.db.execute(
            f"SELECT unit_id, state, reason FROM units WHERE unit_id IN ({','.join('?' * len(part))})",
            part,
        ).fetchall()
    return out


def _reset(ledger: Ledger, ids: list[str], new_state: str, reason: str | None) -> None:
    """Record, then apply, a state change of units, in one transaction (the caller's, if any)."""
    if ids and not ledger.db.in_transaction:
        with ledger.tx():
            _reset(ledger, ids, new_state, reason)
        return
    now = time.time()
    for i in range(0, len(ids), 500):
        part = ids[i : i + 500]
        marks = ",".join("?" * len(part))
        ledger.db.execute(
            "INSERT INTO unit_resets (unit_id, at, prev_state, prev_reason, new_state, after_attempt) "
            "SELECT u.unit_id, ?, u.state, u.reason, ?, "
            "COALESCE((SELECT MAX(a.id) FROM attempts a WHERE a.unit_id=u.unit_id), 0) "
            f"FROM units u WHERE u.unit_id IN ({marks}) ORDER BY u.unit_id",
            [now, new_state, *part],
        )
        ledger.db.execute(
            f"UPDATE units SET state=?, reason=?, result_json=NULL, updated_at=? "
            f"WHERE unit_id IN ({marks})",
            [new_state, reason, now, *part],
        )


def reopened_ids(ledger: Ledger) -> set[str]:
    """Every unit that was ever re-opened."""
    return {r[0] for r in ledger.db.execute(
        "SELECT DISTINCT unit_id FROM unit_resets WHERE new_state='pending'"
    )}


def children_after_reopen(
    ledger: Ledger, parent_id: str, rows: list[tuple[str, dict[str, Any]]],
) -> tuple[list[tuple[str, dict[str, Any]]], list[str]]:
    """What a re-opened unit that just finished plans: (rows to insert, ids revived).

    None when its chain already went on (a later call has an answer or awaits one); else its
    rows, the set-aside calls among them back to pending."""
    if not rows or has_live_child(ledger, parent_id):
        return [], []
    return rows, revive_superseded(ledger, [uid for uid, _ in rows])
