"""The plans recipe's run checks: `plans_per_task`, `schema` and `unique_ids` of every
plans.jsonl (the recipe declares them; validate-run runs what the recipe declares)."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

from benchsmith.recipes.plans.options import PlansOptions
from benchsmith.recipes.plans.rules import check_plans, plan_schema
from benchsmith.validate.run_checks.base import DATASETS_UNKNOWN, Outcome, Problems, h, no_ledger
from benchsmith.validate.run_checks.loader import Jsonl, Run
from benchsmith.recipes.schema import validate_instance

STAGE = "plans"

PLAN_META = {
    "dataset": "string",
    "task_id": "string",
    "request_id": "string",
    "model": "string",
    "plan_id": "string",
    "call_index": "integer",
    "plan_index": "integer",
    "attempt": "integer",
}


def plans_path(run: Run, ds: str) -> Path:
    return run.rd.dataset_file(ds, f"{STAGE}.jsonl")


def _plan_counts(run: Run, pc: PlansOptions) -> dict[str, int] | Outcome:
    """The counts the plans are checked against, or the outcome of a check that cannot run."""
    if run.ledger is None:
        return no_ledger(DATASETS_UNKNOWN)
    return {"calls_per_task": pc.calls_per_task, "plans_per_call": pc.plans_per_call,
            "min_steps": pc.min_steps}


def _plans_files(run: Run) -> dict[str, Jsonl | None]:
    return {ds: run.jsonl(plans_path(run, ds)) for ds in run.datasets()}


def check_plans_per_task(run: Run, options: PlansOptions) -> Outcome:
    pc = _plan_counts(run, options)
    if isinstance(pc, tuple):
        return pc
    want = pc["calls_per_task"] * pc["plans_per_call"]
    slots = {(c, j) for c in range(pc["calls_per_task"]) for j in range(pc["plans_per_call"])}
    p = Problems()
    n_complete = 0
    for ds, plans in _plans_files(run).items():
        mpath = run.rd.manifest(ds, "complete")
        ok, complete, prob = run.json(mpath)
        if not ok:
            p.add(prob)
            continue
        if not isinstance(complete, list):
            p.add(f"{run.rel(mpath)}: not a JSON list")
            continue
        plans_rel = run.rel(plans_path(run, ds))
        if plans is None:
            p.add(run.missing(plans_path(run, ds)))
            continue
        per_task: dict[Any, list[tuple[Any, Any]]] = defaultdict(list)
        for _, row in plans.rows:
            slot = (h(row.get("call_index")), h(row.get("plan_index")))
            per_task[h(row.get("task_id"))].append(slot)
        for tid in complete:
            n_complete += 1
            got = per_task.get(h(tid), [])
            if len(got) != want:
                p.add(
                    f"{ds}/{tid}: {len(got)} plans in {plans_rel}, expected {want} "
                    f"({pc['calls_per_task']} calls x {pc['plans_per_call']} plans)",
                    "complete task with the wrong number of plans",
                )
            elif set(got) != slots:
                missing = sorted(slots - set(got))
                p.add(
                    f"{ds}/{tid}: (call_index, plan_index) slots missing: {missing[:5]}",
                    "complete task with missing plan slots",
                )
    detail = f"{n_complete} complete task(s), {want} plans each expected"
    return detail, p.finish()


def _row_schema(pc: dict[str, int]) -> dict[str, Any]:
    """A plans.jsonl row: the metadata keys plus one plan item of the recipe's answer schema."""
    item = plan_schema(pc["plans_per_call"], pc["min_steps"])["properties"]["plans"]["items"]
    props = {k: {"type": t} for k, t in PLAN_META.items()}
    props.update(item["properties"])
    return {"type": "object", "required": [*PLAN_META, *item["required"]], "properties": props}


