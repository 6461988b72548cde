"""Re-check every artifact of a run directory against the ledger and the schemas.

`check_run(run_dir)` returns one `CheckResult` per named check; every check collects all of
its problems instead of stopping at the first. The run directory is never modified: the
ledger is opened with `PRAGMA query_only` and no migration, and the secret scan and the
temp-file check look at the directory as found, before the ledger is opened.

Checks, in order (module in brackets):

- ``ledger`` [ledger]: the ledger opens; every unit is in one known state; terminal non-ok
  units have a reason; ok units have exactly one ok attempt (others none); no attempt is left
  ``sent`` unless its invocation was interrupted or ended on an error such as a full disk
  (both leave attempts ``sent``; resume counts them at their reservation).
- ``plans_per_task`` [plans]: every task of ``<ds>_complete_task_ids.json`` has exactly
  ``calls_per_task * plans_per_call`` plans, one per (call_index, plan_index).
- ``schema`` [plans]: every plan row has the metadata keys and a valid plan (non-empty title
  and summary, at least ``min_steps`` distinct non-empty steps); every failed_plans row has a
  validation_error and the raw output.
- ``unique_ids`` [plans]: no plan id twice within a dataset (datasets may share task ids, so
  a plan id may recur in another dataset); no (request_id, plan_index) twice in the run.
- ``matches_ledger`` [matches]: plans.jsonl, tasks.jsonl and failed_plans/* hold exactly the
  rows the ledger yields (`benchsmith.export.jsonl`): nothing added, lost or edited.
- ``manifests`` [manifests]: task manifests agree with tasks.jsonl and the ledger; complete
  and incomplete split all tasks; complete means every unit of the task is ok.
- ``costs`` [costs]: logs/batch_calls.jsonl has one line per ledger attempt with the ledger's
  usage and cost; each cost is recomputed from the usage and the run's price table (batch
  and ingested attempts at ``batch.price_multiplier``); the totals of the log, runs.jsonl and
  the ledger agree; no invocation spent money past its budget.
- ``one_plan`` [plan]: every exported file (datasets/, failed_plans/datasets/, output.jsonl,
  failures.jsonl) holds the records of one plan, the current one; config/plan.json names the
  ledger's current plan fingerprint. A run with no plan recorded (made before plans were
  pinned, or merged) passes.
- ``files_parse`` [files]: expected files exist, every .json/.jsonl parses, no temp file is
  left.
- ``no_secret`` [files]: the configured key variable is a variable name, and its value (and
  each comma-separated key in it) appears in no file of the run directory.

`base` holds the result type and shared helpers; `loader` reads the run directory.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from benchsmith.errors import ConfigError
from benchsmith.store.rundir import RunDir
from benchsmith.validate.run_checks.base import CheckResult, Outcome
from benchsmith.validate.run_checks.costs import check_costs
from benchsmith.validate.run_checks.files import all_files, check_files, check_secret
from benchsmith.validate.run_checks.ledger import check_ledger
from benchsmith.validate.run_checks.loader import Run
from benchsmith.validate.run_checks.manifests import check_manifests
from benchsmith.validate.run_checks.matches import check_matches_ledger
from benchsmith.validate.run_checks.plan import check_one_plan
from benchsmith.validate.run_checks.plans import check_plans_per_task, check_schema, check_unique

__all__ = ["CHECKS", "CheckResult", "check_run"]

CHECKS = (
    "ledger",
    "plans_per_task",
    "schema",
    "unique_ids",
    "matches_ledger",
    "manifests",
    "costs",
    "one_plan",
    "files_parse",
    "no_secret",
)

_LEDGER_CHECKS: dict[str, Callable[[Run], Outcome]] = {
    "ledger": check_ledger,
    "plans_per_task": check_plans_per_task,
    "schema": check_schema,
    "unique_ids": check_unique,
    "matches_ledger": check_matches_ledger,
    "manifests": check_manifests,
    "costs": check_costs,
    "one_plan": check_one_plan,
}


def _guarded(fn: Callable[[], Outcome]) -> Outcome:
    try:
        return fn()
    except Exception as e:  # noqa: BLE001 - a validator reports, it does not crash
        stopped = f"check stopped: {type(e).__name__}"
        return stopped, [f"{stopped}: {e}"]


def check_run(run_dir: Path) -> list[CheckResult]:
    """Every check of the run directory, in `CHECKS` order; `ok` is false on any problem.

    Raises ConfigError when `run_dir` is not a run directory (no ledger.sqlite).
    """
    root = Path(run_dir)
    if not RunDir(root).ledger.is_file():
        raise ConfigError(str(root), "", "not a run directory (no ledger.sqlite)")
    run = Run(root)
    results: dict[str, Outcome] = {}
    # The directory as found, before the ledger is opened (opening may create -wal/-shm).
    files = all_files(root)
    results["no_secret"] = _guarded(lambda: check_secret(run, files))
    run.ledger_problems = run.open_ledger()
    try:
        for name, check in _LEDGER_CHECKS.items():
            results[name] = _guarded(lambda: check(run))  # noqa: B023 - called at once
        results["files_parse"] = _guarded(lambda: check_files(run, files))
    finally:
        run.close()
    out = []
    for name in CHECKS:
        detail, probs = results[name]
        if probs:
            detail = probs[0] + (f" (+{len(probs) - 1} more)" if len(probs) > 1 else "")
        out.append(CheckResult(name=name, ok=not probs, detail=detail, problems=list(probs)))
    return out
