"""`build`: every format's rows (each parses, ShareGPT roles alternate, OpenAI rows pass the
format check, DPO rows hold the preference pairs), the file layout, dataset_stats.json, no
instance in both train and val, parquet copies, and loading with Hugging Face `datasets`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from finetune_support import read_jsonl, scenario

from benchsmith.errors import BenchsmithError, ConfigError
from benchsmith.finetune import build as build_mod
from benchsmith.finetune.build import BuildOptions, build, check_options
from benchsmith.finetune.check import check_file
from benchsmith.finetune.formats import FORMATS, SUPERVISED
from benchsmith.finetune.trajectories import entries_from_dicts

META_KEYS = ["instance_id", "repo", "pair_type", "category", "attempt", "target_attempt",
             "source"]


def _build(tmp_path: Path, formats: tuple[str, ...] = FORMATS, **opts: object):  # type: ignore[no-untyped-def]
    dicts, rows = scenario()
    loaded = entries_from_dicts(dicts, "scenario")
    return build(loaded, BuildOptions(formats=formats, **opts), tmp_path / "out"), dicts, rows


def _rows(out: Path, fmt: str) -> list[dict]:
    return read_jsonl(out / fmt / "train.jsonl") + read_jsonl(out / fmt / "val.jsonl")


def test_every_format_row_parses_with_its_shape(tmp_path: Path) -> None:
    rep, dicts, _ = _build(tmp_path, val_fraction=0.3)
    out = rep.out_dir
    failed = {d["patch"] for d in dicts if not d["resolved"] and d["patch"]}
    resolved = {d["patch"] for d in dicts if d["resolved"]}
    for fmt in SUPERVISED:
        rows = _rows(out, fmt)
        assert len(rows) == 7  # 5 positive + 2 reflection
        for r in rows:
            if fmt != "openai":
                assert list(r["metadata"]) == META_KEYS
                assert r["metadata"]["pair_type"] in ("positive", "reflection")
    for r in _rows(out, "chatml"):
        assert set(r) == {"text", "metadata"}
        parts = r["text"].split("<|im_end|>\n")
        assert parts[-1] == "" and [p.split("\n", 1)[0] for p in parts[:-1]] == [
            "<|im_start|>system", "<|im_start|>user", "<|im_start|>assistant"]
        assert parts[2].split("\n", 1)[1] in resolved
    for r in _rows(out, "alpaca"):
        assert set(r) == {"instruction", "input", "output", "system", "metadata"}
        assert r["output"] in resolved and r["instruction"].startswith("Resolve the following")
    for r in _rows(out, "sharegpt"):
        roles = [t["from"] for t in r["conversations"]]
        body = roles[1:] if roles[0] == "system" else roles
        assert body and all(role == ("human" if i % 2 == 0 else "gpt")
                            for i, role in enumerate(body))
        assert r["conversations"][-1]["value"] in resolved
    for fmt in ("openai", "trl"):
        for r in _rows(out, fmt):
            assert [m["role"] for m in r["messages"]] == ["system", "user", "assistant"]
            assert r["messages"][-1]["content"] in resolved
    assert all(set(r) == {"messages"} for r in _rows(out, "openai"))  # no metadata key
    dpo = _rows(out, "dpo")
    assert len(dpo) == 3
    for r in dpo:
        assert set(r) == {"prompt", "chosen", "rejected", "metadata"}
        assert [m["role"] for m in r["prompt"]] == ["system", "user"]
        assert [m["role"] for m in r["chosen"] + r["rejected"]] == ["assistant", "assistant"]
        assert r["chosen"][0]["content"] in resolved and r["rejected"][0]["content"] in failed
        assert r["metadata"]["pair_type"] == "preference"


def test_openai_rows_pass_the_format_check(tmp_path: Path) -> None:
    rep, _, _ = _build(tmp_path, formats=("openai",), val_fraction=0.3)
    for side in ("train", "val"):
        res = check_file(rep.out_dir / f"{side}.jsonl")
        assert res.ok and res.rows > 0, res.problems


def test_layout_and_stats(tmp_path: Path) -> None:
    rep, dicts, rows = _build(tmp_path, formats=("trl",), seed=42)
    out = rep.out_dir
    assert sorted(p.name for p in out.iterdir()) == ["dataset_stats.json", "train.jsonl",
                                                     "val.jsonl"]
    s = json.loads((out / "dataset_stats.json").read_text())
    assert s == rep.stats
    assert (s["entries"], s["instances"], s["filtered"], s["after_filters"]) == (17, 8, 6, 11)
    assert (s["resolved"], s["failed"], s["instances_resolved"]) == (6, 5, 5)
    assert s["filter_reasons"] == {"unknown_failure_category": 2, "empty_patch": 1,
                                   "not_a_unified_diff": 1, "patch_too_long": 1,
                                   "problem_statement_too_short": 1}
    assert s["pairs"] == {"positive": 5, "reflection": 2, "preference": 3}
    assert (s["duplicate_positives_skipped"], s["same_patch_skipped"]) == (1, 0)
    assert s["sources"] == {"scenario": 17} and s["bad_lines_skipped"] == 0
    sp = s["split"]
    # 5 instances have pairs (A..E); the split is over them
    assert sp["train_instances"] + sp["val_instances"] == 5 and sp["val_instances"] >= 1
    train, val = read_jsonl(out / "train.jsonl"), read_jsonl(out / "val.jsonl")
    assert (len(train), len(val)) == (s["formats"]["trl"]["train"], s["formats"]["trl"]["val"])
    assert len(train) == sp["train_pairs"]["positive"] + sp["train_pairs"]["reflection"]
    ids = lambda rs: {r["metadata"]["instance_id"] for r in rs}  # noqa: E731
    assert not ids(train) & ids(val) and len(ids(val)) == sp["val_instances"]


def test_same_seed_same_files_another_seed_another_split(tmp_path: Path) -> None:
    a, _, _ = _build(tmp_path / "a", formats=("openai", "dpo"), seed=1, val_fraction=0.4)
    b, _, _ = _build(tmp_path / "b", formats=("openai", "dpo"), seed=1, val_fraction=0.4)
    for rel in ("openai/train.jsonl", "openai/val.jsonl", "dpo/train.jsonl", "dpo/val.jsonl"):
        assert (a.out_dir / rel).read_bytes() == (b.out_dir / rel).read_bytes()
    splits = set()
    for seed in range(6):
        rep, _, _ = _build(tmp_path / f"s{seed}", formats=("trl",), seed=seed, val_fraction=0.4)
        splits.add(frozenset(r["metadata"]["instance_id"]
                             for r in read_jsonl(rep.out_dir / "val.jsonl")))
    assert len(splits) > 1


def test_no_reflection_and_zero_val(tmp_path: Path) -> None:
    rep, _, _ = _build(tmp_path, formats=("sharegpt",), reflection=False, val_fraction=0.0)
    assert rep.stats["pairs"]["reflection"] == 0
    rows = read_jsonl(rep.out_dir / "train.jsonl")
    assert len(rows) == 5 and {r["metadata"]["pair_type"] for r in rows} == {"positive"}
    assert read_jsonl(rep.out_dir / "val.jsonl") == []
    assert not [p for p in rep.out_dir.iterdir() if p.name.endswith(".tmp")]


def test_parquet_copies_hold_the_same_rows(tmp_path: Path) -> None:
    pq = pytest.importorskip("pyarrow.parquet")
    rep, _, _ = _build(tmp_path, formats=("alpaca", "dpo"), parquet=True, val_fraction=0.3)
    for fmt in ("alpaca", "dpo"):
        for side in ("train", "val"):
            jl = read_jsonl(rep.out_dir / fmt / f"{side}.jsonl")
            assert pq.read_table(rep.out_dir / fmt / f"{side}.parquet").to_pylist() == jl


def test_parquet_without_pyarrow_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    real = build_mod.importlib.util.find_spec
    monkeypatch.setattr(build_mod.importlib.util, "find_spec",
                        lambda name, *a: None if name == "pyarrow" else real(name, *a))
    with pytest.raises(BenchsmithError, match=r"^--parquet needs pyarrow: pip install "
                                              r"'benchsmith\[parquet\]'$"):
        check_options(BuildOptions(formats=("chatml",), parquet=True))


@pytest.mark.parametrize("opts,expect", [
    ({"formats": ()}, "--format: give at least one of chatml"),
    ({"formats": ("chatml", "jsonl")}, "--format: unknown format 'jsonl'"),
    ({"val_fraction": 1.0}, "--val-fraction: 1.0 is outside [0, 1)"),
    ({"val_fraction": -0.1}, "--val-fraction: -0.1 is outside [0, 1)"),
])
def test_bad_options_are_one_line(opts: dict, expect: str) -> None:
    with pytest.raises(ConfigError) as ei:
        check_options(BuildOptions(**{"formats": ("chatml",), **opts}))
    assert str(ei.value).startswith(expect)


def test_exported_files_load_with_hf_datasets(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    datasets = pytest.importorskip("datasets")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    rep, _, _ = _build(tmp_path, val_fraction=0.3)
    for fmt in FORMATS:
        files = {side: str(rep.out_dir / fmt / f"{side}.jsonl") for side in ("train", "val")}
        ds = datasets.load_dataset("json", data_files=files, cache_dir=str(tmp_path / "hf"))
        for side in ("train", "val"):
            rows = read_jsonl(Path(files[side]))
            assert ds[side].num_rows == len(rows) > 0
            assert ds[side][0] == rows[0], fmt
