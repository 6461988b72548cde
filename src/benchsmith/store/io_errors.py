"""One-line errors for files that SQLite or the OS cannot read or write: a corrupt or empty
ledger, a full disk, a path that cannot be created. Each names the file and the fix.

The converted errors keep their original family (`sqlite3.DatabaseError`/`OperationalError`,
`OSError`), so code that catches those still does; they are also `BenchsmithError`s, so the
CLI prints them on one line.
"""

from __future__ import annotations

import errno
import shlex
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from benchsmith.errors import BenchsmithError

LEDGER_NAME = "ledger.sqlite"
# The OS refused a write for lack of room (EFBIG: the file-size limit, e.g. `ulimit -f`).
DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EFBIG, errno.EDQUOT})

_CORRUPT = ("file is not a database", "database disk image is malformed", "file is encrypted")
_DISK = ("database or disk is full", "disk i/o error")
_CANT_OPEN = ("unable to open database file", "attempt to write a readonly database")


class StorageError(BenchsmithError):
    """A file could not be read or written. `command` (its words, e.g. `run --mode batch`)
    and `config` (set by the CLI) complete the resume command of a run whose disk filled up."""

    def __init__(self, path: Path, detail: str, kind: str):
        self.path, self.detail, self.kind = Path(path), detail, kind
        self.command: tuple[str, ...] = ("run",)
        self.config: str | None = None
        super().__init__(str(self))

    @property
    def run_dir(self) -> Path | None:
        """The run directory the file belongs to (the folder holding ledger.sqlite)."""
        if self.path.name == LEDGER_NAME:
            return self.path.parent
        for d in self.path.parents:
            if (d / LEDGER_NAME).is_file():
                return d
        return None

    def __str__(self) -> str:
        if self.kind == "corrupt":
            return (
                f"{self.path} is not a readable SQLite database ({self.detail}); "
                "restore it from a backup or start a new run"
            )
        if self.kind == "newer":
            return (
                f"{self.path} was written by a newer benchsmith ({self.detail}); "
                "upgrade benchsmith to use this run"
            )
        if self.kind == "older":
            return (
                f"{self.path} was written by an older benchsmith ({self.detail}); a command "
                "that writes the run upgrades it (e.g. `benchsmith dry-run` with its config and "
                "--run-id), then read it again"
            )
        if self.kind == "full":
            rd = self.run_dir
            if rd is None:
                return f"cannot write {self.path} ({self.detail}); free disk space and try again"
            # Quoted: the command is pasted into a shell (paths with spaces or quotes).
            cfg = shlex.quote(self.config) if self.config else "<your config>"
            words = ["benchsmith", *self.command]
            cmd = " ".join([*map(shlex.quote, words), "--config", cfg, "--run-id",
                            shlex.quote(rd.name), "--resume"])
            return (
                f"cannot write {self.path} ({self.detail}); run {rd} stopped, what was recorded "
                f"is kept: free disk space, then resume with `{cmd}`"
            )
        return f"cannot open or write {self.path} ({self.detail}); {self.kind}"


class LedgerUnreadable(StorageError, sqlite3.DatabaseError):
    pass


class LedgerWriteFailed(StorageError, sqlite3.OperationalError):
    pass


class FileWriteFailed(StorageError, OSError):
    pass


@contextmanager
def reading_ledger(path: Path) -> Iterator[None]:
    """A read of the ledger at `path`: an SQLite error becomes a one-line error naming it (a
    StorageError already does)."""
    try:
        yield
    except StorageError:
        raise
    except sqlite3.Error as e:
        raise BenchsmithError(f"{path}: cannot read the ledger: {e}") from None


def ledger_error(path: Path, e: sqlite3.Error) -> StorageError | None:
    """The one-line error for a SQLite error on the ledger at `path`, or None to keep `e`."""
    if isinstance(e, StorageError):
        return None
    msg = str(e)
    low = msg.lower()
    if any(s in low for s in _CORRUPT):
        return LedgerUnreadable(path, msg, "corrupt")
    if any(s in low for s in _DISK):
        return LedgerWriteFailed(path, msg, "full")
    if any(s in low for s in _CANT_OPEN):
        return LedgerWriteFailed(
            path, msg, "check that the folder exists and that this user may write it"
        )
    return None


def file_error(path: Path, e: OSError) -> StorageError | None:
    """The one-line error for an OSError while writing `path`, or None to keep `e`."""
    if isinstance(e, StorageError):
        return None
    detail = e.strerror or str(e)
    if e.errno in DISK_FULL_ERRNOS or e.errno == errno.EIO:
        err = FileWriteFailed(path, detail, "full")
        err.errno = e.errno
        return err
    return None


def os_error_line(e: OSError) -> str:
    """Any OSError as one line: the path, what the OS said and what to do about it."""
    what = e.strerror or type(e).__name__
    where = f"{e.filename}" if e.filename is not None else ""
    if e.filename2 is not None:
        where += f" -> {e.filename2}"
    fix = {
        errno.ENOSPC: "free disk space and try again",
        errno.EFBIG: "free disk space (or raise the file-size limit) and try again",
        errno.EDQUOT: "free disk space and try again",
        errno.EACCES: "choose a location this user may write, or fix its permissions",
        errno.EPERM: "choose a location this user may write, or fix its permissions",
        errno.EROFS: "the file system is read-only; choose another location",
        errno.ENOTDIR: "a part of the path is a file, not a folder; choose another path",
        errno.EISDIR: "it is a folder; give a file path",
        errno.EEXIST: "it already exists as a file; choose another path",
        errno.ENOENT: "check the path",
    }.get(e.errno or -1, "check the path and try again")
    return f"{where}: {what}; {fix}" if where else f"{what}; {fix}"


def sqlite_error_line(e: sqlite3.Error) -> str:
    """A SQLite error that no layer attributed to a file (the run's ledger) as one line."""
    low = str(e).lower()
    if any(s in low for s in _CORRUPT):
        return (
            f"the run's {LEDGER_NAME} is not a readable SQLite database ({e}); "
            "restore it from a backup or start a new run"
        )
    if any(s in low for s in _DISK):
        return (
            f"the run's {LEDGER_NAME} could not be written ({e}); free disk space, then resume "
            "the run"
        )
    return f"the run's {LEDGER_NAME} could not be used ({e})"


class _Connection(sqlite3.Connection):
    """The ledger's connection: a SQLite error that means a corrupt file or a full disk is
    raised as a one-line error naming the ledger file (`ledger_error`)."""

    ledger_path: Path

    def execute(self, sql: str, params: Any = (), /) -> sqlite3.Cursor:
        try:
            return super().execute(sql, params)
        except sqlite3.DatabaseError as e:
            err = ledger_error(self.ledger_path, e)
            if err is None:
                raise
            raise err from e

    def executemany(self, sql: str, params: Any, /) -> sqlite3.Cursor:
        try:
            return super().executemany(sql, params)
        except sqlite3.DatabaseError as e:
            err = ledger_error(self.ledger_path, e)
            if err is None:
                raise
            raise err from e


def connect_ledger(path: Path, query: str = "") -> _Connection:
    """sqlite3.connect for the ledger (autocommit; transactions are explicit). `query`: URI
    parameters, such as "mode=ro"."""
    target = f"{path.absolute().as_uri()}?{query}" if query else str(path)
    try:
        db = sqlite3.connect(
            target, isolation_level=None, check_same_thread=False, factory=_Connection,
            uri=bool(query),
        )
    except sqlite3.Error as e:
        raise (ledger_error(path, e) or e) from e
    db.ledger_path = path
    return db
