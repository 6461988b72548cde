"""Every file a run derives from its ledger: the shared ones, then the recipe's own."""

from __future__ import annotations

from benchsmith.export.jsonl import write_outputs
from benchsmith.recipes.base import Recipe
from benchsmith.store.ledger import Ledger
from benchsmith.store.rundir import RunDir


def write_run_files(ledger: Ledger, rd: RunDir, recipe: Recipe) -> None:
    write_outputs(ledger, rd, [s.name for s in recipe.stages])
    if recipe.write_outputs is not None:
        recipe.write_outputs(ledger, rd)
