"""The ledger's `gold_leaks` table (migration m005): written with the units it describes,
read by status, validate-run, the manifests and the exports.

A unit's finding travels in its spec (`meta.gold_leak`, see leaks/guard.py); `insert_leaks`
copies it into the table inside the transaction that inserts the unit, and ends a unit
planned under `leak_policy: skip` that carries gold `skipped` at once, before anything could
send it. Readers accept a ledger made before the table existed (opened read-only, not
migrated): it has no findings.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable
from typing import Any

import orjson

from benchsmith.leaks.finding import META_KEY, skip_reason
from benchsmith.store.ledger_reads import CURRENT_PLAN

TABLE = "gold_leaks"


def insert_leaks(db: sqlite3.Connection, rows: Iterable[tuple[str, dict[str, Any]]]) -> None:
    """Record the findings of units being inserted (unit id, spec); skip those the policy
    skips. Only units still pending are skipped: one an earlier plan finished stays."""
    found = []
    for uid, s in rows:
        meta = s.get("meta")
        g = meta.get(META_KEY) if meta else None
        if g:
            found.append((uid, s, g))
    if not found:
        return
    dumps = orjson.dumps
    db.executemany(
        f"INSERT OR REPLACE INTO {TABLE} (unit_id, dataset, task_id, policy, matched, "
        "fields_json, gold_fields_json, sample, removed_json) VALUES (?,?,?,?,?,?,?,?,?)",
        [(uid, s["dataset"], s["task_id"], g.get("policy", "warn"), int(g.get("matched", 0)),
          dumps(g.get("fields") or {}), dumps(g.get("gold_fields") or []),
          str(g.get("sample", "")), dumps(g["removed"]) if g.get("removed") else None)
         for uid, s, g in found],
    )
    now = time.time()
    skips = [(why, now, uid) for uid, _, g in found if (why := skip_reason(g))]
    if skips:
        db.executemany(
            "UPDATE units SET state='skipped', reason=?, updated_at=? "
            "WHERE unit_id=? AND state='pending'", skips,
        )


def has_table(db: sqlite3.Connection) -> bool:
    return db.execute(
        "SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (TABLE,)
    ).fetchone() is not None


def findings(db: sqlite3.Connection) -> list[dict[str, Any]]:
    """The findings of the current plan's units, by dataset, task and unit id."""
    if not has_table(db):
        return []
    cur = db.execute(
        "SELECT g.unit_id, g.dataset, g.task_id, g.policy, g.matched, g.fields_json, "
        "g.gold_fields_json, g.sample, g.removed_json, units.state, units.reason "
        f"FROM {TABLE} g JOIN units USING (unit_id) WHERE {CURRENT_PLAN} "
        "ORDER BY g.dataset, g.task_id, g.unit_id"
    )
    loads = orjson.loads
    return [
        {"unit_id": uid, "dataset": ds, "task_id": tid, "policy": pol, "matched": n,
         "fields": loads(f), "gold_fields": loads(gf), "sample": sample,
         "removed": loads(rm) if rm else {}, "state": state, "reason": reason}
        for uid, ds, tid, pol, n, f, gf, sample, rm, state, reason in cur
    ]


def leaking_tasks(db: sqlite3.Connection) -> set[tuple[str, str]]:
    """(dataset, task id) of the tasks one of whose current requests carries gold."""
    if not has_table(db):
        return set()
    return {(ds, tid) for ds, tid in db.execute(
        f"SELECT DISTINCT g.dataset, g.task_id FROM {TABLE} g JOIN units USING (unit_id) "
        f"WHERE g.matched > 0 AND {CURRENT_PLAN}"
    )}


def manifest_rows(found: list[dict[str, Any]], dataset: str) -> list[dict[str, Any]]:
    """manifests/<dataset>_gold_leaks.json: one row per (task, field) whose text carried
    gold into a request (the most gold lines one request carried), or had lines removed."""
    per: dict[tuple[str, str], dict[str, Any]] = {}
    for f in found:
        if f["dataset"] != dataset:
            continue
        for field, n in f["fields"].items():
            row = per.setdefault((f["task_id"], field), {
                "task_id": f["task_id"], "field": field, "matched_lines": 0,
                "removed_lines": 0, "skipped": False})
            row["matched_lines"] = max(row["matched_lines"], n)
            row["skipped"] = row["skipped"] or f["state"] == "skipped"
        for field, lines in f["removed"].items():
            row = per.setdefault((f["task_id"], field), {
                "task_id": f["task_id"], "field": field, "matched_lines": 0,
                "removed_lines": 0, "skipped": False})
            row["removed_lines"] = max(row["removed_lines"], len(lines))
    return [per[k] for k in sorted(per)]


def summary(found: list[dict[str, Any]]) -> dict[str, Any]:
    """Counts for status / validate-run: requests and tasks carrying gold, per field,
    skipped, and requests with lines removed."""
    leaking = [f for f in found if f["matched"]]
    by_field: dict[str, int] = {}
    for f in leaking:
        for k in f["fields"]:
            by_field[k] = by_field.get(k, 0) + 1
    return {
        "requests": len(leaking),
        "tasks": len({(f["dataset"], f["task_id"]) for f in leaking}),
        "by_field": by_field,
        "skipped": sum(1 for f in leaking if f["state"] == "skipped"),
        "redacted": sum(1 for f in found if f["removed"]),
    }


def describe(s: dict[str, Any]) -> str:
    """`status` and validate-run say it the same way."""
    if not s["requests"] and not s["redacted"]:
        return "no request carries its task's gold"
    fields = ", ".join(f"{k} {n}" for k, n in s["by_field"].items())
    out = f"{s['requests']} request(s) of {s['tasks']} task(s) carry gold"
    out += f" ({fields})" if fields else ""
    if s["skipped"]:
        out += f"; {s['skipped']} skipped"
    if s["redacted"]:
        out += f"; {s['redacted']} with context lines redacted"
    return out
