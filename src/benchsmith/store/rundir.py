"""Run directory layout and atomic file writes."""

from __future__ import annotations

import functools
import os
import secrets
import sqlite3
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from benchsmith.errors import ConfigError
from benchsmith.store.io_errors import file_error
from benchsmith.store.ledger import Ledger
from benchsmith.store.lock import LOCK_NAME, run_lock
from benchsmith.store.names import check_dataset_name

LEDGER_NAME = "ledger.sqlite"


@dataclass(frozen=True)
class RunDir:
    """Paths inside `runs/<run_id>/`. Names are part of the public contract."""

    root: Path

    @property
    def run_id(self) -> str:
        return self.root.name

    @property
    def ledger(self) -> Path:
        return self.root / LEDGER_NAME

    @property
    def runs_jsonl(self) -> Path:
        return self.root / "runs.jsonl"

    @property
    def calls_log(self) -> Path:
        return self.root / "logs" / "batch_calls.jsonl"

    @property
    def run_log(self) -> Path:
        return self.root / "logs" / "run.log"

    @property
    def prompts(self) -> Path:
        return self.root / "prompts"

    @property
    def config_json(self) -> Path:
        return self.root / "config" / "run_config.json"

    @property
    def plan_json(self) -> Path:
        return self.root / "config" / "plan.json"

    # A dataset name is part of these paths: checked, so it can never leave the run dir.
    def manifest(self, dataset: str, kind: str) -> Path:
        suffix = {
            "all": "task_ids", "complete": "complete_task_ids",
            "incomplete": "incomplete_task_ids", "first100": "first100_instance_ids",
            "similarity": "similarity_rejections", "gold_leaks": "gold_leaks",
        }
        return self.root / "manifests" / f"{check_dataset_name(dataset)}_{suffix[kind]}.json"

    def dataset_file(self, dataset: str, name: str) -> Path:
        return self.root / "datasets" / check_dataset_name(dataset) / name

    def failed_file(self, dataset: str, name: str) -> Path:
        return self.root / "failed_plans" / "datasets" / check_dataset_name(dataset) / name


def claim_run_dir(root: Path, field: str = "--run-id") -> None:
    """Make `root` a run folder, or refuse: a new or empty folder is created and marked with
    a ledger; an existing run is kept; anything else (a file, a folder holding other things)
    is not ours to write into. The ledger is made under the run lock, so a racing writer
    finds the run in use, never a half-made ledger."""
    ledger = root / LEDGER_NAME
    if root.exists() or root.is_symlink():
        if not root.is_dir():
            raise ConfigError(str(root), field, "exists and is not a folder; choose another run id")
        if not ledger.is_file():
            _refuse_foreign(root, field)
    try:
        root.mkdir(parents=True, exist_ok=True)
        with run_lock(root, "create"):
            if ledger.is_file():  # a run (or one another writer made meanwhile)
                return
            _refuse_foreign(root, field)
            Ledger(ledger).close()  # marks the folder as a run before anything else is written
    except (OSError, sqlite3.Error) as e:
        why = getattr(e, "strerror", None) or e
        raise ConfigError(str(root), field, f"cannot create the run folder: {why}") from None


def existing_run_dir(run_dir: str | Path) -> RunDir:
    """The run at `run_dir`; the one error for a path that is not a run."""
    rd = RunDir(Path(run_dir))
    if not rd.ledger.is_file():
        raise ConfigError(str(rd.root), "", f"not a run directory (no {LEDGER_NAME})")
    return rd


def open_existing_run(run_dir: str | Path) -> tuple[RunDir, Ledger]:
    """An existing run and its ledger opened read-only (`Ledger.open_readonly`): what
    commands that only read a run use. The caller closes the ledger."""
    rd = existing_run_dir(run_dir)
    return rd, Ledger.open_readonly(rd.ledger)


def _refuse_foreign(root: Path, field: str) -> None:
    """A folder without a ledger may be claimed only if it is empty (but for a lock file
    left by a creation that failed)."""
    if any(p.name != LOCK_NAME for p in root.iterdir()):
        raise ConfigError(
            str(root), field, f"is a folder that is not a benchsmith run (no {LEDGER_NAME}); "
            "refusing to write into it: choose another run id or run_dir"
        )


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(3)


def atomic_write_bytes(path: Path, data: bytes, *, durable: bool = True) -> None:
    """Write via a temp file in the same folder + rename: readers never see a half file."""
    atomic_write_chunks(path, (data,), durable=durable)


@functools.lru_cache(maxsize=1)
def _new_file_mode() -> int:
    """0o666 less the umask: what `open()` would give, as mkstemp's 0600 keeps other users
    out of datasets meant to be shared."""
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


def atomic_write_chunks(path: Path, chunks: Iterable[bytes], *, durable: bool = True) -> int:
    """`atomic_write_bytes` of the concatenated chunks, streamed; returns how many.

    `durable=False` skips the file's fsync: for files derived from the ledger, whose
    folders the caller syncs once at the end (`sync_dirs`). A crash of the process still
    never leaves a half file; what a crash of the machine loses, the next run, resume or
    render writes again from the ledger.
    A full disk is raised as a one-line error naming the file (the old file stays whole).
    """
    n = 0
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as e:
        raise (file_error(path, e) or e) from None
    try:
        with os.fdopen(fd, "wb") as fh:
            os.fchmod(fh.fileno(), _new_file_mode())
            for chunk in chunks:
                fh.write(chunk)
                n += 1
            if durable:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        if isinstance(e, OSError):
            err = file_error(path, e)
            if err is not None:
                raise err from e
        raise
    return n


def atomic_write_jsonl(path: Path, rows: Iterable[Any], *, durable: bool = True) -> int:
    return atomic_write_chunks(path, (orjson.dumps(row) + b"\n" for row in rows),
                               durable=durable)


def atomic_write_json(path: Path, obj: Any, *, durable: bool = True) -> None:
    atomic_write_bytes(path, orjson.dumps(obj, option=orjson.OPT_INDENT_2) + b"\n",
                       durable=durable)


def sync_dirs(dirs: Iterable[Path]) -> None:
    """fsync each folder (its entries: the renames into it), once, after derived files were
    written into it with `durable=False`. A folder that is gone is skipped."""
    for d in sorted({Path(d) for d in dirs}):
        try:
            fd = os.open(d, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        except OSError:
            continue
        try:
            os.fsync(fd)
        except OSError:
            pass  # some file systems cannot sync a folder
        finally:
            os.close(fd)
