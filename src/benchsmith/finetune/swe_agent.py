"""Trajectory entries from SWE-agent `.traj` files and a SWE-bench harness report.

A `.traj` file is the JSON SWE-agent writes per instance (`<instance_id>/<instance_id>.traj`
since 1.0, `<instance_id>.traj` before): `trajectory` (the steps: thought, action,
observation), `history` (the messages), `info` (`submission`: the patch, `exit_status`,
`model_stats`) and, since 1.0, `replay_config` (a JSON string holding `problem_statement`).
The instance id is the file name without `.traj`, as SWE-agent names it.

One trajectory is one attempt (`attempt` 1): a folder holding two trajectories of an
instance (two runs) is refused, since the harness evaluates one prediction per instance.
The patch is `info.submission` without the blank lines SWE-agent puts before it; it is
labelled as `harness_eval` says (the run report is about SWE-agent's `preds.json`, whose
patches are the submissions). The problem statement is `replay_config`'s, else the
issue text of the first user message that is not a demonstration (SWE-agent 0.7's
`ISSUE:` ... `INSTRUCTIONS:`, 1.x's `<pr_description>`), else that whole message. The repo
is the instance's GitHub repo from `replay_config`, else from the SWE-bench id
(`<owner>__<name>-<number>`). SWE-agent has no localisation stage: `localised_files` is
empty.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any

import orjson

from benchsmith.errors import ConfigError
from benchsmith.finetune.harness_eval import NO_PATCH, Adapted, read_evaluations, read_json

_TRAJ_SHAPE = "expected a SWE-agent trajectory {trajectory, history, info}"
# The instance templates put the issue text between these, as is.
_ISSUE_07 = re.compile(r"ISSUE:\n(.*)\n\nINSTRUCTIONS:", re.S)
_ISSUE_1X = re.compile(r"<pr_description>\n(.*)\n</pr_description>", re.S)
_GITHUB = re.compile(r"github\.com[/:]([^/\s]+)/([^/\s]+?)(?:\.git)?/?$")
_SWE_BENCH_ID = re.compile(r"^(?P<owner>.+?)__(?P<name>.+)-\d+$")


def adapt_swe_agent(traj_dir: Path, report: Path, eval_dir: Path | None = None) -> Adapted:
    trajs = _trajectories(Path(traj_dir))
    submitted = {iid: t["raw_patch"] for iid, t in trajs.items() if t["raw_patch"]}
    evals = read_evaluations(report, submitted, set(trajs), f"the trajectories in {traj_dir}",
                             eval_dir)
    entries: list[dict[str, Any]] = []
    skipped: Counter[str] = Counter()
    for iid, t in sorted(trajs.items()):
        label = evals.label(iid, t["raw_patch"], submitted=True) if t["patch"] else NO_PATCH
        if label is None:
            skipped["not evaluated"] += 1
            continue
        entries.append({
            "instance_id": iid,
            "repo": t["repo"],
            "problem_statement": t["problem_statement"],
            "patch": t["patch"],
            "resolved": label.resolved,
            "attempt": 1,
            "failure_category": None,
            "test_stdout": label.test_stdout,
            "localised_files": [],
            "source": f"swe-agent:{t['file']}",
            "exit_status": t["exit_status"],
            "evaluation": label.evaluation,
        })
    return Adapted(entries, dict(sorted(skipped.items())))


def _trajectories(root: Path) -> dict[str, dict[str, Any]]:
    if root.is_file() and root.suffix == ".traj":
        files = [root]
    elif root.is_dir():
        files = sorted(root.rglob("*.traj"))
    else:
        raise ConfigError(str(root), "", "not a folder of SWE-agent .traj files")
    if not files:
        raise ConfigError(str(root), "", "no .traj file under it; expected SWE-agent's output "
                          "folder (<instance_id>/<instance_id>.traj)")
    out: dict[str, dict[str, Any]] = {}
    for f in files:
        t = read_trajectory(f)
        iid = f.name.removesuffix(".traj")
        if iid in out:
            raise ConfigError(str(f), "", f"a second trajectory of {iid} (the first: "
                              f"{out[iid]['file']}); give one SWE-agent run's folder")
        out[iid] = t
    return out


def read_trajectory(path: Path) -> dict[str, Any]:
    """The parts of one `.traj` file an entry needs; one-line errors naming the field."""
    data = read_json(path, _TRAJ_SHAPE.removeprefix("expected "))
    where = str(path)
    if not isinstance(data, dict):
        raise ConfigError(where, "", f"not a JSON object; {_TRAJ_SHAPE}")
    info = data.get("info")
    if not isinstance(info, dict):
        raise ConfigError(where, "info", f"missing or not an object; {_TRAJ_SHAPE}")
    if not isinstance(data.get("trajectory"), list):
        raise ConfigError(where, "trajectory", f"missing or not a list; {_TRAJ_SHAPE}")
    history = data.get("history", [])
    if not isinstance(history, list):
        raise ConfigError(where, "history", "must be a list of messages")
    sub = info.get("submission")
    if sub is not None and not isinstance(sub, str):
        raise ConfigError(where, "info.submission", "must be the patch (a string) or null")
    exit_status = info.get("exit_status")
    replay = _replay_config(data.get("replay_config"), where)
    iid = path.name.removesuffix(".traj")
    return {
        "file": where,
        "raw_patch": sub or "",
        # SWE-agent puts a newline (or CRLF) before the diff
        "patch": (sub or "").lstrip("\r\n"),
        "exit_status": exit_status if isinstance(exit_status, str) else None,
        "problem_statement": _problem_statement(data, replay, history, where),
        "repo": _repo(replay, iid),
    }


def _replay_config(rc: Any, where: str) -> dict[str, Any]:
    if isinstance(rc, str):
        try:
            rc = orjson.loads(rc)
        except orjson.JSONDecodeError as e:
            raise ConfigError(where, "replay_config", f"not valid JSON ({e})") from None
    return rc if isinstance(rc, dict) else {}


def _problem_statement(data: dict[str, Any], replay: dict[str, Any], history: list[Any],
                       where: str) -> str:
    for ps in (replay.get("problem_statement"), data.get("problem_statement")):
        if isinstance(ps, str) and ps.strip():
            return ps
        if isinstance(ps, dict) and isinstance(ps.get("text"), str) and ps["text"].strip():
            return ps["text"]
    for i, msg in enumerate(history):
        if not isinstance(msg, dict):
            raise ConfigError(where, f"history[{i}]", "must be a message object")
        if msg.get("role") != "user" or msg.get("is_demo"):
            continue
        text = _content_text(msg.get("content"))
        for rx in (_ISSUE_07, _ISSUE_1X):
            m = rx.search(text)
            if m:
                return m.group(1)
        return text
    return ""


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # [{"type": "text", "text": ...}, ...]
        return "\n".join(p["text"] for p in content
                         if isinstance(p, dict) and isinstance(p.get("text"), str))
    return ""


def _repo(replay: dict[str, Any], iid: str) -> str:
    env = replay.get("env")
    repo = env.get("repo") if isinstance(env, dict) else None
    url = repo.get("github_url") if isinstance(repo, dict) else None
    if isinstance(url, str):
        m = _GITHUB.search(url)
        if m:
            return f"{m.group(1)}/{m.group(2)}"
    m = _SWE_BENCH_ID.match(iid)
    return f"{m.group('owner')}/{m.group('name')}" if m else ""
