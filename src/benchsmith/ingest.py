"""Ingest of batch result lines into a run (`benchsmith batch ingest`), fast: lines are
judged in blocks (optionally in a helper process) and written with bulk statements.
Ingesting the same file twice changes nothing; unknown ids are reported and ignored.
"""

from __future__ import annotations

import gc
import hashlib
import os
import pickle
import queue
import select
import signal
import sqlite3
import struct
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

try:
    import fcntl
except ImportError:  # not POSIX: no helper process anyway
    fcntl = None  # type: ignore[assignment]

from benchsmith.config import RunConfig
from benchsmith.engine.budget import overspend_problems
from benchsmith.engine.reconcile import Answer, Reconciler, judge_answer, ok_answer_parts
from benchsmith.errors import ConfigError
from benchsmith.export.jsonl import call_log_rows, calls_log_written_by
from benchsmith.export.run_files import write_run_files
from benchsmith.planner import wire_for
from benchsmith.recipe_of import recipe_for
from benchsmith.recipes.base import Recipe, RequestSpec
from benchsmith.run_open import open_run_dir
from benchsmith.store import batches as bstore
from benchsmith.store.ledger import Ledger
from benchsmith.store.lock import locks_run
from benchsmith.store.rundir import RunDir, atomic_write_jsonl

INGEST_BLOCK = 5000  # lines per transaction
FIRST_BLOCKS = 8  # ... but these first ones are a quarter of that (see `_raw_blocks`)
INGEST_CACHE_KIB = -65536  # SQLite page cache while ingesting (negative: KiB), default 2 MiB
JUDGE_CHUNK = 500  # lines judged together (one unit query)
MIN_BULK_RUN = 16  # valid answers in a row written in bulk (`Reconciler.apply_answers`)
HELPER_MIN_BYTES = 8 << 20  # from this much input, judge in a helper process (2+ CPUs)
HELPER_STALL_S = 120.0  # a helper silent this long on a block is given up
CHECKPOINT_EVERY_S = 0.01  # WAL checkpoint polling of `_Checkpointer`
_PKG_PARENT = str(Path(__file__).resolve().parent.parent)  # for the helper's imports


@dataclass(frozen=True)
class IngestReport:
    lines: int
    skipped_seen: int
    counts: dict[str, int]
    unknown_ids: list[str]
    notes: list[str]  # one line per skipped line (the first few)
    problems: list[str] = field(default_factory=list)  # e.g. spend past the budget


@locks_run("batch ingest")
def batch_ingest(run_dir: str | Path, files: list[Path]) -> IngestReport:
    """Reconcile result lines (OpenAI output/error files, vLLM run-batch output)."""

    rd, ledger, cfg = open_run_dir(run_dir)
    for f in files:
        if not f.is_file():
            ledger.close()
            raise ConfigError(str(f), "", "results file not found")
    gc_on = gc.isenabled()
    helper: _Helper | None = None
    try:
        # Bulk work: parsed lines and units are short-lived and hold no reference cycles, and
        # cyclic collections triggered by their sheer number would cost ~10% of the time.
        gc.disable()
        helper = _Helper.start(rd.root, files)  # starts up while this process gets ready
        # A block's dirty pages fit in the page cache (no spilling mid-transaction).
        ledger.db.execute(f"PRAGMA cache_size={INGEST_CACHE_KIB}")
        recipe = recipe_for(cfg)
        tasks = {(t.dataset, t.id): t for t in ledger.tasks()}
        api, _ = wire_for(cfg)
        inv = ledger.start_invocation("ingest", cfg.budget.max_usd)
        rec = Reconciler(
            ledger, recipe, tasks, invocation=inv, price_for=cfg.price_for,
            multiplier=cfg.batch.price_multiplier, max_retries=cfg.engine.max_retries,
            buffered=True,
        )
        judge = _Judge(ledger, recipe, api, cfg)
        total = skipped = 0
        status = "completed"
        with _Checkpointer(ledger) if helper is not None else nullcontext():
            try:
                for f, hashes, block in _judged_blocks(files, judge, helper):
                    skipped += _ingest_block(ledger, rec, hashes, block, api, f)
                    total += len(block)
            except BaseException as e:
                status = "error"
                ledger.end_invocation(inv, status, str(e)[:300])
                raise
            # Money spent elsewhere is only counted here: say so if it passed the budget.
            problems = overspend_problems(
                [r for r in ledger.spend_by_invocation() if r[0] == inv]
            )
            ledger.end_invocation(inv, status, "; ".join(
                [f"ingested {total} lines from {len(files)} file(s)", *problems]
            ))
            with calls_log_written_by(helper.calls_log) if helper is not None else nullcontext():
                write_run_files(ledger, rd, recipe)
        return IngestReport(total, skipped, rec.counts.as_dict(), rec.counts.unknown_ids[:20],
                            rec.counts.notes, problems)
    finally:
        if helper is not None:
            helper.close()
        ledger.close()
        if gc_on:
            gc.enable()


