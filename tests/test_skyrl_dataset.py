"""SkyRL rows and files: one fixed schema, a round trip through pyarrow and through
`datasets.load_dataset`, atomic writes, and the train/validation split."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from benchsmith.errors import BenchsmithError
from benchsmith.skyrl.dataset import skyrl_row, split_rows, write_dataset
from benchsmith.skyrl.normalize import normalize_sample

PLAN = [
    {"step": 1, "server": "git", "tool": "status", "params": {"repo_path": "."}},
    {"step": 2, "server": "git", "tool": "log", "params": {"repo_path": ".", "max_count": 5}},
]


def _sample(i: int, *, system: bool) -> dict:
    raw = {
        "user_prompt": f"Summarise the last five commits of repository {i}.",
        "system_prompt": "You are a release assistant." if system else None,
        "tool_sequence": PLAN,
        "success": {"must_call_tool": ["git.log"]},
        "limits": {"max_servers": 1, "max_tools": 2},
        "domain": "software",
        "assumptions": ["the repository is at ."] if i % 2 else [],
        "complexity": "simple",
        "rubric": "Calls git log with max_count 5.",
    }
    return normalize_sample(raw, default_max_turns=8, default_limits={"max_servers": 2,
                                                                      "max_tools": 5})


def _rows(n: int = 10) -> list[dict]:
    rows = []
    for i in range(n):
        meta = {"mode": "synth", "model": "gpt-5-mini", "reasoning_effort": "high",
                "timestamp": "2026-12-04T10:00:00Z", "seed": 0,
                "reasoning_tokens": 512 if i % 3 else None,  # not always reported
                "run_id": "skyrl_v1", "request_id": f"req-{i}"}
        if i == 4:
            meta["attempts"] = 2  # an extra key: kept in task_metadata.other
        rows.append(skyrl_row(_sample(i, system=i % 2 == 0), data_source="benchsmith/skyrl",
                              env_class="MCPToolEnv", index=i, split="train", meta=meta))
    return rows


EXPECTED = pa.schema([
    ("data_source", pa.string()),
    ("prompt", pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))),
    ("env_class", pa.string()),
    ("reward_spec", pa.struct([("method", pa.string()), ("ground_truth", pa.string()),
                               ("rubric", pa.string())])),
    ("extra_info", pa.struct([
        ("task_metadata", pa.struct([
            ("mode", pa.string()), ("model", pa.string()), ("reasoning_effort", pa.string()),
            ("timestamp", pa.string()), ("seed", pa.int64()), ("reasoning_tokens", pa.int64()),
            ("run_id", pa.string()), ("request_id", pa.string()), ("other", pa.string())])),
        ("limits", pa.struct([("max_servers", pa.int64()), ("max_tools", pa.int64())])),
        ("complexity", pa.string()), ("max_turns", pa.int64()), ("domain", pa.string()),
        ("assumptions", pa.list_(pa.string())), ("split", pa.string()),
        ("index", pa.int64())])),
])


def test_a_row_has_skyrls_fields():
    row = _rows(1)[0]
    assert list(row) == ["data_source", "prompt", "env_class", "reward_spec", "extra_info"]
    assert row["prompt"] == [
        {"role": "system", "content": "You are a release assistant."},
        {"role": "user", "content": "Summarise the last five commits of repository 0."}]
    assert row["reward_spec"]["method"] == "rule"
    truth = json.loads(row["reward_spec"]["ground_truth"])
    assert truth == {"tool_sequence": PLAN, "success": {"must_call_tool": ["git.log"]}}
    info = row["extra_info"]
    assert (info["complexity"], info["max_turns"], info["split"], info["index"]) == (
        "simple", 8, "train", 0)
    assert info["limits"] == {"max_servers": 1, "max_tools": 2}
    assert info["task_metadata"]["request_id"] == "req-0"
    assert _rows(5)[4]["extra_info"]["task_metadata"]["other"] == '{"attempts": 2}'


def test_rows_share_no_list_with_their_sample():
    sample = _sample(0, system=False)
    a, b = (skyrl_row(sample, data_source="d", env_class="e", index=i, split="train",
                      meta={}) for i in range(2))
    a["prompt"][0]["content"] = "changed"
    a["extra_info"]["assumptions"].append("x")
    assert b["prompt"][0]["content"] != "changed" and sample["prompt"] == b["prompt"]
    assert b["extra_info"]["assumptions"] == [] and sample["assumptions"] == []


def test_split_is_seeded_and_numbers_each_split():
    rows = _rows(10)
    train, val = split_rows(rows, 0.2, seed=3)
    assert (len(train), len(val)) == (8, 2)
    assert split_rows(rows, 0.2, seed=3) == (train, val)
    assert split_rows(rows, 0.2, seed=4)[1] != val
    assert [r["extra_info"]["index"] for r in val] == [0, 1]
    assert {r["extra_info"]["split"] for r in val} == {"validation"}
    assert [r["extra_info"]["index"] for r in train] == list(range(8))
    ids = [r["extra_info"]["task_metadata"]["request_id"] for r in train + val]
    assert sorted(ids) == sorted(f"req-{i}" for i in range(10))
    assert rows[0]["extra_info"]["split"] == "train"  # the input rows are not changed
    assert [len(p) for p in split_rows(rows[:3], 0.01, 0)] == [2, 1]  # at least one
    assert [len(p) for p in split_rows(rows[:1], 0.5, 0)] == [1, 0]
    assert [len(p) for p in split_rows(rows, 0.0, 0)] == [10, 0]
    with pytest.raises(ValueError):
        split_rows(rows, 1.0, 0)


def test_parquet_round_trip_with_pyarrow(tmp_path):
    train, val = split_rows(_rows(10), 0.3, seed=0)
    paths = write_dataset(train, val, tmp_path, jsonl=True)
    assert [p.name for p in paths] == ["train.parquet", "train.jsonl", "validation.parquet",
                                       "validation.jsonl"]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in paths)
    for path, rows in ((tmp_path / "train.parquet", train),
                       (tmp_path / "validation.parquet", val)):
        table = pq.read_table(path)
        assert table.schema.remove_metadata() == EXPECTED
        assert table.to_pylist() == rows
    lines = (tmp_path / "validation.jsonl").read_text().splitlines()
    assert [json.loads(x) for x in lines] == val


def test_round_trip_with_datasets_load_dataset(tmp_path):
    datasets = pytest.importorskip("datasets")
    train, val = split_rows(_rows(10), 0.3, seed=0)
    write_dataset(train, val, tmp_path, jsonl=True)
    loaded = datasets.load_dataset(
        "parquet", data_files={"train": str(tmp_path / "train.parquet"),
                               "validation": str(tmp_path / "validation.parquet")},
        cache_dir=str(tmp_path / "hf_cache"))
    Value, List = datasets.Value, datasets.List
    s = Value("string")
    for split in ("train", "validation"):
        f = loaded[split].features
        assert f["data_source"] == s and f["env_class"] == s
        assert f["prompt"] == List({"role": s, "content": s})
        assert f["reward_spec"] == {"method": s, "ground_truth": s, "rubric": s}
        info = f["extra_info"]
        assert info["task_metadata"]["seed"] == Value("int64")
        assert info["task_metadata"]["reasoning_tokens"] == Value("int64")
        assert info["limits"] == {"max_servers": Value("int64"), "max_tools": Value("int64")}
        assert info["max_turns"] == Value("int64") and info["index"] == Value("int64")
        assert info["assumptions"] == List(s)
        assert [info[k] for k in ("complexity", "domain", "split")] == [s, s, s]
    assert [dict(r) for r in loaded["validation"]] == val
    assert json.loads(loaded["train"][0]["reward_spec"]["ground_truth"])["tool_sequence"] == PLAN
    # SkyRL also reads JSON lines (load_dataset("json")): the same rows come back, except
    # that the JSON reader turns ISO timestamps into datetimes (parquet keeps the string).
    as_json = datasets.load_dataset("json", data_files=str(tmp_path / "validation.jsonl"),
                                    cache_dir=str(tmp_path / "hf_cache"))["train"]
    back = [dict(r) for r in as_json]
    for r in back:
        meta = r["extra_info"]["task_metadata"]
        meta["timestamp"] = meta["timestamp"].strftime("%Y-%m-%dT%H:%M:%SZ")
    assert back == val


def test_an_empty_validation_split_still_has_the_schema(tmp_path):
    write_dataset(_rows(2), [], tmp_path, jsonl=False)
    table = pq.read_table(tmp_path / "validation.parquet")
    assert table.num_rows == 0 and table.schema.remove_metadata() == EXPECTED


def test_extra_columns_keep_one_inferred_type(tmp_path):
    rows = _rows(3)
    for i, r in enumerate(rows):
        r["db_id"] = f"db{i}"  # SkyRL allows extra columns (text2sql has db_id)
        r["extra_info"]["question"] = None if i == 1 else f"q{i}"
    write_dataset(rows[:2], rows[2:], tmp_path, jsonl=False)
    for name in ("train", "validation"):
        schema = pq.read_table(tmp_path / f"{name}.parquet").schema
        assert schema.field("db_id").type == pa.string()
        assert schema.field("extra_info").type.field("question").type == pa.string()
    assert pq.read_table(tmp_path / "train.parquet").to_pylist() == rows[:2]


@pytest.mark.parametrize("mutate, words", [
    (lambda r: r["extra_info"].update({"max_turns": 1.5}),
     "train row 1: extra_info.max_turns: expected a whole number, got float 1.5"),
    (lambda r: r["extra_info"]["limits"].update({"max_tools": True}),
     "train row 1: extra_info.limits.max_tools: expected a whole number, got bool"),
    (lambda r: r["reward_spec"].update({"ground_truth": {"tool_sequence": []}}),
     "train row 1: reward_spec.ground_truth: expected a string, got dict"),
    (lambda r: r["reward_spec"].update({"judge": "gpt"}),
     "train row 1: reward_spec.judge: not a field of the SkyRL row"),
    (lambda r: r["prompt"].append({"role": "user", "content": "x", "name": "bob"}),
     "train row 1: prompt[1].name: not a field of the SkyRL row (role, content)"),
    (lambda r: r.update({"prompt": "hello"}),
     "train row 1: prompt: expected a list, got str"),
])
def test_a_row_that_does_not_fit_is_refused_before_writing(tmp_path, mutate, words):
    rows = _rows(3)
    mutate(rows[1])
    with pytest.raises(BenchsmithError) as info:
        write_dataset(rows, [], tmp_path / "out", jsonl=True)
    assert str(info.value).startswith(words)
    assert not (tmp_path / "out").exists()


def test_an_extra_column_of_mixed_types_is_refused(tmp_path):
    rows = _rows(2)
    rows[0]["db_id"], rows[1]["db_id"] = "db0", 7
    with pytest.raises(BenchsmithError, match="column db_id: its values do not share one "
                                              "type"):
        write_dataset(rows, [], tmp_path, jsonl=False)


def test_rewriting_replaces_the_files_whole(tmp_path):
    write_dataset(_rows(6), _rows(2), tmp_path, jsonl=False)
    write_dataset(_rows(3), _rows(1), tmp_path, jsonl=False)
    assert pq.read_table(tmp_path / "train.parquet").num_rows == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["train.parquet",
                                                          "validation.parquet"]
