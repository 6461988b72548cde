"""Shared by the prediction-run tests: infbench rows made from real RealisticEditBench rows,
infbench files, a base config for the fake server, answers scripted per instance.

An infbench row is built here as the builder writes it (common contract): the first k steps
are the previous edits, the rest the ground truth; the requirement names the instance (so a
scripted answer can tell instances apart); code context is a complete, line-numbered file
per touched path, plus, for some rows, a fragment with a gap (not complete).
"""

from __future__ import annotations

import gzip
import json
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from benchsmith.cli.app import app
from benchsmith.sources.editbench.prompt import number_lines, render_prompt
from fake_openai import FakeOpenAI, Reply
from helpers import KEY_ENV, SECRET, request_messages, write_yaml

DATA = (Path(__file__).resolve().parents[2]
        / "shared/data/realisticeditbench/work_patch_list_from_patch_histories.jsonl.gz")
_PATH = re.compile(r"^diff --git a/(\S+) b/", re.MULTILINE)
_MARK = re.compile(r"^<requirement>\nFinish (\S+):", re.MULTILINE)


@lru_cache(maxsize=1)
def bench_rows() -> tuple[dict[str, Any], ...]:
    with gzip.open(DATA, "rt", encoding="utf-8") as fh:
        return tuple(json.loads(line) for line in fh)


def pick(n: int, min_steps: int = 3) -> list[dict[str, Any]]:
    """The first n real rows with at least `min_steps` steps, by instance id."""
    rows = sorted((r for r in bench_rows() if r["num_steps"] >= min_steps),
                  key=lambda r: r["instance_id"])
    return rows[:n]


def file_text(instance_id: str, path: str, lines: int) -> str:
    body = [f"# instance {instance_id} file {path}"]
    body += [f"value_{i} = {i}  # {path}" for i in range(1, lines)]
    return "\n".join(body) + "\n"


def infbench_row(row: dict[str, Any], info_pct: float, *, file_lines: int = 12,
                 fragment: bool = False) -> dict[str, Any]:
    steps = row["work_patch_list"]
    n = len(steps)
    k = min(max(int(info_pct * n + 0.5), 1), n - 1)
    truth = "".join(d if d.endswith("\n") else d + "\n" for step in steps[k:] for d in step)
    touched = list(dict.fromkeys(_PATH.findall(truth)))
    files = [{"path": p, "content": number_lines(file_text(row["instance_id"], p, file_lines))}
             for p in touched]
    if fragment:
        files.append({"path": "docs/fragment.txt",
                      "content": "10 some line\n11 another\n...\n40 far away"})
    requirement = (f"Finish {row['instance_id']}: pull request {row['pull_number']} of "
                   f"{row['repo']}.")
    return {
        "instance_id": row["instance_id"], "repo": row["repo"],
        "pull_number": row["pull_number"], "base_commit": None, "info_pct": info_pct,
        "k": k, "n": n, "pre_edits": steps[:k], "ground_truth": truth,
        "ground_truth_files": touched, "requirement": requirement,
        "context_kind": "oracle", "context_files": files, "context_note": "",
        "prompt": render_prompt(requirement, steps[:k], files),
    }


def write_rows(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def instance_of(body: dict[str, Any] | None) -> str | None:
    """The instance a request asks about (its requirement names it)."""
    msgs = request_messages(body)
    m = _MARK.search(str(msgs[0]["content"])) if msgs else None
    return m.group(1) if m else None


def fenced(patch: str) -> str:
    return f"Here is the patch.\n```diff\n{patch}```\nDone."


def answer_by_instance(answers: dict[str, str]) -> Any:
    """A fake-server script: the answer set for the request's instance, else the default."""
    def script(received: Any, _index: int) -> Reply | None:
        iid = instance_of(received.body)
        return Reply.text(answers[iid]) if iid in answers else None
    return script


def asked(server: FakeOpenAI) -> list[str]:
    """Instances the server was asked about (online and in batch input files), in order."""
    out = []
    for r in server.requests:
        if r.path.endswith(("/responses", "/chat/completions")):
            out.append(instance_of(r.body))
    for b in server.batches.values():
        out.extend(instance_of(line["body"]) for line in b.lines)
    return [i for i in out if i]


def invoke(*args: Any) -> Any:
    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.fixture
def ib(tmp_path: Path, fake_openai: FakeOpenAI, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Two infbench files (run ids 0.2 and 0.5) of three real instances, a base config
    pointing at the fake server, and the folders a prediction run writes."""
    monkeypatch.setenv(KEY_ENV, SECRET)
    monkeypatch.chdir(tmp_path)
    rows = pick(3)
    inf = tmp_path / "infbench"
    write_rows(inf / "all-task-instances_0.2.jsonl", [infbench_row(r, 0.2) for r in rows])
    write_rows(inf / "all-task-instances_0.5.jsonl",
               [infbench_row(r, 0.5, fragment=True) for r in rows])
    base = write_yaml(tmp_path / "base.yaml", {
        "openai": {"base_url": fake_openai.base_url, "api_key_env": KEY_ENV},
        "engine": {"max_retries": 2, "backoff_base_s": 0.01, "backoff_max_s": 0.1},
        "batch": {"poll_interval_s": 0.01, "max_poll_interval_s": 0.05},
    })
    return {"tmp": tmp_path, "infbench": inf, "base": base, "rows": rows,
            "ids": [r["instance_id"] for r in rows], "results": tmp_path / "experiment_results",
            "runs": tmp_path / "runs", "server": fake_openai}


def run_args(ib: dict[str, Any], *extra: Any) -> list[Any]:
    return ["infbench", "run", "--infbench-dir", ib["infbench"], "--config", ib["base"],
            "--results-dir", ib["results"], "--runs-dir", ib["runs"], *extra]


def read_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
