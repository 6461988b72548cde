"""Filters (each reason counted once, by the first that applies), the three pair types built
from real SWE-bench Lite problem statements and gold patches, a failed patch never a target,
bounded prompts, and the grouped split."""

from __future__ import annotations

from collections import Counter

import pytest
from finetune_support import ASSERT_STDOUT, attempt, changed_line, lite_rows, scenario

from benchsmith.finetune.failures import error_context
from benchsmith.finetune.filters import REASONS, FilterOptions, apply_filters, reject_reason
from benchsmith.finetune.pairs import make_pairs
from benchsmith.finetune.prompts import SYSTEM_PROMPT, PromptBounds, user_prompt
from benchsmith.finetune.split import instance_fraction, split_instances
from benchsmith.finetune.trajectories import Entry, entries_from_dicts


def _entries(dicts: list[dict]) -> tuple[Entry, ...]:
    return entries_from_dicts(dicts, "test").entries


def test_filter_reasons_are_counted_exactly_by_the_first_that_applies() -> None:
    dicts, rows = scenario()
    kept = apply_filters(_entries(dicts), FilterOptions())
    assert kept.reasons == {"unknown_failure_category": 2, "empty_patch": 1,
                            "not_a_unified_diff": 1, "patch_too_long": 1,
                            "problem_statement_too_short": 1}
    assert list(kept.reasons) == list(REASONS)
    assert len(kept.kept) == len(dicts) - 6 == 11
    dropped = {(e["instance_id"], e["attempt"]) for e in dicts} - {
        (e.instance_id, e.attempt) for e in kept.kept}
    iid = {k: r["instance_id"] for k, r in rows.items()}
    assert dropped == {(iid["D"], 2), (iid["E"], 1), (iid["F"], 1), (iid["F"], 3),
                       (iid["G"], 1), (iid["H"], 1)}
    # categories are counted over the kept failed attempts only
    assert kept.categories == {"assertion_failure": 2, "exception:TypeError": 1,
                               "syntax_error": 1, "timeout": 1}


def test_each_filter_boundary() -> None:
    (row,) = lite_rows(1)
    opts = FilterOptions(min_problem_words=20, max_patch_chars=len(row["patch"]))

    def reason(**change: object) -> str | None:
        return reject_reason(_entries([{**attempt(row, 1, True), **change}])[0], opts)

    words = row["problem_statement"].split()
    assert reason() is None
    assert reason(problem_statement=" ".join(words[:20])) is None
    assert reason(problem_statement=" ".join(words[:19])) == "problem_statement_too_short"
    assert reason(patch=row["patch"] + "x") == "patch_too_long"
    assert reason(patch=row["patch"][:-1] + "x") is None  # exactly at the limit
    assert reason(patch="\n" + row["patch"][:-1]) == "not_a_unified_diff"  # not its start
    assert reason(patch="--- a/x.py\n+++ b/x.py\n") is None  # starts with ---: a diff
    assert reason(patch="Index: x.py\n--- a/x.py\n") == "not_a_unified_diff"
    assert reason(patch=" \n\t") == "empty_patch"
    # a resolved attempt is never dropped for its category; a failed one is for `unknown`
    assert reason(failure_category="unknown") is None
    failed = {"resolved": False, "patch": row["patch"].replace("= 1", "= 2")}
    assert reason(**failed, failure_category="unknown") == "unknown_failure_category"
    assert reason(**failed, failure_category="my_own_category") is None


def test_every_pair_type_from_the_scenario() -> None:
    dicts, rows = scenario()
    ps = make_pairs(apply_filters(_entries(dicts), FilterOptions()).kept)
    iid = {r["instance_id"]: k for k, r in rows.items()}
    got = [(iid[p.instance_id], p.pair_type, p.attempt, p.target_attempt, p.category)
           for p in ps.pairs]
    assert got == [
        ("A", "positive", 2, 2, None),
        ("A", "reflection", 1, 2, "assertion_failure"),
        ("A", "preference", 1, 2, "assertion_failure"),
        ("B", "positive", 1, 1, None),
        ("C", "positive", 1, 1, None),
        ("C", "preference", 2, 1, "exception:TypeError"),
        ("D", "positive", 3, 3, None),
        ("D", "reflection", 1, 3, "syntax_error"),
        ("D", "preference", 1, 3, "syntax_error"),
        ("E", "positive", 2, 2, None),
    ]
    assert ps.counts == {"positive": 5, "reflection": 2, "preference": 3}
    assert (ps.duplicate_positives, ps.same_patch) == (1, 0)
    assert all(p.system == SYSTEM_PROMPT for p in ps.pairs)


