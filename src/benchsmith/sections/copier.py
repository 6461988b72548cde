"""merge-sections, ledger side: read section ledgers read-only and copy their rows into the
merged ledger (invocation and attempt ids renumbered), tallying what is kept and dropped.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from benchsmith.errors import BenchsmithError, ConfigError
from benchsmith.records import Usage
from benchsmith.store.leak_rows import TABLE as LEAK_TABLE
from benchsmith.store.leak_rows import has_table as has_leak_table
from benchsmith.store.lock import RunInUse, in_use_message, live_holder
from benchsmith.store.readonly import connect_readonly
from benchsmith.store.rundir import existing_run_dir

_USAGE_KEYS = tuple(f.name for f in fields(Usage))


@dataclass
class Tally:
    """Tasks, request states, tokens and cost of one section's kept (or dropped) rows."""

    tasks: dict[str, int] = field(default_factory=dict)
    units: dict[str, int] = field(default_factory=dict)
    usage: dict[str, int] = field(
        default_factory=lambda: {"api_calls": 0, **{k: 0 for k in _USAGE_KEYS}}
    )
    spent_usd: float = 0.0

    def add_attempt(self, a: dict[str, Any]) -> None:
        self.usage["api_calls"] += 1
        for k in _USAGE_KEYS:
            self.usage[k] += int(a.get(k) or 0)
        # Same rule as Ledger.spend(): settled cost, or the reservation of an unsettled call.
        self.spent_usd += float(a.get("cost_usd") or 0.0)
        if a.get("status") == "sent":
            self.spent_usd += float(a.get("reserved_usd") or 0.0)

    def as_dict(self) -> dict[str, Any]:
        return {
            "tasks": dict(self.tasks),
            "units": dict(self.units),
            "usage": dict(self.usage),
            "spent_usd": self.spent_usd,
        }


def _cols(db: sqlite3.Connection, table: str) -> list[str]:
    return [r[1] for r in db.execute(f"PRAGMA table_info({table})")]


def _rows(db: sqlite3.Connection, sql: str, args: tuple[Any, ...] = ()) -> Iterator[dict[str, Any]]:
    cur = db.execute(sql, args)
    cols = [c[0] for c in cur.description]
    while True:
        batch = cur.fetchmany(1000)
        if not batch:
            return
        for r in batch:
            yield dict(zip(cols, r))


@dataclass
class Section:
    """One section run, its ledger open read-only."""

    name: str
    path: Path
    db: sqlite3.Connection
    keys: set[tuple[str, str]]
    stages: set[str]
    meta: dict[str, str]
    # units and tasks of plans a replan superseded: not the section's output, left out
    old_units: set[str] = field(default_factory=set)
    old_tasks: set[tuple[str, str]] = field(default_factory=set)

    def running_invocations(self) -> int:
        """Invocations still marked running: the run is not live (`load_section`), so they
        were interrupted."""
        return self.db.execute(
            "SELECT COUNT(*) FROM invocations WHERE status='running'"
        ).fetchone()[0]


def load_section(name: str, path: Path) -> Section:
    """Open section run `name` at `path`, its ledger read-only (of this benchsmith's schema
    or an older one: the copy reads the columns each version has)."""
    if not path.is_dir():
        raise ConfigError(str(path), "--section-run", f"section {name}: no such run directory")
    rd = existing_run_dir(path)
    holder = live_holder(path)
    if holder is not None:  # a live run's ledger is a moving target
        raise RunInUse(f"section {name}: {in_use_message(path, holder)}")
    db = connect_readonly(rd.ledger, older_ok=True)
    old_units, old_tasks = _superseded(db)
    keys = {(d, t) for d, t in db.execute("SELECT dataset, task_id FROM tasks")} - old_tasks
    keys |= {(d, t) for d, t, u in db.execute("SELECT dataset, task_id, unit_id FROM units")
             if u not in old_units}
    stages = {r[0] for r in db.execute("SELECT DISTINCT stage FROM units")}
    meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
    return Section(name, path, db, keys, stages, meta, old_units, old_tasks)


def _superseded(db: sqlite3.Connection) -> tuple[set[str], set[tuple[str, str]]]:
    """Unit ids and task keys outside the section's current plan (a replanned run exports
    its current plan only; so does the merge)."""
    # the ledger's plan pins (a table of ledgers made before pinning lacks)
    pinned = db.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='plans'")
    if pinned.fetchone() is None or db.execute("SELECT MAX(id) FROM plans").fetchone()[0] is None:
        return set(), set()
    old = "plan IS NOT (SELECT MAX(id) FROM plans)"
    units = {r[0] for r in db.execute(f"SELECT unit_id FROM units WHERE {old}")}
    tasks = {(d, t) for d, t in db.execute(f"SELECT dataset, task_id FROM tasks WHERE {old}")}
    return units, tasks


