"""What the edit_predict recipe writes, reports and checks.

- `predictions.jsonl` at the top of the run dir: one row per answered instance in SWE-bench
  prediction shape {instance_id, model_name_or_path, model_patch} (the first choice), from
  the current plan's ok units of each dataset.
- `status`: an `edit_predict:` line (predictions, with a patch, trimmed prompts).
- run check `predictions`: the file holds exactly what the ledger gives.
"""

from __future__ import annotations

from typing import Any

from benchsmith.recipes.base import RunCheck, StatusSummary

PREDICTIONS = "predictions.jsonl"
STAGE = "predict"


def prediction_rows(ledger: Any) -> list[dict[str, Any]]:
    rows = []
    for u in ledger.units(state="ok", stage=STAGE, current_plan=True):
        recs = u.result or []
        if recs:
            rows.append({"dataset": u.dataset, "instance_id": u.task_id,
                         "model_name_or_path": u.model, "model_patch": recs[0]["model_patch"]})
    return rows


def write_outputs(ledger: Any, rd: Any) -> None:
    from benchsmith.store.rundir import atomic_write_jsonl

    atomic_write_jsonl(rd.root / PREDICTIONS, prediction_rows(ledger))


def status(ledger: Any) -> StatusSummary:
    done = patched = trimmed = 0
    for u in ledger.units(state="ok", stage=STAGE, current_plan=True):
        recs = u.result or []
        done += 1
        patched += bool(recs and recs[0]["model_patch"])
        trimmed += bool(u.spec.get("meta", {}).get("dropped_files"))
    line = (f"edit_predict: {done} prediction(s), {patched} with a patch, {trimmed} prompt(s) "
            f"trimmed to fit (see {PREDICTIONS})")
    return StatusSummary({"predictions": done, "with_patch": patched, "trimmed": trimmed},
                         (line,))


def _check(run: Any) -> tuple[str, list[str]]:
    if run.ledger is None:
        return "no ledger", ["ledger.sqlite could not be opened"]
    want = prediction_rows(run.ledger)
    got = run.jsonl(run.root / PREDICTIONS)
    if got is None:
        return "missing", [f"missing {PREDICTIONS}"]
    rows = [r for _line, r in got.rows]
    problems = []
    if rows != want:
        have = {(r.get("dataset"), r.get("instance_id")) for r in rows if isinstance(r, dict)}
        need = {(r["dataset"], r["instance_id"]) for r in want}
        for ds, iid in sorted(need - have):
            problems.append(f"{PREDICTIONS}: {ds}/{iid}: missing (the ledger has an answer)")
        for ds, iid in sorted(have - need, key=str):
            problems.append(f"{PREDICTIONS}: {ds}/{iid}: no answer in the ledger (added)")
        if not problems:
            problems.append(f"{PREDICTIONS}: differs from the ledger (edited or reordered)")
    return f"{len(want)} prediction(s)", problems


check_predictions = RunCheck("predictions", _check)