# -- ingest internals ------------------------------------------------------------------------
# A judged line: (None, custom_id, Answer, (model, stage) of the unit), or (raw line, None,
# None, None). With an Answer (a 200 answer for a unit of the run, judged ahead) the raw line
# is not needed; otherwise the line is parsed and applied as it is.
_Entry = tuple["bytes | None", "str | None", "Answer | None", "tuple[str, str] | None"]


def _raw_blocks(files: list[Path], size: int) -> Iterator[tuple[Path, list[bytes]]]:
    """(file, non-blank lines) for every block, in order: `size` lines, but the first
    FIRST_BLOCKS blocks are a quarter of that (they are judged here while a helper starts)."""
    k = 0
    small = max(size // 4, 1)
    for f in files:
        block: list[bytes] = []
        n = small if k < FIRST_BLOCKS else size
        with f.open("rb") as fh:
            for raw in fh:
                if not raw.strip():
                    continue
                block.append(raw)
                if len(block) >= n:
                    yield f, block
                    block = []
                    k += 1
                    n = small if k < FIRST_BLOCKS else size
        if block:
            yield f, block
            k += 1


class _Judge:
    """Judges the answers of a block ahead of applying it (`judge_answer`: it needs only the
    unit's spec and model, which never change). Lines it cannot judge are left as they are."""

    def __init__(self, ledger: Ledger, recipe: Recipe, api: str, cfg: RunConfig):
        self.ledger = ledger
        self.recipe = recipe
        self.api = api
        self.price_for = cfg.price_for
        self.multiplier = cfg.batch.price_multiplier
        self._schema: tuple[bytes, Any] | None = None  # (JSON, parsed) of the last spec schema
        self._fast_spec: bool | None = None  # does `_spec_from_dict` give what from_dict does?

    def _spec_from(self, d: dict[str, Any]) -> RequestSpec:
        if self._fast_spec:
            return _spec_from_dict(d)
        spec = RequestSpec.from_dict(d)
        if self._fast_spec is None:
            fast = _spec_from_dict(d)
            self._fast_spec = type(fast) is type(spec) and list(vars(fast).items()) == list(
                vars(spec).items()
            )
        return spec

    def _spec(self, spec_json: bytes) -> RequestSpec:
        """`RequestSpec.from_dict(orjson.loads(spec_json))`, but the spec's schema (the bulk of
        its JSON, the same for every unit of a stage) is parsed once and shared: the specs
        here only serve `judge_answer`, which reads them."""
        cached = self._schema
        key = b'"schema":'
        i = spec_json.find(key) + len(key)
        if cached is not None and i >= len(key) and spec_json.count(key) == 1 and \
                spec_json.startswith(cached[0], i):
            # The value of the only "schema" key is the cached JSON (a JSON value ends where
            # it ends): parse the rest, with null there. If the top level then has "schema"
            # null, the only "schema" key is the top level's: its value was the cached one.
            d = orjson.loads(spec_json[:i] + b"null" + spec_json[i + len(cached[0]) :])
            if "schema" in d and d["schema"] is None:
                d["schema"] = cached[1]
                return self._spec_from(d)
        d = orjson.loads(spec_json)
        schema = d.get("schema")
        if isinstance(schema, dict):
            self._schema = (orjson.dumps(schema), schema)
        return self._spec_from(d)

    def block(self, lines: list[bytes], hashes: list[str] | None = None) -> list[_Entry]:
        """The lines judged. `hashes`: theirs, if known (else worked out as needed)."""
        out: list[_Entry] = []
        for i in range(0, len(lines), JUDGE_CHUNK):  # a few hundred at a time: stays in cache
            j = i + JUDGE_CHUNK
            out += self._chunk(lines[i:j], None if hashes is None else hashes[i:j])
        return out

    def _chunk(self, lines: list[bytes], hashes: list[str] | None) -> list[_Entry]:
        # Lines already ingested are skipped when applied: not worth judging. Without their
        # hashes, the lines are checked only if the first or the last one was ingested.
        if hashes is None and bstore.seen_lines(
            self.ledger, [_line_hash(lines[0]), _line_hash(lines[-1])]
        ):
            hashes = [_line_hash(raw) for raw in lines]
        seen = bstore.seen_lines(self.ledger, hashes) if hashes is not None else set()
        parts: list[tuple[str, dict[str, Any]] | None] = []
        for i, raw in enumerate(lines):
            p = None
            if not seen or hashes[i] not in seen:  # type: ignore[index]
                try:
                    p = ok_answer_parts(orjson.loads(raw))
                except orjson.JSONDecodeError:
                    pass
            parts.append(p)
        specs = self.ledger.unit_specs([p[0] for p in parts if p is not None])
        out: list[_Entry] = []
        for raw, p in zip(lines, parts):
            answer = None
            if p is not None and p[0] in specs:
                model, spec_json = specs[p[0]]
                try:
                    spec = self._spec(spec_json)
                    answer = judge_answer(self.recipe, self.api, self.price_for, self.multiplier,
                                          model, spec, p[1])
                except Exception:  # noqa: BLE001 - left to `apply`, which raises it in place
                    answer = None
            if answer is None or p is None:
                out.append((raw, None, None, None))
            else:
                out.append((None, p[0], answer, (model, spec.stage)))
        return out


def _spec_from_dict(d: dict[str, Any]) -> RequestSpec:
    """`RequestSpec.from_dict(d)` built without the frozen dataclass's `__init__` (its fourteen
    guarded attribute writes are a good part of judging): the same fields, set at once.
    `_Judge` uses it only once it has given the same object as `from_dict`."""
    spec: RequestSpec = object.__new__(RequestSpec)
    spec.__dict__.update(
        dataset=d["dataset"],
        task_id=d["task_id"],
        stage=d["stage"],
        sample_index=d["sample_index"],
        model=d["model"],
        messages=tuple(d["messages"]),
        schema=d.get("schema"),
        schema_name=d.get("schema_name", "answer"),
        params=dict(d.get("params") or {}),
        parent_id=d.get("parent_id"),
        meta=dict(d.get("meta") or {}),
        tools=tuple(d["tools"]) if d.get("tools") else None,
        tool_choice=d.get("tool_choice"),
        n=d.get("n", 1),
    )
    return spec


def _line_hash(raw: bytes) -> str:
    """A line's identity in `ingested_lines`."""
    return hashlib.sha256(raw.strip()).hexdigest()


def _judged_blocks(files: list[Path], judge: _Judge, helper: _Helper | None
                   ) -> Iterator[tuple[Path, list[str], list[_Entry]]]:
    """(file, line hashes, judged lines) of every block: judged by the helper process when
    it has the block, else here."""
    for k, (f, lines) in enumerate(_raw_blocks(files, INGEST_BLOCK)):
        hashes = [_line_hash(raw) for raw in lines]
        entries = helper.take(k, hashes) if helper is not None else None
        if entries is None:
            entries = judge.block(lines, hashes)
        yield f, hashes, entries


def _ingest_block(ledger: Ledger, rec: Reconciler, hashes: list[str], block: list[_Entry],
                  api: str, source: Path) -> int:
    seen = bstore.seen_lines(ledger, hashes)
    skipped = 0
    todo: list[_Todo] = []
    for h, (raw, uid, answer, unit) in zip(hashes, block):
        if h in seen:
            skipped += 1
            continue
        seen.add(h)
        if answer is not None and uid is not None:
            todo.append((h, None, uid, answer, unit))
            continue
        assert raw is not None
        try:
            line = orjson.loads(raw)
        except orjson.JSONDecodeError as e:
            raise ConfigError(str(source), _where(source, raw),
                              f"a line is not valid JSON: {e}") from None
        if not isinstance(line, dict):
            raise ConfigError(str(source), _where(source, raw), "each line must be a JSON object")
        todo.append((h, line, str(line.get("custom_id")), None, None))
    with ledger.tx():
        try:
            for run, valid in _runs(todo):
                for i in range(0, len(run), JUDGE_CHUNK):  # a few hundred at a time
                    part = run[i : i + JUDGE_CHUNK]
                    if not (valid and rec.apply_answers(
                        [(uid, *unit, answer) for _, _, uid, answer, unit in part]  # type: ignore[misc]
                    )):
                        _apply_each(ledger, rec, part, api)
            rec.flush()
        except BaseException:
            rec.discard()
            raise
        bstore.mark_lines(ledger, [t[0] for t in todo], str(source))
    return skipped


def _where(source: Path, raw: bytes) -> str:
    """'line N' of the first line of `source` that is `raw` (for an error message)."""
    try:
        with source.open("rb") as fh:
            for n, line in enumerate(fh, 1):
                if line == raw:
                    return f"line {n}"
    except OSError:
        pass
    return ""


# (hash, parsed line or None, custom_id, Answer or None, (model, stage) or None)
_Todo = tuple[str, "dict[str, Any] | None", str, "Answer | None", "tuple[str, str] | None"]


def _runs(todo: list[_Todo]) -> Iterator[tuple[list[_Todo], bool]]:
    """The lines in order, in runs: (lines, True) for a run of at least MIN_BULK_RUN valid
    answers judged ahead (for `Reconciler.apply_answers`), else (lines, False)."""
    run: list[_Todo] = []
    rest: list[_Todo] = []
    for t in todo:
        if t[3] is not None and t[3].ok and t[4] is not None:
            run.append(t)
            continue
        if len(run) >= MIN_BULK_RUN:
            if rest:
                yield rest, False
                rest = []
            yield run, True
        else:
            rest += run
        run = []
        rest.append(t)
    if len(run) >= MIN_BULK_RUN:
        if rest:
            yield rest, False
        yield run, True
    elif rest or run:
        yield rest + run, False


def _apply_each(ledger: Ledger, rec: Reconciler, todo: list[_Todo], api: str) -> None:
    for i in range(0, len(todo), JUDGE_CHUNK):
        part = todo[i : i + JUDGE_CHUNK]
        rec.flush()  # the units read next reflect the lines before
        known = ledger.unit_rows_by_id([t[2] for t in part])
        for _, line, uid, answer, _unit in part:
            if answer is not None:
                rec.apply_answer(uid, answer, known)
            else:
                assert line is not None
                rec.apply(line, None, api, known)


class _Checkpointer:
    """Copies committed pages from the WAL into the database file from a thread with its own
    connection, instead of inside every few commits of this one. The copying runs in SQLite's
    C code, beside this thread's work. Commits and their durability are unchanged (a commit
    is in the WAL; a checkpoint syncs what it copies); the WAL is finished by `close`."""

    def __init__(self, ledger: Ledger):
        self.ledger = ledger
        self.stop = threading.Event()
        self.thread: threading.Thread | None = None
        self.prev = 1000

    def __enter__(self) -> _Checkpointer:
        db = self.ledger.db
        self.prev = int(db.execute("PRAGMA wal_autocheckpoint").fetchone()[0])
        try:
            conn = sqlite3.connect(str(self.ledger.path), isolation_level=None,
                                   check_same_thread=False)
        except sqlite3.Error:
            return self  # SQLite checkpoints inside commits, as usual
        try:
            conn.execute("PRAGMA synchronous=NORMAL")  # as the ledger's: sync at checkpoints
        except sqlite3.Error:
            conn.close()
            return self
        db.execute("PRAGMA wal_autocheckpoint=0")
        self.thread = threading.Thread(target=self._run, args=(conn,), daemon=True,
                                       name="benchsmith-checkpoint")
        self.thread.start()
        return self

    def _run(self, conn: sqlite3.Connection) -> None:
        try:
            while not self.stop.wait(CHECKPOINT_EVERY_S):
                conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        except sqlite3.Error:
            pass  # the rest is checkpointed by the ledger's own connection
        finally:
            conn.close()

    def __exit__(self, *exc: Any) -> None:
        if self.thread is not None:
            self.stop.set()
            self.thread.join()
            self.ledger.db.execute(f"PRAGMA wal_autocheckpoint={self.prev}")


class _HelperGone(Exception):
    pass


class _Helper:
    """A second process that judges blocks (`_Judge.block`) while this one applies them.

    Judging is about half of an ingest's work and needs nothing this process writes, so on
    two cores it runs alongside the ledger writes. The helper reads the same files, starts at
    the block this process has reached when the helper is ready (blocks before it are judged
    here) and streams the judged blocks in order. Its answers are those this process would
    work out. If it fails or stalls, this process judges the remaining blocks itself.

    It is a plain `python -c` child speaking length-prefixed pickles on its stdin/stdout (not
    multiprocessing, which would re-import the caller's main module)."""

    def __init__(self, proc: subprocess.Popen[bytes]):
        self.proc = proc
        self.started = False
        self.gone = False

    @classmethod
    def start(cls, root: Path, files: list[Path]) -> _Helper | None:
        if os.name != "posix" or (os.cpu_count() or 1) < 2:
            return None
        try:
            if sum(f.stat().st_size for f in files) < HELPER_MIN_BYTES:
                return None
            env = dict(os.environ)
            env["PYTHONPATH"] = os.pathsep.join(
                p for p in (_PKG_PARENT, env.get("PYTHONPATH")) if p
            )
            proc = subprocess.Popen(
                [sys.executable, "-c", "from benchsmith.ingest import _helper_main; _helper_main()"],
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
            _write_frame(proc.stdin, (str(root), [str(f) for f in files], INGEST_BLOCK))
        except OSError:
            helper.close()
            return None
        return helper

    def take(self, k: int, hashes: list[str]) -> list[_Entry] | None:
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

    def calls_log(self, ledger: Ledger, rd: RunDir) -> _HelperCallsLog | None:
        """Have the helper (done judging, all imported) write the call log: see
        `calls_log_written_by`."""
        if self.gone or not self.started or ledger.db.in_transaction:
            return None
        try:
            _write_frame(self.proc.stdin, ("calls_log", str(rd.calls_log)))
        except OSError:
            self.close()
            return None
        return _HelperCallsLog(self)

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


class _HelperCallsLog:
    def __init__(self, helper: _Helper):
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


def _helper_main() -> None:
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
        judge = _Judge(ledger, recipe_for(cfg), wire_for(cfg)[0], cfg)
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
                for k, (_f, lines) in enumerate(_raw_blocks([Path(f) for f in files], size)):
                    if failed:
                        return
                    if k >= msg[1]:
                        ends = _line_hash(lines[0]), _line_hash(lines[-1])
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
