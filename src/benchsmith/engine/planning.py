"""Planning the units that follow a finished unit (the next stage, or the next call of a chain)."""

from __future__ import annotations

from typing import Any

from benchsmith.recipes.base import Recipe, RequestSpec
from benchsmith.records import Task
from benchsmith.store.ids import unit_id as make_unit_id


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
