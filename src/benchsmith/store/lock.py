"""One writer per run: an exclusive OS lock on `runs/<id>/.lock`.

Every command that writes a run (run, dry-run, batch export/ingest, render-readable into the
run dir) holds the lock for its whole duration; a second writer fails at once with a
one-line `RunInUse` naming the holder. `batch status` and `batch cancel` write only when the
lock is free (`run_lock_if_free`): a live run records batch statuses itself.

The lock is `flock(2)` on the file, so it dies with its holder: a killed process (kill -9)
never blocks the next writer. The holder's pid, start time and command are written into the
file after locking; they are advisory, the flock is the truth.

Read-only commands never take the lock: `live_holder` probes it (a non-blocking shared lock,
released at once) to tell a live run from one whose last invocation was interrupted.

The lock is reentrant within one thread (api calls nest: `run` renders the readable files);
another thread of the same process is refused like another process. Held locks are keyed
by the pid and the run dir's real path (a forked child does not inherit them).
"""

from __future__ import annotations

import functools
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import orjson

from benchsmith.errors import BenchsmithError

try:
    import fcntl
except ImportError:  # not POSIX: no lock (documented in the README)
    fcntl = None  # type: ignore[assignment]

LOCK_NAME = ".lock"
# A probing reader holds a shared lock for microseconds; a writer retries this long before
# deciding the run is in use, so `status` next to a starting run never makes it fail.
_RETRY_S = 0.3

F = TypeVar("F", bound=Callable[..., Any])


class RunInUse(BenchsmithError):
    """Another process holds the run's lock."""


@dataclass(frozen=True)
class Holder:
    """Who holds a run's lock (as written by the holder; pid 0 when unreadable)."""

    pid: int
    started: str
    command: str
    since: float = 0.0  # when it took the lock (epoch seconds; 0 when unknown)

    def describe(self) -> str:
        if not self.pid:
            return "another process (holder unknown)"
        return f"pid {self.pid} ({self.command}, started {self.started})"

    def as_dict(self) -> dict[str, Any]:
        return {"pid": self.pid or None, "started": self.started, "command": self.command}


_UNKNOWN = Holder(0, "", "")
_held: dict[tuple[int, str], list[Any]] = {}  # (pid, real path) -> [fd, depth, Holder, thread]
_held_guard = threading.Lock()


def _key(root: Path) -> tuple[int, str]:
    return os.getpid(), os.path.realpath(root)


def _command(label: str) -> str:
    """`benchsmith <subcommand words>` when run from the CLI, else the api label. Only the
    leading words are kept: options may carry paths, never anything worth recording."""
    argv = sys.argv
    if argv and Path(argv[0]).name == "benchsmith":
        words = []
        for w in argv[1:3]:
            if w.startswith("-") or not w.replace("-", "").isalpha():
                break
            words.append(w)
        if words:
            return "benchsmith " + " ".join(words)
    return f"benchsmith {label}"


def _read_holder(fd: int) -> Holder:
    try:
        d = orjson.loads(os.pread(fd, 4096, 0))
        return Holder(int(d["pid"]), str(d["started"]), str(d["command"]),
                      float(d.get("started_at") or 0.0))
    except (OSError, ValueError, KeyError, TypeError, orjson.JSONDecodeError):
        return _UNKNOWN


def in_use_message(root: Path, holder: Holder) -> str:
    return f"{root}: run is in use by {holder.describe()}; wait for it or stop it"


def _acquire(root: Path, label: str) -> tuple[int, Holder]:
    path = root / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
        raise BenchsmithError(f"{path}: cannot open the run lock: {e.strerror or e}") from None
    deadline = time.monotonic() + _RETRY_S
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if time.monotonic() >= deadline:
                holder = _read_holder(fd)
                os.close(fd)
                raise RunInUse(in_use_message(root, holder)) from None
            time.sleep(0.01)
        except OSError as e:
            os.close(fd)
            raise BenchsmithError(f"{path}: cannot lock the run: {e.strerror or e}") from None
    me = Holder(os.getpid(), time.strftime("%Y-%m-%d %H:%M:%S"), _command(label), time.time())
    data = orjson.dumps({**me.as_dict(), "started_at": me.since}) + b"\n"
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, data, 0)
    except OSError:
        pass  # the info is advisory; the flock is held
    return fd, me


