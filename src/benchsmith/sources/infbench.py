"""Infbench rows (written by `benchsmith infbench build`) as tasks: one per instance.

The prompt is the primary text; its parts (requirement, previous edits, code context) are
context, so a recipe can render the prompt again with fewer files. The ground truth is gold:
kept in the task's extras, never put in a prompt.
"""

from __future__ import annotations

from benchsmith.config_sections import FieldMap

CONTEXT = ("requirement", "pre_edits", "context_files", "context_kind", "context_note", "repo",
           "base_commit", "k", "n", "info_pct")
GOLD = ("ground_truth", "ground_truth_files")
FIELDS = FieldMap(id="instance_id", primary="prompt", context=list(CONTEXT), gold=list(GOLD))
