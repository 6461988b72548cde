"""Ingest of batch result lines into a run (`benchsmith batch ingest`), fast: lines are
judged in blocks (ingest/judge.py; by a helper process on big inputs, ingest/helper.py) and
written with bulk statements. Ingesting the same file twice changes nothing; unknown ids are
reported and ignored.
"""

from __future__ import annotations

import gc
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from benchsmith.engine.budget import overspend_problems
from benchsmith.engine.batch_answer import Answer
from benchsmith.engine.reconcile import Reconciler
from benchsmith.errors import ConfigError
from benchsmith.export.jsonl import calls_log_written_by
from benchsmith.export.run_files import write_run_files
from benchsmith.ingest.helper import Helper
from benchsmith.ingest.judge import JUDGE_CHUNK, Entry, LineJudge, line_hash, raw_blocks
from benchsmith.planner import wire_for
from benchsmith.engine.local_units import settle_local
from benchsmith.recipe_of import recipe_for
from benchsmith.run_open import open_run_dir
from benchsmith.store import batches as bstore
from benchsmith.store.ledger import Ledger
from benchsmith.store.lock import locks_run

INGEST_BLOCK = 5000  # lines per transaction
INGEST_CACHE_KIB = -65536  # SQLite page cache while ingesting (negative: KiB), default 2 MiB
MIN_BULK_RUN = 16  # valid answers in a row written in bulk (`Reconciler.apply_answers`)
CHECKPOINT_EVERY_S = 0.01  # WAL checkpoint polling of `_Checkpointer`


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
    helper: Helper | None = None
    try:
        # Bulk work: parsed lines and units are short-lived and hold no reference cycles, and
        # cyclic collections triggered by their sheer number would cost ~10% of the time.
        gc.disable()
        helper = Helper.start(rd.root, files, INGEST_BLOCK)  # starts up while this process gets ready
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
        judge = LineJudge(ledger, recipe, api, cfg)
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
            # What the answers planned may be model-free: answered now, like every path.
            settle_local(ledger, recipe, tasks, inv)
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


def _judged_blocks(files: list[Path], judge: LineJudge, helper: Helper | None
                   ) -> Iterator[tuple[Path, list[str], list[Entry]]]:
    """(file, line hashes, judged lines) of every block: judged by the helper process when
    it has the block, else here."""
    for k, (f, lines) in enumerate(raw_blocks(files, INGEST_BLOCK)):
        hashes = [line_hash(raw) for raw in lines]
        entries = helper.take(k, hashes) if helper is not None else None
        if entries is None:
            entries = judge.block(lines, hashes)
        yield f, hashes, entries


def _ingest_block(ledger: Ledger, rec: Reconciler, hashes: list[str], block: list[Entry],
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

