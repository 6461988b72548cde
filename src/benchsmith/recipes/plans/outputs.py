"""What the plans recipe adds to a run's outputs and status: answers rejected as too similar.

``manifests/<ds>_similarity_rejections.json`` maps each task to how many of its plans the
diversity check rejected (in the current plan's invalid attempts).
"""

from __future__ import annotations

from typing import Any

from benchsmith.recipes.base import StatusSummary
from benchsmith.store.ledger import Ledger
from benchsmith.store.rundir import RunDir, atomic_write_json, sync_dirs
from benchsmith.recipes.plans.diversity import DUPLICATE_PREFIX

STAGE = "plans"


def _rejections(attempt: dict[str, Any]) -> int:
    return sum(1 for i in attempt["issues"] if i.startswith(DUPLICATE_PREFIX))


def write_similarity(ledger: Ledger, rd: RunDir) -> None:
    with_invalid = ledger.attempt_datasets("invalid", STAGE)
    for ds in ledger.datasets():
        per_task: dict[str, int] = {}
        if ds in with_invalid:
            for a in ledger.attempts(status="invalid", dataset=ds, stage=STAGE,
                                     with_output=False, current_plan=True):
                n = _rejections(a)
                if n:
                    per_task[a["task_id"]] = per_task.get(a["task_id"], 0) + n
        atomic_write_json(rd.manifest(ds, "similarity"),
                          {t.id: per_task.get(t.id, 0) for t in ledger.tasks(ds)}, durable=False)
    sync_dirs([rd.root / "manifests"])  # derived files: one sync for them all


def status(ledger: Ledger) -> StatusSummary:
    """`similarity_rejections` per dataset (every attempt, any plan) and one line each."""
    similar: dict[str, int] = {}
    for a in ledger.attempts(status="invalid", with_output=False):
        n = _rejections(a)
        if n:
            similar[a["dataset"]] = similar.get(a["dataset"], 0) + n
    lines = tuple(
        f"diversity: {ds}: {n} plan(s) rejected as too similar "
        f"(per task: manifests/{ds}_similarity_rejections.json)"
        for ds, n in similar.items()
    )
    return StatusSummary({"similarity_rejections": similar}, lines)
