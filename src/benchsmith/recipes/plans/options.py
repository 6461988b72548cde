"""Options of the plans recipe (`recipe_options:`; formerly the `plans:` section)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class PlansOptions(BaseModel):
    """K calls per task, each asking for P implementation plans."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    calls_per_task: int = Field(3, ge=1, le=100, description="Model calls per task.")
    plans_per_call: int = Field(4, ge=1, le=20, description="Plans asked for in each call.")
    max_validation_retries: int = Field(
        2, ge=0, le=10, description="Re-asks, with the validation error fed back, per call."
    )
    min_steps: int = Field(2, ge=1, description="Fewest steps a valid plan may have.")
    prompt_template: str | None = Field(
        None, description="Path to a prompt template file; default is the built-in one."
    )
    diversity: bool = Field(
        True,
        description="Calls of a task run in order; each is shown the plans already accepted "
        "and asked for different approaches.",
    )
    similarity_threshold: float = Field(
        0.85,
        gt=0,
        le=1,
        description="A plan at least this similar (rapidfuzz token-sort ratio of normalized "
        "text, 0..1) to an accepted plan is rejected as `duplicate_of:<plan id>`.",
    )
