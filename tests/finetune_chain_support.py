"""A bug-fixer rollout over real SWE-bench Lite instances, and its hand-written evaluation.

Four Lite instances (each gold patch touches one file). Their repository structures are
Agentless structure files written here: the gold file holds the pre-image of the gold
patch's hunks (context and removed lines), so SEARCH/REPLACE edits made from the gold patch
apply. The test server answers like a model: stage 1 names the gold file; the k-th
stage-2 request of an instance gets the k-th answer of its plan (samples of an instance send
identical requests, so which sample gets which answer is not fixed: expectations are read
from each output row's own answer). Plans, by instance:

    A astropy__astropy-12907  gold edit, wrong edit       -> one resolved, one unresolved
    B django__django-11099    gold edit (both samples)    -> both resolved (same patch)
    C pytest-dev__pytest-5227 wrong edit, bad edit        -> harness error, no patch
    D sympy__sympy-20590      bad edit (both)             -> no patch (empty prediction)

A "wrong" edit applies but is not the fix; a "bad" edit's SEARCH text is not in the file.
The evaluation is written as the SWE-bench harness writes it: a run report for preds.jsonl
and per-instance log folders (`logs/run_evaluation/<run_id>/<model>/<instance_id>/`), plus
a second harness run over preds_pass2.jsonl for A.
"""

from __future__ import annotations

import gzip
import json
import re
import threading
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from fake_openai import FakeOpenAI, Received, Reply
from finetune_logs import INSTANCE_LOG_HUNK_FAILED, PYTEST_ASSERT, PYTEST_PASS, harness_output
from helpers import request_messages, write_yaml
from rollouts_support import rollout, stage_of

from benchsmith.sources.repo_structure.agentless_json import structure_to_json
from benchsmith.sources.repo_structure.model import FileEntry, RepoStructure

LITE = (Path(__file__).resolve().parents[1].parent / "shared" / "data" / "swebench_lite"
        / "swebench_lite_test.jsonl.gz")
A, B, C, D = ("astropy__astropy-12907", "django__django-11099", "pytest-dev__pytest-5227",
              "sympy__sympy-20590")
PLAN = {A: ["gold", "wrong"], B: ["gold", "gold"], C: ["wrong", "bad"], D: ["bad", "bad"]}
MODEL_NAME = "org/fixer-7b"  # model_name_or_path of the predictions
HARNESS_RUN, HARNESS_RUN_2 = "fix1", "fix1-pass2"
BAD_SEARCH = "def no_such_function_in_this_file():\n    return None\n"


def lite_rows() -> dict[str, dict[str, Any]]:
    with gzip.open(LITE, "rt", encoding="utf-8") as f:
        return {r["instance_id"]: r for r in map(json.loads, f)}


def gold_hunks(patch: str) -> tuple[str, list[tuple[str, str]]]:
    """(path, [(pre-image, post-image) per hunk]) of a one-file unified diff."""
    (path,) = re.findall(r"^diff --git a/(\S+) ", patch, re.M)
    hunks: list[tuple[str, str]] = []
    for body in re.split(r"^@@ [^\n]*@@[^\n]*\n", patch, flags=re.M)[1:]:
        old, new = [], []
        for line in body.split("\n"):
            if line.startswith("diff --git"):
                break
            tag, text = line[:1], line[1:]
            if tag in (" ", "-"):
                old.append(text)
            if tag in (" ", "+"):
                new.append(text)
        hunks.append(("".join(t + "\n" for t in old), "".join(t + "\n" for t in new)))
    return path, hunks


def file_text(hunks: list[tuple[str, str]]) -> str:
    """The gold file as the structure holds it: the hunks' pre-images, kept apart."""
    return "\n# ...\n\n".join(old for old, _ in hunks)


def answer(path: str, hunks: list[tuple[str, str]], kind: str) -> str:
    """A repair answer with SEARCH/REPLACE edits: the gold change, another change that
    applies, or an edit whose SEARCH text is not in the file."""
    if kind == "gold":
        pairs = hunks
    elif kind == "wrong":
        old = hunks[0][0]
        pairs = [(old, old + "# TODO: handle this case as well\n")]
    else:
        pairs = [(BAD_SEARCH, BAD_SEARCH.replace("None", "0"))]
    edits = "".join(f"```python\n### {path}\n<<<<<<< SEARCH\n{old}=======\n{new}"
                    ">>>>>>> REPLACE\n```\n\n" for old, new in pairs)
    return f"The fix changes {path}.\n\n{edits}"


