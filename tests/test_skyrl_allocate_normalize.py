"""Exact largest-remainder allocation with a seeded order, and the normalization rules of
synthesized samples."""

from __future__ import annotations

import copy
import random
from collections import Counter
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from benchsmith.errors import ConfigError
from benchsmith.skyrl.allocate import allocate, counts, parse_distribution
from benchsmith.skyrl.normalize import normalize_sample

COMPLEXITIES = "simple:0.3,moderate:0.5,complex:0.2"


def test_parse_distribution_normalises_in_the_order_given():
    w = parse_distribution(COMPLEXITIES, "--complexities")
    assert list(w) == ["simple", "moderate", "complex"]
    assert w == pytest.approx({"simple": 0.3, "moderate": 0.5, "complex": 0.2})
    assert parse_distribution(" a , b:3 ", "--domains") == {"a": 0.25, "b": 0.75}
    assert parse_distribution("x:2,y:2", "--domains") == {"x": 0.5, "y": 0.5}


@pytest.mark.parametrize("text, words", [
    ("simple:0.3,moderate:lots", "moderate:lots is not name:number"),
    ("simple:-0.1,complex:1", "simple: weight -0.1 must be a number >= 0"),
    ("simple:0,complex:0", "the weights sum to 0"),
    ("simple:inf", "must be a number >= 0"),
    ("simple:nan", "must be a number >= 0"),
    (":0.5,complex:0.5", "empty name"),
    ("simple,,complex", "empty name"),
    ("simple:1,simple:2", "'simple' is given twice"),
])
def test_bad_distributions_name_the_flag(text, words):
    with pytest.raises(ConfigError) as info:
        parse_distribution(text, "--complexities")
    assert str(info.value).startswith("command line: --complexities: ")
    assert words in str(info.value)


def test_allocation_is_exact():
    w = parse_distribution(COMPLEXITIES, "--complexities")
    assert counts(200, w) == {"simple": 60, "moderate": 100, "complex": 40}
    assert Counter(allocate(200, w, seed=0)) == {"simple": 60, "moderate": 100, "complex": 40}
    thirds = {"a": 1 / 3, "b": 1 / 3, "c": 1 / 3}
    assert counts(7, thirds) == {"a": 3, "b": 2, "c": 2}  # the tie goes to the first named
    assert counts(8, thirds) == {"a": 3, "b": 3, "c": 2}
    assert counts(5, {"x": 0.45, "y": 0.45, "z": 0.1}) == {"x": 2, "y": 2, "z": 1}
    assert counts(3, {"x": 0.1, "y": 0.9}) == {"x": 0, "y": 3}
    # Unnormalised weights give the same counts; 0.57 x 100 is 57, not 56.
    assert counts(200, {"simple": 3, "moderate": 5, "complex": 2}) == counts(200, w)
    assert counts(100, {"p": 0.57, "q": 0.43}) == {"p": 57, "q": 43}
    assert allocate(0, w, seed=0) == []


def test_the_largest_remainder_wins_regardless_of_order():
    assert counts(10, {"a": 0.14, "b": 0.26, "c": 0.6}) == {"a": 1, "b": 3, "c": 6}
    assert counts(10, {"c": 0.6, "b": 0.26, "a": 0.14}) == {"c": 6, "b": 3, "a": 1}


@settings(max_examples=200, deadline=None)
@given(n=st.integers(0, 500), raw=st.lists(st.integers(0, 1000), min_size=1, max_size=6))
def test_counts_sum_to_n_and_stay_within_one_of_the_quota(n, raw):
    if sum(raw) == 0:
        raw[0] = 1
    weights = {f"k{i}": float(w) for i, w in enumerate(raw)}
    c = counts(n, weights)
    assert sum(c.values()) == n
    for k, w in weights.items():
        quota = Fraction(n) * Fraction(int(w), sum(raw))
        assert quota - 1 < c[k] < quota + 1


def test_the_seed_fixes_the_order_and_nothing_else_does():
    w = parse_distribution(COMPLEXITIES, "--complexities")
    first = allocate(200, w, seed=7)
    random.seed(123)
    random.random()  # global random state must not matter
    assert allocate(200, w, seed=7) == first
    other = allocate(200, w, seed=8)
    assert other != first and Counter(other) == Counter(first)
    assert first != sorted(first, key=list(w).index)  # shuffled, not grouped


