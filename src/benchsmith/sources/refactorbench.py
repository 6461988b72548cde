"""RefactorBench Python tasks, from the JSONL written by `benchsmith convert refactorbench`."""

from __future__ import annotations

from benchsmith.config_sections import FieldMap

FIELDS = FieldMap(
    id="task_id",
    primary="instruction",
    context=["repo_dir", "upstream_repo", "variant", "files"],
    gold=["test_file", "test_source"],
    answer=["test_source"],
)
