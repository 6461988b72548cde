"""Agentless-style SWE-bench rollouts: localize files, then repair (bug fixer) or write a
reproduction test (test writer)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from benchsmith.recipes.agentless.options import AgentlessOptions
from benchsmith.recipes.registry import RecipeSpec

VERSION = "1"
# Where the options may lie, not what is asked: free to change on resume (the request digest
# covers what the folders hold).
_FREE = {"cache_dir", "structure_dir", "repos_dir", "model_name_or_path"}


def _builder(kind: str) -> Any:
    def build(options: AgentlessOptions, ctx: Any) -> Any:
        from benchsmith.recipes.agentless.stages import agentless_recipe

        return agentless_recipe(options, ctx, kind)

    return build


def _from_legacy(sections: Mapping[str, Any]) -> dict[str, Any]:
    """`rollout:` held these options; the re-ask limit was read from `plans:`."""
    out = dict(sections.get("rollout") or {})
    plans = sections.get("plans")
    if isinstance(plans, Mapping) and "max_validation_retries" in plans:
        out.setdefault("max_validation_retries", plans["max_validation_retries"])
    return out


def _fingerprint(o: AgentlessOptions) -> dict[str, Any]:
    # Field names of the first config layout, so runs made before stay resumable.
    data = o.model_dump(mode="json")
    out = {"plans.max_validation_retries": data.pop("max_validation_retries")}
    out.update({f"rollout.{k}": v for k, v in data.items() if k not in _FREE})
    return out


def _spec(kind: str, summary: str) -> RecipeSpec:
    return RecipeSpec(
        name=f"agentless_{kind}",
        version=VERSION,
        Options=AgentlessOptions,
        build=_builder(kind),
        summary=summary,
        aliases=("rollout",),
        from_legacy=_from_legacy,
        fingerprint=_fingerprint,
        path_fields=("structure_dir", "repos_dir", "cache_dir"),
        extra={"verb": ("rollout", kind)},
    )


BUGFIX = _spec("bugfix", "Agentless bug fixer over SWE-bench: localize files, then a patch.")
TESTGEN = _spec("testgen", "Agentless test writer over SWE-bench: localize, then a repro test.")
