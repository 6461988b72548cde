"""Regenerate the run's JSONL files and manifests from the ledger, atomically."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Protocol

import orjson

from benchsmith.export.child_process import second_core, spawn_python
from benchsmith.store import leak_rows
from benchsmith.store.ledger import Ledger
from benchsmith.store.rundir import RunDir, atomic_write_json, atomic_write_jsonl, sync_dirs



def record_rows(ledger: Ledger, dataset: str, stage: str,
                leaking: set[tuple[str, str]] | None = None) -> Iterator[dict[str, Any]]:
    """Valid records of one stage, one row per record, in task/sample order.

    `attempt` is the number of the API call (1-based, per request) whose answer was accepted.
    With `leaking` (store.leak_rows.leaking_tasks: what exports pass) each row has
    `gold_leak`: whether a request of its task carried the task's gold.
    """
    ok_attempt = ledger.ok_attempt_numbers()
    for uid, ds, tid, model, result_json in ledger.ok_results(dataset, stage):
        if result_json is None:
            continue
        head = {"dataset": ds, "task_id": tid, "request_id": uid, "model": model,
                "attempt": ok_attempt.get(uid, 1)}
        if leaking is not None:
            head[GOLD_LEAK] = (ds, tid) in leaking
        for rec in orjson.loads(result_json) or []:
            yield {**head, **rec}


GOLD_LEAK = "gold_leak"
_HEAD_KEYS = frozenset(("dataset", "task_id", "request_id", "model", "attempt", GOLD_LEAK))


def _record_lines(ledger: Ledger, dataset: str, stage: str,
                  ok_attempt: dict[str, int], leaking: set[tuple[str, str]]) -> Iterator[Any]:
    """The rows of `record_rows` for `atomic_write_jsonl`, serialised in bulk: one
    `orjson.Fragment` per unit holding its rows' lines. A row's JSON is the head's and the
    record's spliced (both by orjson: byte for byte what dumping the merged dict gives).
    A unit with a record that is not a non-empty object with keys of its own gets dicts."""
    dumps, loads, frag, disjoint = orjson.dumps, orjson.loads, orjson.Fragment, _HEAD_KEYS.isdisjoint
    for uid, ds, tid, model, result_json in ledger.ok_results(dataset, stage):
        if result_json is None:
            continue
        recs = loads(result_json) or []
        head = {"dataset": ds, "task_id": tid, "request_id": uid, "model": model,
                "attempt": ok_attempt.get(uid, 1), GOLD_LEAK: (ds, tid) in leaking}
        if type(recs) is list and recs and all(type(r) is dict and r and disjoint(r) for r in recs):
            prefix = dumps(head)[:-1] + b","
            yield frag(b"\n".join([prefix + dumps(r)[1:] for r in recs]))
        else:
            for rec in recs:
                yield {**head, **rec}


def failed_rows(ledger: Ledger, dataset: str, stage: str) -> list[dict[str, Any]]:
    """Every locally invalid attempt of the current plan, with its validation error and raw
    output."""
    rows = []
    for a in ledger.attempts(status="invalid", dataset=dataset, stage=stage, current_plan=True):
        rows.append(
            {
                "dataset": dataset,
                "task_id": a["task_id"],
                "request_id": a["unit_id"],
                "attempt_id": a["id"],
                "attempt": a["n"],
                "call_index": a["sample_index"],
                "model": a["model"],
                "validation_error": "; ".join(a["issues"]) or a["error"],
                "issues": a["issues"],
                "raw_output": a["raw_output"],
            }
        )
    return rows


def call_log_rows(ledger: Ledger) -> Iterator[dict[str, Any]]:
    for (aid, uid, inv, ds, tid, stage, n, model, status, http, latency, started, i, c, o, r,
         reserved, cost, key, error) in ledger.call_log():
        yield {
            "id": aid,
            "request_id": uid,
            "invocation": inv,
            "dataset": ds,
            "task_id": tid,
            "stage": stage,
            "attempt": n,
            "model": model,
            "status": status,
            "http_status": http,
            "latency_s": round(latency, 4) if latency is not None else None,
            "started_at": started,
            "usage": {
                "input_tokens": i,
                "cached_input_tokens": c,
                "output_tokens": o,
                "reasoning_tokens": r,
            },
            "cached_input_tokens": c,
            "reserved_usd": reserved,
            "cost_usd": cost,
            "key": key,
            "error": error,
        }


def invocation_rows(ledger: Ledger) -> list[dict[str, Any]]:
    per_inv = ledger.invocation_totals()
    return [{**inv, **per_inv.get(inv["id"], {"api_calls": 0, "cost_usd": 0.0})}
            for inv in ledger.invocations()]


class CallsLogWriter(Protocol):
    """Something writing logs/batch_calls.jsonl elsewhere (see `calls_log_written_by`)."""

    def wait(self) -> bool:
        """Wait for it: True if the file was written (else the caller writes it)."""
        ...

    def stop(self) -> None:
        """Give up on it (the caller failed)."""
        ...


_calls_log_by: ContextVar[Callable[[Ledger, RunDir], CallsLogWriter | None] | None] = ContextVar(
    "benchsmith_calls_log_by", default=None
)


@contextmanager
def calls_log_written_by(start: Callable[[Ledger, RunDir], CallsLogWriter | None]) -> Iterator[None]:
    """Within it, `write_outputs` asks `start(ledger, rd)` to write the call log alongside
    (e.g. a process already running, from the same committed ledger); None: the usual way."""
    token = _calls_log_by.set(start)
    try:
        yield
    finally:
        _calls_log_by.reset(token)


def write_outputs(ledger: Ledger, rd: RunDir, stages: list[str], unit_states: bool = True) -> None:
    """Rewrite every derived file. Safe to call at any time; the ledger is not changed."""
    # A big call log is written alongside, by another process, if it can be.
    start = _calls_log_by.get()
    calls = start(ledger, rd) if start is not None else None
    if calls is None:
        calls = _CallsLogChild.start(ledger, rd)
    try:
        _write_outputs(ledger, rd, stages, calls)
    finally:
        if calls is not None:
            calls.stop()


def _write_outputs(ledger: Ledger, rd: RunDir, stages: list[str],
                   calls: CallsLogWriter | None) -> None:
    # Derived files: no fsync each, one sync of their folders at the end.
    folders: set[Path] = set()

    def jsonl(path: Path, rows: Any) -> None:
        atomic_write_jsonl(path, rows, durable=False)
        folders.add(path.parent)

    def json_(path: Path, obj: Any) -> None:
        atomic_write_json(path, obj, durable=False)
        folders.add(path.parent)

    task_states = ledger.task_states()
    ok_attempt = ledger.ok_attempt_numbers()  # for every stage: the ledger does not change
    # One pass per stage finds the datasets with invalid attempts (only they have failed rows).
    with_invalid = {stage: ledger.attempt_datasets("invalid", stage) for stage in stages}
    found = leak_rows.findings(ledger.db)
    leaking = leak_rows.leaking_tasks(ledger.db)
    for ds in ledger.datasets():
        tasks = ledger.tasks(ds)
        jsonl(rd.dataset_file(ds, "tasks.jsonl"), (t.to_dict() for t in tasks))
        complete, incomplete = [], []
        for t in tasks:
            st = task_states.get((ds, t.id), {})
            done = bool(st) and set(st) == {"ok"}
            (complete if done else incomplete).append(t.id)
        json_(rd.manifest(ds, "all"), [t.id for t in tasks])
        json_(rd.manifest(ds, "complete"), complete)
        json_(rd.manifest(ds, "incomplete"), incomplete)
        if ds.startswith("swebench"):
            json_(rd.manifest(ds, "first100"), [t.id for t in tasks][:100])
        json_(rd.manifest(ds, "gold_leaks"), leak_rows.manifest_rows(found, ds))
        by_id = {t.id: t for t in tasks}
        failed_tasks: set[str] = set()  # of any stage
        for stage in stages:
            jsonl(rd.dataset_file(ds, f"{stage}.jsonl"),
                  _record_lines(ledger, ds, stage, ok_attempt, leaking))
            failed = failed_rows(ledger, ds, stage) if ds in with_invalid[stage] else []
            jsonl(rd.failed_file(ds, f"{stage}.jsonl"), failed)
            failed_tasks.update(r["task_id"] for r in failed)
        jsonl(
            rd.failed_file(ds, "tasks.jsonl"),
            (by_id[t].to_dict() for t in sorted(failed_tasks) if t in by_id),
        )
    _drop_replanned_datasets(ledger, rd)
    if calls is None or not calls.wait():
        jsonl(rd.calls_log, call_log_rows(ledger))
    jsonl(rd.runs_jsonl, invocation_rows(ledger))
    sync_dirs(folders)


_MANIFESTS = ("task_ids", "complete_task_ids", "incomplete_task_ids", "first100_instance_ids",
              "similarity_rejections", "gold_leaks")


def _drop_replanned_datasets(ledger: Ledger, rd: RunDir) -> None:
    """Remove the exports of datasets only earlier plans had (after a replan dropped them):
    a run's files hold the current plan; the ledger keeps the rest."""
    current = set(ledger.datasets())
    every = {r[0] for r in ledger.db.execute("SELECT DISTINCT dataset FROM tasks")}
    for ds in sorted(every - current):
        for folder in (rd.dataset_file(ds, "-").parent, rd.failed_file(ds, "-").parent):
            shutil.rmtree(folder, ignore_errors=True)
        for kind in _MANIFESTS:
            (rd.root / "manifests" / f"{ds}_{kind}.json").unlink(missing_ok=True)


