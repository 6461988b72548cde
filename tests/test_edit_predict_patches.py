"""The edit_predict recipe without a server: patch extraction from answers (tags, fences,
bare diffs, SEARCH/REPLACE applied to complete context files, nothing), and prompts trimmed
to a model's context by dropping whole files from the end, as the engine estimates them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from benchsmith.engine.context import ContextLimits
from benchsmith.engine.wire import build_body
from benchsmith.recipes.context import ModelSlot, RecipeContext
from benchsmith.recipes.edit_predict.options import EditPredictOptions
from benchsmith.recipes.edit_predict.patches import extract_patch, file_text, files_in_prompt
from benchsmith.recipes.edit_predict.stages import edit_predict_recipe, request_tokens
from benchsmith.records import Completion, Task, Usage
from benchsmith.sources import infbench
from benchsmith.sources.editbench.prompt import number_lines, render_file, render_prompt
from benchsmith.sources.jsonl import row_to_task
from infbench_run_support import infbench_row, pick

DIFF = ("diff --git a/pkg/a.py b/pkg/a.py\n--- a/pkg/a.py\n+++ b/pkg/a.py\n@@ -1,2 +1,2 @@\n"
        " x = 1\n-y = 2\n+y = 3\n")


def test_tagged_patch_wins_and_a_fence_inside_is_unwrapped() -> None:
    got = extract_patch(f"Sure.\n<patch>\n```diff\n{DIFF}```\n</patch>\n```diff\nother\n```")
    assert (got.patch, got.source) == (DIFF, "tag")
    assert extract_patch(f"<diff>{DIFF}</diff>").patch == DIFF


def test_diff_fences_are_joined_in_order() -> None:
    second = DIFF.replace("pkg/a.py", "pkg/b.py")
    got = extract_patch(f"First:\n```diff\n{DIFF}```\nthen\n```patch\n{second}```\n")
    assert (got.patch, got.source) == (DIFF + second, "fence")


def test_other_fences_hold_a_diff_only_as_a_fallback() -> None:
    got = extract_patch(f"```python\nprint(1)\n```\n```\n{DIFF}```\n")
    assert (got.patch, got.source) == (DIFF, "fence_other")


def test_bare_diff_stops_at_the_prose_after_it() -> None:
    got = extract_patch(f"The change:\n\n{DIFF}\nThis sets y to 3.\n")
    assert (got.patch, got.source) == (DIFF, "bare")
    minus = "--- a/pkg/a.py\n+++ b/pkg/a.py\n@@ -2 +2 @@\n-y = 2\n+y = 3\n"
    assert extract_patch("x\n" + minus).patch == minus


def test_no_patch_is_source_none_with_a_reason() -> None:
    got = extract_patch("I would change y to 3.")
    assert (got.patch, got.source) == ("", "none") and got.issues


def test_line_numbers_are_stripped_only_from_complete_files() -> None:
    text = "import os\n\ndef f():\n    return 1\n"
    assert file_text(number_lines(text)) == text
    assert file_text("10 a\n11 b\n...\n40 c") is None  # a fragment with a gap
    assert file_text("2 a\n3 b") is None  # does not start at line 1


def test_search_replace_on_a_real_rows_complete_file() -> None:
    row = infbench_row(pick(1)[0], 0.2, fragment=True)
    path = row["context_files"][0]["path"]
    files = files_in_prompt(row["prompt"], [f["path"] for f in row["context_files"]])
    # every touched file is complete; the fragment is not
    assert list(files) == [f["path"] for f in row["context_files"][:-1]]
    answer = (f"### {path}\n<<<<<<< SEARCH\nvalue_2 = 2  # {path}\n=======\n"
              f"value_2 = 20  # {path}\n>>>>>>> REPLACE\n")
    got = extract_patch(answer, files)
    assert got.source == "search_replace" and not got.issues
    assert got.patch.startswith(f"diff --git a/{path} b/{path}\n--- a/{path}\n+++ b/{path}\n")
    assert f"-value_2 = 2  # {path}\n+value_2 = 20  # {path}\n" in got.patch
    # an edit of the fragment cannot be applied: no patch, and why
    bad = extract_patch("### docs/fragment.txt\n<<<<<<< SEARCH\nanother\n=======\nx\n"
                        ">>>>>>> REPLACE\n", files)
    assert bad.patch == "" and bad.source == "none"
    assert bad.issues == ("file not provided: docs/fragment.txt",)


# --------------------------------------------------------------------------- trimming


def _task(row: dict[str, Any]) -> Task:
    return row_to_task("ds", row, infbench.FIELDS, "test", 1)


def _build(row: dict[str, Any], limit: int | None, window: int | None = None, **opts: Any):
    ctx = RecipeContext(config_dir=Path("."),
                        models=(ModelSlot("m", {"max_output_tokens": 1000}, window),),
                        cache_dir=Path(".cache"))
    recipe = edit_predict_recipe(EditPredictOptions(context_limit=limit, **opts), ctx, "1")
    (spec,) = recipe.stages[0].build(_task(row), None)
    return recipe, spec


def _tokens(row: dict[str, Any], files: list[dict[str, Any]]) -> int:
    prompt = render_prompt(row["requirement"], row["pre_edits"], files)
    return request_tokens("m", [{"role": "user", "content": prompt}],
                          {"max_output_tokens": 1000}, 1)


def test_gold_never_reaches_the_task_context() -> None:
    task = _task(infbench_row(pick(1)[0], 0.2))
    assert task.primary_field == "prompt"
    assert set(task.extras) == {"ground_truth", "ground_truth_files"}
    assert not {"ground_truth", "ground_truth_files"} & set(task.context)


def test_files_are_dropped_whole_from_the_end_until_the_prompt_fits() -> None:
    row = infbench_row(pick(1, min_steps=4)[0], 0.2, file_lines=40, fragment=True)
    files = row["context_files"]
    assert len(files) >= 2
    # room for every file but the last one
    limit = _tokens(row, files[:-1]) + 5
    _recipe, spec = _build(row, limit)
    prompt = spec.messages[0]["content"]
    assert spec.meta["dropped_files"] == [files[-1]["path"]]
    assert spec.meta["files"] == [f["path"] for f in files[:-1]]
    assert prompt == render_prompt(row["requirement"], row["pre_edits"], files[:-1])
    assert all(render_file(f["path"], f["content"]) in prompt for f in files[:-1])
    assert f"[start of {files[-1]['path']}]" not in prompt
    # the engine (either wire) sends what was trimmed to fit
    for api in ("chat", "responses"):
        limits = ContextLimits({"m": limit}, limit, False, api, "openai")
        body = build_body(api=api, structured="openai", model="m", messages=list(spec.messages),
                          schema=None, schema_name="answer", params=spec.params)
        assert limits.check("m", len(orjson.dumps(body)), spec.messages, 1000) is None
    # the model's own window counts when it is smaller than the option
    _recipe, spec = _build(row, None, window=limit)
    assert spec.meta["dropped_files"] == [files[-1]["path"]]
    # nothing fits: every file dropped, the rest left to the engine's prompt_too_long
    _recipe, spec = _build(row, 10)
    assert spec.meta["dropped_files"] == [f["path"] for f in files]
    assert "<code>\n\n</code>" in spec.messages[0]["content"]


def test_parse_records_the_patch_and_what_was_dropped() -> None:
    row = infbench_row(pick(1)[0], 0.2, fragment=True)
    recipe, spec = _build(row, _tokens(row, row["context_files"][:-1]) + 5)
    stage = recipe.stages[0]
    parsed = stage.parse(spec, Completion(text=f"```diff\n{DIFF}```", usage=Usage(), finished=True))
    (rec,) = parsed.records
    assert rec["model_patch"] == DIFF and rec["patch_source"] == "fence"
    assert rec["dropped_files"] == ["docs/fragment.txt"]
    assert rec["context_kind"] == "oracle" and rec["instance_id"] == row["instance_id"]
    # no patch: kept (empty) by default, refused with require_patch
    (rec,) = stage.parse(spec, Completion(text="no idea", usage=Usage(), finished=True)).records
    assert (rec["model_patch"], rec["patch_source"]) == ("", "none")
    strict, spec = _build(row, None, require_patch=True)
    refused = strict.stages[0].parse(spec, Completion(text="no idea", usage=Usage(), finished=True))
    assert not refused.ok and "no diff" in refused.issues[0]
