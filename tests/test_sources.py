"""Dataset sources on the real shared data: SWE-bench Verified / Lite, HumanEval, generic JSONL.

Expected values come from the data files themselves (row counts, sorted id lists), never
from hard-coded answers. Gold fields must stay in `extras` and out of the prompt text.
"""

from __future__ import annotations

import gzip
import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest

from benchsmith.config import parse_config
from benchsmith.errors import BenchsmithError, ConfigError
from benchsmith.recipes.prompt import task_text
from benchsmith.records import Task
from benchsmith.sources import load_tasks

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
VERIFIED = DATA / "swebench_verified" / "swebench_verified_test.jsonl.gz"
VERIFIED_IDS = DATA / "swebench_verified" / "instance_ids.txt"
LITE_TEST = DATA / "swebench_lite" / "swebench_lite_test.jsonl.gz"
LITE_DEV = DATA / "swebench_lite" / "swebench_lite_dev_2024-04.jsonl"
LITE_IDS = DATA / "swebench_lite" / "instance_ids.txt"

SWE_CONTEXT = ["repo", "base_commit", "hints_text", "version", "created_at"]
SWE_GOLD = ["patch", "test_patch", "FAIL_TO_PASS", "PASS_TO_PASS"]


def load(name: str, spec: dict[str, Any], tmp_path: Path | None = None) -> list[Task]:
    cfg = parse_config({"datasets": {name: spec}}, config_dir=str(tmp_path or "."))
    return load_tasks(name, cfg.datasets[name], cfg)


def read_rows(path: Path) -> list[dict[str, Any]]:
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def read_ids(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def assert_swebench_tasks(tasks: list[Task], rows: list[dict[str, Any]], dataset: str) -> None:
    by_id = {r["instance_id"]: r for r in rows}
    assert [t.id for t in tasks] == sorted(by_id)
    for t in tasks:
        row = by_id[t.id]
        assert t.dataset == dataset
        assert t.primary_field == "problem_statement"
        assert t.primary == row["problem_statement"]
        assert list(t.context) == SWE_CONTEXT
        assert t.context == {k: row[k] for k in SWE_CONTEXT}
        for k in SWE_GOLD:
            assert t.extras[k] == row[k]
            assert k not in t.context
        text = task_text(t)
        assert row["patch"] not in text
        assert row["test_patch"] not in text
        for k in ("FAIL_TO_PASS", "PASS_TO_PASS"):
            if row[k] != "[]":  # an empty JSON list is too short to mean anything
                assert row[k] not in text
        esc = row.get("environment_setup_commit")
        if esc and esc != row["base_commit"]:  # often the same commit as the context field
            assert esc not in text


# --------------------------------------------------------------------------- SWE-bench


def test_swebench_verified_all_500():
    rows = read_rows(VERIFIED)
    assert len(rows) == 500
    tasks = load("swebench_verified", {"path": str(VERIFIED)})
    assert len(tasks) == 500
    assert_swebench_tasks(tasks, rows, "swebench_verified")
    assert all(t.extras["difficulty"] for t in tasks)


def test_swebench_verified_max_tasks_caps_after_sorting():
    ids = read_ids(VERIFIED_IDS)
    assert len(ids) == 500 and ids == sorted(ids)
    tasks = load("swebench_verified", {"path": str(VERIFIED), "max_tasks": 25})
    assert [t.id for t in tasks] == ids[:25]


def test_swebench_lite_test_and_dev():
    test_rows = read_rows(LITE_TEST)
    assert len(test_rows) == 300
    tasks = load("lite", {"source": "swebench_lite", "path": str(LITE_TEST)})
    assert len(tasks) == 300
    assert_swebench_tasks(tasks, test_rows, "lite")
    assert [t.id for t in tasks] == sorted(read_ids(LITE_IDS))

    dev_rows = read_rows(LITE_DEV)
    assert len(dev_rows) == 23
    dev = load("lite_dev", {"source": "swebench_lite", "path": str(LITE_DEV)})
    assert len(dev) == 23
    assert_swebench_tasks(dev, dev_rows, "lite_dev")


def test_dataset_name_picks_the_source():
    # named swebench_lite: no `source` needed; the SWE-bench field map applies
    tasks = load("swebench_lite", {"path": str(LITE_DEV), "max_tasks": 3})
    assert [t.primary_field for t in tasks] == ["problem_statement"] * 3


def test_task_ids_file_allowlist(tmp_path: Path):
    ids = read_ids(VERIFIED_IDS)
    pick = [ids[400], ids[3], ids[250], ids[17]]
    lines = tmp_path / "ids.txt"
    lines.write_text("\n".join(pick) + "\n", encoding="utf-8")
    as_json = tmp_path / "ids.json"
    as_json.write_text(json.dumps(pick), encoding="utf-8")
    for f in (lines, as_json):
        spec = {"path": str(VERIFIED), "task_ids_file": f.name}  # relative to config_dir
        tasks = load("swebench_verified", spec, tmp_path)
        assert [t.id for t in tasks] == sorted(pick)
    # allowlist first, then the cap
    tasks = load(
        "swebench_verified",
        {"path": str(VERIFIED), "task_ids_file": str(lines), "max_tasks": 2},
    )
    assert [t.id for t in tasks] == sorted(pick)[:2]


def test_task_ids_file_unknown_id(tmp_path: Path):
    f = tmp_path / "ids.txt"
    f.write_text(read_ids(VERIFIED_IDS)[0] + "\nnot__a-real-instance-1\n", encoding="utf-8")
    with pytest.raises(ConfigError) as ei:
        load("swebench_verified", {"path": str(VERIFIED), "task_ids_file": str(f)})
    msg = str(ei.value)
    assert "\n" not in msg and str(f) in msg and "not__a-real-instance-1" in msg


def test_parquet(tmp_path: Path):
    rows = read_rows(LITE_DEV)[:4]
    path = tmp_path / "lite_dev.parquet"
    if importlib.util.find_spec("pyarrow") is None:
        path.write_bytes(b"PAR1 not really parquet")
        with pytest.raises(ConfigError) as ei:
            load("swebench_lite", {"path": str(path)})
        msg = str(ei.value)
        assert "\n" not in msg and "pyarrow" in msg and str(path) in msg
        return
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(rows), path)
    tasks = load("swebench_lite", {"path": str(path)})
    assert_swebench_tasks(tasks, rows, "swebench_lite")


