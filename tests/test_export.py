"""`benchsmith export`: a real plans run on HumanEval and a bug-fixer rollout through the fake
server, exported as JSONL, parquet and a DatasetDict, loaded back with `datasets` offline."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import KEY_ENV, SECRET, make_cfg, read_jsonl
from rollouts_support import Workspace, rollout
from typer.testing import CliRunner

from benchsmith import api
from benchsmith.cli.app import app

datasets = pytest.importorskip("datasets")


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))


def _export(run_dir: Path, fmt: str, *extra: str) -> Path:
    res = CliRunner().invoke(app, ["export", str(run_dir), "--format", fmt, *extra])
    assert res.exit_code == 0, (res.output, res.exception)
    return run_dir / "export" / fmt if not extra else Path(extra[-1])


def _check_all_formats(run_dir: Path, tables: dict[str, list[dict]], cache: Path) -> None:
    """Each format loads back with the same rows and fields as `tables` (name -> rows)."""
    for fmt in ("jsonl", "parquet"):
        out = _export(run_dir, fmt)
        assert sorted(p.name for p in out.iterdir()) == sorted(
            [f"{n}.{fmt}" for n in tables] + ["README.md"])
        for name, rows in tables.items():
            builder = "json" if fmt == "jsonl" else "parquet"
            ds = datasets.load_dataset(builder, data_files=str(out / f"{name}.{fmt}"),
                                       split="train", cache_dir=str(cache))
            assert ds.num_rows == len(rows), (fmt, name)
            assert list(ds.column_names) == list(rows[0]), (fmt, name)
            assert ds[0]["model_patch" if "model_patch" in rows[0] else "request_id"] == \
                rows[0]["model_patch" if "model_patch" in rows[0] else "request_id"]
        card = (out / "README.md").read_text(encoding="utf-8")
        for rows in tables.values():
            for field in rows[0]:
                assert f"| {field} |" in card, (fmt, field)
        # The card's configs: the folder itself loads, one config per table.
        first = next(iter(tables))
        ds = datasets.load_dataset(str(out), first, split="train", cache_dir=str(cache))
        assert ds.num_rows == len(tables[first])
    out = _export(run_dir, "hf")
    dd = datasets.load_from_disk(str(out))
    assert sorted(dd) == sorted(tables)
    for name, rows in tables.items():
        assert dd[name].num_rows == len(rows)
        assert list(dd[name].column_names) == list(rows[0])
    assert "## Tables" in (out / "README.md").read_text(encoding="utf-8")


def test_plans_run_exports_in_every_format(fake_openai, tmp_path, monkeypatch):
    monkeypatch.setenv(KEY_ENV, SECRET)
    cfg = make_cfg(tmp_path, fake_openai.base_url,
                   {"prices": {"gpt-5-mini": {"input": 1.0, "output": 2.0}}}, tasks=2)
    rd = api.run(cfg, "P").run_dir
    plans = read_jsonl(rd / "datasets/humaneval/plans.jsonl")
    assert plans == list(api.read_records(rd, "humaneval"))
    assert len(plans) == 2 * 3 * 4  # tasks x calls x plans per call
    from benchsmith.store.lock import run_lock

    with run_lock(rd, "run"):  # a live run: export reads it without its lock
        _check_all_formats(rd, {"humaneval": plans}, tmp_path / "cache")
    pq = datasets.load_dataset("parquet", data_files=str(rd / "export/parquet/humaneval.parquet"),
                               split="train", cache_dir=str(tmp_path / "cache"))
    assert pq.features["steps"].feature.dtype == "string"  # a list of strings, not JSON text
    assert pq[0]["steps"] == plans[0]["steps"]
    card = (rd / "export/parquet/README.md").read_text(encoding="utf-8")
    fp = json.loads((rd / "config/plan.json").read_text())["fingerprint"]
    assert fp in card and "gpt-5-mini" in card and "humaneval" in card
    assert "| humaneval | 6 | 0 | 0 | 0 | 0 |" in card  # 2 tasks x 3 calls, all ok
    assert "| title | string | Short name of the approach. |" in card  # from the schema


def test_rollout_exports_records_and_predictions(ws: Workspace, tmp_path: Path) -> None:
    rollout("bugfix", ws.config(), "--run-id", "B", "--passk", "2")
    rd = ws.runs / "B"
    repair = read_jsonl(rd / "datasets/swebench_lite/repair.jsonl")
    preds = read_jsonl(rd / "preds.jsonl")
    assert repair and preds
    _check_all_formats(rd, {"swebench_lite": repair, "predictions": preds}, tmp_path / "cache")
    # Another folder, written twice: the second export replaces the first.
    out = tmp_path / "elsewhere"
    _export(rd, "hf", "--out", str(out))
    _export(rd, "hf", "--out", str(out))
    assert datasets.load_from_disk(str(out))["predictions"].num_rows == len(preds)
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".elsewhere")]


def test_bad_run_dir_empty_run_and_foreign_out(tmp_path, fake_openai, monkeypatch):
    runner = CliRunner()
    res = runner.invoke(app, ["export", str(tmp_path / "nope"), "--format", "parquet"])
    assert res.exit_code == 1 and "not a run directory" in res.output
    assert len(res.output.strip().splitlines()) == 1
    monkeypatch.setenv(KEY_ENV, SECRET)
    cfg = make_cfg(tmp_path, fake_openai.base_url, tasks=1)
    rd = api.dry_run(cfg, "D").run_dir  # planned, nothing answered
    res = runner.invoke(app, ["export", str(rd), "--format", "jsonl"])
    assert res.exit_code == 1 and "no records" in res.output
    assert len(res.output.strip().splitlines()) == 1
    res = runner.invoke(app, ["export", str(rd), "--format", "csv"])
    assert res.exit_code == 1 and "--format" in res.output
    other = tmp_path / "mine"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    api.run(cfg, "D", resume=True)
    res = runner.invoke(app, ["export", str(rd), "--format", "hf", "--out", str(other)])
    assert res.exit_code == 1 and "holds other files" in res.output
    assert (other / "notes.txt").read_text() == "keep me"


def test_hf_without_datasets_names_the_extra(tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "datasets", None)  # as if not installed
    res = CliRunner().invoke(app, ["export", str(tmp_path), "--format", "hf"])
    assert res.exit_code == 1 and "pip install 'benchsmith[hf]'" in res.output