@contextmanager
def run_lock(root: str | Path, label: str) -> Iterator[Holder]:
    """Hold the run's write lock (reentrant within this process); `label` names the command
    (`run`, `batch ingest`, ...) in the holder info. Raises RunInUse at once if taken."""
    root = Path(root)
    if fcntl is None:
        yield Holder(os.getpid(), "", _command(label))
        return
    key = _key(root)
    with _held_guard:
        entry = _held.get(key)
        if entry is not None:
            if entry[3] != threading.get_ident():  # another thread of this process writes it
                raise RunInUse(in_use_message(root, entry[2]))
            entry[1] += 1
    if entry is None:
        fd, me = _acquire(root, label)
        entry = [fd, 1, me, threading.get_ident()]
        with _held_guard:
            _held[key] = entry
    try:
        yield entry[2]
    finally:
        with _held_guard:
            entry[1] -= 1
            last = entry[1] == 0
            if last:
                del _held[key]
        if last:
            try:
                os.ftruncate(entry[0], 0)  # no stale holder info once released
            except OSError:
                pass
            os.close(entry[0])  # releases the flock


@contextmanager
def run_lock_if_free(root: str | Path, label: str) -> Iterator[bool]:
    """For commands that can do without writing: True while holding the lock, False (nothing
    held) when another writer holds it."""
    with ExitStack() as stack:
        try:
            stack.enter_context(run_lock(root, label))
            mine = True
        except RunInUse:
            mine = False
        yield mine


def locks_run(label: str) -> Callable[[F], F]:
    """Decorator: hold the run lock of the function's first argument (a run dir) during the
    call. A folder without a ledger is left alone: the function reports it."""

    def deco(fn: F) -> F:
        @functools.wraps(fn)
        def wrapper(run_dir: str | Path, *args: Any, **kwargs: Any) -> Any:
            root = Path(run_dir)
            if not (root / "ledger.sqlite").is_file():
                return fn(run_dir, *args, **kwargs)
            with run_lock(root, label):
                return fn(run_dir, *args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return deco


def held_here(root: str | Path) -> bool:
    """True when this thread holds the run's lock: the caller is writing that run."""
    with _held_guard:
        entry = _held.get(_key(Path(root)))
    return entry is not None and entry[3] == threading.get_ident()


def live_holder(root: str | Path) -> Holder | None:
    """The holder of the run's lock, or None when no process writes the run. Never takes the
    lock for longer than the probe, never creates the lock file."""
    root = Path(root)
    if fcntl is None:
        return None
    with _held_guard:
        entry = _held.get(_key(root))
    if entry is not None:
        return entry[2]
    try:
        fd = os.open(root / LOCK_NAME, os.O_RDONLY)
    except OSError:
        return None  # never locked (or unreadable): nobody writes it through benchsmith
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read_holder(fd)
        except OSError:
            return None
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def invocations_seen(invs: list[dict[str, Any]], holder: Holder | None) -> list[dict[str, Any]]:
    """Invocations as a reader reports them: one marked `running` whose process is gone was
    `interrupted`. Only the newest running one can be the live holder's, and only if it
    started after the holder took the lock (a writer that records no invocation, such as
    render-readable or dry-run, may hold the lock of a run killed earlier)."""
    running = [i for i in invs if i["status"] == "running"]
    alive = {
        i["id"] for i in running[-1:]
        if holder is not None and (not holder.since or i["started_at"] >= holder.since)
    }
    return [
        {**i, "status": "interrupted"} if i["status"] == "running" and i["id"] not in alive else i
        for i in invs
    ]
