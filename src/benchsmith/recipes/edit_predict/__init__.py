"""The edit_predict recipe: predict the remaining edits of a pull request from the edits so
far (infbench rows), one request per instance; `benchsmith infbench run` drives it per model."""

from __future__ import annotations

from typing import Any

from benchsmith.recipes.edit_predict.options import EditPredictOptions
from benchsmith.recipes.spec import RecipeSpec

VERSION = "1"


def _build(options: EditPredictOptions, ctx: Any) -> Any:
    from benchsmith.recipes.edit_predict.stages import edit_predict_recipe

    return edit_predict_recipe(options, ctx, VERSION)


RECIPE = RecipeSpec(
    name="edit_predict",
    version=VERSION,
    Options=EditPredictOptions,
    build=_build,
    summary="Next edits of a pull request from its edits so far (infbench rows) -> patches.",
)
