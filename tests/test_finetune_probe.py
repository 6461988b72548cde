"""`finetune build / stats / check` fed what a careless or hostile user gives them: a single
instance with a val fraction, an output folder holding an earlier build or the trajectories
themselves, byte order marks, non-finite prices, a broken pyarrow, reports with wrong
types."""

from __future__ import annotations

from pathlib import Path

from finetune_support import attempt, lite_rows, scenario, write_jsonl
from helpers import run_cli

from benchsmith.finetune.split import split_instances


def _one_error_line(r) -> str:  # type: ignore[no-untyped-def]
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    return lines[0]


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
