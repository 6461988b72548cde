"""Re-check every artifact of a run directory against the ledger and the schemas.

`check_run(run_dir)` returns one `CheckResult` per named check; every check collects all of
its problems instead of stopping at the first. The run directory is never modified: the
ledger is opened with `PRAGMA query_only` and no migration, and the secret scan and the
temp-file check look at the directory as found, before the ledger is opened.

The run's recipe (built from config/run_config.json, the recipe the ledger recorded) says
which checks apply: the shared checks it names in `Recipe.generic_checks` (all by default)
and its own `Recipe.run_checks`, run after ``ledger``. A recipe that cannot be built fails
a ``recipe`` check. Shared checks, in order (module in brackets):

- ``ledger`` [ledger]: the ledger opens; every unit is in one known state; terminal non-ok
  units have a reason; ok units have exactly one ok attempt (others none); no attempt is left
  ``sent`` unless its invocation was interrupted or ended on an error such as a full disk
  (both leave attempts ``sent``; resume counts them at their reservation).
- (the recipe's checks, e.g. the plans recipe's ``plans_per_task``, ``schema``, ``unique_ids``
  and the rollouts' ``rollout_outputs``, ``samples``)
- ``matches_ledger`` [matches]: per stage of the recipe, datasets/<ds>/<stage>.jsonl and
  failed_plans/datasets/<ds>/<stage>.jsonl, and tasks.jsonl, hold exactly the rows the ledger
  yields (`benchsmith.export.jsonl`): nothing added, lost or edited.
- ``manifests`` [manifests]: task manifests agree with tasks.jsonl and the ledger; complete
  and incomplete split all tasks; complete means every unit of the task is ok.
- ``gold_leaks`` [leaks]: manifests/<ds>_gold_leaks.json holds the ledger's gold-leak
  findings; the detail counts the requests that carry their task's gold.
- ``costs`` [costs]: logs/batch_calls.jsonl has one line per ledger attempt with the ledger's
  usage and cost; each cost is recomputed from the usage and the run's price table (batch
  and ingested attempts at ``batch.price_multiplier``); the totals of the log, runs.jsonl and
  the ledger agree; no invocation spent money past its budget.
- ``one_plan`` [plan]: every exported file (datasets/, failed_plans/datasets/, and the .jsonl
  files of `Recipe.outputs`, e.g. the rollouts' output.jsonl) holds the records of one plan,
  the current one; config/plan.json names the ledger's current plan fingerprint. A run with no plan recorded (made before plans were
  pinned, or merged) passes.
- ``files_parse`` [files]: expected files exist (the shared ones, and the recipe's templates,
  stage files and `Recipe.outputs`), every .json/.jsonl parses, no temp file is left.
- ``no_secret`` [files]: the configured key variable is a variable name, and its value (and
  each comma-separated key in it) appears in no file of the run directory.

On a live run (a process holds its lock, `store/lock.py`) only the checks that hold while it
writes run (`LIVE_CHECKS`: the ledger, read in one snapshot, the recipe and the secret scan);
the others compare files the run rewrites as it ends and are reported skipped.

`base` holds the result type and shared helpers; `loader` reads the run directory.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from benchsmith.errors import ConfigError
from benchsmith.recipe_of import recipe_from_snapshot
from benchsmith.store.lock import Holder, live_holder
from benchsmith.store.rundir import existing_run_dir
from benchsmith.validate.run_checks.base import CheckResult, Outcome
from benchsmith.validate.run_checks.costs import check_costs
from benchsmith.validate.run_checks.files import all_files, check_files, check_secret
from benchsmith.validate.run_checks.ledger import check_ledger
from benchsmith.validate.run_checks.loader import Run
from benchsmith.validate.run_checks.leaks import check_gold_leaks
from benchsmith.validate.run_checks.manifests import check_manifests
from benchsmith.validate.run_checks.matches import check_matches_ledger
from benchsmith.validate.run_checks.plan import check_one_plan

__all__ = ["GENERIC_CHECKS", "LIVE_CHECKS", "CheckResult", "RunReport", "check_run",
           "check_run_report"]

# The shared checks, in report order; a recipe's own checks come right after "ledger".
GENERIC_CHECKS = (
    "ledger",
    "matches_ledger",
    "manifests",
    "gold_leaks",
    "costs",
    "one_plan",
    "files_parse",
    "no_secret",
)

# The checks that hold while a process writes the run: the ledger commits whole transactions
# (and is read in one snapshot); a secret must never be in any file, written or not.
LIVE_CHECKS = ("ledger", "recipe", "no_secret")

_LEDGER_CHECKS: dict[str, Callable[[Run], Outcome]] = {
    "matches_ledger": check_matches_ledger,
    "manifests": check_manifests,
    "gold_leaks": check_gold_leaks,
    "costs": check_costs,
    "one_plan": check_one_plan,
}


def _guarded(fn: Callable[[], Outcome]) -> Outcome:
    try:
        return fn()
    except Exception as e:  # noqa: BLE001 - a validator reports, it does not crash
        stopped = f"check stopped: {type(e).__name__}"
        return stopped, [f"{stopped}: {e}"]


def _load_recipe(run: Run) -> list[str]:
    """Build the run's recipe from its config snapshot (it declares the run's stages, outputs
    and checks) into `run.recipe`; problems when it cannot be built or is not the ledger's."""
    data = run.config
    if data is None:
        return [run.config_problem()]
    recorded = run.ledger.get_meta("recipe") if run.ledger is not None else None
    named = data.get("recipe")
    if recorded is not None and isinstance(named, str) and named != recorded:
        # checked before building: the snapshot's options may only fit the recipe it names
        return [f"config/run_config.json names recipe {named!r}, the ledger recorded "
                f"{recorded!r}"]
    try:
        recipe = recipe_from_snapshot(data, run.rd.config_json, run.root)
    except ConfigError as e:
        return [f"config/run_config.json: {e.problem}"]
    if recorded is not None and recorded != recipe.name:  # which one holds is unknown
        return [f"config/run_config.json names recipe {recipe.name!r}, the ledger recorded "
                f"{recorded!r}"]
    run.recipe = recipe
    return []


