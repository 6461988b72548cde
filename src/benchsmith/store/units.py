"""A unit as read from the ledger: in full (`Unit`) or lazily parsed in bulk (`UnitRow`)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import orjson


def dumps_value(obj: Any) -> bytes:
    """A value as the ledger stores it (JSON)."""
    try:
        return orjson.dumps(obj)
    except TypeError:  # an int wider than 64 bits in a task's data: the stdlib writes any int
        return json.dumps(obj, ensure_ascii=False).encode()


@dataclass(frozen=True)
class Unit:
    unit_id: str
    dataset: str
    task_id: str
    stage: str
    sample_index: int
    parent_id: str | None
    model: str
    spec: dict[str, Any]
    state: str
    reason: str | None
    result: Any


class UnitRow:
    """A unit read in bulk (`unit_rows_by_id`): the fields of `Unit`, but its spec and result
    are parsed from their JSON on first use (bulk reconciling mostly needs the columns)."""

    __slots__ = ("unit_id", "dataset", "task_id", "stage", "sample_index", "parent_id", "model",
                 "state", "reason", "_spec_json", "_result_json", "_spec")

    def __init__(self, r: tuple[Any, ...]):
        (self.unit_id, self.dataset, self.task_id, self.stage, self.sample_index, self.parent_id,
         self.model, self._spec_json, self.state, self.reason, self._result_json) = r
        self._spec: dict[str, Any] | None = None

    @property
    def spec(self) -> dict[str, Any]:
        """A fresh parse on first use, then the same dict (as `Unit.spec`)."""
        if self._spec is None:
            self._spec = orjson.loads(self._spec_json)
        return self._spec

    @property
    def result(self) -> Any:
        return orjson.loads(self._result_json) if self._result_json is not None else None