class Model:
    """Stage 1: the gold file. Stage 2: the instance's plan, in request order; a re-ask
    (validation error fed back) gets the same answer again."""

    def __init__(self, rows: dict[str, dict[str, Any]]) -> None:
        self.rows = rows
        self.gold = {iid: gold_hunks(rows[iid]["patch"]) for iid in PLAN}
        self.answers = {iid: {k: answer(*self.gold[iid], k) for k in ("gold", "wrong", "bad")}
                        for iid in PLAN}
        self.count: Counter[str] = Counter()
        self.lock = threading.Lock()

    def instance(self, prompt: str) -> str:
        (iid,) = [i for i in PLAN if self.rows[i]["problem_statement"][:200] in prompt]
        return iid

    def script(self, received: Received, index: int) -> Reply:
        msgs = request_messages(received.body)
        prompt = msgs[0]["content"]
        iid = self.instance(prompt)
        if len(msgs) > 1:
            return Reply.text(msgs[1]["content"])
        if stage_of(prompt) == "localize":
            return Reply.text(f"```\n{self.gold[iid][0]}\n```\n")
        with self.lock:
            k = self.count[iid]
            self.count[iid] += 1
        return Reply.text(self.answers[iid][PLAN[iid][k % 2]])

    def kind_of(self, iid: str, repair_answer: str | None) -> str:
        """Which of the instance's answers a sample got (from output.jsonl's row)."""
        (kind,) = [k for k, a in self.answers[iid].items() if a == repair_answer]
        return kind


