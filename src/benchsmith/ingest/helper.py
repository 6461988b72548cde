"""The ingest helper: a second Python process that judges blocks of result lines
(ingest/judge.py) while this one writes the ledger, and the protocol they speak.

It is a plain `python -c` child speaking length-prefixed pickles on its stdin/stdout (not
multiprocessing, which would re-import the caller's main module):
  parent -> helper  (run dir, files, block size); ("start", k); ("calls_log", path)
  helper -> parent  ("ready",); ("block", k, n lines, first hash, last hash, entries) for
                    block k on; ("done",); ("written", ok); ("error", text)
"""

from __future__ import annotations

import gc
import os
import pickle
import queue
import select
import signal
import struct
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # not POSIX: no helper process anyway
    fcntl = None  # type: ignore[assignment]

from benchsmith.export.jsonl import call_log_rows
from benchsmith.ingest.judge import Entry, LineJudge, line_hash, raw_blocks
from benchsmith.planner import wire_for
from benchsmith.recipe_of import recipe_for
from benchsmith.run_open import open_run_dir
from benchsmith.store.ledger import Ledger
from benchsmith.store.rundir import RunDir, atomic_write_jsonl

HELPER_MIN_BYTES = 8 << 20  # from this much input, judge in a helper process (2+ CPUs)
HELPER_STALL_S = 120.0  # a helper silent this long on a block is given up
_SRC = str(Path(__file__).resolve().parents[2])  # the dir holding `benchsmith`: its imports


class _HelperGone(Exception):
    pass


class Helper:
    """A second process that judges blocks (`LineJudge.block`) while this one applies them.

    Judging is about half of an ingest's work and needs nothing this process writes, so on
    two cores it runs alongside the ledger writes. The helper reads the same files, starts at
    the block this process has reached when the helper is ready (blocks before it are judged
    here) and streams the judged blocks in order. Its answers are those this process would
    work out. If it fails or stalls, this process judges the remaining blocks itself."""

    def __init__(self, proc: subprocess.Popen[bytes]):
        self.proc = proc
        self.started = False
        self.gone = False

    @classmethod
    def start(cls, root: Path, files: list[Path], size: int) -> Helper | None:
        """Start judging `files` in blocks of `size` lines, or None (not worth it here)."""
        if os.name != "posix" or (os.cpu_count() or 1) < 2:
            return None
        try:
            if sum(f.stat().st_size for f in files) < HELPER_MIN_BYTES:
                return None
            env = dict(os.environ)
            env["PYTHONPATH"] = os.pathsep.join(
                p for p in (_SRC, env.get("PYTHONPATH")) if p
            )
            proc = subprocess.Popen(
                [sys.executable, "-c",
                 "from benchsmith.ingest.helper import helper_main; helper_main()"],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                env=env, bufsize=0,
            )
        except (OSError, ValueError, subprocess.SubprocessError):
            return None
        helper = cls(proc)
        try:
            if fcntl is not None and hasattr(fcntl, "F_SETPIPE_SZ"):  # Linux: fewer, larger reads
                try:
                    fd = proc.stdout.fileno()  # type: ignore[union-attr]
                    fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, 1 << 20)
                except OSError:
                    pass
            _write_frame(proc.stdin, (str(root), [str(f) for f in files], size))
        except OSError:
            helper.close()
            return None
        return helper

    def take(self, k: int, hashes: list[str]) -> list[Entry] | None:
        """Block k (lines with these hashes) judged by the helper, or None: judge it here."""
        if self.gone:
            return None
        try:
            if not self.started:
                if not self._readable(0):
                    return None  # still starting up
                if self._recv() != ("ready",):
                    raise _HelperGone
                # it starts after this block, which is judged here meanwhile: a head start
                _write_frame(self.proc.stdin, ("start", k + 1))
                self.started = True
                return None
            if not self._readable(HELPER_STALL_S):
                raise _HelperGone
            msg = self._recv()
            # the same lines (cheap check: their number and the two ends)
            head = ("block", k, len(hashes), hashes[0], hashes[-1])
            if not (isinstance(msg, tuple) and len(msg) == 6 and msg[:5] == head):
                raise _HelperGone
            return msg[5]  # type: ignore[no-any-return]
        except Exception:  # noqa: BLE001 - any failure of the helper: carry on without it
            self.close()
            return None

    def calls_log(self, ledger: Ledger, rd: RunDir) -> HelperCallsLog | None:
        """Have the helper (done judging, all imported) write the call log: see
        `calls_log_written_by`."""
        if self.gone or not self.started or ledger.db.in_transaction:
            return None
        try:
            _write_frame(self.proc.stdin, ("calls_log", str(rd.calls_log)))
        except OSError:
            self.close()
            return None
        return HelperCallsLog(self)

    def _readable(self, timeout: float) -> bool:
        assert self.proc.stdout is not None
        return bool(select.select([self.proc.stdout], [], [], timeout)[0])

    def _recv(self) -> Any:
        assert self.proc.stdout is not None
        return _read_frame(self.proc.stdout)

    def close(self) -> None:
        if self.gone:
            return
        self.gone = True
        for pipe in (self.proc.stdin, self.proc.stdout):  # idle, it ends at once
            if pipe is not None:
                pipe.close()
        try:
            self.proc.wait(0.5)
        except subprocess.TimeoutExpired:
            self.proc.terminate()  # busy: a call log being written is removed
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class HelperCallsLog:
    def __init__(self, helper: Helper):
        self.helper = helper
        self.done = False

    def wait(self) -> bool:
        h = self.helper
        try:
            while h._readable(HELPER_STALL_S):
                msg = h._recv()
                if isinstance(msg, tuple) and msg[:1] == ("written",):
                    self.done = True
                    return bool(msg[1])
                if not (isinstance(msg, tuple) and msg[:1] in (("block",), ("done",))):
                    break
        except Exception:  # noqa: BLE001 - the caller writes it
            pass
        self.done = True
        h.close()
        return False

    def stop(self) -> None:
        if not self.done:
            self.helper.close()


