"""Trajectory files and adapter dicts are read and checked field by field: the schema's
required and optional fields, extras kept in metadata, one-line errors naming the file, the
line and the field, --skip-bad-lines counting, and categories filled by the categorizer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from finetune_support import ASSERT_STDOUT, attempt, changed_line, lite_rows, write_jsonl

from benchsmith.errors import ConfigError
from benchsmith.finetune.failures import categorize
from benchsmith.finetune.trajectories import (
    entries_from_dicts,
    entry_from_dict,
    load_trajectories,
)


def test_files_load_in_name_order_with_gz_and_extras_in_metadata(tmp_path: Path) -> None:
    a, b = lite_rows(2)
    write_jsonl(tmp_path / "2-late.jsonl.gz", [attempt(b, 1, True)])
    write_jsonl(tmp_path / "1-early.jsonl", [
        attempt(a, 1, False, changed_line(a["patch"]), "assertion_failure", ASSERT_STDOUT,
                model="gpt-4o", trajectory_steps=12),
        attempt(a, 2, True, file_contents={"astropy/modeling/separable.py": "def f(): ..."}),
    ])
    (tmp_path / "notes.txt").write_text("not a trajectory file")
    (tmp_path / "sub").mkdir()
    write_jsonl(tmp_path / "sub" / "ignored.jsonl", [attempt(b, 9, True)])
    loaded = load_trajectories(tmp_path)
    assert loaded.files == (str(tmp_path / "1-early.jsonl"), str(tmp_path / "2-late.jsonl.gz"))
    assert [(e.instance_id, e.attempt, e.resolved) for e in loaded.entries] == [
        (a["instance_id"], 1, False), (a["instance_id"], 2, True), (b["instance_id"], 1, True)]
    failed, fixed, other = loaded.entries
    assert failed.metadata == {"model": "gpt-4o", "trajectory_steps": 12}
    assert failed.failure_category == "assertion_failure" and not failed.category_inferred
    assert failed.test_stdout == ASSERT_STDOUT and failed.repo == "astropy/astropy"
    assert failed.localised_files == ("astropy/modeling/separable.py",)
    assert fixed.file_contents == (("astropy/modeling/separable.py", "def f(): ..."),)
    assert fixed.patch == a["patch"] and fixed.problem_statement == a["problem_statement"]
    assert (failed.source, other.source) == ("1-early.jsonl", "2-late.jsonl.gz")
    assert failed.where == f"{tmp_path / '1-early.jsonl'}: line 1"


def test_optional_fields_take_their_defaults(tmp_path: Path) -> None:
    (row,) = lite_rows(1)
    minimal = {"instance_id": row["instance_id"], "problem_statement": row["problem_statement"],
               "patch": None, "resolved": True, "attempt": 0}
    e = entry_from_dict(minimal, "t.jsonl: line 1", "t.jsonl")
    assert (e.repo, e.patch, e.failure_category, e.test_stdout, e.localised_files,
            e.file_contents, e.source, e.metadata) == ("", "", None, None, (), (), "t.jsonl", {})


def test_a_failed_attempt_without_category_is_categorized_from_its_test_output() -> None:
    (row,) = lite_rows(1)
    bad_patch = changed_line(row["patch"])
    for missing in ({"failure_category": None}, {"failure_category": "  "}, {}):
        raw = attempt(row, 1, False, bad_patch, stdout=ASSERT_STDOUT)
        raw.pop("failure_category")
        e = entry_from_dict({**raw, **missing}, "w")
        assert e.failure_category == categorize(ASSERT_STDOUT, bad_patch)
        assert e.category_inferred
    # a given category is kept; a resolved attempt is never categorized
    assert entry_from_dict(attempt(row, 1, False, bad_patch, "timeout", ASSERT_STDOUT),
                           "w").failure_category == "timeout"
    resolved = entry_from_dict(attempt(row, 2, True, stdout=ASSERT_STDOUT), "w")
    assert (resolved.failure_category, resolved.category_inferred) == (None, False)


def test_the_categorizer_sees_the_test_output_and_the_patch() -> None:
    (row,) = lite_rows(1)
    seen = []
    raw = attempt(row, 1, False, "not a diff", stdout="some output")
    e = entry_from_dict(raw, "w", categorizer=lambda out, patch: seen.append((out, patch)) or "x")
    assert seen == [("some output", "not a diff")] and e.failure_category == "x"


GOOD_LINE = 2  # the bad line follows one good line in each case below


@pytest.mark.parametrize("change,field,problem", [
    ({"instance_id": None}, "instance_id", "must be a non-empty string, got None"),
    ({"instance_id": ""}, "instance_id", "must be a non-empty string"),
    ({"resolved": "yes"}, "resolved", "must be true or false, got 'yes'"),
    ({"resolved": 1}, "resolved", "must be true or false, got 1"),
    ({"attempt": "2"}, "attempt", "must be an integer >= 0"),
    ({"attempt": -1}, "attempt", "must be an integer >= 0"),
    ({"attempt": True}, "attempt", "must be an integer >= 0"),
    ({"patch": ["diff"]}, "patch", "must be a unified diff string (or null), got an array"),
    ({"problem_statement": None}, "problem_statement", "must be a string, got null"),
    ({"repo": 3}, "repo", "must be a string such as django/django, got a number"),
    ({"failure_category": 5}, "failure_category", "must be a string or null, got a number"),
    ({"test_stdout": ["a"]}, "test_stdout", "must be a string or null, got an array"),
    ({"localised_files": "a.py"}, "localised_files", "must be a list of file paths"),
    ({"localised_files": [1]}, "localised_files", "must be a list of file paths"),
    ({"file_contents": {"a.py": 1}}, "file_contents", "must be an object {path: file text}"),
    ({"source": 7}, "source", "must be a string, got a number"),
])
def test_a_bad_field_is_one_line_naming_file_line_and_field(
        tmp_path: Path, change: dict, field: str, problem: str) -> None:
    a, b = lite_rows(2)
    path = write_jsonl(tmp_path / "t.jsonl", [attempt(a, 1, True), {**attempt(b, 1, True),
                                                                     **change}])
    with pytest.raises(ConfigError) as ei:
        load_trajectories(tmp_path)
    msg = str(ei.value)
    assert "\n" not in msg and msg.startswith(f"{path}: line {GOOD_LINE}")
    assert f": {field}: {problem}" in msg
    assert ei.value.field == field


@pytest.mark.parametrize("missing", ["instance_id", "problem_statement", "patch", "resolved",
                                     "attempt"])
def test_each_required_field_is_required(tmp_path: Path, missing: str) -> None:
    (row,) = lite_rows(1)
    raw = attempt(row, 1, True)
    del raw[missing]
    path = write_jsonl(tmp_path / "t.jsonl", [raw])
    with pytest.raises(ConfigError, match=rf"^{path}: line 1.*: {missing}: missing \(an entry "
                       "needs instance_id, problem_statement, patch, resolved, attempt\\)$"):
        load_trajectories(tmp_path)


def test_bad_json_a_non_object_and_a_repeated_attempt_name_their_line(tmp_path: Path) -> None:
    (row,) = lite_rows(1)
    iid = row["instance_id"]
    path = tmp_path / "t.jsonl"
    good = json.dumps(attempt(row, 1, True))
    for text, expect in [
        (f"{good}\n{{\"instance_id\": \n", f"{path}: line 2: not valid JSON"),
        (f"{good}\n\n[1, 2]\n", f"{path}: line 3: must be a JSON object, got an array"),
        (f"{good}\n{good}\n", f"{path}: line 2 ({iid}): attempt: attempt 1 of this instance "
                              f"is already at {path}: line 1; number each attempt once"),
    ]:
        path.write_text(text)
        with pytest.raises(ConfigError) as ei:
            load_trajectories(tmp_path)
        assert str(ei.value).startswith(expect), str(ei.value)


def test_skip_bad_lines_counts_and_keeps_the_good_ones(tmp_path: Path) -> None:
    a, b, c = lite_rows(3)
    path = tmp_path / "t.jsonl"
    path.write_text("\n".join([
        json.dumps(attempt(a, 1, True)),
        "{not json",
        json.dumps({**attempt(b, 1, True), "resolved": "no"}),
        json.dumps(attempt(a, 1, True)),  # repeated attempt
        json.dumps(attempt(c, 1, True)),
    ]) + "\n")
    loaded = load_trajectories(tmp_path, skip_bad_lines=True)
    assert [e.instance_id for e in loaded.entries] == [a["instance_id"], c["instance_id"]]
    assert len(loaded.bad_lines) == 3
    assert [line.split(": ")[1].split(" ")[:2] for line in loaded.bad_lines] == [
        ["line", "2"], ["line", "3"], ["line", "4"]]


def test_adapter_dicts_are_checked_like_file_lines() -> None:
    a, b = lite_rows(2)
    dicts = [{**attempt(a, 1, True), "source": "swe-agent:a.traj"},
             {**attempt(b, 1, True), "resolved": None}]
    with pytest.raises(ConfigError, match=r"^trajs/: entry 2 \(.*\): resolved: must be true or "
                                          "false, got None$"):
        entries_from_dicts(dicts, "trajs/")
    loaded = entries_from_dicts(dicts, "trajs/", skip_bad_lines=True)
    (e,) = loaded.entries
    assert (e.source, e.where, len(loaded.bad_lines)) == ("swe-agent:a.traj", "trajs/: entry 1", 1)
    # without `source`, the adapter's place names it
    assert entries_from_dicts([attempt(b, 1, True)], "runs/r1").entries[0].source == "runs/r1"


def test_a_missing_or_empty_folder_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--trajectories: does not exist"):
        load_trajectories(tmp_path / "nope")
    with pytest.raises(ConfigError, match="--trajectories: holds no \\*.jsonl or \\*.jsonl.gz"):
        load_trajectories(tmp_path)