def structure_files(rows: dict[str, dict[str, Any]], out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    for iid in PLAN:
        r = rows[iid]
        path, hunks = gold_hunks(r["patch"])
        top = path.split("/", 1)[0]
        entries = {path: FileEntry(path, file_text(hunks)),
                   "setup.py": FileEntry("setup.py"), "README.rst": FileEntry("README.rst"),
                   f"{top}/__init__.py": FileEntry(f"{top}/__init__.py", "")}
        st = RepoStructure(r["repo"], r["base_commit"], entries, iid)
        (out / f"{iid}.json").write_text(json.dumps(structure_to_json(st)), encoding="utf-8")
    return out


@dataclass(frozen=True)
class Chain:
    root: Path
    run_dir: Path
    rows: dict[str, dict[str, Any]]  # the real Lite rows of the four instances
    model: Model
    output: list[dict[str, Any]]  # output.jsonl
    preds: dict[str, str]  # preds.jsonl: instance -> patch
    report: Path  # the harness's run report for preds.jsonl
    eval_dir: Path  # logs/run_evaluation

    def kind(self, row: dict[str, Any]) -> str:
        return self.model.kind_of(row["instance_id"], row["repair_answer"])


def run_chain(root: Path) -> Chain:
    rows = lite_rows()
    chosen = {iid: rows[iid] for iid in PLAN}
    (root / "data.jsonl").write_text("".join(json.dumps(chosen[i]) + "\n" for i in PLAN),
                                     encoding="utf-8")
    structure_files(chosen, root / "structures")
    model = Model(chosen)
    with FakeOpenAI() as server:
        server.script = model.script
        cfg = write_yaml(root / "cfg.yaml", {
            "run_dir": str(root / "runs"),
            "recipe": "agentless_bugfix",
            "datasets": {"swebench_lite": {"path": "data.jsonl"}},
            "recipe_options": {"structure_dir": "structures", "passk": 2,
                               "max_validation_retries": 1,
                               "model_name_or_path": MODEL_NAME},
            "model": {"name": "m", "temperature": 0.8},
            "openai": {"base_url": server.base_url, "api": "chat", "api_key_env": None},
            "engine": {"concurrency": 4, "max_retries": 1, "timeout_s": 20,
                       "backoff_base_s": 0.01, "backoff_max_s": 0.05},
            "prices": {"m": {"input": 1.0, "output": 2.0}},
        })
        rollout("bugfix", cfg, "--run-id", "fix")
        assert not server.errors, server.errors
    run_dir = root / "runs" / "fix"
    output = [json.loads(x) for x in (run_dir / "output.jsonl").read_text().splitlines()]
    preds = {p["instance_id"]: p["model_patch"] for p in
             map(json.loads, (run_dir / "preds.jsonl").read_text().splitlines())}
    chain = Chain(root, run_dir, chosen, model, output, preds, root / "unwritten",
                  root / "logs" / "run_evaluation")
    return replace(chain, report=write_evaluation(chain, list(rows)))


def outcome_of_prediction(chain: Chain, iid: str) -> str:
    """What the harness made of preds.jsonl's prediction of `iid` (the test's verdicts)."""
    if iid not in chain.preds:
        return "empty_patch"
    row = next(r for r in chain.output
               if r["instance_id"] == iid and r["model_patch"] == chain.preds[iid])
    if chain.kind(row) == "gold":
        return "resolved"
    return "error" if iid == C else "unresolved"  # C's patch did not apply in the harness


def write_evaluation(chain: Chain, all_ids: list[str]) -> Path:
    """The harness's run report for preds.jsonl (D submitted with an empty patch, as a
    predictions file covering every instance has it) and its log folders; a second harness
    run over preds_pass2.jsonl evaluated A's second sample."""
    outcome = {iid: outcome_of_prediction(chain, iid) for iid in PLAN}
    ids = {k: sorted(i for i, o in outcome.items() if o == k)
           for k in ("resolved", "unresolved", "error", "empty_patch")}
    report = {
        "total_instances": len(all_ids),
        "submitted_instances": len(PLAN),
        "completed_instances": len(ids["resolved"]) + len(ids["unresolved"]),
        "resolved_instances": len(ids["resolved"]),
        "unresolved_instances": len(ids["unresolved"]),
        "empty_patch_instances": len(ids["empty_patch"]),
        "error_instances": len(ids["error"]),
        "completed_ids": sorted(ids["resolved"] + ids["unresolved"]),
        "incomplete_ids": sorted(set(all_ids) - set(PLAN)),
        "empty_patch_ids": ids["empty_patch"],
        "submitted_ids": sorted(PLAN),
        "resolved_ids": ids["resolved"],
        "unresolved_ids": ids["unresolved"],
        "error_ids": ids["error"],
        "schema_version": 2,
    }
    path = chain.root / f"{MODEL_NAME.replace('/', '__')}.{HARNESS_RUN}.json"
    path.write_text(json.dumps(report, indent=4) + "\n", encoding="utf-8")
    for iid, patch in chain.preds.items():
        write_instance_log(chain, HARNESS_RUN, iid, patch, outcome[iid])
    (second,) = [r for r in chain.output if r["instance_id"] == A and r["sample"] == 1]
    kind = chain.kind(second)
    write_instance_log(chain, HARNESS_RUN_2, A, second["model_patch"],
                       "resolved" if kind == "gold" else "unresolved")
    return path


def instance_folder(chain: Chain, harness_run: str, iid: str) -> Path:
    return chain.eval_dir / harness_run / MODEL_NAME.replace("/", "__") / iid


def write_instance_log(chain: Chain, harness_run: str, iid: str, patch: str,
                       outcome: str) -> None:
    d = instance_folder(chain, harness_run, iid)
    d.mkdir(parents=True)
    (d / "patch.diff").write_text(patch, encoding="utf-8")
    if outcome == "error":
        (d / "run_instance.log").write_text(INSTANCE_LOG_HUNK_FAILED.replace(
            "django__django-11099", iid), encoding="utf-8")
        return
    path = gold_hunks(chain.rows[iid]["patch"])[0]
    run = PYTEST_PASS if outcome == "resolved" else PYTEST_ASSERT
    (d / "test_output.txt").write_text(harness_output("/testbed", path, "pytest -rA", run),
                                       encoding="utf-8")
    (d / "report.json").write_text(json.dumps({iid: {
        "patch_is_None": False, "patch_exists": True, "patch_successfully_applied": True,
        "resolved": outcome == "resolved",
        "tests_status": {"FAIL_TO_PASS": {"success": [], "failure": []},
                         "PASS_TO_PASS": {"success": [], "failure": []}},
    }}, indent=4), encoding="utf-8")
