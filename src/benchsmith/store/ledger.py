"""The run ledger: SQLite in WAL mode, the source of truth of a run.

Every planned unit (one request of one stage for one task) has a row in `units` and ends in
exactly one terminal state: ok, invalid, failed or skipped. Every API call is a row in
`attempts`, written *before* it is sent (with its worst-case cost reserved) and settled after,
so a crash at any moment leaves a ledger from which resume is a query and spend is never
under-counted. No secret ever enters a row.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from benchsmith.records import Task
from benchsmith.store.io_errors import LedgerUnreadable, connect_ledger
from benchsmith.store.leak_rows import insert_leaks
from benchsmith.store.ledger_attempts import LedgerAttempts
from benchsmith.store.ledger_reads import CURRENT_PLAN, NEWEST_PLAN, LedgerReads
from benchsmith.store.migrations import MIGRATIONS
from benchsmith.store.readonly import connect_readonly
from benchsmith.store.units import Unit, UnitRow, dumps_value as _dumps  # noqa: F401 - re-exported

TERMINAL = ("ok", "invalid", "failed", "skipped")

SCHEMA_VERSION = len(MIGRATIONS)


class Ledger(LedgerReads, LedgerAttempts):
    """Thin, synchronous access to the run's SQLite file. One instance per process."""

    def __init__(self, path: Path):
        self.path = Path(path)
        if self.path.is_file() and self.path.stat().st_size == 0:
            # SQLite would take an empty file for a new ledger and start the run over.
            raise LedgerUnreadable(self.path, "the file is empty", "corrupt")
        self.db = connect_ledger(self.path)
        try:
            self.db.execute("PRAGMA journal_mode=WAL")
            # NORMAL in WAL: each commit survives a process kill; only power loss can drop the tail.
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.execute("PRAGMA busy_timeout=10000")
            self._migrate()
        except BaseException:
            self.db.close()
            raise

    @classmethod
    def open_readonly(cls, path: Path, *, older_ok: bool = False) -> Ledger:
        """The ledger for reading only: no migration, writes refused (`store/readonly.py`;
        `older_ok`: an older schema is read as it is, by a caller that knows its tables)."""
        led = cls.__new__(cls)  # __init__ would migrate
        led.path = Path(path)
        led.db = connect_readonly(led.path, older_ok=older_ok)
        return led

    # -- schema -------------------------------------------------------------------------
    def _migrate(self) -> None:
        version = self.db.execute("PRAGMA user_version").fetchone()[0]
        if version > len(MIGRATIONS):
            # Written by a newer benchsmith: its tables may mean other things; never touch it.
            raise LedgerUnreadable(
                self.path, f"schema version {version}; this one reads up to {len(MIGRATIONS)}",
                "newer",
            )
        for i, sql in enumerate(MIGRATIONS[version:], start=version + 1):
            self.db.execute("BEGIN IMMEDIATE")
            try:
                for stmt in sql.split(";"):
                    if stmt.strip():
                        self.db.execute(stmt)
                self.db.execute(f"PRAGMA user_version={i}")
                self.db.execute("COMMIT")
            except BaseException:
                self.db.execute("ROLLBACK")
                raise

    def close(self) -> None:
        self.db.close()

    def tx(self) -> _Tx:
        return _Tx(self.db)

    # -- meta / invocations -------------------------------------------------------------
    def set_meta(self, key: str, value: str) -> None:
        self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    def get_meta(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return row[0] if row else None

    def start_invocation(self, mode: str, budget_usd: float | None) -> int:
        # Callers hold the run lock: an invocation still 'running' lost its process (kill -9,
        # SIGTERM, crash) and is closed as interrupted.
        self.db.execute(
            "UPDATE invocations SET status='interrupted' WHERE status='running'"
        )
        cur = self.db.execute(
            "INSERT INTO invocations (started_at, status, mode, budget_usd) VALUES (?,?,?,?)",
            (time.time(), "running", mode, budget_usd),
        )
        return int(cur.lastrowid or 0)

    def end_invocation(self, inv: int, status: str, message: str = "") -> None:
        self.db.execute(
            "UPDATE invocations SET ended_at=?, status=?, message=? WHERE id=?",
            (time.time(), status, message, inv),
        )

    def invocations(self) -> list[dict[str, Any]]:
        cur = self.db.execute(
            "SELECT id, started_at, ended_at, status, mode, budget_usd, message FROM invocations "
            "ORDER BY id"
        )
        cols = [c[0] for c in cur.description]
        return [dict(zip(cols, r)) for r in cur.fetchall()]

    # -- tasks --------------------------------------------------------------------------
    def add_tasks(self, tasks: list[Task]) -> None:
        with self.tx():
            self.db.executemany(
                "INSERT OR REPLACE INTO tasks (dataset, task_id, task_json, plan) "
                f"VALUES (?, ?, ?, {NEWEST_PLAN})",
                [(t.dataset, t.id, _dumps(t.to_dict())) for t in tasks],
            )

    def tasks(self, dataset: str | None = None) -> list[Task]:
        """The tasks of the current plan."""
        q = f"SELECT task_json FROM tasks WHERE {CURRENT_PLAN}"
        args: tuple[Any, ...] = ()
        if dataset is not None:
            q += " AND dataset=?"
            args = (dataset,)
        rows = self.db.execute(q + " ORDER BY dataset, task_id", args).fetchall()
        return [Task.from_dict(orjson.loads(r[0])) for r in rows]

    def datasets(self) -> list[str]:
        return [r[0] for r in self.db.execute(
            f"SELECT DISTINCT dataset FROM tasks WHERE {CURRENT_PLAN} ORDER BY 1"
        )]

    # -- units --------------------------------------------------------------------------
    def add_units(self, rows: list[tuple[str, dict[str, Any]]]) -> int:
        """Insert planned units (id, spec); existing ids are left untouched. Returns new count."""
        before = self.db.total_changes
        with self.tx():
            self.insert_units(rows)
        return self.db.total_changes - before

    def insert_units(self, rows: list[tuple[str, dict[str, Any]]]) -> int:
        """`add_units` inside the caller's transaction (e.g. a GroupCommit). Returns new count.

        A new unit belongs to the newest plan (the one being carried out)."""
        now = time.time()
        before = self.db.total_changes
        self.db.executemany(
            "INSERT OR IGNORE INTO units (unit_id, dataset, task_id, stage, sample_index, "
            "parent_id, model, spec_json, created_at, updated_at, plan) "
            f"VALUES (?,?,?,?,?,?,?,?,?,?,{NEWEST_PLAN})",
            [
                (
                    uid,
                    s["dataset"],
                    s["task_id"],
                    s["stage"],
                    s["sample_index"],
                    s.get("parent_id"),
                    s["model"],
                    _dumps(s),
                    now,
                    now,
                )
                for uid, s in rows
            ],
        )
        insert_leaks(self.db, rows)
        return self.db.total_changes - before

    def insert_units_after(self, rows: list[tuple[str, dict[str, Any]]]) -> Exception | None:
        """`insert_units` as its own step inside the caller's transaction: if it fails, only
        the insert is rolled back (what the caller wrote before it stays) and the error is
        returned, as if it had been a separate transaction after the caller's."""
        self.db.execute("SAVEPOINT insert_units")
        try:
            self.insert_units(rows)
        except Exception as e:
            self.db.execute("ROLLBACK TO insert_units")
            self.db.execute("RELEASE insert_units")
            return e
        self.db.execute("RELEASE insert_units")
        return None

    def _unit(self, r: tuple[Any, ...]) -> Unit:
        return Unit(
            unit_id=r[0],
            dataset=r[1],
            task_id=r[2],
            stage=r[3],
            sample_index=r[4],
            parent_id=r[5],
            model=r[6],
            spec=orjson.loads(r[7]),
            state=r[8],
            reason=r[9],
            result=orjson.loads(r[10]) if r[10] is not None else None,
        )

    _UNIT_COLS = (
        "unit_id, dataset, task_id, stage, sample_index, parent_id, model, spec_json, state, "
        "reason, result_json"
    )

    def units(
        self, state: str | None = None, ids: list[str] | None = None, *,
        dataset: str | None = None, stage: str | None = None, current_plan: bool = False,
        finished: bool = False,
    ) -> Iterator[Unit]:
        """Units in id order within a task; `finished`: only those no longer pending."""
        q = f"SELECT {self._UNIT_COLS} FROM units"
        where: list[str] = [CURRENT_PLAN] if current_plan else []
        if finished:
            where.append("state<>'pending'")
        args: list[Any] = []
        for col, val in (("state", state), ("dataset", dataset), ("stage", stage)):
            if val is not None:
                where.append(f"{col}=?")
                args.append(val)
        if where:
            q += " WHERE " + " AND ".join(where)
        q += " ORDER BY dataset, task_id, stage, sample_index, unit_id"
        # Streamed: callers that write while iterating materialise the list first.
        for r in self.db.execute(q, args):
            if ids is None or r[0] in ids:
                yield self._unit(r)

    def units_by_id(self, ids: list[str]) -> dict[str, Unit]:
        out: dict[str, Unit] = {}
        for i in range(0, len(ids), 500):
            part = ids[i : i + 500]
            q = f"SELECT {self._UNIT_COLS} FROM units WHERE unit_id IN ({','.join('?' * len(part))})"
            for r in self.db.execute(q, part):
                out[r[0]] = self._unit(r)
        return out

    def unit_rows_by_id(self, ids: list[str]) -> dict[str, UnitRow]:
        """`units_by_id`, as `UnitRow`s (JSON parsed on use)."""
        out: dict[str, UnitRow] = {}
        for i in range(0, len(ids), 500):
            part = ids[i : i + 500]
            q = f"SELECT {self._UNIT_COLS} FROM units WHERE unit_id IN ({','.join('?' * len(part))})"
            for r in self.db.execute(q, part):
                out[r[0]] = UnitRow(r)
        return out

    def unit(self, unit_id: str) -> Unit | None:
        r = self.db.execute(
            f"SELECT {self._UNIT_COLS} FROM units WHERE unit_id=?", (unit_id,)
        ).fetchone()
        return self._unit(r) if r else None

    def finish_unit(self, unit_id: str, state: str, reason: str | None, result: Any) -> None:
        assert state in TERMINAL
        self.db.execute(
            "UPDATE units SET state=?, reason=?, result_json=?, updated_at=? "
            "WHERE unit_id=? AND state='pending'",
            (state, reason, _dumps(result) if result is not None else None, time.time(), unit_id),
        )

    def finish_units(self, rows: list[tuple[str, str, str | None, Any]]) -> None:
        """Many `finish_unit`s in one statement: rows of (unit_id, state, reason, result)."""
        now = time.time()
        for r in rows:
            assert r[1] in TERMINAL
        self.db.executemany(
            "UPDATE units SET state=?, reason=?, result_json=?, updated_at=? "
            "WHERE unit_id=? AND state='pending'",
            [(state, reason, _dumps(result) if result is not None else None, now, uid)
             for uid, state, reason, result in rows],
        )

    def finish_units_ok(self, rows: list[tuple[str, bytes]]) -> int:
        """`finish_unit(unit_id, "ok", None, records)` for many units, the records already
        serialised (`orjson.dumps`): rows of (unit_id, records JSON). Returns how many units
        were finished (a unit no longer pending is left as it is)."""
        now = time.time()
        before = self.db.total_changes
        self.db.executemany(
            "UPDATE units SET state='ok', reason=NULL, result_json=?, updated_at=? "
            "WHERE unit_id=? AND state='pending'",
            [(records, now, uid) for uid, records in rows],
        )
        return self.db.total_changes - before


class _Tx:
    def __init__(self, db: sqlite3.Connection):
        self.db = db

    def __enter__(self) -> sqlite3.Connection:
        self.db.execute("BEGIN IMMEDIATE")
        return self.db

    def __exit__(self, exc_type: Any, *_: Any) -> None:
        self.db.execute("ROLLBACK" if exc_type else "COMMIT")
