"""Agentless rollouts (`benchsmith rollout bugfix|testgen`) end to end.

A real git repository (three commits: modules added, bugs introduced, an unrelated module
added; plus a dirty working tree the rollout must not touch) and three SWE-bench-shaped
instances at different commits. The fake OpenAI server answers like a model, keyed on the
prompt: which instance (a marker in the problem statement), which stage (the template's
own headings) and which sample. Samples of one instance send byte-identical stage-1
requests, so the k-th stage-1 request of an instance gets the k-th scripted file list; the
stage-2 prompt then shows which files were localized, and every later answer is keyed on
it. Expectations per output row come from the row's own stage-1 answer (its trajectory),
from the file texts written here and from what the server received.

Patches are checked with `git apply` in a separate clone at the instance's base_commit,
never in the fixture's checkout.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import threading
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from benchsmith.cli.app import app
from fake_openai import BatchScript, FakeOpenAI, Received, Reply
from helpers import (
    assert_terminal_invariants,
    cli_env,
    ledger_rows,
    popen_cli,
    read_jsonl,
    request_messages,
    run_cli,
    wait_for,
    write_yaml,
)

CHAT = "/v1/chat/completions"
MODEL = "m"
PRICE = {"input": 1.0, "output": 2.0}  # USD per 1M tokens
GIT_ENV = {
    **os.environ,
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_AUTHOR_NAME": "Test",
    "GIT_AUTHOR_EMAIL": "test@example.com",
    "GIT_COMMITTER_NAME": "Test",
    "GIT_COMMITTER_EMAIL": "test@example.com",
}

# --------------------------------------------------------------------------- repository

SETUP = 'from setuptools import setup\n\nsetup(name="shapes")\n'
README = "# shapes\n"
INIT = '"""Shapes toolkit."""\n'
CALC_V1 = "def add(a, b):\n    return a + b\n\n\ndef mul(a, b):\n    return a * b\n"
CALC_V2 = CALC_V1.replace("return a + b", "return a - b")  # commit 2: the bug of instance 1
TEXT_V1 = 'def shout(s):\n    return s.upper() + "!"\n\n\ndef whisper(s):\n    return s.lower()\n'
TEXT_V2 = TEXT_V1.replace('s.upper() + "!"', 's.lower() + "!"')  # commit 2: bug of instance 2
BIG = "".join(f"def helper_{i}(x):\n    return x + {i}  # padding padding padding\n\n\n"
              for i in range(60))  # ~3.6k chars: over a 500-token (2000-char) budget
GEOMETRY = "def area(w, h):\n    return w * h\n"  # commit 3: an unrelated module
TEST_CALC = "from pkg.calc import add\n\n\ndef test_add():\n    assert add(1, 2) == 3\n"
DIRTY_CALC = CALC_V2 + "# DIRTY-WORKTREE-EDIT\n"  # uncommitted, in the user's checkout
SCRATCH = "# untracked scratch file\nX = 1\n"
STAGED = "# staged, never committed\nY = 2\n"

TREE_C1 = "setup.py\npkg/\n    __init__.py\n    big.py\n    calc.py\n    text.py"
TREE_C3 = ("setup.py\npkg/\n    __init__.py\n    big.py\n    calc.py\n    geometry.py\n"
           "    text.py")

I1, I2, I3 = "acme__shapes-1", "acme__shapes-2", "acme__shapes-3"
IDS = [I1, I2, I3]
PROBLEM = {
    I1: "ISSUE-ONE: add() subtracts its arguments.\n\n>>> add(2, 2)\n0\n",
    # CRLF line ends: kept unless --convert-crlf
    I2: "ISSUE-TWO: shout() whispers.\r\n\r\n>>> shout('hi')\r\n'hi!'\r\n",
    I3: "ISSUE-THREE: the docs are wrong.\n",
}
GOLD_MARKS = ["GOLD-PATCH-MARK", "GOLD-TEST-PATCH-MARK", "gold_f2p_mark", "gold_p2p_mark"]


def git(cwd: Path, *args: str) -> str:
    r = subprocess.run(["git", *args], cwd=cwd, env=GIT_ENV, capture_output=True, text=True)
    assert r.returncode == 0, (args, r.stderr)
    return r.stdout.strip()


def write(root: Path, rel: str, text: str) -> None:
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(text.encode("utf-8"))


@dataclass(frozen=True)
class Repo:
    path: Path
    c1: str
    c2: str
    c3: str

    def snapshot(self) -> tuple[Any, ...]:
        """Everything a rollout must leave alone in the user's checkout."""
        files = sorted(
            (str(p.relative_to(self.path)), p.read_bytes())
            for p in self.path.rglob("*") if p.is_file() and ".git" not in p.parts
        )
        return (
            git(self.path, "rev-parse", "HEAD"),
            git(self.path, "symbolic-ref", "HEAD"),
            git(self.path, "status", "--porcelain=v1", "-uall"),
            git(self.path, "diff"),
            git(self.path, "diff", "--cached"),
            git(self.path, "stash", "list"),
            files,
        )


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Repo:
    """The user's clone of acme/shapes, HEAD at commit 3, with a dirty working tree."""
    root = tmp_path_factory.mktemp("repos") / "acme__shapes"
    root.mkdir()
    git(root, "-c", "init.defaultBranch=main", "init", "-q")
    for rel, text in {"setup.py": SETUP, "README.md": README, "pkg/__init__.py": INIT,
                      "pkg/calc.py": CALC_V1, "pkg/text.py": TEXT_V1, "pkg/big.py": BIG,
                      "tests/test_calc.py": TEST_CALC}.items():
        write(root, rel, text)
    git(root, "add", "-A")
    git(root, "commit", "-qm", "add the modules")
    c1 = git(root, "rev-parse", "HEAD")
    write(root, "pkg/calc.py", CALC_V2)
    write(root, "pkg/text.py", TEXT_V2)
    git(root, "commit", "-qam", "refactor (introduces two bugs)")
    c2 = git(root, "rev-parse", "HEAD")
    write(root, "pkg/geometry.py", GEOMETRY)
    git(root, "add", "pkg/geometry.py")
    git(root, "commit", "-qm", "add geometry")
    c3 = git(root, "rev-parse", "HEAD")
    write(root, "pkg/calc.py", DIRTY_CALC)
    write(root, "pkg/scratch.py", SCRATCH)
    write(root, "pkg/staged.py", STAGED)
    git(root, "add", "pkg/staged.py")
    return Repo(root, c1, c2, c3)