def _row_issues(
    row: dict[str, Any], ds: str, schema: dict[str, Any], pc: dict[str, int]
) -> list[str]:
    issues = validate_instance(row, schema)
    if issues:
        return issues
    plan = {"title": row["title"], "summary": row["summary"], "steps": row["steps"]}
    issues = [i.replace("plans[0].", "") for i in check_plans([plan], 1, pc["min_steps"])]
    if row["dataset"] != ds:
        issues.append(f"dataset is {row['dataset']!r}, file belongs to {ds!r}")
    if not 0 <= row["call_index"] < pc["calls_per_task"]:
        issues.append(f"call_index {row['call_index']} outside 0..{pc['calls_per_task'] - 1}")
    if not 0 <= row["plan_index"] < pc["plans_per_call"]:
        issues.append(f"plan_index {row['plan_index']} outside 0..{pc['plans_per_call'] - 1}")
    if row["attempt"] < 1:
        issues.append(f"attempt {row['attempt']} is not a 1-based call number")
    return issues


def _check_failed_rows(run: Run, p: Problems, ds: str) -> int:
    """Problems of failed_plans/datasets/<ds>/plans.jsonl; the number of rows read."""
    fpath = run.rd.failed_file(ds, f"{STAGE}.jsonl")
    failed = run.jsonl(fpath)
    if failed is None:
        p.add(run.missing(fpath))
        return 0
    for line, row in failed.rows:
        where = f"{run.rel(fpath)}:{line}"
        ve = row.get("validation_error")
        if not isinstance(ve, str) or not ve.strip():
            p.add(
                f"{where}: validation_error missing or empty",
                "failed plan row without validation_error",
            )
        if not isinstance(row.get("raw_output"), str):
            p.add(
                f"{where}: raw_output missing or not a string",
                "failed plan row without raw_output",
            )
    return len(failed.rows)


def check_schema(run: Run, options: PlansOptions) -> Outcome:
    pc = _plan_counts(run, options)
    if isinstance(pc, tuple):
        return pc
    schema = _row_schema(pc)
    p = Problems()
    n_plans = n_failed = 0
    for ds, plans in _plans_files(run).items():
        path = plans_path(run, ds)
        if plans is None:
            p.add(run.missing(path))
        else:
            for line, row in plans.rows:
                n_plans += 1
                for issue in _row_issues(row, ds, schema, pc):
                    p.add(f"{run.rel(path)}:{line}: {issue}", "invalid plan row")
        n_failed += _check_failed_rows(run, p, ds)
    return f"{n_plans} plan row(s), {n_failed} failed row(s)", p.finish()


def _repeats(p: Problems, what: str, where: list[str], scope: str, kind: str) -> None:
    if len(where) > 1:
        p.add(f"{what} appears {len(where)} times{scope} ({', '.join(where[:5])})", kind)


def check_unique(run: Run) -> Outcome:
    """Plan ids are unique within a dataset (datasets may share task ids, hence plan ids);
    (request_id, plan_index) is unique across the run (request ids include the dataset)."""
    if run.ledger is None:
        return no_ledger(DATASETS_UNKNOWN)
    p = Problems()
    ids: dict[tuple[str, Any], list[str]] = defaultdict(list)
    slots: dict[tuple[Any, Any], list[str]] = defaultdict(list)
    files = _plans_files(run)
    for ds, plans in files.items():
        if plans is None:
            p.add(run.missing(plans_path(run, ds)))
            continue
        for line, row in plans.rows:
            where = f"{ds}:{line}"
            ids[(ds, h(row.get("plan_id")))].append(where)
            slots[(h(row.get("request_id")), h(row.get("plan_index")))].append(where)
    for (ds, pid), where in ids.items():
        _repeats(p, f"plan id {pid!r}", where, f" in dataset {ds}", "duplicate plan id")
    for (rid, j), where in slots.items():
        _repeats(
            p,
            f"(request_id {rid}, plan_index {j})",
            where,
            "",
            "duplicate (request_id, plan_index)",
        )
    return f"{len(ids)} distinct plan id(s) in {len(files)} dataset(s)", p.finish()