def test_hf_name_without_network_or_library(monkeypatch: pytest.MonkeyPatch):
    spec = {"hf_name": "princeton-nlp/SWE-bench_Lite", "split": "dev"}
    if importlib.util.find_spec("datasets") is None:
        with pytest.raises(ConfigError) as ei:
            load("swebench_lite", spec)
        msg = str(ei.value)
        assert "\n" not in msg and "datasets" in msg and "hf_name" in msg
        return
    # the library is installed: with the hub offline the load must fail as one clean line
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    with pytest.raises(BenchsmithError) as ei:
        load("swebench_lite", {**spec, "hf_name": "benchsmith-test/does-not-exist"})
    assert "hf_name" in str(ei.value)


def test_missing_file_is_config_error(tmp_path: Path):
    with pytest.raises(ConfigError) as ei:
        load("swebench_verified", {"path": "nope.jsonl.gz"}, tmp_path)
    assert "file not found" in str(ei.value) and "nope.jsonl.gz" in str(ei.value)


# --------------------------------------------------------------------------- HumanEval


def test_humaneval_164_gold_in_extras_only():
    tasks = load("humaneval", {})
    assert len(tasks) == 164
    assert [t.id for t in tasks] == sorted(t.id for t in tasks)
    assert len({t.id for t in tasks}) == 164
    for t in tasks:
        assert t.primary_field == "prompt"
        assert set(t.extras) == {"canonical_solution", "test"}
        assert set(t.context) == {"entry_point"}
        text = task_text(t)
        assert t.extras["canonical_solution"] not in text
        assert t.extras["test"] not in text
        assert t.primary.rstrip() in text


def test_humaneval_max_tasks():
    tasks = load("humaneval", {"max_tasks": 5})
    assert [t.id for t in tasks] == sorted(t.id for t in load("humaneval", {}))[:5]


# --------------------------------------------------------------------------- generic JSONL


def test_generic_jsonl_with_field_map(tmp_path: Path):
    rows = [
        {"qid": "q2", "question": "Reverse a list.", "lang": "python", "answer": "xs[::-1]"},
        {"qid": "q1", "question": "Sum two ints.", "lang": "python", "answer": "a + b"},
        {"qid": "q3", "question": "Uppercase.", "lang": "python", "answer": "s.upper()"},
    ]
    f = tmp_path / "qa.jsonl"
    f.write_text("".join(json.dumps(r) + "\n" for r in rows) + "\n", encoding="utf-8")
    spec = {
        "path": "qa.jsonl",
        # `answer` listed as context too: gold wins, it never reaches the prompt
        "fields": {
            "id": "qid", "primary": "question", "context": ["lang", "answer"], "gold": ["answer"]
        },
    }
    tasks = load("my_qa", spec, tmp_path)
    assert [t.id for t in tasks] == ["q1", "q2", "q3"]
    for t in tasks:
        row = next(r for r in rows if r["qid"] == t.id)
        assert t.primary == row["question"]
        assert t.context == {"lang": "python"}
        assert t.extras == {"answer": row["answer"]}
        assert row["answer"] not in task_text(t)
    assert len(load("my_qa", {**spec, "max_tasks": 2}, tmp_path)) == 2


def test_generic_jsonl_missing_field(tmp_path: Path):
    f = tmp_path / "qa.jsonl"
    f.write_text(json.dumps({"qid": "q1", "text": "x"}) + "\n", encoding="utf-8")
    with pytest.raises(ConfigError) as ei:
        load("my_qa", {"path": str(f), "fields": {"id": "qid", "primary": "question"}})
    msg = str(ei.value)
    assert "\n" not in msg and str(f) in msg and "line 1" in msg and "question" in msg


def test_broken_json_line(tmp_path: Path):
    f = tmp_path / "broken.jsonl"
    f.write_text('{"task_id": "a", "prompt": "x"}\n{"task_id": "b", "prompt": \n', encoding="utf-8")
    with pytest.raises(ConfigError) as ei:
        load("broken", {"path": str(f)})
    msg = str(ei.value)
    assert "\n" not in msg and str(f) in msg and "line 2" in msg


def test_non_object_line(tmp_path: Path):
    f = tmp_path / "list.jsonl"
    f.write_text('{"task_id": "a", "prompt": "x"}\n[1, 2]\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="line 2"):
        load("lists", {"path": str(f)})


def test_duplicate_ids_rejected(tmp_path: Path):
    f = tmp_path / "dup.jsonl"
    f.write_text(
        "".join(json.dumps({"task_id": "a", "prompt": p}) + "\n" for p in ("x", "y")),
        encoding="utf-8",
    )
    with pytest.raises(ConfigError, match="duplicate task id 'a'"):
        load("dups", {"path": str(f)})