def base_commit(repo: Repo, iid: str) -> str:
    return {I1: repo.c2, I2: repo.c3, I3: repo.c1}[iid]


def dataset_rows(repo: Repo) -> list[dict[str, Any]]:
    rows = []
    for iid in (I3, I1, I2):  # not in id order: the rollout sorts
        n = iid.rsplit("-", 1)[1]
        rows.append({
            "instance_id": iid, "repo": "acme/shapes", "base_commit": base_commit(repo, iid),
            "problem_statement": PROBLEM[iid],
            "patch": "diff --git a/pkg/calc.py b/pkg/calc.py\n"
                     "--- a/pkg/calc.py\n+++ b/pkg/calc.py\n"
                     f"@@ -1,2 +1,2 @@\n def add(a, b):\n-    return a - b\n"
                     f"+    return a + b  # GOLD-PATCH-MARK-{n}\n",
            "test_patch": f"diff --git a/tests/test_calc.py b/tests/test_calc.py\n"
                          f"--- a/tests/test_calc.py\n+++ b/tests/test_calc.py\n@@ -3,0 +4,2 @@\n"
                          f"+def test_gold_f2p_mark():  # GOLD-TEST-PATCH-MARK-{n}\n"
                          f"+    assert add(2, 2) == 4\n",
            "hints_text": "", "created_at": "2024-01-0" + n, "version": "1",
            "FAIL_TO_PASS": json.dumps([f"tests/test_calc.py::test_gold_f2p_mark_{n}"]),
            "PASS_TO_PASS": json.dumps([f"tests/test_calc.py::test_gold_p2p_mark_{n}"]),
            "environment_setup_commit": base_commit(repo, iid),
        })
    return rows


# --------------------------------------------------------------------------- the "model"

# Stage 1 of instance 1: the k-th request (k = 0, 1, 2, ...) gets LOC_1[k % 3].
LOC_1 = [
    # a file only at HEAD (geometry), a made-up one, an untracked one: all dropped
    "The bug is in calc.\n```\npkg/calc.py\npkg/geometry.py\npkg/missing.py\npkg/scratch.py\n```\n",
    "Files to edit:\npkg/calc.py\npkg/text.py\n",  # unfenced
    "```\n./pkg/calc.py\npkg/__init__.py\nnot/there.py\n```",
]
LOC_2 = "```\npkg/big.py\npkg/text.py\npkg/geometry.py\ndocs/conf.py\n```"
LOC_3 = "```\nsrc/nothing.py\nlib/ghost.py\n```"  # nothing of the repository: invalid

# Trajectories of instance 1, by stage-1 answer: kept files, dropped files.
TRAJ_1 = {
    LOC_1[0]: (["pkg/calc.py"], ["pkg/geometry.py", "pkg/missing.py", "pkg/scratch.py"]),
    LOC_1[1]: (["pkg/calc.py", "pkg/text.py"], []),
    LOC_1[2]: (["pkg/calc.py", "pkg/__init__.py"], ["not/there.py"]),
}

VALID_1 = ("The bug is in add().\n\n```python\n### pkg/calc.py\n<<<<<<< SEARCH\ndef add(a, b):\n"
           "    return a - b\n=======\ndef add(a, b):\n    return b + a\n>>>>>>> REPLACE\n```\n")
CALC_FIXED = CALC_V2.replace("return a - b", "return b + a")
BROKEN_1 = ("```python\n### pkg/calc.py\n<<<<<<< SEARCH\ndef add(x, y):\n    return x - y\n"
            "=======\ndef add(x, y):\n    return x + y\n>>>>>>> REPLACE\n```\n")
NOCHANGE_1 = ("```python\n### pkg/calc.py\n<<<<<<< SEARCH\ndef mul(a, b):\n    return a * b\n"
              "=======\ndef mul(a, b):\n    return a * b\n>>>>>>> REPLACE\n```\n")
REPAIR_2 = (
    "Two edits.\n\n```python\n### pkg/text.py\n<<<<<<< SEARCH\n    return s.lower() + \"!\"\n"
    "=======\n    return s.upper() + \"!\"\n>>>>>>> REPLACE\n```\n\n"
    "```python\n### pkg/geometry.py\n<<<<<<< SEARCH\ndef area(w, h):\n    return w * h\n"
    "=======\ndef area(w, h):\n    return w * h\n\n\ndef perimeter(w, h):\n"
    "    return 2 * (w + h)\n>>>>>>> REPLACE\n```\n"
)
GEOMETRY_FIXED = GEOMETRY + "\n\ndef perimeter(w, h):\n    return 2 * (w + h)\n"

