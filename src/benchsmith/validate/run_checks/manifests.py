"""The `manifests` check: manifests and tasks.jsonl agree with the ledger's tasks and states."""

from __future__ import annotations

from collections import Counter
from typing import Any

from benchsmith.validate.run_checks.base import Outcome, Problems, h, no_ledger, short
from benchsmith.validate.run_checks.loader import Run

_SAME = "; same ids, other order or repeats"
_KINDS = ("all", "complete", "incomplete")


def _id_diff(want: list[Any], got: list[Any]) -> str:
    """How the id list `got` differs from `want`, for a problem line."""
    w, g = set(want), set(got)
    same = _SAME if w == g else ""
    return f"(missing: {short(w - g) or '-'}; extra: {short(g - w) or '-'}{same})"


def _manifest(run: Run, p: Problems, ds: str, kind: str) -> list[Any] | None:
    """One manifest as a list of task ids, or None (with a problem) when it is not one."""
    path = run.rd.manifest(ds, kind)
    ok, val, prob = run.json(path)
    if not ok:
        p.add(prob)
        return None
    if not isinstance(val, list) or not all(isinstance(x, str) for x in val):
        p.add(f"{run.rel(path)}: not a JSON list of task ids")
        return None
    dups = [x for x, c in Counter(val).items() if c > 1]
    if dups:
        p.add(f"{run.rel(path)}: task ids listed twice: {short(dups)}")
    return val


def _check_config_datasets(run: Run, p: Problems, datasets: list[str]) -> None:
    cfg = run.config
    if cfg is None or not isinstance(cfg.get("datasets"), dict):
        return
    for name in sorted(set(cfg["datasets"]) - set(datasets)):
        p.add(f"dataset {name!r} is in config/run_config.json but has no tasks in the ledger")
    for name in sorted(set(datasets) - set(cfg["datasets"])):
        p.add(f"dataset {name!r} is in the ledger but not in config/run_config.json")


def _check_dataset(run: Run, p: Problems, ds: str, task_states: dict[Any, Any]) -> str:
    """Problems of one dataset's manifests and tasks.jsonl; its summary line."""
    assert run.ledger is not None
    ledger_ids = [t.id for t in run.ledger.tasks(ds)]
    all_m, comp, inc = (_manifest(run, p, ds, kind) for kind in _KINDS)
    all_rel = run.rel(run.rd.manifest(ds, "all"))
    tasks_path = run.rd.dataset_file(ds, "tasks.jsonl")
    tf = run.jsonl(tasks_path)
    if tf is None:
        p.add(run.missing(tasks_path))
    else:
        file_ids = [h(row.get("task_id")) for _, row in tf.rows]
        if file_ids != ledger_ids:
            p.add(
                f"{run.rel(tasks_path)}: task ids differ from the ledger "
                f"{_id_diff(ledger_ids, file_ids)}"
            )
    if all_m is not None and all_m != ledger_ids:
        p.add(f"{all_rel}: differs from the ledger's tasks {_id_diff(ledger_ids, all_m)}")
    want_complete = {
        t for t in ledger_ids if (st := task_states.get((ds, t))) and set(st) == {"ok"}
    }
    if comp is not None and inc is not None:
        c, i = set(comp), set(inc)
        both = c & i
        if both:
            p.add(f"{ds}: tasks both complete and incomplete: {short(both)}")
        if all_m is not None and (c | i) != set(all_m):
            p.add(
                f"{ds}: complete + incomplete manifests != {all_rel} "
                f"(not listed: {short(set(all_m) - c - i) or '-'}; "
                f"unknown: {short((c | i) - set(all_m)) or '-'})"
            )
    if comp is not None and set(comp) != want_complete:
        wrong = set(comp) - want_complete
        left = want_complete - set(comp)
        p.add(
            f"{run.rel(run.rd.manifest(ds, 'complete'))}: differs from the ledger "
            f"(listed but not all units ok: {short(wrong) or '-'}; "
            f"all units ok but not listed: {short(left) or '-'})"
        )
    want_inc = set(ledger_ids) - want_complete
    if inc is not None and set(inc) != want_inc:
        p.add(
            f"{run.rel(run.rd.manifest(ds, 'incomplete'))}: differs from the ledger "
            f"(listed but complete or unknown: {short(set(inc) - want_inc) or '-'}; "
            f"incomplete but not listed: {short(want_inc - set(inc)) or '-'})"
        )
    known = set(all_m) if all_m is not None else set(ledger_ids)
    for path in [x for _, *pair in run.stage_files(ds) for x in pair]:
        f = run.jsonl(path)
        if f is None:
            continue  # reported by matches_ledger
        stray = {h(row.get("task_id")) for _, row in f.rows} - known
        if stray:
            p.add(f"{run.rel(path)}: tasks not in {all_rel}: {short(stray)}")
    return f"{ds}: {len(want_complete)}/{len(ledger_ids)} complete"


def check_manifests(run: Run) -> Outcome:
    if run.ledger is None:
        return no_ledger()
    p = Problems()
    task_states = run.ledger.task_states()
    datasets = run.datasets()
    _check_config_datasets(run, p, datasets)
    summary = [_check_dataset(run, p, ds, task_states) for ds in datasets]
    return "; ".join(summary) or "no datasets", p.finish()