CALLS_LOG_CHILD_MIN = 30_000  # attempts from which a child process writes the call log


class _CallsLogChild:
    """Writes logs/batch_calls.jsonl from the ledger in a child process, while the caller
    writes the other files: for a big ledger that is a good part of the time, and a second
    core does it. The child reads the same committed ledger (so only when the caller has no
    transaction open); if it fails, the caller writes the file itself."""

    def __init__(self, proc: subprocess.Popen[bytes]):
        self.proc = proc

    @classmethod
    def start(cls, ledger: Ledger, rd: RunDir) -> _CallsLogChild | None:
        if not second_core() or ledger.db.in_transaction:
            return None
        n = ledger.db.execute("SELECT MAX(id) FROM attempts").fetchone()[0] or 0
        if n < CALLS_LOG_CHILD_MIN:
            return None
        proc = spawn_python(
            "from benchsmith.export.jsonl import _calls_log_main; _calls_log_main()",
            [str(ledger.path), str(rd.calls_log)])
        if proc is None:
            return None
        return cls(proc)

    def wait(self) -> bool:
        """True if the child wrote the file."""
        return self.proc.wait() == 0

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()  # the child removes its temp file
            self.proc.wait()


def _calls_log_main() -> None:
    """The child of `_CallsLogChild`: argv = ledger path, call log path."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    ledger = Ledger(Path(sys.argv[1]))
    try:
        atomic_write_jsonl(Path(sys.argv[2]), call_log_rows(ledger))
    finally:
        ledger.close()