SCRIPT_1 = ('from pkg.calc import add\n\nif add(2, 2) == 4:\n    print("Issue resolved")\n'
            'else:\n    print("Issue reproduced")\n')
FENCED_1 = f"Here is the script:\n\n```python\n{SCRIPT_1}```\n"
UNFENCED_1 = 'from pkg.calc import add\n\nprint("Issue reproduced" if add(1, 1) != 2 else "ok")\n'
SYNTAX_1 = "```python\ndef broken(:\n    print('Issue reproduced')\n```\n"
SCRIPT_2 = ('from pkg.text import shout\n\nif shout("hi") == "HI!":\n    print("Issue resolved")\n'
            'else:\n    print("Issue reproduced")\n')
TESTGEN_2 = f"Run it with:\n```bash\npython reproduce_bug.py\n```\n\n```python\n{SCRIPT_2}```\n"


def instance_of(prompt: str) -> str:
    for iid, marker in ((I1, "ISSUE-ONE"), (I2, "ISSUE-TWO"), (I3, "ISSUE-THREE")):
        if marker in prompt:
            return iid
    raise AssertionError(f"prompt of no instance: {prompt[:200]!r}")


def stage_of(prompt: str) -> str:
    if "### Repository Structure ###" in prompt:
        return "localize"
    if "standalone test script" in prompt:
        return "testgen"
    assert "*SEARCH/REPLACE* edits" in prompt, prompt[:300]
    return "repair"


def shown_files(prompt: str) -> list[str]:
    """The `### path` headers of the stage-2 FILES block (not the template's example)."""
    block = prompt.split("--- BEGIN FILE ---", 1)[1].split("--- END FILE ---", 1)[0]
    return re.findall(r"^### (\S+)$", block, re.M)


