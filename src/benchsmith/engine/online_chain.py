"""The units a finished unit plans in the online executor (the next stage, a chain's next
call), with a re-opened unit's chain handled as store/reopen.py says."""

from __future__ import annotations

from typing import Any

from benchsmith.engine.history import UnitHistory
from benchsmith.engine.planning import child_rows
from benchsmith.recipes.base import Recipe, RequestSpec
from benchsmith.records import Task
from benchsmith.store.ledger import Ledger, Unit
from benchsmith.store.reopen import children_after_reopen

Rows = list[tuple[str, dict[str, Any]]]


class Children:
    """`histories`: the executor's, shared: revived units get a fresh history here."""

    def __init__(self, ledger: Ledger, recipe: Recipe, tasks: dict[tuple[str, str], Task],
                 histories: dict[str, UnitHistory]):
        self.ledger = ledger
        self.recipe = recipe
        self.tasks = tasks
        self.histories = histories

    def rows(self, unit: Unit, spec: RequestSpec, records: list[dict[str, Any]],
             ok: bool = True) -> Rows:
        """(unit id, spec) of the units a finished unit plans (e.g. a chain's next call)."""
        if not self.recipe.children_of(spec.stage):
            return []
        task = self.tasks[(spec.dataset, spec.task_id)]
        return child_rows(self.recipe, task, unit.unit_id, spec, records, ok=ok)

    def reopened(self, unit_id: str) -> bool:
        return self.histories.get(unit_id, UnitHistory()).reopened

    def after_reopen(self, unit_id: str, rows: Rows) -> Rows:
        """Record the children of a re-opened unit (store/reopen.py); returns them."""
        rows, revived = children_after_reopen(self.ledger, unit_id, rows)
        for uid in revived:  # set aside earlier: numbered after, counted from, their attempts
            self.histories[uid] = UnitHistory(self.ledger.attempt_count(uid), reopened=True)
        if rows:
            self.ledger.add_units(rows)
        return rows

    def after_failure(self, unit: Unit, spec: RequestSpec) -> Rows:
        """A chain goes on past a unit that ended without records (call 2 after call 1
        failed); other stages' children need their parent's answer, so they are not planned.
        Returns the rows recorded."""
        rows = self.rows(unit, spec, [], ok=False)
        if rows and self.reopened(unit.unit_id):
            return self.after_reopen(unit.unit_id, rows)
        if rows:
            self.ledger.add_units(rows)
        return rows
