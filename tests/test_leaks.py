"""The gold-leak index and the leak table, on the real SWE-bench Verified / Lite rows and
HumanEval. Expected sets are computed here from the raw rows with the issue's rule (a task
field holds, verbatim, an added line of 25+ characters of the gold patch), never hard-coded."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pytest
from helpers import write_yaml
from typer.testing import CliRunner

from benchsmith.cli.app import app
from benchsmith.config import parse_config
from benchsmith.leaks import LeakSettings, build_index, find
from benchsmith.leaks.index import DEFAULT_STOP_LINES
from benchsmith.leaks.table import config_leaks, leak_table
from benchsmith.sources import load_tasks

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
VERIFIED = DATA / "swebench_verified" / "swebench_verified_test.jsonl.gz"
LITE = DATA / "swebench_lite" / "swebench_lite_test.jsonl.gz"
# The issue's rule: added lines only, 25+ characters, nothing else counted.
ISSUE_RULE = LeakSettings(min_line_chars=25, min_shared_chars=10**9, stop_lines=(),
                          diff_lines=("added",))


def rows_of(path: Path) -> list[dict[str, Any]]:
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def added_lines(patch: str) -> list[str]:
    return [ln[1:].strip() for ln in patch.splitlines()
            if ln.startswith("+") and not ln.startswith("+++") and len(ln[1:].strip()) >= 25]


def expected(rows: list[dict[str, Any]], field: str) -> set[str]:
    return {r["instance_id"] for r in rows
            if any(a in r[field] for a in added_lines(r["patch"]))}


def tasks_of(name: str, path: Path) -> list:
    cfg = parse_config({"datasets": {name: {"path": str(path)}}}, config_dir=".")
    return load_tasks(name, cfg.datasets[name], cfg)


@pytest.mark.parametrize("name,path", [("swebench_verified", VERIFIED), ("swebench_lite", LITE)])
def test_table_finds_what_the_issue_rule_finds(name: str, path: Path):
    rows = rows_of(path)
    table = leak_table(tasks_of(name, path), ("patch",), ISSUE_RULE)
    for field in ("problem_statement", "hints_text"):
        want = expected(rows, field)
        assert want, field  # the data has such tasks
        assert {r.task_id for r in table if r.field == field} == want
    assert all(r.primary == (r.field == "problem_statement") for r in table)
    assert {r.field for r in table} <= {"problem_statement", "hints_text"}


def test_verified_hand_picked():
    by = {(r.task_id, r.field): r for r in leak_table(tasks_of("swebench_verified", VERIFIED),
                                                      ("patch",), ISSUE_RULE)}
    rows = {r["instance_id"]: r for r in rows_of(VERIFIED)}
    for tid, field in [("django__django-11066", "problem_statement"),
                       ("sympy__sympy-13372", "problem_statement"),
                       ("django__django-13807", "hints_text")]:
        hit = by[(tid, field)]
        assert hit.gold_fields == ("patch",)
        # the sample is a real added line of that patch, found in that field
        assert any(hit.sample == a[:80] for a in added_lines(rows[tid]["patch"]))
        assert hit.sample in rows[tid][field]
    # a task without a copied line has no row
    clean = next(t for t, r in rows.items() if not any(
        a in r["problem_statement"] or a in r["hints_text"] for a in added_lines(r["patch"])))
    assert not any(k[0] == clean for k in by)


def default_rule(row: dict[str, Any], signs: str = "+") -> set[str]:
    """The default settings' gold lines, from the raw diffs: added lines (and removed ones
    when `signs` says so) of the patch and the test patch, stripped, 25+ characters, not
    boilerplate."""
    return {s for diff in (row["patch"], row["test_patch"]) for s in (
        ln[1:].strip() for ln in diff.splitlines()
        if ln[:1] in signs and not ln.startswith(("+++ ", "--- ")))
        if len(s) >= 25 and s not in DEFAULT_STOP_LINES}


def test_default_settings_are_the_issue_rule_on_both_diffs():
    rows = rows_of(VERIFIED)
    tasks = tasks_of("swebench_verified", VERIFIED)
    default = {(r.task_id, r.field) for r in leak_table(tasks, ("patch", "test_patch"),
                                                         LeakSettings())}
    want = {(r["instance_id"], f) for r in rows for f in ("problem_statement", "hints_text")
            if any(g in r[f] for g in default_rule(r))}
    assert default == want
    strict = {(r.task_id, r.field) for r in leak_table(tasks, ("patch",), ISSUE_RULE)}
    assert strict < default  # test_patch lines count too
    # removed lines only when asked: the code before the fix, which issues quote
    both = LeakSettings(diff_lines=("added", "removed"))
    opt_in = {(r.task_id, r.field) for r in leak_table(tasks, ("patch", "test_patch"), both)}
    assert opt_in == {(r["instance_id"], f) for r in rows
                      for f in ("problem_statement", "hints_text")
                      if any(g in r[f] for g in default_rule(r, "+-"))}
    assert default < opt_in


def test_humaneval_has_no_leak():
    cfg = parse_config({"datasets": {"humaneval": {}}}, config_dir=".")
    counts, rows = config_leaks(cfg)
    assert counts == {"humaneval": 164}
    assert rows == []


def test_find_ignores_short_and_stop_lines():
    gold = {"patch": "x = compute_the_answer(alpha, beta)\nreturn\npass\n"
                     "if __name__ == \"__main__\":\n"}
    idx = build_index(gold, LeakSettings())
    assert find(idx, {"t": "return\npass\nif __name__ == \"__main__\":"}).matched == 0
    f = find(idx, {"a": "no", "b": "try:  x = compute_the_answer(alpha, beta)  # here"})
    assert (f.fields, f.matched, f.gold_fields) == (("b",), 1, ("patch",))
    assert f.sample == "x = compute_the_answer(alpha, beta)"


def test_long_gold_not_line_shaped_matches_shared_stretch():
    blob = json.dumps({"answer": [f"value number {i} of the expected output" for i in range(20)]})
    idx = build_index({"expected": blob}, LeakSettings())
    part = blob[137:137 + 90]
    f = find(idx, {"hints": f"see {part} above"})
    assert f.matched == 1 and f.sample == part[:80]
    assert len(f.lines["hints"][0]) >= 90
    assert find(idx, {"hints": blob[137:137 + 60]}).matched == 0  # shorter than 80


def test_leaks_command(tmp_path: Path):
    cfg = write_yaml(tmp_path / "v.yaml", {"datasets": {"swebench_verified": {"path": str(VERIFIED)},
                                                        "humaneval": {}}})
    res = CliRunner().invoke(app, ["leaks", str(cfg), "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    ps = expected(rows_of(VERIFIED), "problem_statement")
    ids = {r["task_id"] for r in out["leaks"] if r["field"] == "problem_statement"}
    assert ps <= ids
    assert out["datasets"]["humaneval"] == {"tasks": 164, "leaking_tasks": 0, "by_field": {}}
    assert out["datasets"]["swebench_verified"]["leaking_tasks"] == len(
        {r["task_id"] for r in out["leaks"]})
    text = CliRunner().invoke(app, ["leaks", str(cfg)])
    assert text.exit_code == 0
    assert "humaneval: 0 of 164 task(s) leak their gold (none)" in text.output
    bad = CliRunner().invoke(app, ["leaks", str(tmp_path / "missing.yaml")])
    assert bad.exit_code == 1 and "missing.yaml" in bad.output


def test_repetitive_long_gold_against_repetitive_text_is_found():
    # every piece of the gold occurs at tens of thousands of places in the text: the search
    # must stay bounded and still report the shared stretch
    blob = json.dumps({"v": [0] * 3000})
    idx = build_index({"expected": blob}, LeakSettings())
    f = find(idx, {"hints": "0, " * 70000})
    assert f.fields == ("hints",) and f.gold_fields == ("expected",)
    assert f.matched >= 1 and all(len(s) >= 80 and s in blob for s in f.lines["hints"])


def test_gold_wider_than_64_bits():
    wide = 2**100
    idx = build_index({"answer": wide, "small": 2**70}, LeakSettings())
    assert find(idx, {"t": f"the answer is {wide}."}).gold_fields == ("answer",)
    assert not find(idx, {"t": "the answer is 42"}).leaks


def test_dict_and_list_gold_index_each_string():
    one = "result = compute_the_answer(alpha, beta, gamma)"
    two = "assert check(candidate) == expected_value_here"
    idx = build_index({"gold": {"a": one, "b": [2, {"c": "def f():\n    " + two}]}},
                      LeakSettings())
    assert find(idx, {"notes": f"hint: {one}"}).matched == 1
    f = find(idx, {"notes": f"x\n{two}\n"})
    assert (f.matched, f.sample) == (1, two)
