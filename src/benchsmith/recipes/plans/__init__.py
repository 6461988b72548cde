"""The plans recipe: implementation plans for each task, K calls of P plans, kept diverse."""

from __future__ import annotations

from typing import Any

from benchsmith.recipes.plans.options import PlansOptions
from benchsmith.recipes.spec import RecipeSpec

VERSION = "2"


def _build(options: PlansOptions, ctx: Any) -> Any:
    from benchsmith.recipes.plans.stages import plans_recipe

    return plans_recipe(options, ctx, VERSION)


def _fingerprint(o: PlansOptions) -> dict[str, Any]:
    # Field names of the first config layout (`plans:`), so runs made before stay resumable.
    data = o.model_dump(mode="json")
    data.pop("prompt_template")  # its text is pinned, not where it lies
    return {f"plans.{k}": v for k, v in data.items()}


RECIPE = RecipeSpec(
    name="plans",
    version=VERSION,
    Options=PlansOptions,
    build=_build,
    summary="Implementation plans per task: K calls x P plans, strict JSON, kept diverse.",
    aliases=("plans",),
    model_calls=lambda o: o.calls_per_task,
    fingerprint=_fingerprint,
    path_fields=("prompt_template",),
)