def _plan(run: Run) -> tuple[list[str], dict[str, Callable[[], Outcome]], list[str]]:
    """(check names in report order, the recipe's own checks, problems of the recipe)."""
    recipe = run.recipe
    if recipe is None:
        return ["ledger", "recipe", *GENERIC_CHECKS[1:]], {}, []
    wanted = GENERIC_CHECKS if recipe.generic_checks is None else recipe.generic_checks
    unknown = [n for n in wanted if n not in GENERIC_CHECKS]
    problems = [f"recipe {recipe.name}: unknown shared check {n!r} "
                f"(known: {', '.join(GENERIC_CHECKS)})" for n in unknown]
    own = {c.name: (lambda c=c: c.fn(run)) for c in recipe.run_checks}
    shared = [n for n in GENERIC_CHECKS if n in wanted and n != "ledger"]
    head = ["ledger"] if "ledger" in wanted else []
    return [*head, *(["recipe"] if problems else []), *own, *shared], own, problems


@dataclass(frozen=True)
class RunReport:
    """The checks of a run directory and, when a process was writing it, who (`live`)."""

    results: list[CheckResult]
    live: Holder | None


def check_run(run_dir: Path) -> list[CheckResult]:
    """Every check that applies to the run directory (the shared ones its recipe names, then
    its own after "ledger"); `ok` is false on any problem.

    Raises ConfigError when `run_dir` is not a run directory (no ledger.sqlite).
    """
    return check_run_report(run_dir).results


def check_run_report(run_dir: Path) -> RunReport:
    """`check_run`, saying whether the run is live; on a live run the checks outside
    `LIVE_CHECKS` are skipped (a run that starts while they run has them skipped too)."""
    root = existing_run_dir(run_dir).root
    live = live_holder(root)
    run = Run(root)
    results: dict[str, Outcome] = {}
    # The directory as found, before the ledger is opened (opening may create -wal/-shm).
    files = all_files(root)
    results["no_secret"] = _guarded(lambda: check_secret(run, files))
    run.ledger_problems = run.open_ledger()
    if live is not None and run.ledger is not None:
        run.ledger.db.execute("BEGIN")  # one snapshot: the writer commits meanwhile
    try:
        recipe_problems = _load_recipe(run)
        names, own, plan_problems = _plan(run)
        results["recipe"] = ("recipe not built", recipe_problems + plan_problems)
        results["ledger"] = _guarded(lambda: check_ledger(run))
        if live is None:
            for name, fn in own.items():
                results[name] = _guarded(fn)
            for name, check in _LEDGER_CHECKS.items():
                results[name] = _guarded(lambda: check(run))  # noqa: B023 - called at once
            results["files_parse"] = _guarded(lambda: check_files(run, files))
    finally:
        run.close()
    if live is None:
        live = live_holder(root)  # started while the files were read: they may be mid-write
    out = []
    for name in names:
        if live is not None and name not in LIVE_CHECKS:
            out.append(CheckResult(name=name, ok=True, skipped=True, detail=(
                "skipped: run is live; its files are rewritten when it ends")))
            continue
        detail, probs = results[name]
        if probs:
            detail = probs[0] + (f" (+{len(probs) - 1} more)" if len(probs) > 1 else "")
        out.append(CheckResult(name=name, ok=not probs, detail=detail, problems=list(probs)))
    return RunReport(out, live)
