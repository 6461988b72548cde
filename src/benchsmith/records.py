"""Pure value records. Identity and storage live in store/."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple


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


class ToolCall(NamedTuple):
    """One function call the model asked for. `arguments` is the JSON string as sent."""

    id: str
    name: str
    arguments: str


class Choice(NamedTuple):
    """One of the answers of a request (more than one when the request asks for `n`)."""

    text: str
    tool_calls: tuple[ToolCall, ...] = ()
    finish_reason: str | None = None


class Completion(NamedTuple):
    """A parsed 200 answer, as a stage's `parse` receives it.

    `text`, `tool_calls` and `finish_reason` are those of the first choice; `choices` holds
    every choice, the first included. `finished` is False when any choice was cut off (max
    tokens, content filter) or refused; `detail` then says why. A NamedTuple: built for every
    answer, and cheaper to build than a frozen dataclass.
    """

    text: str
    usage: Usage
    finished: bool
    detail: str = ""
    choices: tuple[Choice, ...] = ()
    tool_calls: tuple[ToolCall, ...] = ()
    finish_reason: str | None = None
