"""`infbench merge-results` (duplicates reported, atomic, never over a merged file without
--force) and `infbench score` (exact match and changed-line similarity on crafted answers)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from infbench_run_support import infbench_row, invoke, pick, read_lines, write_rows


def _line(iid: str, patch: Any, **more: Any) -> dict[str, Any]:
    return {"instance_id": iid, "model_name": "m", "model_patch": patch, "status": "ok", **more}


def test_merge_results_reports_duplicates(tmp_path: Path) -> None:
    folder = tmp_path / "res" / "gpt-4.1" / "T=0" / "n=1"
    write_rows(folder / "django-django-task-instances_0.2.jsonl",
               [_line("d1", "p1"), _line("d2", "p2")])
    write_rows(folder / "sympy-sympy-task-instances_0.2.jsonl",
               [_line("s1", "p3"), _line("d2", "other")])
    write_rows(folder / "sympy-sympy-task-instances_0.2_bm25_5.jsonl", [_line("x", "p")])
    args = ["infbench", "merge-results", "--model-name", "gpt-4.1", "--run-id", "0.2",
            "--results-dir", tmp_path / "res"]
    res = invoke(*args)
    assert res.exit_code == 0, res.output
    out = folder / "all-task-instances_0.2.jsonl"
    assert [(r["instance_id"], r["model_patch"]) for r in read_lines(out)] == [
        ("d1", "p1"), ("d2", "p2"), ("s1", "p3")]  # the first line of d2 kept
    assert f"wrote {out}: 3 line(s) from 2 file(s)" in res.stdout
    assert "duplicates: 1 id(s) in more than one line, first kept: d2" in res.stdout
    # a merged file is not replaced without --force; --repos picks files
    res = invoke(*args)
    assert res.exit_code == 1 and "already exists; pass --force" in res.output
    res = invoke(*args, "--force", "--repos", "sympy/sympy")
    assert res.exit_code == 0, res.output
    assert [r["instance_id"] for r in read_lines(out)] == ["s1", "d2"]
    res = invoke(*args, "--force", "--repos", "nobody/here")
    assert res.exit_code == 1 and len(res.output.strip().splitlines()) == 1
    assert "no results file for this repository" in res.output


def _changed(patch: str) -> list[str]:
    return [ln for ln in patch.split("\n")
            if ln[:1] in "+-" and ln and not ln.startswith(("+++ ", "--- "))]


def test_score_on_crafted_answers(tmp_path: Path) -> None:
    rows = [infbench_row(r, 0.2) for r in pick(3)]
    write_rows(tmp_path / "inf" / "all-task-instances_0.2.jsonl", rows)
    a, b, c = rows
    # a: the ground truth with its blanks changed; b: nothing; c: its first h changed lines
    spaced = "\n".join(ln.replace(" ", "  ") + "  " for ln in a["ground_truth"].split("\n"))
    m = len(_changed(c["ground_truth"]))
    h = max(1, m // 2)
    partial = "--- a/f\n+++ b/f\n" + "\n".join(_changed(c["ground_truth"])[:h]) + "\n"
    folder = tmp_path / "res" / "gpt-4.1" / "T=0" / "n=1"
    write_rows(folder / "all-task-instances_0.2.jsonl", [
        _line(a["instance_id"], spaced), _line(b["instance_id"], ""),
        _line(c["instance_id"], [partial, "ignored second choice"]),
        _line(a["instance_id"], "a later duplicate is not counted")])
    write_rows(tmp_path / "res" / "gpt-4o" / "T=0" / "n=1" / "all-task-instances_0.2.jsonl",
               [_line("not-in-infbench", "x")])
    res = invoke("infbench", "score", "--results-dir", tmp_path / "res", "--infbench-dir",
                 tmp_path / "inf", "--json")
    assert res.exit_code == 0, res.output
    got = {r["model"]: r for r in json.loads(res.stdout)}
    four = got["gpt-4.1"]
    assert (four["instances"], four["run_id"], four["temperature"], four["n"]) == (3, "0.2", "0", "1")
    assert four["exact_pct"] == round(100 / 3, 2)
    assert four["empty_patches"] == 1 and four["no_ground_truth"] == 0
    expected = (1.0 + 0.0 + 2 * h / (m + h)) / 3
    assert abs(four["mean_similarity"] - round(expected, 4)) < 1e-9
    assert got["gpt-4o"]["no_ground_truth"] == 1 and got["gpt-4o"]["instances"] == 1
    # the table, and the filters
    res = invoke("infbench", "score", "--results-dir", tmp_path / "res", "--infbench-dir",
                 tmp_path / "inf", "--model", "gpt-4.1", "--run-id", "0.2")
    assert res.exit_code == 0, res.output
    out = res.stdout.splitlines()
    assert out[0].split() == ["model", "T", "n", "run", "id", "inst", "exact%", "sim", "empty"]
    assert len(out) == 2 and out[1].split()[:7] == [
        "gpt-4.1", "0", "1", "0.2", "3", f"{100 / 3:.2f}", f"{round(expected, 4):.3f}"]
