"""A run's plans in the ledger: the history of the fingerprints it was planned with.

The newest plan is the current one: new units and tasks join it, exports read only it. A
replan records a new plan, takes over the units it asks for again (completed or not), and
marks the other pending units `skipped` (superseded); completed units are never touched
beyond that. A plan is `settled` once that is done, so a replan cut short is finished by the
next invocation with the same settings.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import orjson

from benchsmith.store.ledger import Ledger

SUPERSEDED = "superseded"


@dataclass(frozen=True)
class Plan:
    id: int
    fingerprint: str
    fields: dict[str, Any]
    created_at: float
    settled: bool


def _plan(r: tuple[Any, ...]) -> Plan:
    return Plan(int(r[0]), r[1], orjson.loads(r[2]), float(r[3]), r[4] is not None)


_COLS = "id, fingerprint, fields_json, created_at, settled_at"


def current_plan(ledger: Ledger) -> Plan | None:
    r = ledger.db.execute(f"SELECT {_COLS} FROM plans ORDER BY id DESC LIMIT 1").fetchone()
    return _plan(r) if r else None


def plan_history(ledger: Ledger) -> list[Plan]:
    return [_plan(r) for r in ledger.db.execute(f"SELECT {_COLS} FROM plans ORDER BY id")]


def record_plan(
    ledger: Ledger, fingerprint: str, fields: dict[str, Any], config: dict[str, Any], *,
    settled: bool,
) -> Plan:
    """Append a plan; it becomes the current one. The first plan of a run also takes every
    unit and task that has none (a run made before plans were pinned, or a merged run)."""
    now = time.time()
    with ledger.tx() as db:
        cur = db.execute(
            "INSERT INTO plans (fingerprint, fields_json, config_json, created_at, settled_at) "
            "VALUES (?,?,?,?,?)",
            (fingerprint, orjson.dumps(fields), orjson.dumps(config), now,
             now if settled else None),
        )
        pid = int(cur.lastrowid or 0)
        if db.execute("SELECT COUNT(*) FROM plans").fetchone()[0] == 1:
            for table in ("units", "tasks"):
                db.execute(f"UPDATE {table} SET plan=? WHERE plan IS NULL OR plan<>?", (pid, pid))
    return Plan(pid, fingerprint, fields, now, settled)


def adopt_units(ledger: Ledger, plan_id: int, unit_ids: list[str]) -> int:
    """Move existing units into `plan_id` (the plan asks for them again); returns how many
    moved. A unit an earlier replan superseded is pending again (it was never answered);
    otherwise state, result and attempts stay as they are."""
    before = ledger.db.total_changes
    with ledger.tx() as db:
        db.executemany(
            "UPDATE units SET plan=?1, "
            "state=CASE WHEN state='skipped' AND reason LIKE ?3 THEN 'pending' ELSE state END, "
            "reason=CASE WHEN state='skipped' AND reason LIKE ?3 THEN NULL ELSE reason END "
            "WHERE unit_id=?2 AND plan IS NOT ?1",
            [(plan_id, uid, SUPERSEDED + "%") for uid in unit_ids],
        )
    return ledger.db.total_changes - before


def supersede_pending(ledger: Ledger, plan: Plan) -> int:
    """Pending units of earlier plans -> skipped (superseded); returns how many."""
    before = ledger.db.total_changes
    with ledger.tx() as db:
        db.execute(
            "UPDATE units SET state='skipped', reason=?, updated_at=? "
            "WHERE state='pending' AND plan IS NOT ?",
            (f"{SUPERSEDED}: replanned as plan {plan.id}", time.time(), plan.id),
        )
    return ledger.db.total_changes - before


def settle(ledger: Ledger, plan: Plan) -> None:
    ledger.db.execute("UPDATE plans SET settled_at=? WHERE id=?", (time.time(), plan.id))
