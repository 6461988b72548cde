"""The skyrl_tools recipe: SkyRL tool-use datasets. `synth` asks a reasoning model for new
tasks with ground-truth MCP tool plans (domains and complexities allocated exactly);
`retrofit` asks for plans for the prompts of existing SkyRL rows. Plans are checked against a
tool inventory (benchsmith.skyrl); `benchsmith skyrl synth` / `skyrl retrofit` drive it."""

from __future__ import annotations

from typing import Any

from benchsmith.recipes.skyrl_tools.options import OUTPUT_ONLY, SkyrlToolsOptions
from benchsmith.recipes.spec import RecipeSpec

VERSION = "1"


def _build(options: SkyrlToolsOptions, ctx: Any) -> Any:
    from benchsmith.recipes.skyrl_tools.stages import skyrl_tools_recipe

    return skyrl_tools_recipe(options, ctx, VERSION)


def _fingerprint(options: SkyrlToolsOptions) -> dict[str, Any]:
    """Every option that shapes requests; the output-only ones may change on resume."""
    data = options.model_dump(mode="json")
    return {f"recipe_options.{k}": v for k, v in sorted(data.items()) if k not in OUTPUT_ONLY}


RECIPE = RecipeSpec(
    name="skyrl_tools",
    version=VERSION,
    Options=SkyrlToolsOptions,
    build=_build,
    summary="SkyRL tool-use rows: tasks with ground-truth MCP tool plans (synth), or plans "
    "for existing prompts (retrofit) -> train/validation parquet.",
    fingerprint=_fingerprint,
    path_fields=("inventory", "out_dir"),
)
