"""Agentless-style SWE-bench rollouts: localize files, then repair (bug fixer) or write a
reproduction test (test writer)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from benchsmith.recipes.agentless.options import AgentlessOptions
from benchsmith.recipes.spec import CliFlag, CliVerb, RecipeSpec

VERSION = "1"
# Where the options may lie, not what is asked: free to change on resume (the request digest
# covers what the folders hold).
_FREE = {"cache_dir", "structure_dir", "repos_dir", "model_name_or_path"}


def _builder(kind: str) -> Any:
    def build(options: AgentlessOptions, ctx: Any) -> Any:
        from benchsmith.recipes.agentless.stages import agentless_recipe

        return agentless_recipe(options, ctx, kind, VERSION)

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


_FLAGS = (
    CliFlag("passk", "--passk", "Samples per instance."),
    CliFlag("model_name_or_path", "--model-name", "model_name_or_path written to predictions.",
            str),
    CliFlag("start", "--start", "First index in the sorted instance ids."),
    CliFlag("end", "--end", "End index (exclusive) in the sorted ids."),
    CliFlag("convert_crlf", "--convert-crlf/--keep-crlf",
            "Normalize problem-statement line endings.", bool),
)
_GROUP = "Agentless-style rollouts over SWE-bench: localize files, then repair or write a test."

_DOCS = {
    "bugfix": """Generate candidate patches: localize files, then SEARCH/REPLACE repairs -> diffs.

Writes `samples/<instance>/sample_N.diff`, output.jsonl, failures.jsonl and preds.jsonl (for
`swebench.harness.run_evaluation`).

Examples:

  benchsmith rollout bugfix --config cfg.yaml

  benchsmith rollout bugfix --config cfg.yaml --passk 4 --temp 0.8 --mode batch

  benchsmith rollout bugfix --config cfg.yaml --start 0 --end 50 --model-name my-model
""",
    "testgen": """Generate reproduction tests: localize files, then a standalone test script.

Writes `samples/<instance>/sample_N.py` (each compiles), output.jsonl and failures.jsonl.

Examples:

  benchsmith rollout testgen --config cfg.yaml

  benchsmith rollout testgen --config cfg.yaml --passk 2 --run-id tests_v1
""",
}


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
        cli=CliVerb(("rollout", kind), _DOCS[kind], _FLAGS, _GROUP),
    )


BUGFIX = _spec("bugfix", "Agentless bug fixer over SWE-bench: localize files, then a patch.")
TESTGEN = _spec("testgen", "Agentless test writer over SWE-bench: localize, then a repro test.")