def test_a_failed_patch_is_never_a_supervised_target() -> None:
    dicts, _ = scenario()
    ps = make_pairs(_entries(dicts))  # unfiltered too: nothing but resolved patches as targets
    failed = {d["patch"] for d in dicts if not d["resolved"]}
    resolved = {d["patch"] for d in dicts if d["resolved"]}
    assert ps.pairs and not failed & resolved
    for p in ps.pairs:
        assert p.target in resolved and p.target not in failed
        assert (p.rejected is not None and p.rejected in failed) == (
            p.pair_type == "preference")


def test_reflection_prompt_holds_the_failure_and_targets_the_first_later_fix() -> None:
    (row,) = lite_rows(1, start=20)
    wrong1, wrong3 = changed_line(row["patch"]), row["patch"].replace("\n+", "\n+ ", 1)
    dicts = [attempt(row, 1, False, wrong1, "assertion_failure", ASSERT_STDOUT),
             attempt(row, 2, True),
             attempt(row, 3, False, wrong3, "syntax_error", "E  SyntaxError: bad"),
             {**attempt(row, 4, True), "patch": row["patch"] + "\n"}]
    ps = make_pairs(_entries(dicts))
    refl = [p for p in ps.pairs if p.pair_type == "reflection"]
    assert [(p.attempt, p.target_attempt) for p in refl] == [(1, 2), (3, 4)]
    first = refl[0]
    assert f"<failed_patch>\n{wrong1.strip()}\n</failed_patch>" in first.user
    assert "Failure category: assertion_failure" in first.user
    ctx = error_context(ASSERT_STDOUT).strip()
    assert ctx and f"<error>\n{ctx}\n</error>" in first.user
    assert row["problem_statement"].replace("\r\n", "\n").strip()[:200] in first.user
    # preference pairs all take the first resolved attempt as chosen, with its prompt
    pref = [p for p in ps.pairs if p.pair_type == "preference"]
    assert [(p.attempt, p.target_attempt, p.rejected) for p in pref] == [
        (1, 2, wrong1), (3, 2, wrong3)]
    positive2 = next(p for p in ps.pairs if p.pair_type == "positive" and p.attempt == 2)
    assert all(p.user == positive2.user and p.target == row["patch"] for p in pref)


def test_no_reflection_drops_only_reflection_pairs() -> None:
    dicts, _ = scenario()
    kept = apply_filters(_entries(dicts), FilterOptions()).kept
    with_, without = make_pairs(kept), make_pairs(kept, reflection=False)
    assert without.counts == {**with_.counts, "reflection": 0}
    assert [p for p in with_.pairs if p.pair_type != "reflection"] == list(without.pairs)


def test_a_failed_patch_equal_to_the_fix_makes_no_pair() -> None:
    (row,) = lite_rows(1, start=30)
    flaky = attempt(row, 1, False, row["patch"] + "\n\n", "timeout", "Timeout")
    ps = make_pairs(_entries([flaky, attempt(row, 2, True)]))
    assert ps.counts == {"positive": 1, "reflection": 0, "preference": 0}
    assert ps.same_patch == 2  # the reflection and the preference pair it would have made


def test_an_instance_never_resolved_makes_no_pair() -> None:
    (row,) = lite_rows(1, start=40)
    ps = make_pairs(_entries([attempt(row, 1, False, changed_line(row["patch"]), "timeout")]))
    assert ps.pairs == () and ps.counts == {"positive": 0, "reflection": 0, "preference": 0}


