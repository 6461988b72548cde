"""The reference reward on hand-made trajectories."""

from __future__ import annotations

import ast
import json
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import benchsmith.skyrl.reward as reward_mod
from benchsmith.skyrl.dataset import skyrl_row
from benchsmith.skyrl.reward import WEIGHTS, score

PLAN = [
    {"step": 1, "server": "database", "tool": "list_tables", "params": {}},
    {"step": 2, "server": "database", "tool": "describe_table", "params": {"table": "orders"}},
    {"step": 3, "server": "database", "tool": "query",
     "params": {"sql": "SELECT count(*) FROM orders WHERE late", "max_rows": 10}},
]
SPEC = {"method": "rule", "rubric": "",
        "ground_truth": json.dumps({"tool_sequence": PLAN,
                                    "success": {"must_call_tool": ["database.query"]}})}


def _calls(*steps):
    return [{"server": s["server"], "tool": s["tool"], "params": dict(s["params"])}
            for s in steps]


def test_the_plan_itself_scores_one():
    r = score(_calls(*PLAN), SPEC)
    assert r["reward"] == 1.0
    assert r["required_called"] and r["order_ok"] and r["params_match"] == 1.0
    assert (r["matched_steps"], r["plan_steps"], r["calls"]) == (3, 3, 3)
    assert r["missing_tools"] == []


def test_missing_the_required_tool():
    r = score(_calls(*PLAN[:2]), SPEC)
    assert not r["required_called"] and r["missing_tools"] == ["database.query"]
    assert not r["order_ok"] and r["order_score"] == pytest.approx(2 / 3)
    assert r["params_match"] == pytest.approx(2 / 3)
    # 0.3 x 0 + 0.3 x 2/3 + 0.3 x 2/3 + 0.1 x 1
    assert r["reward"] == pytest.approx(0.5)


def test_wrong_order():
    r = score(_calls(PLAN[2], PLAN[1], PLAN[0]), SPEC)
    assert r["required_called"] and not r["order_ok"]
    assert r["matched_steps"] == 1 and r["order_score"] == pytest.approx(1 / 3)
    assert r["reward"] == pytest.approx(0.3 + 0.1 + 0.1 + 0.1)


def test_wrong_params():
    calls = _calls(*PLAN)
    calls[1]["params"] = {"table": "customers"}
    calls[2]["params"] = {"sql": "SELECT 1", "max_rows": 10.0}  # 10.0 equals 10 in JSON
    r = score(calls, SPEC)
    assert r["order_ok"] and r["required_called"]
    assert r["params_match"] == pytest.approx((1 + 0 + 0.5) / 3)
    assert r["reward"] == pytest.approx(0.3 + 0.3 + 0.3 * 0.5 + 0.1)


def test_true_is_not_one():
    plan = [{"step": 1, "server": "git", "tool": "diff", "params": {"staged": True}}]
    spec = {"ground_truth": {"tool_sequence": plan, "success": {"must_call_tool": []}}}
    assert score([{"server": "git", "tool": "diff", "params": {"staged": 1}}],
                 spec)["params_match"] == 0.0
    assert score([{"server": "git", "tool": "diff", "params": {"staged": True}}],
                 spec)["reward"] == 1.0


def test_calls_between_plan_steps_keep_the_order_but_cost_efficiency():
    detour = {"server": "web_search", "tool": "search", "params": {"query": "sql"}}
    calls = _calls(PLAN[0], PLAN[1])
    calls = [calls[0], detour, calls[1], *_calls(PLAN[2]), detour]
    r = score(calls, SPEC)
    assert r["order_ok"] and r["params_match"] == 1.0
    assert r["efficiency"] == pytest.approx(3 / 5)
    assert r["reward"] == pytest.approx(0.9 + 0.1 * 3 / 5)


def test_the_alignment_prefers_the_call_with_the_right_params():
    wrong = {"server": "database", "tool": "describe_table", "params": {"table": "users"}}
    calls = [*_calls(PLAN[0]), wrong, *_calls(PLAN[1], PLAN[2])]
    r = score(calls, SPEC)
    assert r["matched_steps"] == 3 and r["params_match"] == 1.0


def test_spraying_every_tool_does_not_earn_full_reward():
    calls = _calls(*PLAN) * 10
    r = score(calls, SPEC)
    assert r["order_ok"] and r["reward"] == pytest.approx(0.9 + 0.1 * 0.1)


def test_no_calls_and_malformed_calls():
    assert score([], SPEC)["reward"] == 0.0
    r = score(["not a call", {"tool": None}], SPEC)
    assert (r["reward"], r["matched_steps"], r["calls"]) == (0.0, 0, 2)


def test_server_less_calls_and_mcp_arguments():
    calls = [{"tool": s["tool"], "arguments": json.dumps(s["params"])} for s in PLAN]
    r = score(calls, SPEC)
    assert r["reward"] == 1.0
    other_server = [{"server": "git", "tool": s["tool"], "params": s["params"]} for s in PLAN]
    assert score(other_server, SPEC)["matched_steps"] == 0


def test_required_defaults_to_the_plan_tools():
    spec = {"ground_truth": json.dumps({"tool_sequence": PLAN})}
    r = score(_calls(PLAN[0]), spec)
    assert r["missing_tools"] == ["database.describe_table", "database.query"]
    assert r["required_fraction"] == pytest.approx(1 / 3)


def test_reward_spec_of_a_written_row():
    sample = {"prompt": [{"role": "user", "content": "How many orders were late?"}],
              "tool_sequence": PLAN, "success": {"must_call_tool": ["database.query"]},
              "rubric": "r"}
    row = skyrl_row(sample, data_source="d", env_class="MCPToolEnv", index=0, split="train",
                    meta={})
    assert score(_calls(*PLAN), row["reward_spec"])["reward"] == 1.0


@pytest.mark.parametrize("spec, words", [
    ({"ground_truth": "72"}, "no tool_sequence"),
    ({"ground_truth": "{oops"}, "not valid JSON"),
    ({"ground_truth": json.dumps({"tool_sequence": []})}, "no tool_sequence"),
    ({}, "no tool_sequence"),
])
def test_a_spec_without_a_plan_is_an_error(spec, words):
    with pytest.raises(ValueError, match=words):
        score([], spec)


TOOLS = [("database", "list_tables"), ("database", "describe_table"), ("database", "query"),
         ("git", "status")]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(TOOLS), st.sampled_from([{}, {"table": "orders"},
                                                                      {"sql": "x"}])),
                max_size=12))
def test_reward_is_always_in_unit_range(raw):
    calls = [{"server": s, "tool": t, "params": p} for (s, t), p in raw]
    r = score(calls, SPEC)
    assert 0.0 <= r["reward"] <= 1.0
    # the query step's params are never drawn, so the full reward is out of reach
    assert r["params_match"] < 1.0 and r["reward"] < 1.0
    assert sum(WEIGHTS.values()) == pytest.approx(1.0)


def test_the_reward_module_needs_only_the_standard_library():
    tree = ast.parse(Path(reward_mod.__file__).read_text(encoding="utf-8"))
    modules = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import)
               for a in n.names}
    modules |= {n.module.split(".")[0] for n in ast.walk(tree)
                if isinstance(n, ast.ImportFrom) and n.module}
    assert modules and modules <= set(sys.stdlib_module_names) | {"__future__"}
