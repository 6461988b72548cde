"""`infbench merge-results` and `infbench score`: results files merged per run id, and
predicted patches compared with the infbench ground truth.

Score, per instance (the first choice when a line holds several): `exact` when the patch
equals the ground truth after whitespace is normalised (runs of blanks made one, blank lines
dropped); `similarity`, difflib's ratio between the sequences of changed (+/-) lines of the
two (headers left out, whitespace normalised; 1.0 when both change nothing). Grouped per
model, T=, n= folder and run id; an instance counted once per group.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from benchsmith.errors import ConfigError
from benchsmith.infbench_results import read_numbered, read_results, results_folder
from benchsmith.recipes.edit_predict.patches import changed_lines, normalised
from benchsmith.sources.editbench import names
from benchsmith.sources.rows import iter_file
from benchsmith.store.rundir import atomic_write_jsonl


@dataclass(frozen=True)
class MergeReport:
    out: Path
    files: int
    lines: int
    duplicates: dict[str, int]  # instance id -> lines dropped (the first line is kept)
    notes: tuple[str, ...] = ()  # lines of the inputs that are not results (left out)


def merge_results(results_dir: Path, model: str, temperature: float, n: int, run_id: str,
                  repos: list[str] | None = None, force: bool = False) -> MergeReport:
    """Merge `{owner-repo}-task-instances_{run_id}.jsonl` of one T=/n= folder into
    `all-task-instances_{run_id}.jsonl` (atomic write); the first line of an id is kept."""
    names.check_run_id(run_id)
    folder = results_folder(results_dir, model, temperature, n)
    out = folder / f"all{names.MARK}{run_id}.jsonl"
    if repos:
        files = [folder / f"{names.repo_slug(r)}{names.MARK}{run_id}.jsonl" for r in repos]
        for f in files:
            if not f.is_file():
                raise ConfigError(str(f), "--repos", "no results file for this repository")
    else:
        files = sorted(p for p in folder.glob(f"*{names.MARK}{run_id}.jsonl")
                       if p != out and (names.split_name(p) or ("", ""))[1] == run_id)
    if not files:
        raise ConfigError(str(folder), "--run-id", f"no per-repository results files of run "
                          f"id {run_id} here; check --model-name, --temperature and --n")
    if out.exists() and not force:
        raise ConfigError(str(out), "", "already exists; pass --force to replace it")
    rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    dups: dict[str, int] = {}
    notes: list[str] = []
    for f in files:
        got, more = read_results(f)
        notes += more
        for r in got:
            iid = r["instance_id"]
            if iid in seen:
                dups[iid] = dups.get(iid, 0) + 1
                continue
            seen.add(iid)
            rows.append(r)
    atomic_write_jsonl(out, rows)
    return MergeReport(out, len(files), len(rows), dups, tuple(notes))


@dataclass(frozen=True)
class ScoreRow:
    model: str
    temperature: str
    n: str
    run_id: str
    instances: int
    exact_pct: float
    mean_similarity: float
    empty_patches: int
    no_ground_truth: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def similarity(pred: str, truth: str) -> float:
    a, b = changed_lines(pred), changed_lines(truth)
    if not a and not b:
        return 1.0
    return difflib.SequenceMatcher(None, a, b, autojunk=False).ratio()


def exact(pred: str, truth: str) -> bool:
    return normalised(pred) == normalised(truth)


def _truths(infbench_dir: Path, stem: str, run_id: str, cache: dict[Path, dict[str, str]]
            ) -> dict[str, str]:
    """instance id -> ground truth, from the infbench file of the same name, else the `all`
    file of the run id; a ConfigError when neither exists or a row is not an infbench row."""
    looked = (infbench_dir / f"{stem}.jsonl", infbench_dir / f"all{names.MARK}{run_id}.jsonl")
    for path in looked:
        if path in cache:
            return cache[path]
        if path.is_file():
            truths: dict[str, str] = {}
            for ln, r in iter_file(path, "--infbench-dir"):
                iid, truth = r.get("instance_id"), r.get("ground_truth")
                where = f"{path}: line {ln}" + (f" ({iid})" if isinstance(iid, str) else "")
                if not isinstance(iid, str) or not isinstance(truth, str):
                    field = "instance_id" if not isinstance(iid, str) else "ground_truth"
                    raise ConfigError(where, field, "missing or not a string: not an "
                                      "infbench row; rebuild the file with `infbench build`")
                truths[iid] = truth
            cache[path] = truths
            return truths
    raise ConfigError(str(looked[0]), "--infbench-dir", f"not found (nor {looked[1].name}): "
                      "no ground truth for these results; give the folder of the infbench "
                      "files they were run on")


def _first(value: Any) -> str:
    if isinstance(value, list):
        value = value[0] if value else ""
    return value if isinstance(value, str) else ""


def _patch(path: Path, ln: int, r: dict[str, Any]) -> str:
    """The first choice of a results line's model_patch; a ConfigError when it is not one."""
    value = r.get("model_patch", None)
    ok = isinstance(value, str) or (
        isinstance(value, list) and all(isinstance(v, str) for v in value))
    if not ok:
        problem = "missing" if "model_patch" not in r else (
            f"must be a diff string (or a list of them), got {type(value).__name__}")
        raise ConfigError(f"{path}: line {ln} ({r['instance_id']})", "model_patch",
                          f"{problem}; remove the line (`infbench run` then asks that "
                          "instance again)")
    return _first(value)