def _frame(obj: Any) -> bytes:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    return struct.pack("<Q", len(data)) + data


def _write_frame(fh: Any, obj: Any) -> None:
    _write_all(fh, _frame(obj))


def _write_all(fh: Any, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = fh.write(view)
        view = view[n:]


def _read_exact(fh: Any, n: int) -> bytearray | None:
    buf = bytearray(n)
    view = memoryview(buf)
    got = 0
    while got < n:
        k = fh.readinto(view[got:])
        if not k:
            return None
        got += k
    return buf


def _read_frame(fh: Any) -> Any:
    head = _read_exact(fh, 8)
    if head is None:
        return None
    data = _read_exact(fh, struct.unpack("<Q", head)[0])
    return None if data is None else pickle.loads(data)


def helper_main() -> None:
    """The judging helper of `_Helper`: frames in on stdin, out on stdout; nothing else."""
    out = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)  # stray prints go to stderr, never into the frames
    sys.stdout = sys.stderr
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops it
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # (files being written are removed)
    inp = sys.stdin.buffer.raw
    gc.disable()
    try:
    
        root, files, size = _read_frame(inp)
        _rd, ledger, cfg = open_run_dir(root)
        judge = LineJudge(ledger, recipe_for(cfg), wire_for(cfg)[0], cfg)
        _write_frame(out, ("ready",))
        # Judged blocks are written by a thread (the write waits on the parent, outside the
        # GIL) while the next block is judged.
        frames: queue.Queue[bytes | None] = queue.Queue(maxsize=1)
        failed: list[BaseException] = []

        def writer() -> None:
            while (data := frames.get()) is not None:
                if not failed:
                    try:
                        _write_all(out, data)
                    except BaseException as e:  # noqa: BLE001 - e.g. the parent is gone
                        failed.append(e)

        t = threading.Thread(target=writer, daemon=True)
        t.start()
        while (msg := _read_frame(inp)) is not None and not failed:
            if msg[0] == "start":
                for k, (_f, lines) in enumerate(raw_blocks([Path(f) for f in files], size)):
                    if failed:
                        return
                    if k >= msg[1]:
                        ends = line_hash(lines[0]), line_hash(lines[-1])
                        frames.put(_frame(("block", k, len(lines), *ends, judge.block(lines))))
                frames.put(_frame(("done",)))
            elif msg[0] == "calls_log":
                try:
                    atomic_write_jsonl(Path(msg[1]), call_log_rows(ledger))
                    ok = True
                except Exception:  # noqa: BLE001 - the parent writes it then
                    ok = False
                frames.put(_frame(("written", ok)))
        frames.put(None)
        t.join()
    except BrokenPipeError:
        pass
    except BaseException as e:  # noqa: BLE001 - reported to the parent, which carries on
        try:
            _write_frame(out, ("error", repr(e)))
        except OSError:
            pass
