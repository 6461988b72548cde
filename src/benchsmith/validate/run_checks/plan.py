"""The `one_plan` check: every exported file holds the records of one plan, the current one,
and config/plan.json names the ledger's current plan."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from benchsmith.validate.run_checks.base import Outcome, Problems, no_ledger
from benchsmith.validate.run_checks.loader import Run


def _exported(run: Run) -> list[Path]:
    """Files whose rows may name their requests (request_id, or request_ids): the shared
    dataset files and the JSONL files the run's recipe declares in `outputs`."""
    files: list[Path] = []
    for root in run.dataset_roots():
        if root.is_dir():
            files += sorted(root.glob("*/*.jsonl"))
    outputs = run.recipe.outputs if run.recipe is not None else ()
    files += [run.root / n for n in outputs if n.endswith(".jsonl") and (run.root / n).is_file()]
    return files


def _request_ids(row: dict[str, Any]) -> list[Any]:
    if "request_id" in row:
        return [row["request_id"]]
    ids = row.get("request_ids")
    return list(ids) if isinstance(ids, list) else []


def check_one_plan(run: Run) -> Outcome:
    if run.ledger is None:
        return no_ledger()
    db = run.ledger.db
    plans = dict(db.execute("SELECT id, fingerprint FROM plans ORDER BY id").fetchall())
    if not plans:
        return "no plan recorded (a run made before plans were pinned, or a merged run)", []
    cur = max(plans)
    p = Problems()
    ok, val, prob = run.json(run.rd.plan_json)
    if not ok:
        p.add(prob)
    elif not isinstance(val, dict) or val.get("fingerprint") != plans[cur]:
        got = val.get("fingerprint") if isinstance(val, dict) else None
        p.add(f"{run.rel(run.rd.plan_json)}: fingerprint {str(got)[:12]} is not the current "
              f"plan's ({plans[cur][:12]}, plan {cur})")
    plan_of = dict(db.execute("SELECT unit_id, plan FROM units"))
    for path in _exported(run):
        f = run.jsonl(path)
        if f is None:
            continue
        seen: Counter[Any] = Counter()
        for _, row in f.rows:
            for rid in _request_ids(row):
                if isinstance(rid, str) and rid in plan_of:  # unknown ids: matches_ledger
                    seen[plan_of[rid]] += 1
        desc = ", ".join(f"plan {k} ({str(plans.get(k, '?'))[:12]}): {n} row(s)"
                         for k, n in sorted(seen.items(), key=lambda kv: str(kv[0])))
        if len(seen) > 1:
            p.add(f"{run.rel(path)}: holds records of {len(seen)} plans ({desc}); a file holds "
                  "the records of one plan")
        elif seen and cur not in seen:
            p.add(f"{run.rel(path)}: holds records of {desc}, not of the current plan {cur}")
    return f"plan {cur} ({plans[cur][:12]}), {len(plans)} plan(s) recorded", p.finish()