def test_bad_n_or_weights_for_counts():
    with pytest.raises(ConfigError, match="--n-samples"):
        counts(-1, {"a": 1.0})
    with pytest.raises(ConfigError, match="sum to 0"):
        counts(5, {"a": 0.0})
    with pytest.raises(ConfigError, match="at least one name"):
        counts(5, {})


def _sample(**over):
    s = {
        "user_prompt": "  Find the failing test and fix it.\n",
        "system_prompt": "   ",
        "tool_sequence": [
            {"step": 2, "server": "git", "tool": "diff", "params": {"repo_path": "."}},
            {"step": 1, "server": "git", "tool": "status", "params": {"repo_path": "."}},
            {"step": 3, "server": "git", "tool": "diff", "params": {"repo_path": "."}},
            {"step": 4, "server": "git", "tool": "diff", "params": {"repo_path": ".",
                                                                  "staged": True}},
            {"step": 5, "server": "git", "tool": "status", "params": {"repo_path": "."}},
        ],
        "success": {"must_call_tool": [" git.diff ", "git.diff", "git.status"]},
        "domain": " software\t",
        "assumptions": ["  a repo at . ", "", "   "],
        "rubric": "\nRuns the diff first.\n",
    }
    s.update(over)
    return s


def _norm(sample, **kw):
    return normalize_sample(sample, default_max_turns=8,
                            default_limits={"max_servers": 2, "max_tools": 5}, **kw)


def test_prompt_roles_and_whitespace():
    out = _norm(_sample())
    assert out["prompt"] == [{"role": "user", "content": "Find the failing test and fix it."}]
    assert "user_prompt" not in out and "system_prompt" not in out
    out = _norm(_sample(system_prompt=" You are careful. "))
    assert out["prompt"][0] == {"role": "system", "content": "You are careful."}
    assert (out["domain"], out["rubric"]) == ("software", "Runs the diff first.")
    assert out["assumptions"] == ["a repo at ."]


@pytest.mark.parametrize("role", ["assistant", "tool", "developer", None])
def test_only_system_and_user_roles(role):
    prompt = [{"role": "user", "content": "hi"}, {"role": role, "content": "x"}]
    with pytest.raises(ValueError, match=rf"prompt\[1\]\.role is {role!r}; only system and "
                                         "user are allowed"):
        _norm(_sample(prompt=prompt))


def test_a_prompt_needs_a_user_message():
    with pytest.raises(ValueError, match="needs a user message"):
        _norm(_sample(user_prompt="  "))
    with pytest.raises(ValueError, match="needs a user message"):
        _norm(_sample(prompt=[{"role": "system", "content": "s"}]))


def test_steps_ordered_deduplicated_and_renumbered():
    out = _norm(_sample())
    assert out["tool_sequence"] == [
        {"step": 1, "server": "git", "tool": "status", "params": {"repo_path": "."}},
        {"step": 2, "server": "git", "tool": "diff", "params": {"repo_path": "."}},
        # step 3 repeated step 2 exactly: dropped; other params are another call
        {"step": 3, "server": "git", "tool": "diff", "params": {"repo_path": ".",
                                                              "staged": True}},
        # the same call as step 1, but not consecutive: kept
        {"step": 4, "server": "git", "tool": "status", "params": {"repo_path": "."}},
    ]
    assert out["success"]["must_call_tool"] == ["git.diff", "git.status"]


def test_equal_step_numbers_keep_their_order():
    steps = [{"step": 1, "server": "a", "tool": t, "params": {}} for t in ("x", "y", "x")]
    assert [s["tool"] for s in _norm(_sample(tool_sequence=steps))["tool_sequence"]] == [
        "x", "y", "x"]


def test_defaults_fill_only_what_is_missing():
    out = _norm(_sample())
    assert out["limits"] == {"max_servers": 2, "max_tools": 5}
    assert (out["complexity"], out["max_turns"]) == ("moderate", 8)
    out = _norm(_sample(limits={"max_servers": 1, "max_tools": None}, complexity="complex",
                        max_turns=3))
    assert out["limits"] == {"max_servers": 1, "max_tools": 5}
    assert (out["complexity"], out["max_turns"]) == ("complex", 3)
    assert _norm(_sample(), default_complexity="simple")["complexity"] == "simple"


def test_normalization_leaves_its_input_alone_and_is_idempotent():
    sample = _sample()
    before = copy.deepcopy(sample)
    once = _norm(sample)
    assert sample == before
    assert _norm(once) == once
