"""`finetune build / stats / check` fed what a careless or hostile user gives them: a single
instance with a val fraction, an output folder holding an earlier build or the trajectories
themselves, byte order marks, non-finite prices, a broken pyarrow, reports with wrong
types."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from finetune_support import attempt, lite_rows, scenario, write_jsonl
from helpers import cli_env, one_error_line, run_cli

from benchsmith.cli.finetune import interrupted_note
from benchsmith.errors import ConfigError
from benchsmith.finetune.build import BuildOptions, build
from benchsmith.finetune.failures import categorize
from benchsmith.finetune.harness_eval import OUTCOME_KEYS, read_run_report
from benchsmith.finetune.split import split_instances
from benchsmith.finetune.swe_agent import read_trajectory
from benchsmith.finetune.trajectories import entries_from_dicts, entry_from_dict


def _trajs(tmp_path: Path, name: str = "trajs") -> Path:
    d = tmp_path / name
    d.mkdir()
    write_jsonl(d / "a.jsonl", scenario()[0])
    return d


def test_a_single_instance_goes_to_train_whatever_the_val_fraction(tmp_path: Path) -> None:
    (row,) = lite_rows(1)
    for seed in range(30):
        s = split_instances([row["instance_id"]], 0.9, seed)
        assert s.train == {row["instance_id"]} and not s.val
    d = tmp_path / "one"
    d.mkdir()
    write_jsonl(d / "a.jsonl", [attempt(row, 1, True)])
    out = tmp_path / "ft"
    r = run_cli(["finetune", "build", "--trajectories", str(d), "--out", str(out),
                 "--format", "openai", "--val-fraction", "0.5", "-q"])
    assert r.returncode == 0, r.stderr
    assert (out / "train.jsonl").read_text().count("\n") == 1
    assert (out / "val.jsonl").read_text() == ""


def _build(trajs: Path, out: Path, *formats: str, extra: tuple[str, ...] = ()):  # type: ignore[no-untyped-def]
    args = ["finetune", "build", "--trajectories", str(trajs), "--out", str(out), "-q"]
    for f in formats:
        args += ["--format", f]
    return run_cli(args + list(extra))


def _files(out: Path) -> list[str]:
    return sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())


def test_a_rebuild_removes_the_files_of_the_earlier_build(tmp_path: Path) -> None:
    trajs, out = _trajs(tmp_path), tmp_path / "ft"
    assert _build(trajs, out, "openai", "dpo").returncode == 0
    (out / "notes.txt").write_text("mine")  # not a build's file: kept
    r = _build(trajs, out, "chatml")
    assert r.returncode == 0, r.stderr
    # no openai/ or dpo/ folder left to be taken for this build's output
    assert _files(out) == ["dataset_stats.json", "notes.txt", "train.jsonl", "val.jsonl"]
    assert _build(trajs, out, "trl", "dpo").returncode == 0
    assert _files(out) == ["dataset_stats.json", "dpo/train.jsonl", "dpo/val.jsonl",
                           "notes.txt", "trl/train.jsonl", "trl/val.jsonl"]


def test_out_cannot_be_the_trajectories_folder(tmp_path: Path) -> None:
    trajs = _trajs(tmp_path)
    line = one_error_line(_build(trajs, trajs, "openai"))
    assert line.startswith("error: --out: ") and str(trajs) in line
    assert "another folder" in line
    assert sorted(p.name for p in trajs.iterdir()) == ["a.jsonl"]
    # a sub-folder is fine: sub-folders are not read
    assert _build(trajs, trajs / "ft", "openai").returncode == 0
    assert _build(trajs, trajs / "ft", "openai").returncode == 0


def test_parquet_copies_of_an_earlier_build_do_not_stay(tmp_path: Path) -> None:
    pytest.importorskip("pyarrow")
    trajs, out = _trajs(tmp_path), tmp_path / "ft"
    assert _build(trajs, out, "chatml", extra=("--parquet",)).returncode == 0
    assert "train.parquet" in _files(out)
    assert _build(trajs, out, "chatml").returncode == 0
    assert _files(out) == ["dataset_stats.json", "train.jsonl", "val.jsonl"]


def test_an_interrupted_build_leaves_no_stats_and_no_earlier_files(tmp_path: Path) -> None:
    dicts, _ = scenario()
    loaded = entries_from_dicts(dicts, "scenario")
    out = tmp_path / "ft"
    build(loaded, BuildOptions(formats=("openai", "dpo", "chatml")), out)

    def stop(done: int, total: int, what: str) -> None:
        if what == "trl":  # the first format written, the second not yet
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        build(loaded, BuildOptions(formats=("sharegpt", "trl")), out, stop)
    # only whole files of the new build; no dataset_stats.json says it is unfinished
    assert _files(out) == ["sharegpt/train.jsonl", "sharegpt/val.jsonl"]


BOM = b"\xef\xbb\xbf"


def test_a_byte_order_mark_is_read_past(tmp_path: Path) -> None:
    """Windows editors save UTF-8 with a BOM: trajectories, training files and reports."""
    trajs = _trajs(tmp_path)
    a = trajs / "a.jsonl"
    a.write_bytes(BOM + a.read_bytes())
    out = tmp_path / "ft"
    r = _build(trajs, out, "openai", extra=("--val-fraction", "0"))
    assert r.returncode == 0, r.stderr
    train = out / "train.jsonl"
    train.write_bytes(BOM + train.read_bytes())
    r = run_cli(["finetune", "stats", str(train), "--json"])
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["rows"] == train.read_bytes().count(b"\n")
    report = tmp_path / "report.json"
    report.write_bytes(BOM + json.dumps({k: [] for k in OUTCOME_KEYS}).encode())
    assert read_run_report(report).outcome == {}


@pytest.mark.parametrize("price", ["nan", "inf", "-1"])
def test_a_price_that_is_not_a_finite_number_is_refused(tmp_path: Path, price: str) -> None:
    train = tmp_path / "train.jsonl"
    train.write_text('{"text": "abc"}\n')
    line = one_error_line(run_cli(["finetune", "stats", str(train), "--price-per-1m", price]))
    assert line.startswith("error: --price-per-1m: ") and "USD per 1M tokens" in line


def test_a_broken_pyarrow_is_one_line_and_writes_nothing(tmp_path: Path) -> None:
    fake = tmp_path / "site" / "pyarrow"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text('raise ImportError("libarrow.so.1500: cannot open")\n')
    env = cli_env(PYTHONPATH=os.pathsep.join([str(fake.parent), os.environ.get(
        "PYTHONPATH", "")]))
    trajs, out = _trajs(tmp_path), tmp_path / "ft"
    r = run_cli(["finetune", "build", "--trajectories", str(trajs), "--out", str(out),
                 "--format", "openai", "--parquet"], env=env)
    line = one_error_line(r)
    assert "--parquet" in line and "libarrow.so.1500" in line and "pip install" in line
    assert not out.exists()


def test_a_report_count_of_the_wrong_type_is_refused(tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    report.write_text(json.dumps({**{k: [] for k in OUTCOME_KEYS}, "resolved_instances": "0"}))
    with pytest.raises(ConfigError) as ei:
        read_run_report(report)
    assert (ei.value.field, "must be a whole number") == ("resolved_instances", str(ei.value)[
        -len("must be a whole number"):])


def test_a_traj_that_is_not_json_says_what_it_expected_once(tmp_path: Path) -> None:
    bad = tmp_path / "astropy__astropy-12907.traj"
    bad.write_text("not json")
    with pytest.raises(ConfigError) as ei:
        read_trajectory(bad)
    assert "expected expected" not in str(ei.value)
    assert "expected a SWE-agent trajectory" in str(ei.value)


@pytest.mark.parametrize("field,value,says", [
    ("problem_statement", None, "got null"), ("patch", ["a"], "got an array"),
    ("failure_category", 3, "got a number"), ("repo", {"a": 1}, "got an object"),
])
def test_a_wrong_type_is_named_as_json_names_it(field: str, value: object, says: str) -> None:
    (row,) = lite_rows(1)
    with pytest.raises(ConfigError) as ei:
        entry_from_dict({**attempt(row, 1, False), field: value}, "t.jsonl: line 1")
    assert str(ei.value).endswith(says), str(ei.value)


def test_paths_of_the_wrong_kind_say_what_they_are(tmp_path: Path) -> None:
    trajs, afile = _trajs(tmp_path), tmp_path / "afile"
    afile.write_text("x")
    line = one_error_line(_build(trajs, afile, "openai"))
    assert line == f"error: --out: {afile} is a file: give a folder for the dataset"
    line = one_error_line(_build(tmp_path / "nope", tmp_path / "ft", "openai"))
    assert "does not exist" in line and str(tmp_path / "nope") in line
    line = one_error_line(_build(afile, tmp_path / "ft", "openai"))
    assert "is a file" in line and "folder" in line
    for cmd in ("stats", "check"):
        line = one_error_line(run_cli(["finetune", cmd, str(trajs)]))
        assert line.startswith(f"error: {trajs}: is a folder: give a"), line


def test_a_jsonl_gz_that_is_not_gzip_says_how_to_fix_it(tmp_path: Path) -> None:
    trajs = _trajs(tmp_path)
    (trajs / "a.jsonl").rename(trajs / "a.jsonl.gz")
    line = one_error_line(_build(trajs, tmp_path / "ft", "openai"))
    assert line.startswith(f"error: {trajs / 'a.jsonl.gz'}: ") and "not gzip" in line
    assert "rename it to .jsonl" in line
    line = one_error_line(run_cli(["finetune", "stats", str(trajs / "a.jsonl.gz")]))
    assert "not gzip" in line and "rename it to .jsonl" in line


def test_check_on_a_gzip_file_is_one_line_not_one_per_line(tmp_path: Path) -> None:
    gz = write_jsonl(tmp_path / "train.jsonl.gz", [{"messages": []}] * 50)
    line = one_error_line(run_cli(["finetune", "check", str(gz)]))
    assert line.startswith(f"error: {gz}: ") and "gunzip" in line


def test_an_exception_name_from_test_output_is_bounded() -> None:
    # output no test run writes, but a trajectory file can hold anything
    cat = categorize("E   " + "Error" * 100_000 + ": boom\n", None)
    assert len(cat) <= 120


def test_the_interrupt_note_says_what_the_out_folder_holds(tmp_path: Path) -> None:
    out = tmp_path / "ft"
    assert interrupted_note(out) == f"interrupted: nothing written to {out}"
    out.mkdir()
    assert interrupted_note(out) == f"interrupted: nothing written to {out}"
    (out / "train.jsonl").write_text("")
    assert interrupted_note(out) == (f"interrupted: {out} holds an unfinished build (no "
                                     "dataset_stats.json); run the command again")
    (out / "dataset_stats.json").write_text("{}")
    assert interrupted_note(out) == f"interrupted: {out} still holds the earlier build"
