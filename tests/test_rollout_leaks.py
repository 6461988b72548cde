"""The gold-leak guard on an Agentless bug-fixer rollout of a real SWE-bench Lite instance.

The repair prompt shows the files being fixed, so it holds the gold patch's removed lines by
construction: they are the code as it is, not the answer. Under the default settings (added
lines only) those requests are not findings, so `leak_policy: skip` does not skip them; with
`diff_lines: [added, removed]` they are.

The instance is astropy__astropy-12907 from ../shared/data; its repository is not here, so
the clone holds the patched file as the patch shows it before the fix (each hunk's context
and removed lines), committed, and the row's base_commit names that commit. The fake server
answers like a model: stage 1 names the file, stage 2 makes the gold edit.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pytest
from fake_openai import FakeOpenAI, Received, Reply
from git_support import git, write
from helpers import ledger_rows, request_messages, write_yaml
from rollouts_support import rollout

from benchsmith.leaks.index import DEFAULT_STOP_LINES

LITE = (Path(__file__).resolve().parents[1].parent / "shared" / "data" / "swebench_lite"
        / "swebench_lite_test.jsonl.gz")
IID = "astropy__astropy-12907"


def lite_row(iid: str) -> dict[str, Any]:
    with gzip.open(LITE, "rt", encoding="utf-8") as f:
        return next(r for r in map(json.loads, f) if r["instance_id"] == iid)


def diff_lines(diff: str, sign: str) -> list[str]:
    """The `sign` lines of a diff a leak check would match: stripped, 25+ characters."""
    return [s for s in (ln[1:].strip() for ln in diff.splitlines()
                        if ln[:1] == sign and not ln.startswith(("+++ ", "--- ")))
            if len(s) >= 25 and s not in DEFAULT_STOP_LINES]


def pre_image(patch: str) -> tuple[str, str]:
    """The one file a single-file patch changes and its text before the fix, as the patch
    shows it (context and removed lines of each hunk)."""
    path = next(ln[len("--- a/"):] for ln in patch.splitlines() if ln.startswith("--- a/"))
    body = [ln[1:] for ln in patch.split("\n@@ ", 1)[1].splitlines()[1:]
            if ln[:1] in (" ", "-") and not ln.startswith("--- ")]
    return path, "\n".join(body) + "\n"


class Model:
    """Stage 1 names the patched file; stage 2 replaces its removed lines with the added."""

    def __init__(self, path: str, patch: str) -> None:
        self.path, self.patch = path, patch
        self.stages: list[str] = []

    def script(self, received: Received, index: int) -> Reply:
        prompt = request_messages(received.body)[0]["content"]
        if "### Repository Structure ###" in prompt:
            self.stages.append("localize")
            return Reply.text(f"```\n{self.path}\n```\n")
        self.stages.append("repair")
        old = [ln[1:] for ln in self.patch.splitlines() if ln.startswith("-") and ln[1:].strip()
               and not ln.startswith("--- ")]
        new = [ln[1:] for ln in self.patch.splitlines() if ln.startswith("+") and ln[1:].strip()
               and not ln.startswith("+++ ")]
        return Reply.text(f"```python\n### {self.path}\n<<<<<<< SEARCH\n" + "\n".join(old)
                          + "\n=======\n" + "\n".join(new) + "\n>>>>>>> REPLACE\n```\n")


@pytest.fixture(scope="module")
def instance(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """A repos dir with the instance's clone, and the row pointing at its commit."""
    row = lite_row(IID)
    path, text = pre_image(row["patch"])
    repos = tmp_path_factory.mktemp("repos")
    root = repos / row["repo"].replace("/", "__")
    root.mkdir()
    git(root, "-c", "init.defaultBranch=main", "init", "-q")
    for rel, content in {"setup.py": "", "astropy/__init__.py": "",
                         "astropy/modeling/__init__.py": "", path: text}.items():
        write(root, rel, content)
    git(root, "add", "-A")
    git(root, "commit", "-qm", "base")
    return repos, {**row, "base_commit": git(root, "rev-parse", "HEAD")}


def run_bugfix(tmp_path: Path, instance: tuple[Path, dict[str, Any]], leaks: dict[str, Any]
               ) -> tuple[Path, Model]:
    repos, row = instance
    (tmp_path / "data.jsonl").write_text(json.dumps(row) + "\n", encoding="utf-8")
    model = Model(pre_image(row["patch"])[0], row["patch"])
    with FakeOpenAI() as server:
        server.script = model.script
        cfg = write_yaml(tmp_path / "cfg.yaml", {
            "run_dir": str(tmp_path / "runs"), "recipe": "agentless_bugfix",
            "datasets": {"swebench_lite": {"path": "data.jsonl"}},
            "recipe_options": {"repos_dir": str(repos), "cache_dir": str(tmp_path / "cache")},
            "model": {"name": "m"},
            "openai": {"base_url": server.base_url, "api": "chat", "api_key_env": None},
            "engine": {"concurrency": 2, "max_retries": 1, "timeout_s": 20,
                       "backoff_base_s": 0.01, "backoff_max_s": 0.05},
            "leaks": leaks,
        })
        rollout("bugfix", cfg, "--run-id", "R", "--passk", "2")
        assert not server.errors, server.errors
    return tmp_path / "runs" / "R", model


def test_the_instance_is_what_the_test_needs():
    """The repair prompt will show removed lines; no field of the task holds gold."""
    row = lite_row(IID)
    removed, added = diff_lines(row["patch"], "-"), diff_lines(row["patch"], "+")
    assert removed and pre_image(row["patch"])[1].count(removed[0]) == 1
    gold = removed + added + diff_lines(row["test_patch"], "+") + diff_lines(row["test_patch"], "-")
    assert not any(g in row["problem_statement"] + row["hints_text"] for g in gold)


def test_default_settings_do_not_skip_the_files_being_fixed(tmp_path: Path, instance):
    rd, model = run_bugfix(tmp_path, instance, {"leak_policy": "skip"})
    states = ledger_rows(rd, "SELECT stage, state, reason FROM units ORDER BY stage")
    assert [(s, st) for s, st, _ in states] == [("localize", "ok")] * 2 + [("repair", "ok")] * 2
    assert ledger_rows(rd, "SELECT unit_id FROM gold_leaks") == []
    assert model.stages.count("repair") == 2  # sent, with the file in them
    rows = [json.loads(ln) for ln in (rd / "output.jsonl").read_text().splitlines()]
    assert [r["status"] for r in rows] == ["ok", "ok"]


def test_removed_lines_opt_in_flags_the_files_being_fixed(tmp_path: Path, instance):
    rd, model = run_bugfix(tmp_path, instance,
                           {"leak_policy": "skip", "diff_lines": ["added", "removed"]})
    removed = diff_lines(instance[1]["patch"], "-")
    states = ledger_rows(rd, "SELECT stage, state, reason FROM units ORDER BY stage")
    assert [(s, st) for s, st, _ in states] == [("localize", "ok")] * 2 + [("repair", "skipped")] * 2
    assert {r for s, _, r in states if s == "repair"} == {"gold_leak:prompt"}
    found = ledger_rows(rd, "SELECT u.stage, g.sample, g.gold_fields_json FROM gold_leaks g "
                            "JOIN units u USING (unit_id)")
    assert [(s, json.loads(g)) for s, _, g in found] == [("repair", ["patch"])] * 2
    assert all(sample in removed for _, sample, _ in found)
    assert "repair" not in model.stages
