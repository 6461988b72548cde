"""Infbench rows (written by `benchsmith infbench build`) as tasks: one per instance.

The prompt is the primary text; its parts (requirement, previous edits, code context) are
context, so a recipe can render the prompt again with fewer files. The ground truth is gold:
kept in the task's extras, never put in a prompt.
"""

from __future__ import annotations

from typing import Any

from benchsmith.config_sections import FieldMap

CONTEXT = ("requirement", "pre_edits", "context_files", "context_kind", "context_note", "repo",
           "base_commit", "k", "n", "info_pct")
GOLD = ("ground_truth", "ground_truth_files")
FIELDS = FieldMap(id="instance_id", primary="prompt", context=list(CONTEXT), gold=list(GOLD))


def row_problem(row: dict[str, Any]) -> tuple[str, str] | None:
    """(field, problem) of an infbench row a prediction run cannot use, or None."""
    for key in ("instance_id", "prompt"):
        if row.get(key) is None:
            return key, "missing"
        if not isinstance(row[key], str):
            return key, f"must be a string, got {type(row[key]).__name__}"
    req = row.get("requirement")
    if req is not None and not isinstance(req, str):
        return "requirement", f"must be a string, got {type(req).__name__}"
    pre = row.get("pre_edits")
    if pre is not None and not (isinstance(pre, list) and all(
            isinstance(step, list) and all(isinstance(d, str) for d in step) for step in pre)):
        return "pre_edits", "must be a list of steps, each a list of diff strings"
    files = row.get("context_files")
    if files is not None and not (isinstance(files, list) and all(
            isinstance(f, dict) and isinstance(f.get("path"), str)
            and isinstance(f.get("content"), str) for f in files)):
        return "context_files", "must be a list of {path, content} (strings)"
    return None
