"""The work a run expects: each pending unit plus the units it is expected to plan (later
stages, the rest of a chain), as its recipe says. Progress totals count it up front, so a
bar's total does not grow as children are planned; it is refined as they actually are."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from benchsmith.recipes.base import Recipe


class ExpectedWork:
    def __init__(self, recipe: Recipe):
        self.recipe = recipe
        self._of: dict[tuple[str, int], int] = {}

    def of(self, stage: str, sample_index: int) -> int:
        """The unit itself and what it is expected to plan."""
        key = (stage, sample_index)
        n = self._of.get(key)
        if n is None:
            n = self._of[key] = 1 + self.recipe.expected_after(stage, sample_index)
        return n

    def total(self, units: Iterable[Any]) -> int:
        """Of pending units (anything with `stage` and `sample_index`)."""
        return sum(self.of(u.stage, u.sample_index) for u in units)

    def counted(self, by_stage: dict[tuple[str, int], int]) -> int:
        """Of pending units counted per (stage, sample index)."""
        return sum(n * self.of(stage, i) for (stage, i), n in by_stage.items())

    def change(self, parent: Any, children: Iterable[Any]) -> int:
        """How the expected total changes once `parent` has finished (it counts as done) and
        planned `children` in its place of what it was expected to plan."""
        return self.total(children) - (self.of(parent.stage, parent.sample_index) - 1)
