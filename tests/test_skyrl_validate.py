"""`skyrl validate` and validate_file: good files pass, each kind of broken file is named."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from benchsmith.cli.app import app
from benchsmith.skyrl.dataset import skyrl_row, validate_file, write_dataset
from benchsmith.skyrl.inventory import example_inventory_path, load_inventory

INV = load_inventory(example_inventory_path())
PLAN = [
    {"step": 1, "server": "filesystem", "tool": "search_files",
     "params": {"path": "src", "pattern": "*.py"}},
    {"step": 2, "server": "filesystem", "tool": "read_file",
     "params": {"path": "src/app.py", "head": 40}},
]


def _rows(n: int = 4) -> list[dict]:
    sample = {"prompt": [{"role": "user", "content": "Where is the app's entry point?"}],
              "tool_sequence": PLAN, "success": {"must_call_tool": ["filesystem.read_file"]},
              "limits": {"max_servers": 1, "max_tools": 2}, "complexity": "simple",
              "max_turns": 6, "domain": "software", "assumptions": [], "rubric": "Reads it."}
    return [skyrl_row(sample, data_source="benchsmith/skyrl", env_class="MCPToolEnv",
                      index=i, split="train", meta={"model": "gpt-5-mini"}) for i in range(n)]


def _jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture
def good(tmp_path) -> Path:
    write_dataset(_rows(4), _rows(1), tmp_path, jsonl=True)
    return tmp_path


def test_written_files_are_valid(good):
    for name in ("train.parquet", "validation.parquet", "train.jsonl", "validation.jsonl"):
        assert validate_file(good / name) == []
        assert validate_file(good / name, INV) == []


def _broken(tmp_path, mutate, inv=None) -> list[str]:
    rows = _rows(3)
    mutate(rows[1])
    problems = validate_file(_jsonl(tmp_path / "d.jsonl", rows), inv)
    assert problems and all(p.startswith(f"{tmp_path / 'd.jsonl'}: line 2: ") for p in problems)
    return [p.split(": line 2: ", 1)[1] for p in problems]


def _truth(row, **changes):
    truth = json.loads(row["reward_spec"]["ground_truth"])
    truth.update(changes)
    row["reward_spec"]["ground_truth"] = json.dumps(truth)


@pytest.mark.parametrize("mutate, expected", [
    (lambda r: r.pop("env_class"), ["missing column(s) env_class"]),
    (lambda r: r.pop("reward_spec") and r.pop("prompt"), ["missing column(s) prompt, "
                                                          "reward_spec"]),
    (lambda r: r.update(data_source=""), ["data_source must be a non-empty string"]),
    (lambda r: r["prompt"].append({"role": "critic", "content": "x"}),
     ["prompt[1].role is 'critic'; expected one of system, user, assistant, tool"]),
    (lambda r: r.update(prompt=[{"role": "system", "content": 3}]),
     ["prompt[0].content must be a string", "prompt has no user message"]),
    (lambda r: r.update(prompt=[]),
     ["prompt must be a non-empty list of {role, content} messages"]),
    (lambda r: r["reward_spec"].update(method="judge"),
     ["reward_spec.method is 'judge'; expected rule or reward_model"]),
    (lambda r: r["reward_spec"].update(ground_truth="72"),
     ["reward_spec.ground_truth has no tool_sequence (a non-empty list of {step, server, tool, "
      "params})"]),
    (lambda r: r["reward_spec"].update(ground_truth="{'tool_sequence': []}"),
     ["reward_spec.ground_truth is not valid JSON: Expecting property name enclosed in "
      "double quotes"]),
    (lambda r: _truth(r, tool_sequence=[{"server": "filesystem", "tool": "read_file",
                                         "params": "src/app.py"}]),
     ["reward_spec.ground_truth tool_sequence[0] must be {step, server, tool, params} with "
      "params a mapping"]),
    (lambda r: _truth(r, success={}),
     ["reward_spec.ground_truth needs success.must_call_tool: a list of server.tool names"]),
    (lambda r: r["extra_info"].update(max_turns="6", split=1),
     ["extra_info.max_turns must be a whole number", "extra_info.split must be a string"]),
    (lambda r: r["extra_info"]["limits"].update(max_tools=2.5),
     ["extra_info.limits.max_tools must be a whole number"]),
    (lambda r: r.update(extra_info=["train"]),
     ["extra_info must be a mapping", "column extra_info is a list here but a dict in line 1; "
      "parquet needs one type per column"]),
])
def test_each_broken_row_is_named(tmp_path, mutate, expected):
    assert _broken(tmp_path, mutate) == expected


def test_a_ground_truth_dict_instead_of_a_json_string(tmp_path):
    def mutate(r):
        r["reward_spec"]["ground_truth"] = json.loads(r["reward_spec"]["ground_truth"])

    assert _broken(tmp_path, mutate) == [
        "reward_spec.ground_truth must be a JSON string (SkyRL envs json.loads it), got dict"]


def test_plans_checked_against_the_inventory(tmp_path):
    def mutate(r):
        _truth(r, tool_sequence=[
            {"step": 1, "server": "filesystem", "tool": "read_file", "params": {"head": "40"}},
            {"step": 2, "server": "git", "tool": "query", "params": {}},
            {"step": 3, "server": "git", "tool": "status", "params": {"repo_path": "."}},
        ])

    assert _broken(tmp_path, mutate, INV) == [
        "reward_spec.ground_truth: step 1 (filesystem.read_file): missing required parameter "
        "'path'",
        "reward_spec.ground_truth: step 1 (filesystem.read_file): parameter 'head': expected "
        "integer, got string \"40\"",
        "reward_spec.ground_truth: step 2: tool 'query' is not on server 'git'; it is on "
        "database",
        "reward_spec.ground_truth: the plan uses 2 distinct servers (filesystem, git) but "
        "limits.max_servers is 1",
    ]
    # Without an inventory only the shape is checked, and the shape is right.
    assert validate_file(tmp_path / "d.jsonl") == []


def test_files_that_cannot_be_read(tmp_path, good):
    truncated = tmp_path / "cut.parquet"
    truncated.write_bytes((good / "train.parquet").read_bytes()[:200])
    (problem,) = validate_file(truncated)
    assert problem.startswith(f"{truncated}: cannot read parquet: ")
    assert validate_file(tmp_path / "none.parquet") == [f"{tmp_path / 'none.parquet'}: file "
                                                        "not found"]
    csv = tmp_path / "d.csv"
    csv.write_text("a,b\n")
    assert validate_file(csv) == [f"{csv}: not a SkyRL dataset file: expected .parquet, "
                                  ".jsonl or .json"]
    empty = _jsonl(tmp_path / "empty.jsonl", [])
    assert validate_file(empty) == [f"{empty}: no rows"]
    bad_line = tmp_path / "bad.jsonl"
    bad_line.write_text(json.dumps(_rows(1)[0]) + "\n{oops\n")
    assert validate_file(bad_line) == [f"{bad_line}: line 2: not valid JSON: Expecting "
                                       "property name enclosed in double quotes"]


def test_a_json_array_file(tmp_path):
    path = tmp_path / "rows.json"
    path.write_text(json.dumps(_rows(2)))
    assert validate_file(path, INV) == []
    rows = _rows(2)
    rows[1]["reward_spec"]["method"] = None
    path.write_text(json.dumps(rows))
    assert validate_file(path) == [f"{path}: row 1: reward_spec.method is None; expected rule "
                                   "or reward_model"]


def test_a_broken_parquet_row_names_its_row(tmp_path):
    rows = _rows(3)
    rows[2]["prompt"][0]["role"] = "assistant"
    rows[2]["reward_spec"]["ground_truth"] = "[]"
    write_dataset(rows, [], tmp_path, jsonl=False)
    assert validate_file(tmp_path / "train.parquet") == [
        f"{tmp_path / 'train.parquet'}: row 2: prompt has no user message",
        f"{tmp_path / 'train.parquet'}: row 2: reward_spec.ground_truth has no tool_sequence "
        "(a non-empty list of {step, server, tool, params})"]


def test_many_problems_are_cut_short(tmp_path):
    rows = _rows(80)
    for r in rows:
        r["reward_spec"]["method"] = "x"
    problems = validate_file(_jsonl(tmp_path / "d.jsonl", rows))
    assert len(problems) == 51 and problems[-1].endswith("... and 30 more")


runner = CliRunner()


def test_cli_ok_and_json(good):
    res = runner.invoke(app, ["skyrl", "validate", str(good / "train.parquet"),
                              "--inventory", str(example_inventory_path())])
    assert res.exit_code == 0, res.output
    assert res.output.strip() == (f"{good / 'train.parquet'}: 4 row(s) against "
                                  f"{example_inventory_path()}: ok")
    res = runner.invoke(app, ["skyrl", "validate", str(good / "validation.jsonl"), "--json"])
    assert res.exit_code == 0
    assert json.loads(res.output) == {"file": str(good / "validation.jsonl"), "rows": 1,
                                      "problems": []}


def test_cli_problems_exit_1(tmp_path):
    rows = _rows(2)
    rows[0]["env_class"] = 5
    path = _jsonl(tmp_path / "d.jsonl", rows)
    res = runner.invoke(app, ["skyrl", "validate", str(path)])
    assert res.exit_code == 1
    assert res.output.splitlines() == [
        f"problem: {path}: line 1: env_class must be a string (or null for the config's "
        "env_class)",
        f"problem: {path}: line 2: column env_class is a str here but a int in line 1; "
        "parquet needs one type per column",
        f"{path}: 2 row(s): 2 problem(s)"]


def test_cli_bad_inventory_is_one_line(tmp_path, good):
    inv = tmp_path / "tools.yaml"
    inv.write_text("servers: []\n")
    res = runner.invoke(app, ["skyrl", "validate", str(good / "train.parquet"),
                              "--inventory", str(inv)])
    assert res.exit_code == 1
    assert res.output.strip() == (f"error: {inv}: servers: must be a non-empty list of "
                                  "{name, description, tools}")
