"""Options of the edit_predict recipe (`recipe_options:`)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class EditPredictOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    n: int = Field(
        1, ge=1, le=128,
        description="Answers (choices) per request; n > 1 needs `openai.api: chat`.")
    context_limit: int | None = Field(
        None, ge=1,
        description="Context window in tokens the prompt must fit (with the output reserve); "
        "default: the model's `max_context_tokens` (400,000 when unset). Code-context files "
        "are dropped from the end, whole, until the prompt fits.")
    max_output_tokens: int | None = Field(
        None, ge=1,
        description="Output tokens asked for and reserved in the context window; default: "
        "the model's `max_output_tokens`.")
    require_patch: bool = Field(
        False,
        description="An answer without an extractable patch is invalid and asked again "
        "(default: it is kept, with an empty model_patch and patch_source `none`).")
    max_validation_retries: int = Field(
        1, ge=0, le=5, description="Re-asks of an answer without a patch (require_patch).")
    skip: dict[str, list[str]] = Field(
        default_factory=dict,
        description="Dataset -> instance ids not to ask (`infbench run` sets it: the ids "
        "its results file already holds, and those outside --sampled-ids-file).")
