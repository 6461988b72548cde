"""Pure value records. Identity and storage live in store/."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Task:
    """One benchmark task: a primary text, context fields, and gold fields kept out of prompts."""

    id: str
    dataset: str
    primary_field: str
    primary: str
    context: dict[str, Any] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "task_id": self.id,
            "dataset": self.dataset,
            "primary_field": self.primary_field,
            "primary": self.primary,
            "context": dict(self.context),
            "extras": dict(self.extras),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Task:
        return cls(
            id=d["task_id"],
            dataset=d["dataset"],
            primary_field=d["primary_field"],
            primary=d["primary"],
            context=dict(d.get("context") or {}),
            extras=dict(d.get("extras") or {}),
        )


@dataclass(frozen=True)
class Usage:
    """Token usage of one attempt."""

    input_tokens: int = 0
    cached_input_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0

    def to_dict(self) -> dict[str, int]:
        return {
            "input_tokens": self.input_tokens,
            "cached_input_tokens": self.cached_input_tokens,
            "output_tokens": self.output_tokens,
            "reasoning_tokens": self.reasoning_tokens,
        }
