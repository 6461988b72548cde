"""Trajectory entries (one per attempt) from a benchsmith bug-fixer run or SWE-agent `.traj`
files, each with a SWE-bench harness evaluation report saying which attempts resolved.

Bug-fixer run (`benchsmith rollout bugfix`): every sample of `output.jsonl` whose repair
stage answered is an attempt, `attempt` = sample index + 1 (the N of its custom id
`<instance>__pass<N>`). A sample with a patch is labelled as `harness_eval` says: the
run report is about `preds.jsonl` (the first good sample per instance, as exported); a
harness log folder whose `patch.diff` is a sample's patch labels that sample — so evaluating
each `preds_pass<N>.jsonl` with its own harness run id, and giving `eval_dir` above those
runs, labels every sample. Samples nothing evaluated are left out (counted in `skipped`). A
sample whose answer gave no usable patch (status invalid) is a failed attempt with patch "".
Samples that never got an answer (failed calls, over the context budget, pending) are no
attempt. Problem statement and repo come from the run's tasks (its ledger), as loaded.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from benchsmith.errors import ConfigError
from benchsmith.finetune.harness_eval import NO_PATCH, Adapted, read_evaluations
from benchsmith.finetune.swe_agent import adapt_swe_agent
from benchsmith.recipe_of import recipe_of_run
from benchsmith.store.rundir import RunDir, existing_run_dir, open_existing_run

# What this adapter reads of a run: its samples and its SWE-bench predictions. The run's
# recipe says whether it writes them (a bug fixer's does), not its name.
RUN_FILES = ("output.jsonl", "preds.jsonl")
_ROW_FIELDS = {"instance_id": str, "sample": int, "status": str, "localized_files": list}


def entries_from_run(run_dir: Path, report: Path, eval_dir: Path | None = None
                     ) -> list[dict[str, Any]]:
    """Trajectory entries of a bug-fixer run's attempts (see the module docstring)."""
    return adapt_run(run_dir, report, eval_dir).entries


def entries_from_swe_agent(traj_dir: Path, report: Path, eval_dir: Path | None = None
                           ) -> list[dict[str, Any]]:
    """Trajectory entries of SWE-agent `.traj` files (see `finetune.swe_agent`)."""
    return adapt_swe_agent(traj_dir, report, eval_dir).entries


def adapt_run(run_dir: Path, report: Path, eval_dir: Path | None = None) -> Adapted:
    rd = existing_run_dir(run_dir)
    _check_bugfix(rd)
    rows = _sample_rows(rd.root / "output.jsonl")
    tasks = _tasks(rd.root)
    preds = _predictions(rd.root / "preds.jsonl")
    out_file = rd.root / "output.jsonl"
    for n, r in rows:
        if r["instance_id"] not in tasks:
            raise ConfigError(str(out_file), f"line {n}: instance_id",
                              f"{r['instance_id']} is not a task of the run's ledger")
    ids = {r["instance_id"] for _, r in rows}
    evals = read_evaluations(report, preds, ids, f"the run's preds.jsonl ({rd.root})", eval_dir)

    entries: list[dict[str, Any]] = []
    skipped: Counter[str] = Counter()
    for _, r in sorted(rows, key=lambda nr: (nr[1]["instance_id"], nr[1]["sample"])):
        iid, status = r["instance_id"], r["status"]
        patch = r.get("model_patch") or ""
        if status not in ("ok", "invalid"):
            skipped[f"rollout {status}"] += 1  # no answer: not an attempt of the model
            continue
        label = (evals.label(iid, patch, submitted=preds.get(iid) == patch)
                 if status == "ok" and patch else NO_PATCH)
        if label is None:
            skipped["not evaluated"] += 1
            continue
        task = tasks[iid]
        entries.append({
            "instance_id": iid,
            "repo": task["repo"],
            "problem_statement": task["problem_statement"],
            "patch": patch,
            "resolved": label.resolved,
            "attempt": r["sample"] + 1,
            "failure_category": None,
            "test_stdout": label.test_stdout,
            "localised_files": list(r["localized_files"]),
            "source": f"benchsmith-run:{rd.root}",
            "run_id": rd.run_id,
            "custom_id": r.get("custom_id"),
            "model": r.get("model"),
            "rollout_status": status,
            "rollout_reason": r.get("reason"),
            "evaluation": label.evaluation,
        })
    return Adapted(entries, dict(sorted(skipped.items())))


def _check_bugfix(rd: RunDir) -> None:
    recipe = recipe_of_run(rd.root, rd.config_json)
    missing = [f for f in RUN_FILES if f not in recipe.outputs]
    if missing:
        raise ConfigError(str(rd.config_json), "recipe",
                          f"is {recipe.name!r}, whose runs write no {' or '.join(missing)}: "
                          "only a bug-fixer run (`benchsmith rollout bugfix`) has patches to "
                          "learn from")


def _json_lines(path: Path, missing: str | None) -> Iterator[tuple[int, Any]]:
    """(line number, value) of each line of a JSONL file; a missing file: no line, or a
    ConfigError saying `missing`."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        if missing is None:
            return
        raise ConfigError(str(path), "", missing) from None
    except OSError as e:
        raise ConfigError(str(path), "", f"cannot read: {e.strerror or e}") from None
    for n, line in enumerate(raw.splitlines(), 1):
        if not line.strip():
            continue
        try:
            value = orjson.loads(line)
        except orjson.JSONDecodeError as e:
            raise ConfigError(str(path), f"line {n}", f"not valid JSON ({e})") from None
        yield n, value


def _sample_rows(path: Path) -> list[tuple[int, dict[str, Any]]]:
    rows = []
    for n, r in _json_lines(path, "missing: the run wrote no outputs yet; finish it (or "
                            "resume it) first"):
        if not isinstance(r, dict):
            raise ConfigError(str(path), f"line {n}", "not a JSON object")
        for key, typ in _ROW_FIELDS.items():
            v = r.get(key)
            if not isinstance(v, typ) or isinstance(v, bool):
                raise ConfigError(str(path), f"line {n}: {key}",
                                  f"missing or not a {typ.__name__}: not a rollout output row")
        if r.get("model_patch") is not None and not isinstance(r["model_patch"], str):
            raise ConfigError(str(path), f"line {n}: model_patch", "must be a string or null")
        rows.append((n, r))
    return rows


def _tasks(run_root: Path) -> dict[str, dict[str, str]]:
    """instance id -> problem statement and repo, from the ledger's tasks (read only)."""
    _, ledger = open_existing_run(run_root)
    try:
        out: dict[str, dict[str, str]] = {}
        for t in ledger.tasks():
            entry = {"problem_statement": t.primary, "repo": str(t.context.get("repo") or "")}
            if out.setdefault(t.id, entry) != entry:
                raise ConfigError(str(run_root), "datasets",
                                  f"two datasets hold {t.id} with different texts; run one "
                                  "dataset per run to build fine-tuning data from it")
        return out
    finally:
        ledger.close()


def _predictions(path: Path) -> dict[str, str]:
    """preds.jsonl: instance id -> its patch (none when no sample gave one)."""
    out: dict[str, str] = {}
    for n, p in _json_lines(path, None):
        iid = p.get("instance_id") if isinstance(p, dict) else None
        patch = p.get("model_patch") if isinstance(p, dict) else None
        if not isinstance(iid, str) or not isinstance(patch, (str, type(None))):
            raise ConfigError(str(path), f"line {n}",
                              "expected a SWE-bench prediction {instance_id, model_name_or_path, "
                              "model_patch}")
        if patch:
            out[iid] = patch
    return out
