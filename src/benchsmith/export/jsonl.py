"""Regenerate the run's JSONL files and manifests from the ledger, atomically."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from benchsmith.store.ledger import Ledger
from benchsmith.validate.diversity import DUPLICATE_PREFIX
from benchsmith.store.rundir import RunDir, atomic_write_json, atomic_write_jsonl


def record_rows(ledger: Ledger, dataset: str, stage: str) -> Iterator[dict[str, Any]]:
    """Valid records of one stage, one row per record, in task/sample order.

    `attempt` is the number of the API call (1-based, per request) whose answer was accepted.
    """
    ok_attempt = ledger.ok_attempt_numbers()
    for u in ledger.units(state="ok", dataset=dataset, stage=stage):
        for rec in u.result or []:
            yield {
                "dataset": u.dataset,
                "task_id": u.task_id,
                "request_id": u.unit_id,
                "model": u.model,
                "attempt": ok_attempt.get(u.unit_id, 1),
                **rec,
            }


def failed_rows(ledger: Ledger, dataset: str, stage: str) -> list[dict[str, Any]]:
    """Every locally invalid attempt, with its validation error and raw output."""
    rows = []
    for a in ledger.attempts(status="invalid", dataset=dataset, stage=stage):
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
    for a in ledger.attempts(with_output=False):
        yield {
            "id": a["id"],
            "request_id": a["unit_id"],
            "invocation": a["invocation"],
            "dataset": a["dataset"],
            "task_id": a["task_id"],
            "stage": a["stage"],
            "attempt": a["n"],
            "model": a["model"],
            "status": a["status"],
            "http_status": a["http_status"],
            "latency_s": round(a["latency_s"], 4) if a["latency_s"] is not None else None,
            "started_at": a["started_at"],
            "usage": {
                "input_tokens": a["input_tokens"],
                "cached_input_tokens": a["cached_input_tokens"],
                "output_tokens": a["output_tokens"],
                "reasoning_tokens": a["reasoning_tokens"],
            },
            "cached_input_tokens": a["cached_input_tokens"],
            "reserved_usd": a["reserved_usd"],
            "cost_usd": a["cost_usd"],
            "key": a["key_hint"],
            "error": a["error"],
        }


def invocation_rows(ledger: Ledger) -> list[dict[str, Any]]:
    per_inv = ledger.invocation_totals()
    return [{**inv, **per_inv.get(inv["id"], {"api_calls": 0, "cost_usd": 0.0})}
            for inv in ledger.invocations()]


def write_outputs(ledger: Ledger, rd: RunDir, stages: list[str], unit_states: bool = True) -> None:
    """Rewrite every derived file. Safe to call at any time; the ledger is not changed."""
    task_states = ledger.task_states()
    for ds in ledger.datasets():
        tasks = ledger.tasks(ds)
        atomic_write_jsonl(rd.dataset_file(ds, "tasks.jsonl"), (t.to_dict() for t in tasks))
        complete, incomplete = [], []
        for t in tasks:
            st = task_states.get((ds, t.id), {})
            done = bool(st) and set(st) == {"ok"}
            (complete if done else incomplete).append(t.id)
        atomic_write_json(rd.manifest(ds, "all"), [t.id for t in tasks])
        atomic_write_json(rd.manifest(ds, "complete"), complete)
        atomic_write_json(rd.manifest(ds, "incomplete"), incomplete)
        if ds.startswith("swebench"):
            first100 = rd.root / "manifests" / f"{ds}_first100_instance_ids.json"
            atomic_write_json(first100, [t.id for t in tasks][:100])
        by_id = {t.id: t for t in tasks}
        rejections: dict[str, int] = {}
        for stage in stages:
            atomic_write_jsonl(rd.dataset_file(ds, f"{stage}.jsonl"), record_rows(ledger, ds, stage))
            failed = failed_rows(ledger, ds, stage)
            for r in failed:
                n = sum(1 for i in r["issues"] if i.startswith(DUPLICATE_PREFIX))
                if n:
                    rejections[r["task_id"]] = rejections.get(r["task_id"], 0) + n
            atomic_write_jsonl(rd.failed_file(ds, f"{stage}.jsonl"), failed)
            failed_tasks = sorted({r["task_id"] for r in failed})
            atomic_write_jsonl(
                rd.failed_file(ds, "tasks.jsonl"),
                (by_id[t].to_dict() for t in failed_tasks if t in by_id),
            )
        atomic_write_json(
            rd.root / "manifests" / f"{ds}_similarity_rejections.json",
            {t.id: rejections.get(t.id, 0) for t in tasks},
        )
    atomic_write_jsonl(rd.calls_log, call_log_rows(ledger))
    atomic_write_jsonl(rd.runs_jsonl, invocation_rows(ledger))
