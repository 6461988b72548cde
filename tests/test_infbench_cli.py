"""`benchsmith infbench build` / `merge-infbench` as a user runs them: summaries, run ids from
file names, one-line errors for bad bench rows, merging with duplicate ids."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import one_error_line, run_cli
from infbench_support import DATA, read_jsonl, real_rows, write_jsonl

from benchsmith.errors import ConfigError
from benchsmith.sources.editbench.names import merge_infbench, run_id_of

STEP = "diff --git a/a.py b/a.py\n--- a/a.py\n+++ b/a.py\n@@ -1 +1 @@\n-x\n+y\n"
GOOD = {"instance_id": "o__r-pull-1", "repo": "o/r", "work_patch_list": [[STEP], [STEP]]}


def test_build_the_real_bench_prints_run_id_and_summary(tmp_path: Path) -> None:
    real_rows()
    save = tmp_path / "infbench" / "all-task-instances_0.2.jsonl"
    r = run_cli(["infbench", "build", "--bench", str(DATA), "--save-path", str(save),
                 "--info-pct", "0.2", "--quiet"])
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [
        "run id:    0.2",
        f"written:   478 of 478 -> {save}",
        f"skipped:   0 -> {save}.skipped.jsonl",
        "context:   oracle_diffs 478",
    ]
    assert len(read_jsonl(save)) == 478 and read_jsonl(Path(f"{save}.skipped.jsonl")) == []


def test_build_json_summary_skips_and_warns_on_an_odd_name(tmp_path: Path) -> None:
    bench = write_jsonl(tmp_path / "b.jsonl", [
        GOOD, {**GOOD, "instance_id": "single", "work_patch_list": [[STEP]]}])
    save = tmp_path / "odd.jsonl"
    r = run_cli(["infbench", "build", "--bench", str(bench), "--save-path", str(save),
                 "--info-pct", "None", "--json", "--quiet"])
    assert r.returncode == 0, r.stderr
    assert "warning: odd.jsonl does not follow `<name>-task-instances_<run_id>.jsonl`" in r.stderr
    s = json.loads(r.stdout)
    assert (s["run_id"], s["written"], s["skipped"], s["context_kinds"]) == (
        None, 1, 1, {"oracle_diffs": 1})
    [row] = read_jsonl(save)
    assert (row["k"], row["n"], row["info_pct"]) == (0, 2, None)


@pytest.mark.parametrize("row,line,expect", [
    ({"repo": "o/r", "work_patch_list": []}, 2,
     "line 2: instance_id: missing"),
    ({**GOOD, "instance_id": "x2", "repo": None}, 2, "line 2 (x2): repo: missing"),
    ({**GOOD, "instance_id": "x3", "repo": "no-slash"}, 2,
     "line 2 (x3): repo: must be owner/name"),
    ({**GOOD, "instance_id": "x4", "work_patch_list": "diff"}, 2,
     "line 2 (x4): work_patch_list: must be a list of steps, got str"),
    ({**GOOD, "instance_id": "x5", "work_patch_list": [[STEP], STEP]}, 2,
     "line 2 (x5): work_patch_list[2]: a step must be a list of diff strings, got str"),
    ({**GOOD, "instance_id": "x6", "pull_number": 1.5}, 2,
     "line 2 (x6): pull_number: must be an integer"),
    ({**GOOD, "instance_id": "x7", "title_mes": 3}, 2,
     "line 2 (x7): title_mes: must be a string"),
    ({**GOOD}, 2, "line 2 (o__r-pull-1): instance_id: repeats the id of row 1"),
])
def test_bad_rows_give_one_line_naming_file_row_and_field(
        tmp_path: Path, row: dict, line: int, expect: str) -> None:
    bench = write_jsonl(tmp_path / "bench.jsonl", [GOOD, row])
    r = run_cli(["infbench", "build", "--bench", str(bench), "--save-path",
                 str(tmp_path / "all-task-instances_0.2.jsonl"), "--info-pct", "0.2"])
    msg = one_error_line(r)
    assert msg.startswith(f"error: {bench}: {expect}"), msg
    assert not (tmp_path / "all-task-instances_0.2.jsonl").exists()


def test_bad_json_line_bad_pct_and_missing_file(tmp_path: Path) -> None:
    bench = tmp_path / "bench.jsonl"
    bench.write_text(json.dumps(GOOD) + "\n{not json\n", encoding="utf-8")
    save = str(tmp_path / "all-task-instances_0.2.jsonl")
    msg = one_error_line(run_cli(["infbench", "build", "--bench", str(bench), "--save-path",
                                  save, "--info-pct", "0.2"]))
    assert msg.startswith(f"error: {bench}: line 2: not valid JSON"), msg
    msg = one_error_line(run_cli(["infbench", "build", "--bench", str(DATA), "--save-path",
                                  save, "--info-pct", "abc"]))
    assert msg == "error: --info-pct: 'abc' is not a number: give a fraction such as 0.2, or None"
    msg = one_error_line(run_cli(["infbench", "build", "--bench", str(tmp_path / "no.jsonl"),
                                  "--save-path", save]))
    assert msg.startswith(f"error: {tmp_path / 'no.jsonl'}: --bench: file not found"), msg


# --------------------------------------------------------------------------- run ids, merge


@pytest.mark.parametrize("name,run_id", [
    ("all-task-instances_0.2.jsonl", "0.2"),
    ("all-task-instances_0.2_bm25_5.jsonl", "0.2_bm25_5"),
    ("all-task-instances_0.2_body_issue.jsonl", "0.2_body_issue"),
    ("all-task-instances_None_body_issue.jsonl", "None_body_issue"),
    ("django-django-task-instances_0.2.jsonl", "0.2"),
])
def test_run_ids_from_file_names(name: str, run_id: str) -> None:
    assert run_id_of(Path("infbench") / name) == run_id


def _per_repo(d: Path, repo: str, run_id: str, ids: list[str]) -> Path:
    d.mkdir(exist_ok=True)
    return write_jsonl(d / f"{repo}-task-instances_{run_id}.jsonl",
                       [{"instance_id": i, "repo": repo, "from": repo} for i in ids])


def test_merge_infbench_with_duplicates(tmp_path: Path) -> None:
    d = tmp_path / "infbench"
    _per_repo(d, "acme-widgets", "0.2", ["w1", "w2", "dup"])
    _per_repo(d, "zeta-tools", "0.2", ["dup", "z1"])
    _per_repo(d, "acme-widgets", "0.2_bm25_5", ["other-run"])  # another run id: left alone
    _per_repo(d, "all", "0.2", ["stale"])  # an earlier merge: never an input
    s = merge_infbench(d, "0.2", force=True)  # replaces the earlier merge
    assert [f.name for f in s.files] == ["acme-widgets-task-instances_0.2.jsonl",
                                         "zeta-tools-task-instances_0.2.jsonl"]
    assert (s.rows_read, s.written, s.duplicates) == (5, 4, ("dup",))
    rows = read_jsonl(d / "all-task-instances_0.2.jsonl")
    assert [(r["instance_id"], r["from"]) for r in rows] == [
        ("w1", "acme-widgets"), ("w2", "acme-widgets"), ("dup", "acme-widgets"),
        ("z1", "zeta-tools")]
    # Through the CLI, one repo only, to another file.
    out = tmp_path / "merged.jsonl"
    r = run_cli(["infbench", "merge-infbench", "--infbench-dir", str(d), "--run-id", "0.2",
                 "--repos", "zeta/tools", "--out", str(out)])
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == f"merged 1 file(s), 2 row(s): wrote 2 -> {out}"
    r = run_cli(["infbench", "merge-infbench", "--infbench-dir", str(d), "--run-id", "0.2",
                 "--force"])
    assert "duplicates: 1 (first row kept): dup" in r.stdout


def test_merge_infbench_errors(tmp_path: Path) -> None:
    d = tmp_path / "infbench"
    _per_repo(d, "acme-widgets", "0.2", ["w1"])
    with pytest.raises(ConfigError, match="no `<owner-repo>-task-instances_0.4.jsonl` file"):
        merge_infbench(d, "0.4")
    msg = one_error_line(run_cli(["infbench", "merge-infbench", "--infbench-dir", str(d),
                                  "--run-id", "0.2", "--repos", "acme/widgets,no/such"]))
    assert msg.startswith(f"error: {d / 'no-such-task-instances_0.2.jsonl'}: --repos: file not "
                          "found"), msg
    msg = one_error_line(run_cli(["infbench", "merge-infbench", "--infbench-dir", str(d),
                                  "--run-id", "../x"]))
    assert "is not a run id" in msg


def test_bm25_without_clones_says_oracle_was_used(tmp_path: Path) -> None:
    bench = write_jsonl(tmp_path / "b.jsonl", [GOOD])
    save = tmp_path / "o-r-task-instances_0.5.jsonl"
    r = run_cli(["infbench", "build", "--bench", str(bench), "--save-path", str(save),
                 "--info-pct", "0.5", "--use-bm25", "--topn", "5", "--quiet"])
    assert r.returncode == 0, r.stderr
    assert "warning: run id '0.5' and --use-bm25 on disagree" in r.stderr
    assert "bm25:      1 row(s) fell back to oracle context (see context_note)" in r.stdout
    [row] = read_jsonl(save)
    assert row["context_kind"] == "oracle_diffs"
    assert row["context_note"].startswith("bm25 needs a clone and base_commit (no --repos-dir)")
