"""Options of the Agentless rollout recipes (`recipe_options:`; formerly `rollout:`)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class AgentlessOptions(BaseModel):
    """Agentless-style SWE-bench rollouts (recipes agentless_bugfix / agentless_testgen)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    structure_dir: str | None = Field(
        None, description="Folder of Agentless repo-structure files `<instance_id>.json`."
    )
    repos_dir: str | None = Field(
        None,
        description="Folder of local clones (`<owner>__<name>` or `<name>`); structures are "
        "built from them at base_commit without touching the checkout, and cached.",
    )
    cache_dir: str | None = Field(
        None, description="Built-structure cache; default ~/.cache/benchsmith/repo_structure."
    )
    passk: int = Field(1, ge=1, le=100, description="Samples per instance.")
    max_context_tokens: int = Field(
        20_000, ge=500, description="Budget for file contents in the repair prompt (~4 chars a "
        "token); files beyond it are dropped and recorded.",
    )
    max_files: int = Field(5, ge=1, le=50, description="Most files stage 1 may choose.")
    convert_crlf: bool = Field(False, description="Normalize problem-statement line endings.")
    start: int | None = Field(None, ge=0, description="First index in the sorted instance ids.")
    end: int | None = Field(None, ge=0, description="End index (exclusive) in the sorted ids.")
    model_name_or_path: str | None = Field(
        None, description="Name written to preds.jsonl; default: the model name."
    )
    enable_thinking: bool | None = Field(
        None, description="Sent as chat_template_kwargs.enable_thinking (vLLM/SGLang)."
    )
    thinking_budget: int | None = Field(None, ge=1, description="Sent as thinking_budget.")
    max_validation_retries: int = Field(
        2, ge=0, le=10, description="Re-asks, with the validation error fed back, per request."
    )
