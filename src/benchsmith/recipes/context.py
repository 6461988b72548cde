"""What a recipe may know about the run besides its own options: the RecipeContext.

Recipes never see the run config; the caller builds this small context from it, so a recipe
can be built (and tested) from its options alone.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class ModelSlot:
    """One model a recipe may ask: its name, the parameters sent with every request, and its
    context window in tokens when the config sets one (`model.max_context_tokens`; with the
    local server, its n_ctx plus the output cap, since only the prompt counts there), so a
    recipe can shorten a prompt until prompt + max_output_tokens fits."""

    name: str
    params: dict[str, Any] = field(default_factory=dict)
    context_tokens: int | None = None


@dataclass(frozen=True)
class PromptCache:
    """Provider prompt caching: requests of one task share a key built from this prefix."""

    key_prefix: str
    retention: str | None = None


def _quiet(_message: str) -> None:
    return None


@dataclass(frozen=True)
class RecipeContext:
    """The run as a recipe sees it.

    `models[i]` is the model of call i of a task (cycled when a recipe asks more calls than
    there are models); `models[0]` is the run's main model.
    """

    config_dir: Path
    models: tuple[ModelSlot, ...]
    cache_dir: Path
    prompt_cache: PromptCache | None = None
    echo: Callable[[str], None] = _quiet

    def resolve(self, path: str | os.PathLike[str]) -> Path:
        """A path from the options: relative ones are relative to the config file's folder."""
        p = Path(path).expanduser()
        return Path(os.path.normpath(p if p.is_absolute() else self.config_dir / p))

    def model_for(self, call_index: int = 0) -> ModelSlot:
        return self.models[call_index % len(self.models)]

    @property
    def model(self) -> ModelSlot:
        return self.models[0]


def plain_context(model: str = "test-model", config_dir: str | Path = ".") -> RecipeContext:
    """A context for building a recipe outside a run (tests, docs)."""
    return RecipeContext(Path(config_dir), (ModelSlot(model),), Path(config_dir) / ".cache")
