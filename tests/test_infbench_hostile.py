"""`infbench build`, `merge-infbench`, `merge-results` and `score` given what a careless or
hostile user gives them: one `error:` line naming the file or option and the fix, a non-zero
exit, no traceback, and nothing written (or overwritten) on the way."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import one_error_line, run_cli
from infbench_support import read_jsonl, write_jsonl

STEP = "diff --git a/a.py b/a.py\n--- a/a.py\n+++ b/a.py\n@@ -1 +1 @@\n-x\n+y\n"
GOOD = {"instance_id": "o__r-pull-1", "repo": "o/r", "work_patch_list": [[STEP], [STEP]]}


def build(bench: Path, save: str | Path, *extra: str):  # type: ignore[no-untyped-def]
    return run_cli(["infbench", "build", "--bench", str(bench), "--save-path", str(save),
                    "--info-pct", "0.5", "--quiet", *extra])


# --------------------------------------------------------------------------- build


@pytest.mark.parametrize("save", [".", ""])
def test_save_path_without_a_file_name(tmp_path: Path, save: str) -> None:
    bench = write_jsonl(tmp_path / "b.jsonl", [GOOD])
    r = run_cli(["infbench", "build", "--bench", str(bench), "--save-path", save,
                 "--info-pct", "0.5"], cwd=tmp_path)
    assert "--save-path" in one_error_line(r)


def test_save_path_or_its_skipped_list_a_folder_writes_nothing(tmp_path: Path) -> None:
    bench = write_jsonl(tmp_path / "b.jsonl", [GOOD])
    folder = tmp_path / "all-task-instances_0.5.jsonl"
    folder.mkdir()
    msg = one_error_line(build(bench, folder))
    assert f"{folder}: --save-path: is a folder" in msg and ".tmp" not in msg, msg
    save = tmp_path / "sub" / "all-task-instances_0.5.jsonl"
    Path(f"{save}.skipped.jsonl").mkdir(parents=True)
    msg = one_error_line(build(bench, save))
    assert f"{save}.skipped.jsonl: --save-path: is a folder" in msg, msg
    assert not save.exists()  # not half written: no infbench without its skipped list


def test_a_missing_repos_dir_is_an_error_not_a_silent_fallback(tmp_path: Path) -> None:
    bench = write_jsonl(tmp_path / "b.jsonl", [GOOD])
    save = tmp_path / "all-task-instances_0.5.jsonl"
    for bad in (tmp_path / "no-such-dir", write_jsonl(tmp_path / "afile", [])):
        msg = one_error_line(build(bench, save, "--repos-dir", str(bad)))
        assert msg.startswith(f"error: {bad}: --repos-dir: ") and "folder" in msg, msg
        assert not save.exists()


def test_a_utf8_bom_is_read_like_plain_utf8(tmp_path: Path) -> None:
    bench = tmp_path / "b.jsonl"
    bench.write_bytes(b"\xef\xbb\xbf" + json.dumps(GOOD).encode() + b"\n")
    save = tmp_path / "o-r-task-instances_0.5.jsonl"
    r = build(bench, save)
    assert r.returncode == 0, r.stderr
    assert [x["instance_id"] for x in read_jsonl(save)] == ["o__r-pull-1"]


# --------------------------------------------------------------------------- merges


def _per_repo(d: Path, repo: str, run_id: str, ids: list[str]) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    return write_jsonl(d / f"{repo}-task-instances_{run_id}.jsonl",
                       [{"instance_id": i, "repo": repo, "model_patch": ""} for i in ids])


def test_merge_infbench_keeps_an_existing_merged_file_without_force(tmp_path: Path) -> None:
    d = tmp_path / "infbench"
    _per_repo(d, "o-r", "0.2", ["a"])
    built = write_jsonl(d / "all-task-instances_0.2.jsonl", [{"instance_id": "built"}])
    before = built.read_bytes()
    args = ["infbench", "merge-infbench", "--infbench-dir", str(d), "--run-id", "0.2"]
    msg = one_error_line(run_cli(args))
    assert f"{built}: already exists" in msg and "--force" in msg, msg
    assert built.read_bytes() == before
    r = run_cli([*args, "--force"])
    assert r.returncode == 0, r.stderr
    assert [x["instance_id"] for x in read_jsonl(built)] == ["a"]


@pytest.mark.parametrize("model", ["..", "", "../elsewhere"])
def test_merge_results_refuses_a_model_name_that_is_no_folder(tmp_path: Path,
                                                              model: str) -> None:
    msg = one_error_line(run_cli(["infbench", "merge-results", "--model-name", model,
                                  "--results-dir", str(tmp_path / "res")]))
    assert "--model" in msg and "folder name" in msg, msg


def test_merge_results_says_which_lines_it_left_out(tmp_path: Path) -> None:
    folder = tmp_path / "res" / "m" / "T=0" / "n=1"
    f = _per_repo(folder, "o-r", "0.2", ["a", "b"])
    with f.open("a") as fh:
        fh.write("junk\n")
    r = run_cli(["infbench", "merge-results", "--model-name", "m", "--results-dir",
                 str(tmp_path / "res")])
    assert r.returncode == 0, r.stderr
    assert f"{f}:3: not a result line" in r.stderr and "left out" in r.stderr, r.stderr
    assert len(read_jsonl(folder / "all-task-instances_0.2.jsonl")) == 2


# --------------------------------------------------------------------------- score


def _scored(tmp_path: Path, results: list[dict], truths: list[dict] | None) -> list[str]:
    folder = tmp_path / "res" / "m" / "T=0" / "n=1"
    folder.mkdir(parents=True)
    write_jsonl(folder / "o-r-task-instances_0.2.jsonl", results)
    inf = tmp_path / "infbench"
    if truths is not None:
        inf.mkdir()
        write_jsonl(inf / "o-r-task-instances_0.2.jsonl", truths)
    return ["infbench", "score", "--results-dir", str(tmp_path / "res"),
            "--infbench-dir", str(inf)]


def test_score_without_the_infbench_files_is_an_error_not_zeros(tmp_path: Path) -> None:
    args = _scored(tmp_path, [{"instance_id": "a", "model_patch": STEP}], None)
    msg = one_error_line(run_cli(args))
    assert "--infbench-dir" in msg and "not found" in msg, msg
    (tmp_path / "infbench").mkdir()  # a folder without the run's file: nothing to compare
    msg = one_error_line(run_cli(args))
    assert "o-r-task-instances_0.2.jsonl" in msg and "ground truth" in msg, msg


def test_score_names_a_results_line_without_model_patch(tmp_path: Path) -> None:
    args = _scored(tmp_path, [{"instance_id": "a", "model_patch": STEP},
                              {"instance_id": "b", "full_output": "x"}],
                   [{"instance_id": "a", "ground_truth": STEP},
                    {"instance_id": "b", "ground_truth": STEP}])
    msg = one_error_line(run_cli(args))
    assert "o-r-task-instances_0.2.jsonl: line 2 (b): model_patch: missing" in msg, msg


def test_score_names_a_ground_truth_that_is_not_text(tmp_path: Path) -> None:
    args = _scored(tmp_path, [{"instance_id": "a", "model_patch": STEP}],
                   [{"instance_id": "a", "ground_truth": 5}])
    msg = one_error_line(run_cli(args))
    assert "line 1 (a): ground_truth: " in msg and "infbench build" in msg, msg


def test_score_with_filters_matching_nothing_is_an_error(tmp_path: Path) -> None:
    args = _scored(tmp_path, [{"instance_id": "a", "model_patch": STEP}],
                   [{"instance_id": "a", "ground_truth": STEP}])
    r = run_cli([*args, "--model", "m"])
    assert r.returncode == 0 and "100.00" in r.stdout, r.stderr
    msg = one_error_line(run_cli([*args, "--model", "typo"]))
    assert "no results file" in msg and "typo" in msg, msg


def test_score_names_the_lines_it_cannot_read(tmp_path: Path) -> None:
    args = _scored(tmp_path, [{"instance_id": "a", "model_patch": STEP}],
                   [{"instance_id": "a", "ground_truth": STEP}])
    f = tmp_path / "res" / "m" / "T=0" / "n=1" / "o-r-task-instances_0.2.jsonl"
    with f.open("a") as fh:
        fh.write("junk\n{\"instance_id\": \"b\", \"model_pa")
    r = run_cli(args)
    assert r.returncode == 0 and "100.00" in r.stdout, r.stderr
    assert f"note: {f}:2: not a result line" in r.stderr, r.stderr
    assert f"note: {f}:3: last line cut short" in r.stderr, r.stderr


@pytest.mark.parametrize("repo", ["o/..", "../r", "./."])
def test_a_repo_name_of_dots_is_refused(tmp_path: Path, repo: str) -> None:
    bench = write_jsonl(tmp_path / "b.jsonl", [{**GOOD, "repo": repo}])
    msg = one_error_line(build(bench, tmp_path / "o-r-task-instances_0.5.jsonl",
                               "--repos-dir", str(tmp_path)))
    assert "repo: must be owner/name" in msg, msg


def test_bm25_fallback_note_gives_its_reason_once(tmp_path: Path) -> None:
    bench = write_jsonl(tmp_path / "b.jsonl", [GOOD])
    save = tmp_path / "o-r-task-instances_0.5_bm25_5.jsonl"
    r = build(bench, save, "--use-bm25", "--repos-dir", str(tmp_path))
    assert r.returncode == 0, r.stderr
    [row] = read_jsonl(save)
    assert row["context_note"].count("no clone of o/r") == 1, row["context_note"]
