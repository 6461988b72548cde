"""Trajectory entries from SWE-agent `.traj` files (`entries_from_swe_agent`).

The trajectories are built here in SWE-agent's two layouts, following its own test data
(tests/test_data/trajectories in SWE-agent/SWE-agent): 1.x (`<id>/<id>.traj`, messages with
`message_type`, `replay_config` a JSON string holding the problem statement) and 0.7 (flat
`<id>.traj`, a demonstration message first, the issue between `ISSUE:` and `INSTRUCTIONS:`).
Problem statements and gold patches are real SWE-bench Lite rows; failures are mutated gold
patches and a run that ended without a submission.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from finetune_chain_support import lite_rows
from finetune_logs import PYTEST_ASSERT, harness_output

from benchsmith.errors import ConfigError
from benchsmith.finetune.adapters import entries_from_swe_agent
from benchsmith.finetune.swe_agent import adapt_swe_agent

RESOLVED_1X = "astropy__astropy-12907"
WRONG_1X = "pytest-dev__pytest-5227"
RESOLVED_07 = "django__django-11099"
NO_SUBMISSION = "sympy__sympy-20590"
NOT_EVALUATED = "psf__requests-2317"
DEMO = "marshmallow-code__marshmallow-1867"  # not in Lite: only shown as a demonstration
MODEL = "claude-3-5-sonnet"


def wrong_patch(gold: str) -> str:
    """The gold patch with its first added line changed: still a diff, not the fix."""
    lines = gold.split("\n")
    i = next(n for n, ln in enumerate(lines) if ln.startswith("+") and not ln.startswith("+++"))
    lines[i] += "  # off by one"
    return "\n".join(lines)


def traj_1x(iid: str, problem: str, submission: str | None, exit_status: str) -> dict[str, Any]:
    pr = (f"<uploaded_files>\n/testbed\n</uploaded_files>\nI've uploaded a python code "
          f"repository in the directory /testbed. Consider the following PR description:\n\n"
          f"<pr_description>\n{problem}\n</pr_description>\n\nCan you help me implement the "
          f"necessary changes to the repository so that the requirements specified in the "
          f"<pr_description> are met?")
    replay = {
        "env": {"deployment": {"image": f"swebench/sweb.eval.x86_64.{iid}:latest",
                               "type": "docker"},
                "repo": {"repo_name": "testbed", "base_commit": "bfd2593d", "type": "preexisting"},
                "post_startup_commands": [], "name": "main"},
        "agent": {"name": "main", "type": "default"},
        "problem_statement": {"text": problem, "extra_fields": {}, "type": "text", "id": iid},
        "output_dir": "DEFAULT", "actions": {"open_pr": False}, "env_var_path": None,
    }
    return {
        "environment": "main",
        "trajectory": [{
            "action": "str_replace_editor view /testbed",
            "observation": "Here's the files and directories up to 2 levels deep in /testbed",
            "response": "Let me look at the repository first.",
            "thought": "Let me look at the repository first.",
            "execution_time": 0.18, "state": {"working_dir": "/testbed"},
            "query": [{"role": "system", "content": "You are a helpful assistant"}],
            "extra_info": {},
        }],
        "history": [
            {"role": "system", "content": "You are a helpful assistant that can interact with a "
             "computer to solve tasks.", "agent": "main", "message_type": "system_prompt"},
            {"role": "user", "content": [{"type": "text", "text": pr}], "agent": "main",
             "message_type": "observation"},
            {"role": "assistant", "content": "Let me look at the repository first.",
             "thought": "Let me look at the repository first.", "action": "str_replace_editor "
             "view /testbed", "agent": "main", "tool_calls": [{"function": {
                 "arguments": '{"command":"view","path":"/testbed"}',
                 "name": "str_replace_editor"}, "id": "call_1", "type": "function"}],
             "message_type": "action"},
        ],
        "info": {
            "swe_agent_hash": "3ea751c0", "swe_agent_version": "1.1.0",
            "exit_status": exit_status, "submission": submission,
            "model_stats": {"instance_cost": 0.41, "tokens_sent": 120551,
                            "tokens_received": 1812, "api_calls": 17},
        },
        "replay_config": json.dumps(replay),
    }


def traj_07(problem: str, demo_problem: str, submission: str) -> dict[str, Any]:
    def task(text: str) -> str:
        return (f"We're currently solving the following issue within our repository. Here's "
                f"the issue text:\nISSUE:\n{text}\n\nINSTRUCTIONS:\nNow, you're going to "
                f"solve this issue on your own.")
    return {
        "environment": "swe_main",
        "trajectory": [{"action": "create reproduce_bug.py\n",
                        "observation": "[File: /django__django/reproduce_bug.py (1 lines total)]",
                        "response": "First, I'll reproduce the bug.\n```\ncreate reproduce_bug.py\n```",
                        "state": "{\"open_file\": \"n/a\", \"working_dir\": \"/django__django\"}\n",
                        "thought": "First, I'll reproduce the bug."}],
        "history": [
            {"role": "system", "content": "SETTING: You are an autonomous programmer.",
             "agent": "primary"},
            {"agent": "primary", "is_demo": True, "role": "user",
             "content": "Here is a demonstration of how to correctly accomplish this task.\n"
                        "--- DEMONSTRATION ---\n" + task(demo_problem)},
            {"role": "user", "content": task(problem), "agent": "primary"},
            {"role": "assistant", "content": "First, I'll reproduce the bug.",
             "thought": "First, I'll reproduce the bug.", "action": "create reproduce_bug.py\n",
             "agent": "primary"},
        ],
        "info": {"exit_status": "submitted", "submission": submission,
                 "model_stats": {"total_cost": 1.27, "instance_cost": 1.27,
                                 "tokens_sent": 122612, "tokens_received": 1369,
                                 "api_calls": 12}},
    }


def write_json(path: Path, data: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2), encoding="utf-8")
    return path


@pytest.fixture
def agent_run(tmp_path: Path) -> dict[str, Any]:
    rows = lite_rows()
    ps = {i: rows[i]["problem_statement"] for i in
          (RESOLVED_1X, WRONG_1X, RESOLVED_07, NO_SUBMISSION, NOT_EVALUATED)}
    subs = {RESOLVED_1X: rows[RESOLVED_1X]["patch"], WRONG_1X: wrong_patch(rows[WRONG_1X]["patch"]),
            RESOLVED_07: rows[RESOLVED_07]["patch"], NOT_EVALUATED: rows[NOT_EVALUATED]["patch"]}
    out = tmp_path / "trajectories" / "user" / f"{MODEL}__t-0.00__p-1.00__c-2.00___swe_bench_lite"
    for iid in (RESOLVED_1X, WRONG_1X, NOT_EVALUATED):
        # SWE-agent puts a newline before the diff
        write_json(out / iid / f"{iid}.traj", traj_1x(iid, ps[iid], "\n" + subs[iid], "submitted"))
    write_json(out / NO_SUBMISSION / f"{NO_SUBMISSION}.traj",
               traj_1x(NO_SUBMISSION, ps[NO_SUBMISSION], None, "exit_cost"))
    write_json(out / f"{RESOLVED_07}.traj",
               traj_07(ps[RESOLVED_07], "TimeDelta serialization precision\n", subs[RESOLVED_07]))
    report = write_json(tmp_path / f"{MODEL}.sweagent-lite.json", {
        "total_instances": 300, "submitted_instances": 5, "completed_instances": 3,
        "resolved_instances": 2, "unresolved_instances": 1, "empty_patch_instances": 1,
        "error_instances": 0, "completed_ids": sorted([RESOLVED_1X, WRONG_1X, RESOLVED_07]),
        "incomplete_ids": [], "empty_patch_ids": [NO_SUBMISSION],
        "submitted_ids": sorted([RESOLVED_1X, WRONG_1X, RESOLVED_07, NO_SUBMISSION]),
        "resolved_ids": sorted([RESOLVED_1X, RESOLVED_07]), "unresolved_ids": [WRONG_1X],
        "error_ids": [], "schema_version": 2})
    logs = tmp_path / "logs" / "run_evaluation" / "sweagent-lite" / MODEL / WRONG_1X
    logs.mkdir(parents=True)
    (logs / "patch.diff").write_text("\n" + subs[WRONG_1X], encoding="utf-8")
    (logs / "test_output.txt").write_text(
        harness_output("/testbed", "src/_pytest/logging.py", "pytest -rA", PYTEST_ASSERT))
    (logs / "report.json").write_text(json.dumps({WRONG_1X: {"resolved": False}}))
    return {"rows": rows, "ps": ps, "subs": subs, "dir": out, "report": report,
            "eval": tmp_path / "logs"}


def test_entries_from_swe_agent(agent_run: dict[str, Any]) -> None:
    res = adapt_swe_agent(agent_run["dir"], agent_run["report"], agent_run["eval"])
    assert res.skipped == {"not evaluated": 1}  # the report does not name NOT_EVALUATED
    got = {e["instance_id"]: e for e in res.entries}
    assert sorted(got) == sorted([RESOLVED_1X, WRONG_1X, RESOLVED_07, NO_SUBMISSION])
    for iid, e in got.items():
        real = agent_run["rows"][iid]
        assert e["problem_statement"] == real["problem_statement"]
        assert e["repo"] == real["repo"]
        assert e["attempt"] == 1 and e["localised_files"] == []
        assert e["failure_category"] is None
        assert e["patch"] == agent_run["subs"].get(iid, "")  # without the leading newline
        assert e["source"].startswith("swe-agent:") and e["source"].endswith(f"{iid}.traj")
    assert {i for i, e in got.items() if e["resolved"]} == {RESOLVED_1X, RESOLVED_07}
    assert (got[RESOLVED_1X]["evaluation"], got[RESOLVED_07]["evaluation"]) == (
        "run_report:resolved", "run_report:resolved")
    wrong = got[WRONG_1X]
    assert wrong["evaluation"] == "instance_report" and "E       assert False" in wrong["test_stdout"]
    empty = got[NO_SUBMISSION]
    assert (empty["patch"], empty["resolved"], empty["evaluation"], empty["exit_status"]) == (
        "", False, "no_patch", "exit_cost")
    # without the harness logs: the report alone
    plain = entries_from_swe_agent(agent_run["dir"], agent_run["report"])
    assert [(e["instance_id"], e["resolved"]) for e in plain] == [
        (e["instance_id"], e["resolved"]) for e in res.entries]
    assert next(e for e in plain if e["instance_id"] == WRONG_1X)["test_stdout"] is None


def _error(*args: Any) -> ConfigError:
    with pytest.raises(ConfigError) as ei:
        entries_from_swe_agent(*args)
    assert "\n" not in str(ei.value)
    return ei.value


def test_bad_trajectories(agent_run: dict[str, Any], tmp_path: Path) -> None:
    d, report = agent_run["dir"], agent_run["report"]
    traj = d / RESOLVED_1X / f"{RESOLVED_1X}.traj"
    data = json.loads(traj.read_text())
    del data["info"]
    write_json(traj, data)
    e = _error(d, report)
    assert (e.file, e.field) == (str(traj), "info")
    data["info"] = {"submission": 3}
    write_json(traj, data)
    assert _error(d, report).field == "info.submission"
    traj.write_text("{not json")
    e = _error(d, report)
    assert e.file == str(traj) and "not valid JSON" in str(e)
    traj.unlink()
    # the report names an instance whose trajectory is gone
    e = _error(d, report)
    assert e.field == "resolved_ids" and RESOLVED_1X in str(e)
    # two trajectories of one instance (two runs in one folder)
    write_json(tmp_path / "two" / "a" / f"{WRONG_1X}.traj",
               traj_1x(WRONG_1X, "x", None, "exit_cost"))
    write_json(tmp_path / "two" / "b" / f"{WRONG_1X}.traj",
               traj_1x(WRONG_1X, "x", None, "exit_cost"))
    assert "a second trajectory" in str(_error(tmp_path / "two", report))
    (tmp_path / "empty").mkdir()
    assert "no .traj file" in str(_error(tmp_path / "empty", report))


def test_report_of_other_predictions(agent_run: dict[str, Any]) -> None:
    data = json.loads(agent_run["report"].read_text())
    data["resolved_ids"] = sorted([RESOLVED_1X, NO_SUBMISSION])
    data["empty_patch_ids"], data["empty_patch_instances"] = [], 0
    agent_run["report"].write_text(json.dumps(data))
    e = _error(agent_run["dir"], agent_run["report"])
    assert e.field == "resolved_ids" and NO_SUBMISSION in str(e)