def test_prompt_bounds_and_file_contents() -> None:
    (row,) = lite_rows(1, start=50)
    files = [f"pkg/mod{i}.py" for i in range(10)]
    raw = attempt(row, 1, True, localised_files=files,
                  file_contents={"pkg/mod1.py": "x = 1\n" * 100, "extra/only_text.py": "y = 2"})
    (e,) = _entries([raw])
    b = PromptBounds(max_issue_chars=50, max_files=3, max_file_chars=12)
    text = user_prompt(e, b)
    issue = row["problem_statement"].replace("\r\n", "\n").strip()
    assert f"<issue>\n{issue[:50]}\n[... {len(issue) - 50} more characters cut]\n</issue>" in text
    assert "- pkg/mod0.py" in text and "- pkg/mod2.py" in text and "pkg/mod3.py" not in text
    assert '<file path="pkg/mod1.py">\nx = 1\nx = 1\n\n[... 588 more characters cut]\n</file>' \
        in text
    assert "extra/only_text.py" not in text  # the 8 localised files come first
    wide = user_prompt(e, PromptBounds(max_files=12))
    assert '<file path="extra/only_text.py">\ny = 2\n</file>' in wide
    assert text.startswith(f"Resolve the following issue in the repository {row['repo']}.")
    # reflection bounds: the failed patch and the error context
    (f,) = _entries([attempt(row, 1, False, changed_line(row["patch"]), "assertion_failure",
                             ASSERT_STDOUT)])
    small = user_prompt(e, PromptBounds(max_failed_patch_chars=40, max_error_chars=10), f)
    assert f"<failed_patch>\n{f.patch.strip()[:40]}\n[... " in small
    ctx = error_context(ASSERT_STDOUT).strip()
    assert len(ctx) > 10
    assert f"<error>\n{ctx[:10]}\n[... {len(ctx) - 10} more characters cut]\n</error>" in small
    # no test output: no error section, the rest stays
    no_output = _entries([{**attempt(row, 1, False, f.patch, "timeout"), "test_stdout": None}])
    plain = user_prompt(e, PromptBounds(), no_output[0])
    assert "<error>" not in plain and "Failure category: timeout" in plain


def test_split_is_grouped_deterministic_and_seeded() -> None:
    ids = [r["instance_id"] for r in lite_rows(300)]
    s1 = split_instances(ids, 0.2, seed=42)
    assert not s1.train & s1.val and s1.train | s1.val == set(ids)
    assert 30 <= len(s1.val) <= 90  # about a fifth of 300
    assert split_instances(list(reversed(ids)), 0.2, seed=42) == s1
    s2 = split_instances(ids, 0.2, seed=7)
    assert s2.val != s1.val and len(s2.val) > 0
    # an instance's side depends only on the seed and its id
    assert split_instances(ids[:100], 0.2, seed=42).val == s1.val & set(ids[:100])
    assert all((instance_fraction(42, i) < 0.2) == (i in s1.val) for i in ids)
    assert split_instances(ids, 0.0, seed=42).val == frozenset()


def test_small_datasets_get_a_val_and_a_train_instance() -> None:
    ids = [r["instance_id"] for r in lite_rows(2)]
    for seed in range(20):
        s = split_instances(ids, 0.1, seed)
        assert len(s.val) == 1 and len(s.train) == 1
        assert s.val == {min(ids, key=lambda i: instance_fraction(seed, i))}
        s = split_instances(ids, 0.999, seed)
        assert len(s.val) == 1 and len(s.train) == 1
    one = split_instances(ids[:1], 0.5, 0)
    assert len(one.train | one.val) == 1
    with pytest.raises(ValueError):
        split_instances(ids, 1.0, 0)


def test_pairs_of_one_instance_all_land_on_one_side() -> None:
    dicts, _ = scenario()
    ps = make_pairs(_entries(dicts))
    s = split_instances({p.instance_id for p in ps.pairs}, 0.5, seed=3)
    sides = Counter((p.instance_id, p.instance_id in s.val) for p in ps.pairs)
    assert len({iid for iid, _ in sides}) == len(sides)
