"""Every file a run derives from its ledger, for any recipe."""

from __future__ import annotations

from benchsmith.config import RunConfig
from benchsmith.export.jsonl import write_outputs
from benchsmith.recipes.base import Recipe
from benchsmith.store.ledger import Ledger
from benchsmith.store.rundir import RunDir


def write_run_files(ledger: Ledger, rd: RunDir, recipe: Recipe, cfg: RunConfig) -> None:
    write_outputs(ledger, rd, [s.name for s in recipe.stages])
    if recipe.name.startswith("agentless_"):
        from benchsmith.export.rollout import write_rollout_outputs

        write_rollout_outputs(
            ledger, rd, recipe.stages[-1].name, cfg.rollout.model_name_or_path or cfg.model.name
        )
