"""Shared by the Agentless rollout tests: the git repository fixture, the scripted model,
the workspace that runs `benchsmith rollout` and the checks on its outputs.
"""

from __future__ import annotations

import json
import re
import threading
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from git_support import git, write
from fake_openai import BatchScript, FakeOpenAI, Received, Reply
from helpers import (
    request_messages,
    write_yaml,
)
from typer.testing import CliRunner

from benchsmith.cli.app import app

CHAT = "/v1/chat/completions"
MODEL = "m"
PRICE = {"input": 1.0, "output": 2.0}  # USD per 1M tokens

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
            "recipe_options": {**rollout, "max_validation_retries": 1,
                               **sections.pop("rollout", {})},
            "model": {"name": MODEL},
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
    """Run a rollout command; it finished (exit 0, or 4 when some samples failed or are
    invalid, as every run command)."""
    res = CliRunner().invoke(app, ["rollout", kind, "--config", str(cfg), "--quiet", "--json",
                                   *args])
    assert res.exit_code in (0, 4), (res.exit_code, res.output, res.exception)
    out = json.loads(res.stdout[res.stdout.index("{"):])
    assert (res.exit_code == 4) == (out["status"] == "completed_with_failures"), out
    return out


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