class Model:
    """Answers like a model, from the messages alone (online and batch share it)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.loc_count: Counter[str] = Counter()
        self.loc_override: dict[str, list[str]] = {}
        self.hang_stage2 = False
        self.log: list[tuple[str, str, list[dict[str, Any]], str]] = []  # iid, stage, msgs, answer

    def answer(self, messages: list[dict[str, Any]]) -> str:
        prompt = messages[0]["content"]
        iid, stage = instance_of(prompt), stage_of(prompt)
        if stage == "localize":
            choices = self.loc_override.get(iid) or {I1: LOC_1, I2: [LOC_2], I3: [LOC_3]}[iid]
            if len(messages) > 1:  # a re-ask: same list again
                text = messages[1]["content"]
            else:
                with self.lock:
                    k = self.loc_count[iid]
                    self.loc_count[iid] += 1
                text = choices[k % len(choices)]
        else:
            files = shown_files(prompt)
            if iid == I2:
                text = REPAIR_2 if stage == "repair" else TESTGEN_2
            elif "pkg/text.py" in files:
                text = BROKEN_1 if stage == "repair" else UNFENCED_1
            elif "pkg/__init__.py" in files:
                text = NOCHANGE_1 if stage == "repair" else SYNTAX_1
            else:
                text = VALID_1 if stage == "repair" else FENCED_1
        with self.lock:
            self.log.append((iid, stage, messages, text))
        return text

    def script(self, received: Received, index: int) -> Reply | None:
        msgs = request_messages(received.body)
        if self.hang_stage2 and stage_of(msgs[0]["content"]) != "localize":
            return Reply.hang(30)
        return Reply.text(self.answer(msgs))

    def batch_answer(self, custom_id: str, body: dict) -> str:
        return self.answer(request_messages(body))


# --------------------------------------------------------------------------- running


@dataclass
class Workspace:
    root: Path
    repo: Repo
    server: FakeOpenAI
    model: Model

    @property
    def runs(self) -> Path:
        return self.root / "runs"

    def config(self, name: str = "cfg.yaml", **sections: Any) -> Path:
        rollout = {"repos_dir": str(self.repo.path.parent), "cache_dir": str(self.root / "cache")}
        data: dict[str, Any] = {
            "run_dir": str(self.runs),
            "recipe": "agentless_bugfix",
            "datasets": {"swebench_lite": {"path": "data.jsonl"}},
            "rollout": {**rollout, **sections.pop("rollout", {})},
            "model": {"name": MODEL},
            "plans": {"max_validation_retries": 1},
            "openai": {"base_url": self.server.base_url, "api": "chat", "api_key_env": None},
            "engine": {"concurrency": 4, "max_retries": 2, "timeout_s": 20,
                       "backoff_base_s": 0.01, "backoff_max_s": 0.05},
            "batch": {"poll_interval_s": 0.01, "max_poll_interval_s": 0.02},
            "prices": {MODEL: PRICE},
        }
        for k, v in sections.items():
            data[k] = {**data.get(k, {}), **v} if isinstance(v, dict) else v
        return write_yaml(self.root / name, data)

    def chat_requests(self) -> list[Received]:
        return [r for r in self.server.requests if r.path == CHAT]


@pytest.fixture
def ws(tmp_path: Path, repo: Repo) -> Any:
    (tmp_path / "data.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in dataset_rows(repo)), encoding="utf-8"
    )
    model = Model()
    with FakeOpenAI() as server:
        server.script = model.script
        server.batch_plan = lambda bid, lines: BatchScript(answer=model.batch_answer)
        yield Workspace(tmp_path, repo, server, model)
        assert not server.errors, server.errors


def rollout(kind: str, cfg: Path, *args: str) -> dict[str, Any]:
    res = CliRunner().invoke(app, ["rollout", kind, "--config", str(cfg), "--quiet", "--json",
                                   *args])
    assert res.exit_code == 0, (res.exit_code, res.output, res.exception)
    return json.loads(res.stdout[res.stdout.index("{"):])


def clone_at(repo: Repo, sha: str, dst: Path) -> Path:
    """A separate checkout at `sha` (the user's checkout is never used for applying)."""
    git(dst.parent, "clone", "-q", "--no-checkout", str(repo.path), str(dst))
    git(dst, "checkout", "-q", "--detach", sha)
    return dst


def check_diff(checkout: Path, diff_path: Path, expected: dict[str, str]) -> None:
    """`git apply --check`, apply, compare whole files, then reset the checkout."""
    git(checkout, "apply", "--check", str(diff_path))
    git(checkout, "apply", str(diff_path))
    try:
        changed = (git(checkout, "diff", "--name-only").split()
                   + git(checkout, "ls-files", "--others", "--exclude-standard").split())
        assert sorted(changed) == sorted(expected), changed
        for rel, text in expected.items():
            assert (checkout / rel).read_text(encoding="utf-8") == text, rel
    finally:
        git(checkout, "reset", "-q", "--hard")
        git(checkout, "clean", "-qfd")


def swebench_predictions(path: Path) -> list[dict[str, Any]]:
    """What swebench.harness.utils.get_predictions_from_file does with a .jsonl file (the
    package is not installed here): json.loads of every line, each a dict with instance_id."""
    try:
        from swebench.harness.utils import get_predictions_from_file  # type: ignore
    except ImportError:
        with open(path) as f:
            preds = [json.loads(line) for line in f]  # a blank line would raise here
        for p in preds:
            assert isinstance(p, dict) and "instance_id" in p
        return preds
    return get_predictions_from_file(str(path), "unused", "test")


def expected_bugfix_files(iid: str, loc_answer: str | None) -> dict[str, str] | None:
    if iid == I2:
        return {"pkg/text.py": TEXT_V1, "pkg/geometry.py": GEOMETRY_FIXED}
    if iid == I1 and loc_answer == LOC_1[0]:
        return {"pkg/calc.py": CALC_FIXED}
    return None


def stage2_prompts(model: Model, iid: str, stage: str) -> list[str]:
    return [m[0]["content"] for i, s, m, _ in model.log if i == iid and s == stage and len(m) == 1]


# --------------------------------------------------------------------------- tests


def test_bugfix_rollout_online(ws: Workspace) -> None:
    before = ws.repo.snapshot()
    cfg = ws.config()
    out = rollout("bugfix", cfg, "--run-id", "B", "--passk", "3", "--temp", "0.3",
                  "--model-name", "org/my-model")
    rd = ws.runs / "B"
    assert Path(out["run_dir"]) == rd and out["stopped"] is None
    assert_terminal_invariants(rd)
    assert ws.repo.snapshot() == before  # checkout, index, HEAD untouched

    rows = read_jsonl(rd / "output.jsonl")
    assert [(r["instance_id"], r["sample"]) for r in rows] == [
        (i, k) for i in IDS for k in range(3)
    ]
    # Instance 1: each scripted stage-1 answer went to exactly one sample.
    assert sorted(r["localize_answer"] for r in rows if r["instance_id"] == I1) == sorted(LOC_1)

    checkouts = {iid: clone_at(ws.repo, base_commit(ws.repo, iid), ws.root / f"check_{iid}")
                 for iid in IDS}
    for r in rows:
        iid, k = r["instance_id"], r["sample"]
        assert r["custom_id"] == f"{iid}__pass{k + 1}"
        assert r["model"] == MODEL and r["test_script"] is None
        diff = rd / "samples" / iid / f"sample_{k}.diff"
        if iid == I1:
            kept, dropped = TRAJ_1[r["localize_answer"]]
            assert (r["localized_files"], r["dropped_files"]) == (kept, dropped)
            assert r["over_budget_files"] == []
            if r["localize_answer"] == LOC_1[0]:
                exp = ("ok", None, VALID_1, 2)
            elif r["localize_answer"] == LOC_1[1]:
                exp = ("invalid", "repair: validation: search text not found in pkg/calc.py: "
                       "def add(x, y):", BROKEN_1, 3)
            else:
                exp = ("invalid", "repair: validation: edit makes no change in pkg/calc.py: "
                       "def mul(a, b):", NOCHANGE_1, 3)
        elif iid == I2:
            assert r["localize_answer"] == LOC_2
            assert r["localized_files"] == ["pkg/big.py", "pkg/text.py", "pkg/geometry.py"]
            assert r["dropped_files"] == ["docs/conf.py"] and r["over_budget_files"] == []
            exp = ("ok", None, REPAIR_2, 2)
        else:
            assert r["localize_answer"] == LOC_3
            assert r["localized_files"] == [] and r["dropped_files"] == []
            exp = ("invalid", "localize: validation: no file of the repository was named; "
                   "not in the repository: src/nothing.py, lib/ghost.py", None, 2)
        status, reason, repair_answer, attempts = exp
        assert (r["status"], r["reason"], r["repair_answer"]) == (status, reason, repair_answer)
        assert r["usage"]["attempts"] == attempts
        assert r["usage"]["input_tokens"] > 0 and r["usage"]["output_tokens"] > 0
        assert r["cost_usd"] > 0
        files = expected_bugfix_files(iid, r["localize_answer"])
        if status == "ok":
            assert files is not None
            assert diff.read_text(encoding="utf-8") == r["model_patch"]
            check_diff(checkouts[iid], diff, files)
        else:
            assert r["model_patch"] is None and not diff.exists()
    assert sorted(str(p.relative_to(rd / "samples")) for p in (rd / "samples").rglob("*.diff")) \
        == sorted(f"{r['instance_id']}/sample_{r['sample']}.diff" for r in rows
                  if r["status"] == "ok")
    assert read_jsonl(rd / "failures.jsonl") == [r for r in rows if r["status"] != "ok"]

    # Usage and cost add up to what the server saw and answered.
    reqs = ws.chat_requests()
    assert len(reqs) == sum(r["usage"]["attempts"] for r in rows) == len(ws.model.log)
    n_in = sum(max(1, len(q.raw) // 4) for q in reqs)
    n_out = sum(max(1, len(a) // 4) for *_, a in ws.model.log)
    assert sum(r["usage"]["input_tokens"] for r in rows) == n_in
    assert sum(r["usage"]["output_tokens"] for r in rows) == n_out
    assert sum(r["cost_usd"] for r in rows) == pytest.approx(
        (n_in * PRICE["input"] + n_out * PRICE["output"]) / 1e6)

    # preds.jsonl: the first good sample of each instance, SWE-bench's three keys only.
    preds = swebench_predictions(rd / "preds.jsonl")
    first_ok = {}
    for r in rows:
        if r["status"] == "ok":
            first_ok.setdefault(r["instance_id"], r)
    assert [list(p) for p in preds] == [["instance_id", "model_name_or_path", "model_patch"]] * 2
    assert preds == [{"instance_id": i, "model_name_or_path": "org/my-model",
                      "model_patch": first_ok[i]["model_patch"]} for i in (I1, I2)]
    assert {p["instance_id"] for p in preds} <= {d["instance_id"] for d in dataset_rows(ws.repo)}
    for k in range(3):
        assert swebench_predictions(rd / f"preds_pass{k + 1}.jsonl") == [
            {"instance_id": r["instance_id"], "model_name_or_path": "org/my-model",
             "model_patch": r["model_patch"]}
            for r in rows if r["sample"] == k and r["status"] == "ok"
        ]
    assert not (rd / "preds_pass4.jsonl").exists()

    # What the server received.
    bodies = [q.body for q in reqs]
    assert all(b["model"] == MODEL and b["temperature"] == 0.3 for b in bodies)
    for q in reqs:
        for mark in GOLD_MARKS:
            assert mark.encode() not in q.raw, mark
    loc = {iid: [m[0]["content"] for i, s, m, _ in ws.model.log if i == iid and s == "localize"]
           for iid in IDS}
    assert [len(loc[i]) for i in IDS] == [3, 3, 6]  # instance 3: each sample re-asked once
    for iid, tree in ((I1, TREE_C1), (I2, TREE_C3), (I3, TREE_C1)):
        for p in loc[iid]:
            assert f"### Repository Structure ###\n{tree}\n\n###" in p
            assert f"### GitHub Problem Description ###\n{PROBLEM[iid]}" in p  # CRLF kept
    repair_1 = stage2_prompts(ws.model, I1, "repair")
    assert sorted(shown_files(p) for p in repair_1) == sorted(k for k, _ in TRAJ_1.values())
    for p in repair_1:  # the file text at base_commit (commit 2), not HEAD's nor the dirty one
        assert f"### pkg/calc.py\n{CALC_V2.rstrip()}\n" in p
        assert "DIRTY-WORKTREE" not in p and PROBLEM[I1] in p
    for p in stage2_prompts(ws.model, I2, "repair"):
        assert shown_files(p) == ["pkg/big.py", "pkg/text.py", "pkg/geometry.py"]
        for rel, text in (("pkg/big.py", BIG), ("pkg/text.py", TEXT_V2),
                          ("pkg/geometry.py", GEOMETRY)):
            assert f"### {rel}\n{text.rstrip()}\n" in p
    assert stage2_prompts(ws.model, I3, "repair") == []  # invalid at localize: no stage 2

    # The re-ask of the broken edit carries the answer and the validation error.
    reasks = [m for i, s, m, _ in ws.model.log if s == "repair" and len(m) > 1]
    assert len(reasks) == 2
    by_files = {tuple(shown_files(m[0]["content"])): m for m in reasks}
    broken = by_files[("pkg/calc.py", "pkg/text.py")]
    assert broken[1] == {"role": "assistant", "content": BROKEN_1}
    assert "search text not found in pkg/calc.py: def add(x, y):" in broken[2]["content"]
    nochange = by_files[("pkg/calc.py", "pkg/__init__.py")]
    assert "edit makes no change in pkg/calc.py: def mul(a, b):" in nochange[2]["content"]
    loc_reasks = [m for i, s, m, _ in ws.model.log if s == "localize" and len(m) > 1]
    assert len(loc_reasks) == 3 and all(m[0]["content"] == loc[I3][0] for m in loc_reasks)
    assert all("src/nothing.py, lib/ghost.py" in m[2]["content"] for m in loc_reasks)


def test_testgen_rollout_online(ws: Workspace) -> None:
    before = ws.repo.snapshot()
    cfg = ws.config()
    out = rollout("testgen", cfg, "--run-id", "T", "--passk", "3")
    rd = ws.runs / "T"
    assert "predictions" not in out
    assert_terminal_invariants(rd)
    assert ws.repo.snapshot() == before

    rows = read_jsonl(rd / "output.jsonl")
    assert [(r["instance_id"], r["sample"]) for r in rows] == [
        (i, k) for i in IDS for k in range(3)
    ]
    for r in rows:
        iid, k = r["instance_id"], r["sample"]
        assert r["custom_id"] == f"{iid}__pass{k + 1}" and r["model_patch"] is None
        if iid == I1:
            assert (r["localized_files"], r["dropped_files"]) == TRAJ_1[r["localize_answer"]]
            exp = {LOC_1[0]: ("ok", SCRIPT_1, FENCED_1),
                   LOC_1[1]: ("ok", UNFENCED_1, UNFENCED_1),
                   LOC_1[2]: ("invalid", None, SYNTAX_1)}[r["localize_answer"]]
        elif iid == I2:
            exp = ("ok", SCRIPT_2, TESTGEN_2)
        else:
            exp = ("invalid", None, None)
        status, script, answer = exp
        assert (r["status"], r["test_script"], r["testgen_answer"]) == (status, script, answer)
        path = rd / "samples" / iid / f"sample_{k}.py"
        if status == "ok":
            assert r["reason"] is None
            text = path.read_text(encoding="utf-8")
            assert text == script
            compile(text, str(path), "exec")
        else:
            assert not path.exists()
    bad = [r for r in rows if r["instance_id"] == I1 and r["status"] != "ok"]
    assert len(bad) == 1
    assert bad[0]["reason"].startswith("testgen: validation: does not compile:")
    assert bad[0]["usage"]["attempts"] == 3  # localize + answer + one re-ask
    assert all(r["reason"].startswith("localize: validation: no file of the repository")
               for r in rows if r["instance_id"] == I3)
    assert read_jsonl(rd / "failures.jsonl") == [r for r in rows if r["status"] != "ok"]
    assert not list(rd.glob("preds*.jsonl"))
    # The re-ask of the script that does not compile names the compile error.
    reasks = [m for i, s, m, _ in ws.model.log if s == "testgen" and len(m) > 1]
    assert len(reasks) == 1 and "does not compile" in reasks[0][2]["content"]
    for q in ws.chat_requests():
        for mark in GOLD_MARKS:
            assert mark.encode() not in q.raw, mark


def test_context_budget_drops_big_file(ws: Workspace) -> None:
    cfg = ws.config(rollout={"max_context_tokens": 500})  # ~2000 characters of files
    rollout("bugfix", cfg, "--run-id", "S", "--start", "1", "--end", "2")  # instance 2 only
    rd = ws.runs / "S"
    (row,) = read_jsonl(rd / "output.jsonl")
    assert row["instance_id"] == I2 and row["status"] == "ok"
    assert row["localized_files"] == ["pkg/big.py", "pkg/text.py", "pkg/geometry.py"]
    assert row["over_budget_files"] == ["pkg/big.py"]
    (p,) = stage2_prompts(ws.model, I2, "repair")
    assert shown_files(p) == ["pkg/text.py", "pkg/geometry.py"]
    assert "helper_0" not in p and f"### pkg/text.py\n{TEXT_V2.rstrip()}\n" in p
    check_diff(clone_at(ws.repo, ws.repo.c3, ws.root / "check"),
               rd / "samples" / I2 / "sample_0.diff",
               {"pkg/text.py": TEXT_V1, "pkg/geometry.py": GEOMETRY_FIXED})


def test_all_localized_files_over_budget_are_recorded(ws: Workspace) -> None:
    ws.model.loc_override[I1] = ["```\npkg/big.py\n```"]
    cfg = ws.config(rollout={"max_context_tokens": 500})
    rollout("bugfix", cfg, "--run-id", "O", "--end", "1")  # instance 1 only
    rd = ws.runs / "O"
    (row,) = read_jsonl(rd / "output.jsonl")
    assert [s for _, s, _, _ in ws.model.log] == ["localize"]  # no stage-2 request
    assert row["instance_id"] == I1 and row["status"] != "ok" and row["model_patch"] is None
    assert row["localized_files"] == ["pkg/big.py"]
    assert "budget" in row["reason"]
    assert read_jsonl(rd / "failures.jsonl") == [row]
    # The file that did not fit is recorded, as when some other file fits.
    assert row["over_budget_files"] == ["pkg/big.py"]


def test_structure_dir_gives_same_prompts_as_clone(ws: Workspace, tmp_path: Path) -> None:
    before = ws.repo.snapshot()
    res = CliRunner().invoke(app, ["repo-structure", "build", "--repos-dir",
                                   str(ws.repo.path.parent), "--dataset",
                                   str(tmp_path / "data.jsonl"), "--out", str(tmp_path / "st"),
                                   "--quiet"])
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in (tmp_path / "st").iterdir()) == [f"{i}.json" for i in IDS]
    assert ws.repo.snapshot() == before

    rollout("bugfix", ws.config("clone.yaml"), "--run-id", "C")
    from_clone = sorted(m[0]["content"] for _, _, m, _ in ws.model.log)
    ws.model.log.clear()
    ws.model.loc_count.clear()
    cfg = ws.config("st.yaml", rollout={"structure_dir": "st", "repos_dir": None,
                                        "cache_dir": str(tmp_path / "cache2")})
    rollout("bugfix", cfg, "--run-id", "D")
    from_dir = sorted(m[0]["content"] for _, _, m, _ in ws.model.log)
    # passk 1: two requests per instance (instance 3: localize and its re-ask)
    assert from_dir == from_clone and len(from_dir) == 6
    assert not (tmp_path / "cache2").exists()  # nothing was built from a clone
    for iid, tree in ((I1, TREE_C1), (I2, TREE_C3)):
        assert any(f"### Repository Structure ###\n{tree}\n\n###" in p
                   for p in from_dir if instance_of(p) == iid)
    assert read_jsonl(ws.runs / "D" / "preds.jsonl") == read_jsonl(ws.runs / "C" / "preds.jsonl")
    assert ws.repo.snapshot() == before


def test_range_crlf_and_thinking_params(ws: Workspace) -> None:
    cfg = ws.config(rollout={"enable_thinking": True, "thinking_budget": 64})
    rollout("bugfix", cfg, "--run-id", "R", "--start", "1", "--end", "3", "--convert-crlf",
            "--temp", "0.7", "--passk", "2")
    rd = ws.runs / "R"
    rows = read_jsonl(rd / "output.jsonl")
    assert [(r["instance_id"], r["sample"]) for r in rows] == [(I2, 0), (I2, 1), (I3, 0), (I3, 1)]
    assert ledger_rows(rd, "SELECT DISTINCT task_id FROM units ORDER BY 1") == [(I2,), (I3,)]
    reqs = ws.chat_requests()
    assert {instance_of(request_messages(q.body)[0]["content"]) for q in reqs} == {I2, I3}
    for q in reqs:
        b = q.body
        assert b["chat_template_kwargs"] == {"enable_thinking": True}
        assert b["thinking_budget"] == 64 and b["temperature"] == 0.7
        assert not any("\r" in m["content"] for m in request_messages(b))
    p = next(m[0]["content"] for i, s, m, _ in ws.model.log if i == I2 and s == "localize")
    assert PROBLEM[I2].replace("\r\n", "\n") in p
    preds = read_jsonl(rd / "preds.jsonl")
    assert [p["instance_id"] for p in preds] == [I2]
    assert preds[0]["model_name_or_path"] == MODEL  # default: the model name


def test_resume_after_kill_between_stages(ws: Workspace) -> None:
    ws.model.hang_stage2 = True
    cfg = ws.config()
    rd = ws.runs / "K"
    args = ["rollout", "bugfix", "--config", str(cfg), "--run-id", "K", "--quiet",
            "--passk", "2"]
    proc = popen_cli(args, env=cli_env())
    try:
        def stage1_done() -> bool:
            if proc.poll() is not None:
                raise AssertionError(f"CLI exited early: {proc.communicate()}")
            if not (rd / "ledger.sqlite").exists():
                return False
            try:
                states = ledger_rows(rd, "SELECT stage, state FROM units")
            except Exception:  # the schema may not be there yet
                return False
            loc = [s for st, s in states if st == "localize"]
            return (len(loc) == 6 and "pending" not in loc
                    and len([q for q in ws.chat_requests()
                             if stage_of(request_messages(q.body)[0]["content"]) == "repair"])
                    >= 1)

        wait_for(stage1_done, timeout=30, what="all stage-1 answers recorded")
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    first = ws.chat_requests()
    n_first = len(first)
    loc_first = [q for q in first
                 if stage_of(request_messages(q.body)[0]["content"]) == "localize"]
    assert len(loc_first) == 2 + 2 + 4  # instance 3 re-asked once per sample
    states = dict(ledger_rows(rd, "SELECT unit_id, state FROM units WHERE stage='localize'"))
    assert sorted(states.values()) == ["invalid"] * 2 + ["ok"] * 4

    ws.model.hang_stage2 = False
    res = run_cli([*args, "--resume", "--model-name", "resumed"], env=cli_env(), timeout=60)
    assert res.returncode == 0, res.stderr
    assert_terminal_invariants(rd)
    second = ws.chat_requests()[n_first:]
    assert second, "the resume sent nothing"
    assert all(stage_of(request_messages(q.body)[0]["content"]) == "repair" for q in second)
    # Stage-1 answers were reused: the localize units are the same, answered once.
    assert dict(ledger_rows(rd, "SELECT unit_id, state FROM units WHERE stage='localize'")) \
        == states
    rows = read_jsonl(rd / "output.jsonl")
    assert [(r["instance_id"], r["sample"]) for r in rows] == [
        (i, k) for i in IDS for k in range(2)
    ]
    assert {r["status"] for r in rows if r["instance_id"] == I2} == {"ok"}
    i1 = {r["localize_answer"]: r for r in rows if r["instance_id"] == I1}
    assert set(i1) == {LOC_1[0], LOC_1[1]}
    assert i1[LOC_1[0]]["status"] == "ok" and i1[LOC_1[1]]["status"] == "invalid"
    preds = swebench_predictions(rd / "preds.jsonl")
    ok1 = i1[LOC_1[0]]
    first_i2 = next(r for r in rows if r["instance_id"] == I2)
    assert preds == [
        {"instance_id": I1, "model_name_or_path": "resumed", "model_patch": ok1["model_patch"]},
        {"instance_id": I2, "model_name_or_path": "resumed",
         "model_patch": first_i2["model_patch"]},
    ]
    checkout = clone_at(ws.repo, ws.repo.c2, ws.root / "check")
    check_diff(checkout, rd / "samples" / I1 / f"sample_{ok1['sample']}.diff",
               {"pkg/calc.py": CALC_FIXED})


def test_batch_mode_matches_online(ws: Workspace) -> None:
    cfg = ws.config()
    rollout("bugfix", cfg, "--run-id", "ON", "--passk", "2")
    online_preds = (ws.runs / "ON" / "preds.jsonl").read_bytes()
    online_rows = read_jsonl(ws.runs / "ON" / "output.jsonl")
    n_online = len(ws.chat_requests())
    ws.model.log.clear()
    ws.model.loc_count.clear()

    rollout("bugfix", cfg, "--run-id", "BA", "--passk", "2", "--mode", "batch")
    rd = ws.runs / "BA"
    assert len(ws.chat_requests()) == n_online  # nothing went online
    assert_terminal_invariants(rd)
    assert (rd / "preds.jsonl").read_bytes() == online_preds
    rows = read_jsonl(rd / "output.jsonl")

    def outcomes(rs: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
        # which sample got which stage-1 answer depends on arrival order; the outcomes do not
        return sorted((r["instance_id"], r["localize_answer"], r["localized_files"],
                       r["dropped_files"], r["status"], r["reason"], r["model_patch"] or "")
                      for r in rs)

    assert outcomes(rows) == outcomes(online_rows)
    assert [(r["instance_id"], r["sample"], r["custom_id"]) for r in rows] == \
        [(r["instance_id"], r["sample"], r["custom_id"]) for r in online_rows]

    # Stage 1 went in one batch, stage 2 in a later one (re-asks in later batches still).
    batches = sorted(ws.server.batches.values(), key=lambda b: b.created_at)
    stages = [sorted({stage_of(request_messages(line["body"])[0]["content"])
                      for line in b.lines}) for b in batches]
    assert stages[0] == ["localize"] and len(batches[0].lines) == 6
    assert ["repair"] in stages[1:]
    assert stages.index(["repair"]) > 0
    for b in batches:
        for line in b.lines:
            body = json.dumps(line["body"])
            assert not any(m in body for m in GOLD_MARKS)


def test_reask_does_not_demand_json_for_free_text_stages(ws: Workspace) -> None:
    """The repair stage asks for SEARCH/REPLACE edits in plain text; its re-ask must not
    tell the model to answer with a JSON object."""
    rollout("bugfix", ws.config(), "--run-id", "J", "--end", "1", "--passk", "3")
    reasks = [m for _, s, m, _ in ws.model.log if s == "repair" and len(m) > 1]
    assert reasks
    for m in reasks:
        assert "failed validation" in m[2]["content"]
        assert "JSON" not in m[2]["content"], m[2]["content"]


def test_retry_failed_localize_plans_the_later_stage(ws: Workspace) -> None:
    """Every stage-1 request failed, so no stage 2 was planned; `--resume --retry-failed`
    sends the same localize units again and their repairs follow."""
    ws.server.script = lambda r, i: Reply.error(400, "bad request")
    cfg = ws.config()
    out = rollout("bugfix", cfg, "--run-id", "RF", "--passk", "1")
    rd = ws.runs / "RF"
    assert out["units"] == {"failed": 3} and out["message"].startswith("finished with failures")
    loc = dict(ledger_rows(rd, "SELECT unit_id, state FROM units WHERE stage='localize'"))
    ws.server.script = ws.model.script
    out = rollout("bugfix", cfg, "--run-id", "RF", "--passk", "1", "--resume", "--retry-failed")
    assert set(dict(ledger_rows(rd, "SELECT unit_id, state FROM units WHERE stage='localize'"))) \
        == set(loc)
    stages = Counter(st for (st,) in ledger_rows(rd, "SELECT stage FROM units"))
    assert stages == {"localize": 3, "repair": 2}  # instance 3: stage 1 stays invalid
    # Each localize unit: the failed attempt, then the answer (instance 3: re-asked once).
    att = ledger_rows(rd, "SELECT a.status FROM attempts a JOIN units u USING (unit_id) "
                          "WHERE u.stage='localize' ORDER BY a.id")
    assert Counter(s for (s,) in att) == {"http_error": 3, "ok": 2, "invalid": 2}
    assert [(r["instance_id"], r["status"]) for r in read_jsonl(rd / "output.jsonl")][:2] == [
        (I1, "ok"), (I2, "ok")]
    assert_terminal_invariants(rd)


def test_resume_with_more_samples_is_refused_then_replanned(ws: Workspace) -> None:
    """rollout.passk shapes the plan: a resume asking for more samples stops with the field
    named; --replan keeps the samples answered and asks only the new ones."""
    cfg = ws.config()
    rollout("bugfix", cfg, "--run-id", "P", "--end", "2")
    rd = ws.runs / "P"
    before = ledger_rows(rd, "SELECT unit_id, state, plan FROM units ORDER BY 1")
    n_sent = len(ws.chat_requests())
    res = CliRunner().invoke(app, ["rollout", "bugfix", "--config", str(cfg), "--run-id", "P",
                                   "--end", "2", "--passk", "2", "--resume", "--quiet"])
    assert res.exit_code == 1, res.output
    assert "rollout.passk: 1 -> 2" in res.output and "--replan" in res.output
    assert ledger_rows(rd, "SELECT unit_id, state, plan FROM units ORDER BY 1") == before
    assert len(ws.chat_requests()) == n_sent

    out = rollout("bugfix", cfg, "--run-id", "P", "--end", "2", "--passk", "2", "--resume",
                  "--replan")
    assert out["stopped"] is None
    rows = read_jsonl(rd / "output.jsonl")
    assert [(r["instance_id"], r["sample"]) for r in rows] == [(I1, 0), (I1, 1), (I2, 0), (I2, 1)]
    # Sample 0 of each instance is the same request as before: kept, not asked again.
    new_loc = [q for q in ws.chat_requests()[n_sent:]
               if stage_of(request_messages(q.body)[0]["content"]) == "localize"]
    assert len(new_loc) == 2
    assert ledger_rows(rd, "SELECT COUNT(*) FROM units WHERE plan=2") == [(len(before) * 2,)]
