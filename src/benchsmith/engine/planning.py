"""Planning the units that follow a finished unit (the next stage, or the next call of a chain)."""

from __future__ import annotations

from typing import Any

from benchsmith.recipes.base import Recipe, RequestSpec
from benchsmith.records import Task
from benchsmith.store.ids import unit_id as make_unit_id
from benchsmith.store.ledger import Ledger


def child_rows(
    recipe: Recipe, task: Task, parent_id: str, spec: RequestSpec, records: list[dict[str, Any]],
    *, ok: bool = True,
) -> list[tuple[str, dict[str, Any]]]:
    """(unit id, spec) of the units planned by a finished unit.

    A unit that ended without records (invalid, failed) only continues a chain: other
    stages' children need their parent's answer.
    """
    rows = []
    for child in recipe.children_of(spec.stage):
        if not ok and child.needs != child.name:
            continue
        parent = {"unit_id": parent_id, "spec": spec, "records": records if ok else []}
        for cs in child.build(task, parent):
            d = cs.to_dict()
            d["parent_id"] = parent_id
            rows.append((make_unit_id(recipe.name, recipe.version, d), d))
    return rows


def fail_units(
    ledger: Ledger, recipe: Recipe, tasks: dict[tuple[str, str], Task],
    failures: list[tuple[str, str]],
) -> int:
    """Fail pending units that were never sent, (unit id, reason) each, in one transaction,
    and plan what follows them (a chain goes on, as after any failure). Returns how many
    units were failed."""
    if not failures:
        return 0
    units = ledger.units_by_id([uid for uid, _ in failures])
    done = 0
    with ledger.tx():
        for uid, reason in failures:
            unit = units.get(uid)
            if unit is None or unit.state != "pending":
                continue
            ledger.finish_unit(uid, "failed", reason[:500], None)
            done += 1
            if not recipe.children_of(unit.stage):
                continue
            spec = RequestSpec.from_dict(unit.spec)
            task = tasks.get((spec.dataset, spec.task_id))
            if task is not None:
                ledger.insert_units(child_rows(recipe, task, uid, spec, [], ok=False))
    return done
