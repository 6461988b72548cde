"""Options of the skyrl_tools recipe (`recipe_options:`)."""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

COMPLEXITIES = ("simple", "moderate", "complex")
DEFAULT_DOMAINS = {"software engineering": 1.0, "data analysis": 1.0, "web research": 1.0,
                   "devops": 1.0}
DEFAULT_COMPLEXITIES = {"simple": 0.3, "moderate": 0.5, "complex": 0.2}


class SkyrlToolsOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    mode: Literal["synth", "retrofit"] = Field(
        "synth",
        description="`synth`: each task slot (source generated) asks for a new task and its "
        "tool plan; `retrofit`: each input row (SkyRL format, source jsonl as prepared by "
        "`skyrl retrofit`) asks for a plan for its prompt.")
    inventory: str | None = Field(
        None,
        description="Tool inventory (YAML or JSON: servers, tools, JSON Schema parameters); "
        "default: the example inventory shipped with benchsmith (filesystem, git, web search, "
        "SQL database).")
    domains: dict[str, float] = Field(
        default_factory=lambda: dict(DEFAULT_DOMAINS),
        description="synth: domain -> weight; the run's tasks are spread over them exactly "
        "(largest remainder), in an order shuffled by `seed`.")
    complexities: dict[str, float] = Field(
        default_factory=lambda: dict(DEFAULT_COMPLEXITIES),
        description="synth: complexity (simple, moderate, complex) -> weight, allocated as "
        "`domains`.")
    max_turns: int = Field(8, ge=1, le=100,
                           description="Turns an agent gets per task; a plan may not have "
                           "more steps. Written as extra_info.max_turns.")
    max_tools: int = Field(5, ge=1, le=50,
                           description="Most distinct tools (server.tool) a plan may use.")
    max_servers: int = Field(3, ge=1, le=20,
                             description="Most distinct servers a plan may use (at most "
                             "max_tools).")
    seed: int = Field(0, description="Seed of the domain/complexity order and of the "
                      "train/validation split.")
    max_validation_retries: int = Field(
        2, ge=0, le=10,
        description="Re-asks of an invalid answer, with its problems fed back.")
    near_duplicate: float = Field(
        0.9, gt=0, le=1,
        description="synth: a user prompt at least this similar (rapidfuzz token-sort "
        "ratio, 0-1) to one already accepted in the run is refused and asked again; 1 "
        "refuses only identical prompts.")
    skip_existing: bool = Field(
        False,
        description="retrofit: rows whose reward_spec.ground_truth already holds a tool "
        "sequence are copied to the output as they are, not asked (default: every row is "
        "asked).")
    data_source: str = Field("benchsmith/skyrl_tools", min_length=1,
                             description="data_source of synthesized rows (retrofitted rows "
                             "keep theirs when they have one).")
    env_class: str = Field("MCPToolEnv", min_length=1,
                           description="env_class of synthesized rows (retrofitted rows keep "
                           "theirs when they have one).")
    val_fraction: float = Field(0.1, ge=0, lt=1,
                                description="Share of the rows in validation.parquet.")
    jsonl: bool = Field(False, description="Also write train.jsonl and validation.jsonl.")
    out_dir: str | None = Field(
        None,
        description="Also write the dataset and raw_llm/<run_id>.jsonl.gz here (besides the "
        "run dir's skyrl/ folder).")

    @field_validator("domains", "complexities")
    @classmethod
    def _weights(cls, v: dict[str, float]) -> dict[str, float]:
        if not v:
            raise ValueError("give at least one name with a weight")
        for name, w in v.items():
            if not name.strip():
                raise ValueError("a name is empty")
            if not math.isfinite(w) or w < 0:
                raise ValueError(f"{name}: weight {w} must be a number >= 0")
        if sum(v.values()) <= 0:
            raise ValueError("the weights sum to 0: give at least one positive weight")
        return {k.strip(): float(w) for k, w in v.items()}

    @field_validator("complexities")
    @classmethod
    def _known_complexities(cls, v: dict[str, float]) -> dict[str, float]:
        unknown = [k for k in v if k not in COMPLEXITIES]
        if unknown:
            raise ValueError(f"{unknown[0]!r} is not a complexity; use {', '.join(COMPLEXITIES)}")
        return v

    @property
    def server_cap(self) -> int:
        """The most distinct servers a plan may use (each one is at least one tool)."""
        return min(self.max_servers, self.max_tools)


# What shapes no request: changed on resume, they only change the files written.
OUTPUT_ONLY = ("data_source", "env_class", "val_fraction", "jsonl", "out_dir")
