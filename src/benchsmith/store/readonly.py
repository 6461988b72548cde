"""Open a ledger for reading only: no migration, no journal-mode change, no write, and the
file's bytes and mtime stay as found (read-only commands: status, validate-run, ...)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from benchsmith.store.io_errors import LedgerUnreadable, StorageError, connect_ledger
from benchsmith.store.migrations import MIGRATIONS

# Tables every ledger has had since its first migration.
LEDGER_TABLES = frozenset({"meta", "invocations", "tasks", "units", "attempts"})


def connect_readonly(path: Path, *, older_ok: bool = False) -> sqlite3.Connection:
    """A query-only connection to the ledger at `path`. One-line errors (`StorageError`) for
    an empty or damaged file, one without the ledger's tables, or one of another schema
    version (`older_ok`: an older one is read as it is, by a caller that knows its columns)."""
    path = Path(path)
    if path.is_file() and path.stat().st_size == 0:
        raise LedgerUnreadable(path, "the file is empty", "corrupt")
    # No WAL file: no writer has the ledger open, and a read-write connection removes the
    # -wal/-shm it makes when it closes. A WAL file: a writer is live or died; "mode=ro" never
    # checkpoints that WAL into the ledger on close. "immutable" reads a ledger in a folder
    # SQLite cannot write its -shm in (an archived run).
    live = Path(f"{path}-wal").exists()
    queries = ("mode=ro",) if live else ("mode=rw", "mode=ro")
    for i, query in enumerate((*queries, "immutable=1")):
        db = connect_ledger(path, query)
        try:
            db.execute("PRAGMA busy_timeout=10000")
            db.execute("PRAGMA query_only=ON")
            version = db.execute("PRAGMA user_version").fetchone()[0]
            tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            break
        except sqlite3.OperationalError as e:
            db.close()
            if i == len(queries) or (isinstance(e, StorageError) and e.kind == "full"):
                raise
        except BaseException:
            db.close()
            raise
    missing = LEDGER_TABLES - tables
    known = len(MIGRATIONS)
    problem = None
    if version > known:  # a newer benchsmith's: its tables may mean other things
        problem = LedgerUnreadable(
            path, f"schema version {version}; this one reads up to {known}", "newer")
    elif missing:
        problem = LedgerUnreadable(
            path, f"no table {', '.join(sorted(missing))}; not a whole ledger", "corrupt")
    elif version < known and not older_ok:
        problem = LedgerUnreadable(path, f"schema version {version}; this one reads {known}",
                                   "older")
    if problem is not None:
        db.close()
        raise problem
    return db
