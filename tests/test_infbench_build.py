"""Bench -> infbench on the 478 real RealisticEditBench rows (split counts, ground truth,
oracle context from the diffs) and on a git repository built here (oracle context from a
clone, BM25 wiring), plus the requirement variants."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from infbench_support import History, read_jsonl, real_rows, write_jsonl

from benchsmith.sources.editbench import diffs, prompt
from benchsmith.sources.editbench.bench import load_bench
from benchsmith.sources.editbench.build import (
    NEW_FILE,
    BuildOptions,
    build_infbench,
    requirement_text,
)
from benchsmith.sources.editbench.split import split_index

PCTS = {"0.2": 2, "0.4": 4, "0.6": 6, "0.8": 8}  # p as tenths, for integer arithmetic


def k_of(n: int, tenths: int) -> int:
    """k = min(max(floor(p*n + 0.5), 1), n - 1) with p = tenths/10, in integers."""
    return min(max((tenths * n + 5) // 10, 1), n - 1)


def build(tmp_path: Path, bench: Path, name: str, **opts: Any) -> tuple[Any, list[dict]]:
    save = tmp_path / name
    info_pct = opts.pop("info_pct", None)
    summary = build_infbench(load_bench(bench), save, BuildOptions(info_pct, **opts))
    return summary, read_jsonl(save)


@pytest.fixture(scope="module")
def real_bench(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from infbench_support import DATA

    real_rows()  # skips when the data is absent
    return DATA


# --------------------------------------------------------------------------- split


@pytest.mark.parametrize("pct", sorted(PCTS))
def test_split_counts_for_all_real_rows(tmp_path: Path, real_bench: Path, pct: str) -> None:
    bench = real_rows()
    summary, out = build(tmp_path, real_bench, f"all-task-instances_{pct}.jsonl",
                         info_pct=float(pct))
    expected = {r["instance_id"]: (k_of(len(r["work_patch_list"]), PCTS[pct]),
                                   len(r["work_patch_list"])) for r in bench}
    assert summary.rows_read == len(bench) == 478
    assert (summary.written, summary.skipped) == (478, ())  # every row has 2..12 steps
    assert summary.run_id == pct
    assert {r["instance_id"]: (r["k"], r["n"]) for r in out} == expected
    assert sum(r["k"] for r in out) == sum(k for k, _ in expected.values())
    assert sum(r["n"] for r in out) == sum(len(r["work_patch_list"]) for r in bench)
    by_id = {r["instance_id"]: r for r in bench}
    for row in out:
        steps = by_id[row["instance_id"]]["work_patch_list"]
        assert row["pre_edits"] == steps[: row["k"]]
        rest = [d for step in steps[row["k"]:] for d in step]
        assert row["ground_truth"] == "".join(d if d.endswith("\n") else d + "\n" for d in rest)
        assert row["info_pct"] == float(pct)
        assert row["prompt"] == prompt.render_prompt(
            row["requirement"], row["pre_edits"], row["context_files"])


def test_split_index_rounds_half_up_in_decimal() -> None:
    assert split_index(5, 0.1) == 1  # 0.5 -> 1
    assert split_index(5, 0.3) == 2  # 1.5 + 0.5 = 2.0 -> 2
    assert split_index(10, 0.15) == 2  # 1.5 -> 2
    assert split_index(10, 0.25) == 3  # 2.5 -> 3
    assert split_index(50, 0.29) == 15  # float 0.29*50 = 14.4999...; decimal says 14.5 -> 15
    assert split_index(50, 0.57) == 29  # float 28.4999...
    assert split_index(2, 0.01) == 1 and split_index(2, 0.99) == 1  # clamped to 1..n-1
    assert split_index(12, 1.0) == 11
    assert split_index(7, None) == 0


def test_none_info_pct_puts_every_step_in_ground_truth(tmp_path: Path, real_bench: Path) -> None:
    summary, out = build(tmp_path, real_bench, "all-task-instances_None_body_issue.jsonl")
    assert summary.run_id == "None_body_issue" and summary.written == 478
    assert all(r["k"] == 0 and r["pre_edits"] == [] for r in out)
    first = out[0]
    assert "<change_history>" not in first["prompt"]
    row0 = real_rows()[0]
    assert first["ground_truth"].count("diff --git") == sum(len(s) for s in
                                                            row0["work_patch_list"])


def test_an_empty_step_stays_an_empty_step(tmp_path: Path, real_bench: Path) -> None:
    _, out = build(tmp_path, real_bench, "all-task-instances_0.8.jsonl", info_pct=0.8)
    [row] = [r for r in out if r["instance_id"] == "astropy__astropy-pull-17599"]
    assert (row["k"], row["n"]) == (5, 6) and row["pre_edits"][4] == []
    assert "[start of step 5]\n\n[end of step 5]" in row["prompt"]


def test_one_step_rows_are_skipped_and_listed(tmp_path: Path) -> None:
    d = "diff --git a/a.py b/a.py\n--- a/a.py\n+++ b/a.py\n@@ -1 +1 @@\n-x\n+y\n"
    bench = write_jsonl(tmp_path / "b.jsonl", [
        {"instance_id": "one", "repo": "o/r", "work_patch_list": [[d]]},
        {"instance_id": "two", "repo": "o/r", "work_patch_list": [[d], [d]]},
    ])
    summary, out = build(tmp_path, bench, "o-r-task-instances_0.5.jsonl", info_pct=0.5)
    assert [r["instance_id"] for r in out] == ["two"]
    assert summary.skipped_by_reason() == {
        "1 step(s): nothing left to predict after at least one shown step": 1}
    assert read_jsonl(summary.skipped_path) == [{"instance_id": "one", "reason":
                                                 summary.skipped[0][1]}]
    assert summary.skipped_path.name == "o-r-task-instances_0.5.jsonl.skipped.jsonl"


# --------------------------------------------------------------------------- ground truth


def _sparse(fr: diffs.Fragments) -> str | None:
    """A file holding the known lines at their numbers and filler elsewhere."""
    if fr.new_file:
        return None
    end = fr.eof or (max(fr.lines, default=0) + 5)
    body = "\n".join(fr.lines.get(i, f"<unknown line {i}>") for i in range(1, end + 1))
    return body + ("\n" if fr.eof is None else "")


def test_ground_truth_diffs_parse_and_apply_to_what_they_show(
        tmp_path: Path, real_bench: Path) -> None:
    """The ground truth applies, in order, to a file rebuilt from its own fragments: the
    line numbers the fragments carry are the ones the hunks need."""
    _, out = build(tmp_path, real_bench, "all-task-instances_0.4.jsonl", info_pct=0.4)
    steps = {r["instance_id"]: r["work_patch_list"] for r in real_rows()}
    applied, failed = 0, []
    for row in out:
        parts = [d if d.endswith("\n") else d + "\n"
                 for step in steps[row["instance_id"]][row["k"]:] for d in step]
        assert "".join(parts) == row["ground_truth"]
        assert diffs.files_touched([row["ground_truth"]]) == row["ground_truth_files"]
        for path in row["ground_truth_files"]:
            mine = [p for p in parts if path in {fd.path for fd in diffs.parse(p)}]
            try:
                diffs.apply({path: _sparse(diffs.fragments(path, mine))}, mine)
                applied += 1
            except diffs.DiffError as e:
                failed.append(f"{row['instance_id']}: {e}")
    # A few histories number a later step's hunks against another state of the file
    # (e.g. astropy-pull-17586: step 2 at line 786, after step 1 moved it to 809).
    assert applied > 600 and len(failed) <= applied // 50, failed


def test_oracle_from_diffs_shows_hunk_lines_at_their_numbers(
        tmp_path: Path, real_bench: Path) -> None:
    summary, out = build(tmp_path, real_bench, "all-task-instances_0.2.jsonl", info_pct=0.2)
    assert summary.context_kinds == {"oracle_diffs": 478}
    checked = 0
    for row in out:
        assert "no --repos-dir" in row["context_note"]
        shown = {f["path"]: f["content"].split("\n") for f in row["context_files"]}
        assert list(shown) == row["ground_truth_files"]  # no rename, no new file in the data
        for lines in shown.values():
            nums = [int(x.split(" ", 1)[0]) for x in lines if x != diffs.GAP]
            assert nums == sorted(set(nums)) and lines[-1] == diffs.GAP
            assert all(re.match(r"^(\d+ |\.\.\.$)", x) for x in lines)
        # The first ground-truth diff of each file: its old lines, numbered as in its hunks.
        seen: set[str] = set()
        for fd in diffs.parse(row["ground_truth"]):
            if fd.path in seen:
                continue
            seen.add(fd.path)
            for h in fd.hunks:
                n = h.old_start
                for text in h.old_lines():
                    assert f"{n} {text}" in shown[fd.path]
                    n += 1
                    checked += 1
    assert checked > 5_000


def test_a_ground_truth_that_creates_a_file_says_new_file_and_no_lines_is_no_context(
        tmp_path: Path) -> None:
    new = "diff --git a/n.py b/n.py\nnew file mode 100644\n--- /dev/null\n+++ b/n.py\n" \
        "@@ -0,0 +1 @@\n+VALUE = 1\n"
    blind = "diff --git a/a.py b/a.py\n--- a/a.py\n+++ b/a.py\n@@ -5,0 +6 @@\n+added\n"
    step = "diff --git a/a.py b/a.py\n--- a/a.py\n+++ b/a.py\n@@ -1 +1 @@\n-x\n+y\n"
    bench = write_jsonl(tmp_path / "b.jsonl", [
        {"instance_id": "new", "repo": "o/r", "work_patch_list": [[step], [new]]},
        {"instance_id": "blind", "repo": "o/r", "work_patch_list": [[step], [blind]]},
    ])
    summary, (r_new, r_blind) = build(tmp_path, bench, "x.jsonl", info_pct=0.5)
    assert r_new["context_kind"] == "oracle_diffs"
    assert r_new["context_files"] == [{"path": "n.py", "content": NEW_FILE}]
    assert r_blind["context_kind"] == "no_context" and r_blind["context_files"] == []
    assert "show no line" in r_blind["context_note"]
    assert summary.context_kinds == {"oracle_diffs": 1, "no_context": 1}
    assert summary.run_id is None


# --------------------------------------------------------------------------- requirement


REQ_ROW = {
    "instance_id": "acme__widgets-pull-7", "repo": "acme/widgets", "pull_number": 7,
    "title_mes": "Deprecate f20",
    "body_mes": "Makes f20 return 200.\r\n\r\n\r\n<!-- template: describe -->Closes #3",
    "issues_mes": "f20 should return 200\n\n<!-- bot -->\nthanks",
}


@pytest.mark.parametrize("pr,issue,expected", [
    (True, True, "Deprecate f20\nMakes f20 return 200.\nCloses #3\nf20 should return 200\n"
                 "thanks"),
    (False, True, "f20 should return 200\nthanks"),
    (True, False, "Deprecate f20\nMakes f20 return 200.\nCloses #3"),
    (False, False, ""),
])
def test_requirement_variants(tmp_path: Path, history: History, pr: bool, issue: bool,
                              expected: str) -> None:
    bench = write_jsonl(tmp_path / "b.jsonl", [{**REQ_ROW, "work_patch_list":
                                                [list(s) for s in history.steps]}])
    [row] = load_bench(bench)
    assert requirement_text(row, pr, issue) == expected
    _, [out] = build(tmp_path, bench, "x.jsonl", info_pct=0.5, pr_mes=pr, issue_mes=issue)
    assert out["requirement"] == expected
    head = prompt.HEAD_FULL if expected else prompt.HEAD_CHANGES
    assert out["prompt"].startswith(head + "\n")
    assert ("<requirement>\n" + expected + "\n</requirement>" in out["prompt"]) == bool(expected)


def test_other_field_names_for_the_requirement(tmp_path: Path) -> None:
    bench = write_jsonl(tmp_path / "b.jsonl", [{
        "instance_id": "i", "repo": "o/r", "work_patch_list": [[]],
        "title": "T", "body": "B", "problem_statement": ["issue one", "issue two"]}])
    [row] = load_bench(bench)
    assert requirement_text(row) == "T\nB\nissue one\nissue two"


# --------------------------------------------------------------------------- oracle from a clone


def _bench_of(tmp_path: Path, h: History, **extra: Any) -> Path:
    return write_jsonl(tmp_path / "bench.jsonl", [{
        "instance_id": "acme__widgets-pull-1", "repo": "acme/widgets",
        "base_commit": h.commits[0], "work_patch_list": [list(s) for s in h.steps], **extra}])


def test_oracle_context_from_a_clone(tmp_path: Path, history: History, gitread: Any) -> None:
    h = history
    # The working tree has an unrelated, uncommitted change; reading a commit ignores it.
    dirty = h.clone / "pkg/core.py"
    dirty.write_text("uncommitted\n", encoding="utf-8")
    try:
        summary, [row] = build(tmp_path, _bench_of(tmp_path, h), "acme-widgets-task-"
                               "instances_0.4.jsonl", info_pct=0.4, repos_dir=h.repos_dir)
        assert dirty.read_text(encoding="utf-8") == "uncommitted\n"
    finally:
        from infbench_support import git

        git(h.clone, "checkout", "-q", "--", "pkg/core.py")
    assert (row["k"], row["n"]) == (1, 3)  # floor(0.4*3 + 0.5) = 1
    assert summary.context_kinds == {"oracle": 1}
    assert row["context_kind"] == "oracle" and row["context_note"] == ""
    # Ground truth = steps 2 and 3: core.py, util.py, new.py (first-touch order of git diff).
    assert row["ground_truth_files"] == ["pkg/core.py", "pkg/util.py", "pkg/new.py"]
    after_step1 = h.texts[1]  # base_commit with the previous edit (step 1) applied
    assert row["context_files"] == [
        {"path": "pkg/core.py", "content": prompt.number_lines(after_step1["pkg/core.py"][:-1])},
        {"path": "pkg/util.py", "content": prompt.number_lines(after_step1["pkg/util.py"][:-1])},
        {"path": "pkg/new.py", "content": NEW_FILE},
    ]
    assert "10     return 3  # step 1" in row["context_files"][0]["content"]
    assert row["prompt"].count("[start of pkg/core.py]") == 1


def test_clone_without_base_commit_or_with_unknown_commit_falls_back_to_diffs(
        tmp_path: Path, history: History, gitread: Any) -> None:
    h = history
    _, [row] = build(tmp_path, _bench_of(tmp_path, h, base_commit=None), "x.jsonl",
                     info_pct=0.4, repos_dir=h.repos_dir)
    assert row["context_kind"] == "oracle_diffs"
    assert row["context_note"].startswith("the row has no base_commit;")
    _, [row] = build(tmp_path, _bench_of(tmp_path, h, base_commit="0" * 40), "x.jsonl",
                     info_pct=0.4, repos_dir=h.repos_dir)
    assert row["context_kind"] == "oracle_diffs" and "0000000" in row["context_note"]
    _, [row] = build(tmp_path, _bench_of(tmp_path, h), "x.jsonl", info_pct=0.4,
                     repos_dir=tmp_path / "elsewhere")
    assert row["context_kind"] == "oracle_diffs"
    assert row["context_note"].startswith("no clone of acme/widgets at ")


def test_bm25_context_and_its_fallback(tmp_path: Path, history: History, gitread: Any,
                                       fake_bm25: list[dict[str, Any]]) -> None:
    h = history
    fake_bm25[0]["answer"] = ["pkg/core.py", "pkg/util.py"]
    bench = _bench_of(tmp_path, h, title_mes="Return 200 from f20")
    summary, [row] = build(tmp_path, bench, "acme-widgets-task-instances_0.4_bm25_5.jsonl",
                           info_pct=0.4, use_bm25=True, topn=1, repos_dir=h.repos_dir,
                           cache_dir=tmp_path / "idx")
    [call] = fake_bm25[1:]
    assert (call["commit"], call["topn"], call["cache_dir"]) == (h.commits[0], 1, tmp_path / "idx")
    assert call["query"].startswith("Return 200 from f20\n[start of step 1]\n")
    assert row["context_kind"] == "bm25" and summary.bm25_fallbacks == 0
    assert row["context_files"] == [{"path": "pkg/core.py", "content": prompt.number_lines(
        h.texts[1]["pkg/core.py"][:-1])}]
    # No clone: oracle context, and the row and the summary say why.
    summary, [row] = build(tmp_path, bench, "x.jsonl", info_pct=0.4, use_bm25=True)
    assert row["context_kind"] == "oracle_diffs" and summary.bm25_fallbacks == 1
    assert row["context_note"].startswith("bm25 needs a clone and base_commit (no --repos-dir)"
                                          "; oracle used")
    # BM25 finds nothing: oracle from the clone.
    fake_bm25[0]["answer"] = []
    summary, [row] = build(tmp_path, bench, "x.jsonl", info_pct=0.4, use_bm25=True,
                           repos_dir=h.repos_dir)
    assert row["context_kind"] == "oracle" and summary.bm25_fallbacks == 1
    assert row["context_note"] == "bm25 found no file; oracle used"


def test_bm25_context_with_the_real_index(tmp_path: Path, history: History) -> None:
    """End to end with bm25.top_files and gitread as merged (skipped on a tree without them)."""
    pytest.importorskip("benchsmith.sources.gitread", reason="gitread is not merged here")
    pytest.importorskip("benchsmith.sources.editbench.bm25", reason="bm25 is not merged here")
    h = history
    bench = _bench_of(tmp_path, h, title_mes="getcwd here os util")
    summary, [row] = build(tmp_path, bench, "acme-widgets-task-instances_0.4_bm25_1.jsonl",
                           info_pct=0.4, use_bm25=True, topn=1, repos_dir=h.repos_dir,
                           cache_dir=tmp_path / "idx")
    assert summary.context_kinds == {"bm25": 1} and summary.bm25_fallbacks == 0
    assert row["context_files"] == [{"path": "pkg/util.py", "content": prompt.number_lines(
        h.texts[1]["pkg/util.py"][:-1])}]