def score(results_dir: Path, infbench_dir: Path, models: list[str] | None = None,
          run_ids: list[str] | None = None,
          note: Callable[[str], None] | None = None) -> list[ScoreRow]:
    """One row per model, T=, n= and run id; `note` hears of lines that are not results
    (not scored)."""
    if not results_dir.is_dir():
        raise ConfigError(str(results_dir), "--results-dir", "no results folder here")
    if not infbench_dir.is_dir():
        raise ConfigError(str(infbench_dir), "--infbench-dir", "folder not found: give the "
                          "folder of the infbench files holding the ground truth")
    groups: dict[tuple[str, str, str, str], dict[str, tuple[str, str | None]]] = {}
    cache: dict[Path, dict[str, str]] = {}
    for path in sorted(results_dir.rglob(f"*{names.MARK}*.jsonl")):
        rel = path.relative_to(results_dir).parts
        if len(rel) < 4 or not rel[-3].startswith("T=") or not rel[-2].startswith("n="):
            continue
        model = "/".join(rel[:-3])
        parts = names.split_name(path)
        if parts is None or (models and model not in models) or (
                run_ids and parts[1] not in run_ids):
            continue
        truths = _truths(infbench_dir, names.stem_of(path), parts[1], cache)
        group = groups.setdefault((model, rel[-3][2:], rel[-2][2:], parts[1]), {})
        numbered, notes = read_numbered(path)
        for text in notes if note else ():
            note(text.replace("kept as it is", "not scored").replace(
                ", its instance is asked again", ""))
        for ln, r in numbered:
            group.setdefault(r["instance_id"], (_patch(path, ln, r),
                                                truths.get(r["instance_id"])))
    if not groups and (models or run_ids):
        wanted = " ".join(f"--{k} {' '.join(v)}" for k, v in
                          (("model", models), ("run-id", run_ids)) if v)
        raise ConfigError(str(results_dir), "", f"no results file for {wanted} "
                          "(results are {model}/T=*/n=*/*-task-instances_{run_id}.jsonl)")
    out = []
    for (model, t, n, rid), items in sorted(groups.items()):
        scored = [(p, g) for p, g in items.values() if g is not None]
        k = len(scored)
        out.append(ScoreRow(
            model, t, n, rid, len(items),
            round(100.0 * sum(exact(p, g) for p, g in scored) / k, 2) if k else 0.0,
            round(sum(similarity(p, g) for p, g in scored) / k, 4) if k else 0.0,
            sum(not p.strip() for p, _g in items.values()),
            len(items) - k,
        ))
    return out
