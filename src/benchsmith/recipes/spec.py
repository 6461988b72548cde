"""RecipeSpec: what the registry holds about a recipe (how to build it, its options, its
command). A recipe package imports this module only, never the registry."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from benchsmith.recipes.base import Recipe
from benchsmith.recipes.context import RecipeContext


@dataclass(frozen=True)
class CliFlag:
    """A command-line flag of a recipe's command that sets one of its options.

    `flag`: "--passk", or "--on/--off" for a yes/no option; `type`: the value's type."""

    option: str
    flag: str
    help: str
    type: type = int


@dataclass(frozen=True)
class CliVerb:
    """A recipe's own command (e.g. `benchsmith rollout bugfix`), built by the CLI's shared
    factory with the flags every run command has, plus `flags`. `doc`: its --help text
    (what it writes, examples); `group_help`: the help of the first word's group."""

    words: tuple[str, ...]
    doc: str
    flags: tuple[CliFlag, ...] = ()
    group_help: str = ""


@dataclass(frozen=True)
class RecipeSpec:
    """How to build a recipe: its options model and a `build(options, ctx) -> Recipe`.

    - `summary`: one line for `benchsmith recipes` and `--help`.
    - `aliases`: older top-level config keys that still hold the options (with a deprecation
      warning); `from_legacy(sections)` turns those sections into the options mapping
      (default: the first alias's section).
    - `model_calls(options)`: how many calls of a task may each take their own model
      (`multi_model`); None: the recipe asks the main model only.
    - `fingerprint(options)`: the option values that shape requests, by dotted name (default:
      every option under `recipe_options.`); a resumed run must keep them.
    - `path_fields`: options that hold file or folder paths (made absolute when a config is
      copied elsewhere, e.g. by prepare-sections).
    - `cli`: the recipe's own command, if it has one (`benchsmith run --recipe NAME` works
      for every recipe).
    """

    name: str
    version: str
    Options: type[BaseModel]
    build: Callable[[Any, RecipeContext], Recipe]
    summary: str = ""
    aliases: tuple[str, ...] = ()
    from_legacy: Callable[[Mapping[str, Any]], dict[str, Any]] | None = None
    model_calls: Callable[[Any], int] | None = None
    fingerprint: Callable[[Any], dict[str, Any]] | None = None
    path_fields: tuple[str, ...] = ()
    cli: CliVerb | None = None

    def options(self, data: Mapping[str, Any] | None = None) -> Any:
        """Validated options (pydantic ValidationError on bad ones)."""
        return self.Options.model_validate(dict(data or {}))

    def legacy_options(self, sections: Mapping[str, Any]) -> dict[str, Any]:
        if self.from_legacy is not None:
            return self.from_legacy(sections)
        for key in self.aliases:
            if key in sections:
                return dict(sections[key])
        return {}

    def option_fields(self, options: Any) -> dict[str, Any]:
        if self.fingerprint is not None:
            return self.fingerprint(options)
        data = options.model_dump(mode="json")
        return {f"recipe_options.{k}": v for k, v in sorted(data.items())}
