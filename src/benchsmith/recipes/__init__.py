"""Recipes: what to ask. One folder per recipe (`recipes/<name>/`), found through the registry.

A recipe declares stages that build requests and parse answers (no HTTP here), its options,
outputs, run checks and readable rendering; shared layers ask it, never test its name.
"""

from __future__ import annotations

from benchsmith.recipes.base import Parsed, Recipe, RequestSpec, RunCheck, Stage, StatusSummary
from benchsmith.recipes.context import ModelSlot, PromptCache, RecipeContext, plain_context
from benchsmith.recipes.registry import (
    DEFAULT_RECIPE,
    ENTRY_POINT_GROUP,
    RecipeSpec,
    UnknownRecipe,
    get_recipe,
    get_spec,
    legacy_keys,
    names,
    register,
    unregister,
)

__all__ = [
    "DEFAULT_RECIPE", "ENTRY_POINT_GROUP", "ModelSlot", "Parsed", "PromptCache", "Recipe",
    "RecipeContext", "RecipeSpec", "RequestSpec", "RunCheck", "Stage", "StatusSummary",
    "UnknownRecipe", "get_recipe", "get_spec", "legacy_keys", "names", "plain_context",
    "register", "unregister",
]