def _insert_sql(table: str, cols: list[str]) -> str:
    return f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})"


class Copier:
    """Copies section ledgers into the merged ledger, renumbering invocations and attempts."""

    def __init__(self, db: sqlite3.Connection, owner: dict[tuple[str, str], str]):
        self.db = db
        self.owner = owner
        self.dst_cols = {t: _cols(db, t) for t in ("tasks", "units", "invocations", "attempts")}
        self.next_inv = 1
        self.next_att = 1
        self.attempt_map: list[dict[str, Any]] = []

    def _source(
        self, s: Section, table: str, order: str
    ) -> tuple[list[str], Iterator[dict[str, Any]]]:
        cols = [c for c in _cols(s.db, table) if c in self.dst_cols[table]]
        return cols, _rows(s.db, f"SELECT {', '.join(cols)} FROM {table} ORDER BY {order}")

    def copy(self, s: Section) -> tuple[Tally, Tally, dict[int, int]]:
        """(kept, dropped, invocation id map) of one section."""
        kept, dropped = Tally(), Tally()
        db = self.db
        cols, rows = self._source(s, "tasks", "dataset, task_id")
        ins = _insert_sql("tasks", cols)
        for r in rows:
            key = (r["dataset"], r["task_id"])
            mine = key not in s.old_tasks and self.owner.get(key) == s.name
            tally = kept if mine else dropped
            tally.tasks[r["dataset"]] = tally.tasks.get(r["dataset"], 0) + 1
            if tally is kept:
                db.execute(ins, [r[c] for c in cols])

        # Invocations: renumbered; the message names the section and the old id.
        inv_map: dict[int, int] = {}
        cols, rows = self._source(s, "invocations", "id")
        ins = _insert_sql("invocations", cols)
        for r in rows:
            old = r["id"]
            inv_map[old] = r["id"] = self.next_inv
            r["message"] = f"[section {s.name}, invocation {old}] {r.get('message') or ''}".rstrip()
            db.execute(ins, [r[c] for c in cols])
            self.next_inv += 1

        kept_units: set[str] = set()
        cols, rows = self._source(s, "units", "unit_id")
        ins = _insert_sql("units", cols)
        for r in rows:
            mine = r["unit_id"] not in s.old_units
            mine = mine and self.owner.get((r["dataset"], r["task_id"])) == s.name
            tally = kept if mine else dropped
            tally.units[r["state"]] = tally.units.get(r["state"], 0) + 1
            if tally is not kept:
                continue
            try:
                db.execute(ins, [r[c] for c in cols])
            except sqlite3.IntegrityError:
                raise BenchsmithError(
                    f"section {s.name}: request {r['unit_id']} is already in an earlier "
                    "section; were the same tasks run twice?"
                ) from None
            kept_units.add(r["unit_id"])
        self._copy_leaks(s, kept_units)

        # Attempts: renumbered, invocation ids remapped; those of dropped tasks left out.
        cols, rows = self._source(s, "attempts", "id")
        ins = _insert_sql("attempts", cols)
        for r in rows:
            if r["unit_id"] not in kept_units:
                dropped.add_attempt(r)
                continue
            kept.add_attempt(r)
            old = r["id"]
            r["id"] = self.next_att
            if r["invocation"] not in inv_map:  # pragma: no cover - ledgers always have it
                raise BenchsmithError(
                    f"section {s.name}: attempt {old} names invocation {r['invocation']}, "
                    "which the ledger does not have"
                )
            r["invocation"] = inv_map[r["invocation"]]
            db.execute(ins, [r[c] for c in cols])
            self.attempt_map.append(
                {"section": s.name, "attempt_id": old, "merged_attempt_id": self.next_att}
            )
            self.next_att += 1
        return kept, dropped, inv_map

    def _copy_leaks(self, s: Section, kept_units: set[str]) -> None:
        """The gold-leak findings of the units kept (a section made before the guard has none)."""
        if not has_leak_table(s.db):
            return
        cols = [c for c in _cols(s.db, LEAK_TABLE) if c in _cols(self.db, LEAK_TABLE)]
        ins = _insert_sql(LEAK_TABLE, cols)
        for r in _rows(s.db, f"SELECT {', '.join(cols)} FROM {LEAK_TABLE} ORDER BY unit_id"):
            if r["unit_id"] in kept_units:
                self.db.execute(ins, [r[c] for c in cols])
