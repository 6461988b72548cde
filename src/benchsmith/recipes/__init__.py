"""Recipes: what to ask. Declared stages that build requests and parse answers; no HTTP here."""

from __future__ import annotations

from benchsmith.config import RunConfig
from benchsmith.recipes.base import Recipe


def get_recipe(cfg: RunConfig) -> Recipe:
    if cfg.recipe == "plans":
        from benchsmith.recipes.plans import plans_recipe

        return plans_recipe(cfg)
    if cfg.recipe in ("agentless_bugfix", "agentless_testgen"):
        from benchsmith.recipes.agentless import agentless_recipe

        return agentless_recipe(cfg, cfg.recipe.removeprefix("agentless_"))
    raise ValueError(f"unknown recipe {cfg.recipe!r}")
