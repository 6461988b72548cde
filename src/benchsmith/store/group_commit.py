"""Group commit of ledger writes for the asyncio engine, and WAL checkpoints off the loop."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchsmith.store.ledger import Ledger


class GroupCommit:
    """Group commit for the asyncio engine: write operations submitted during the same
    event-loop iteration (or within MAX_DELAY_S) run in ONE transaction, and every submitter
    awaits the COMMIT that made its operation durable before it goes on. An operation on a
    request's critical path (the attempt row that must be durable before the request is
    sent) is submitted `at_once`: committed immediately, together with whatever is queued
    (typically other workers' finished units), so the send never waits for the loop. Fewer
    commits means far fewer WAL frames: pages touched by several operations (the attempts
    leaf, the sqlite_sequence row, index tails) are written once per group, not per write.

    If any operation of a group raises, the group is rolled back and each operation is
    re-run alone in its own transaction, so every submitter gets exactly the result or the
    exception it would have got without grouping. An operation whose future was cancelled
    before the group ran is dropped (never written).

    While it is open, WAL checkpoints (copying committed pages from the WAL into the
    database file, with an fsync before and after) run on a background thread with its own
    connection instead of inside a commit on the event loop, where each one stalled every
    in-flight request for several milliseconds. Durability is unchanged: a commit is in the
    WAL when it returns, as before; checkpoints only move it. `close()` restores the
    connection's automatic checkpoints.
    """

    MAX_DELAY_S = 0.0005  # longest an operation waits for others to join its group
    CHECKPOINT_EVERY_OPS = 256  # ~1,000 WAL pages, SQLite's own autocheckpoint interval
    # Background checkpoints run concurrently with commits, so the WAL can only restart once
    # one of them finishes with nothing new behind it. If that has not happened for this
    # many frames, one checkpoint on the writer itself (cheap: little is left to copy) lets
    # the next transaction restart the WAL.
    WAL_RESTART_FRAMES = 2048

    def __init__(self, ledger: Ledger, background_checkpoints: bool = True):
        self.ledger = ledger
        self._ops: list[tuple[Callable[[], Any], asyncio.Future[Any]]] = []
        self._scheduled = False
        self._first_at = 0.0
        self._since_ckpt = 0
        self._ckpt: _Checkpointer | None = None
        self._autockpt: int | None = None
        if background_checkpoints:
            self._autockpt = int(ledger.db.execute("PRAGMA wal_autocheckpoint").fetchone()[0])
            ledger.db.execute("PRAGMA wal_autocheckpoint=0")
            self._ckpt = _Checkpointer(ledger.path)

    def submit(self, op: Callable[[], Any], at_once: bool = False) -> asyncio.Future[Any]:
        """Queue `op` (synchronous ledger writes); the future resolves after its COMMIT.

        The group is committed on the next loop iteration, or at once, with `op` and what is
        queued, when `at_once` is set or the group's first operation has waited MAX_DELAY_S
        (on a busy loop a group must not wait for every ready task's work). Committed at
        once, the returned future is already done: awaiting it does not even yield.
        """
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Any] = loop.create_future()
        t = time.perf_counter()
        if not self._ops:
            self._first_at = t
        self._ops.append((op, fut))
        if at_once or t - self._first_at >= self.MAX_DELAY_S:
            self.flush()
        elif not self._scheduled:
            self._scheduled = True
            loop.call_soon(self.flush)
        return fut

    def flush(self) -> None:
        self._scheduled = False
        ops = [(op, fut) for op, fut in self._ops if not fut.done()]
        self._ops = []
        if not ops:
            return
        results: list[Any] = []
        try:
            with self.ledger.tx():
                for op, _ in ops:
                    results.append(op())
        except Exception:
            for op, fut in ops:
                try:
                    with self.ledger.tx():
                        res = op()
                except Exception as e:
                    if not fut.done():
                        fut.set_exception(e)
                else:
                    if not fut.done():
                        fut.set_result(res)
        else:
            for (_, fut), res in zip(ops, results):
                if not fut.done():
                    fut.set_result(res)
        self._after_commit(len(ops))

    def _after_commit(self, n_ops: int) -> None:
        ck = self._ckpt
        if ck is None:
            return
        self._since_ckpt += n_ops
        if ck.wal_frames > 2 * self.WAL_RESTART_FRAMES:
            try:
                busy, log, done = self.ledger.db.execute(
                    "PRAGMA wal_checkpoint(PASSIVE)"
                ).fetchone()
            except sqlite3.Error:
                return
            if busy == 0 and done == log:
                ck.wal_frames = 0
                self._since_ckpt = 0
        elif (self._since_ckpt >= self.CHECKPOINT_EVERY_OPS
              or ck.wal_frames > self.WAL_RESTART_FRAMES):
            # Past the mark, a checkpoint after every group: one that finishes before the next
            # commit (little is left to copy by then) lets that commit restart the WAL.
            self._since_ckpt = 0
            ck.request()

    def close(self) -> None:
        """Run what is still queued, stop the checkpoint thread, restore autocheckpoints."""
        if self._ops:
            self.flush()
        if self._ckpt is not None:
            self._ckpt.stop()
            self._ckpt = None
        if self._autockpt is not None:
            self.ledger.db.execute(f"PRAGMA wal_autocheckpoint={self._autockpt}")
            self._autockpt = None


class _Checkpointer:
    """`PRAGMA wal_checkpoint(PASSIVE)` on request, on a daemon thread with its own
    connection (sqlite3 releases the GIL while it works). Started on the first request."""

    def __init__(self, path: Path):
        self.path = path
        self.wal_frames = 0  # WAL length seen by the last checkpoint
        self._wake = threading.Event()
        self._stopping = False
        self._thread: threading.Thread | None = None

    def request(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name="benchsmith-wal-checkpoint", daemon=True
            )
            self._thread.start()
        self._wake.set()

    def _run(self) -> None:
        db = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False)
        try:
            db.execute("PRAGMA synchronous=NORMAL")
            while True:
                self._wake.wait()
                self._wake.clear()
                if self._stopping:
                    return
                try:
                    _busy, log, _done = db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                    self.wal_frames = int(log)
                except sqlite3.Error:
                    pass
        finally:
            db.close()

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
