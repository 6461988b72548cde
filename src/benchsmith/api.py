"""The public Python API. The CLI calls exactly these functions.

    cfg = load_config("my.yaml")
    summary = run(cfg)                      # or run(cfg, run_id="R", resume=True)
    for plan in read_records(summary.run_dir, "humaneval"):
        ...
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchsmith.config import RunConfig, api_keys
from benchsmith.recipe_of import load_checked as load_config
from benchsmith.engine.budget import Budget, money_problems
from benchsmith.engine.exec_common import quiet_cyclic_gc
from benchsmith.engine.online import Stats
from benchsmith.errors import BenchsmithError, ConfigError
from benchsmith.execute import endpoint, execute_batch, execute_online
from benchsmith.export.run_files import write_run_files
from benchsmith.export.after_run import ReadableChild, write_pages
from benchsmith.planner import Echo, Estimate, check_prices, estimate, open_run, plan_run, wire_for
from benchsmith.recipes.base import StatusSummary
from benchsmith.recipe_of import recipe_of_run
from benchsmith.store import leak_rows
from benchsmith.store.ledger import Ledger
from benchsmith.store.lock import invocations_seen, live_holder, run_lock
from benchsmith.store.reopen import reopen_units
from benchsmith.store.rundir import RunDir, existing_run_dir, open_existing_run

__all__ = ["Estimate", "dry_run", "export_datasets", "load_config", "read_records", "run",
           "run_status", "write_report"]


@dataclass(frozen=True)
class DryRunReport:
    run_dir: Path
    tasks: dict[str, int]
    units_pending: int
    estimate: Estimate


@dataclass(frozen=True)
class RunSummary:
    run_dir: Path
    stopped: str | None
    message: str
    counts: dict[str, int]
    spent_usd: float
    usage: dict[str, int] = field(default_factory=dict)
    # completed, completed_with_failures (units of the run ended failed or invalid: see
    # `counts`; retry them with resume=True, retry_failed / retry_invalid), stopped_budget,
    # stopped_auth
    status: str = "completed"
    # failed / invalid units of the current plan (what retry_failed / retry_invalid re-open)
    failures: dict[str, int] = field(default_factory=dict)
    # the files the recipe writes at the top of the run dir (names)
    outputs: tuple[str, ...] = ()
    report: Path | None = None  # the run report, when asked for and written
    report_warning: str | None = None  # why it was not written


def _noop(_msg: str) -> None:
    pass


def dry_run(
    cfg: RunConfig, run_id: str | None = None, echo: Echo = _noop, *, replan: bool = False
) -> DryRunReport:
    """Load tasks, write manifests and tasks.jsonl, estimate cost. Calls no model.

    `replan`: an existing run whose settings changed takes them as its next plan (else that
    is refused)."""
    rd = open_run(cfg, run_id, resume=False, create=False)
    with run_lock(rd.root, "dry-run"):
        ledger, recipe, tasks = plan_run(cfg, rd, echo, replan=replan)
        try:
            write_run_files(ledger, rd, recipe)
            est = estimate(cfg, ledger, recipe)
            counts: dict[str, int] = {}
            for ds, _ in tasks:
                counts[ds] = counts.get(ds, 0) + 1
            return DryRunReport(rd.root, counts, est.units, est)
        finally:
            ledger.close()


def run(
    cfg: RunConfig,
    run_id: str | None = None,
    resume: bool = False,
    *,
    mode: str | None = None,
    echo: Echo = _noop,
    on_progress: Callable[[Stats], None] | None = None,
    on_estimate: Callable[[Estimate], None] | None = None,
    retry_failed: bool = False,
    retry_invalid: bool = False,
    replan: bool = False,
    report: bool = True,
) -> RunSummary:
    """Generate the dataset. Resumable: completed units are never sent again.

    `mode` is "online" or "batch" (the Batch API); default from `openai.use_batch_api`.
    With `resume`, `retry_failed` / `retry_invalid` re-open the run's failed / invalid units
    for a new attempt (earlier attempts stay in the ledger).
    A resumed run whose plan-shaping settings changed is refused unless `replan`.
    With `report`, RUN_DIR/report.html is written at the end (a run that stopped early too).
    """
    _check_retry(resume, retry_failed, retry_invalid)
    mode = mode or ("batch" if cfg.openai.use_batch_api else "online")
    if mode not in ("online", "batch"):
        raise ConfigError("command line", "--mode", "must be online or batch")
    if mode == "batch" and cfg.provider == "local":
        raise ConfigError(
            cfg.config_dir, "provider",
            "the local provider has no Batch API; use --mode online, or export requests with "
            "`benchsmith batch export` for an offline runner",
        )
    check_prices(cfg)
    keys = api_keys(cfg)
    rd = open_run(cfg, run_id, resume=resume, create=True)
    with run_lock(rd.root, "run"):  # one writer per run; released when the run ends
        return _run_locked(cfg, rd, mode, keys, echo, on_progress, on_estimate,
                           retry_failed, retry_invalid, replan, report)


def _run_locked(
    cfg: RunConfig,
    rd: RunDir,
    mode: str,
    keys: list[str],
    echo: Echo,
    on_progress: Callable[[Stats], None] | None,
    on_estimate: Callable[[Estimate], None] | None,
    retry_failed: bool,
    retry_invalid: bool,
    replan: bool,
    report: bool,
) -> RunSummary:
    with quiet_cyclic_gc():  # planning makes many objects and frees few: no collector passes
        ledger, recipe, tasks = plan_run(cfg, rd, echo, replan=replan)
    try:
        if retry_failed or retry_invalid:
            _reopen(ledger, retry_failed, retry_invalid, echo)
        multiplier = cfg.batch.price_multiplier if mode == "batch" else 1.0
        # read once: the estimate and the executor both go through every pending unit
        pending = list(ledger.units(state="pending")) if mode == "online" else None
        est = estimate(cfg, ledger, recipe, multiplier, pending)
        if on_estimate:
            on_estimate(est)
        settled, unsettled = ledger.spend()
        budget = Budget(cfg.budget.max_usd, spent=settled + unsettled)
        inv = ledger.start_invocation(mode, cfg.budget.max_usd)
        api, structured = wire_for(cfg)
        status, message = "completed", ""
        raised = False
        # a large run's Markdown is rendered at the end by a child process started now
        child = (ReadableChild.start(ledger, rd.root, recipe, cfg.outputs.readable)
                 if mode == "online" else None)
        try:
            if mode == "batch":
                coro = execute_batch(cfg, ledger, recipe, tasks, inv, api, structured, keys,
                                     budget, rd, on_progress, echo)
                outcome = asyncio.run(coro)
            else:
                with endpoint(cfg, rd, echo) as base_url:
                    outcome = asyncio.run(
                        execute_online(cfg, ledger, recipe, tasks, inv, api, structured, keys,
                                       base_url, budget, on_progress, echo, pending)
                    )
            status = {"budget": "stopped_budget", "auth": "stopped_auth",
                      "interrupted": "interrupted"}.get(outcome.stopped or "", "completed")
            message = outcome.message
            if status == "completed":
                # the current plan's units: a superseded plan's failures are not retried
                status, message = _with_failures(ledger.state_counts(current_plan=True))
        except KeyboardInterrupt:
            status, message, raised = "interrupted", "interrupted by user", True
            raise
        except BaseException as e:
            status, message, raised = "error", str(e)[:500], True
            raise
        finally:
            ledger.end_invocation(inv, status, message)
            if child and raised:
                child.stop()
            elif child:
                child.go()  # renders while the run's files are written below
            try:
                with quiet_cyclic_gc():  # the run's objects stay: no collector passes over them
                    write_run_files(ledger, rd, recipe)
            except BaseException:
                if child:
                    child.stop()
                raise
        with quiet_cyclic_gc():
            done = write_pages(rd.root, recipe, cfg.outputs.readable, report, child)
        if done.readable_warning:  # a rendering problem never fails the run
            echo(done.readable_warning)
        counts = ledger.state_counts()
        current = ledger.state_counts(current_plan=True)
        settled, unsettled = ledger.spend()
        return RunSummary(
            rd.root,
            None if status in ("completed", "completed_with_failures") else status,
            message,
            counts,
            settled + unsettled,
            ledger.usage_totals(),
            status,
            {s: current[s] for s in ("failed", "invalid") if current.get(s)},
            recipe.outputs,
            done.report,
            done.report_warning,
        )
    finally:
        ledger.close()


def _check_retry(resume: bool, retry_failed: bool, retry_invalid: bool) -> None:
    if (retry_failed or retry_invalid) and not resume:
        flag = "--retry-failed" if retry_failed else "--retry-invalid"
        raise ConfigError("command line", flag,
                          "only applies with --resume --run-id <id> (a new run has nothing to retry)")


def _reopen(ledger: Ledger, failed: bool, invalid: bool, echo: Echo) -> None:
    r = reopen_units(ledger, failed=failed, invalid=invalid)
    what = " or ".join(s for s, on in (("failed", failed), ("invalid", invalid)) if on)
    if not r.total:
        echo(f"nothing to retry: no {what} units")
        return
    msg = f"retrying {r.failed} failed and {r.invalid} invalid unit(s)"
    if r.superseded:
        msg += f"; {r.superseded} later chain call(s) set aside, planned again after them"
    echo(msg)


def _with_failures(counts: dict[str, int]) -> tuple[str, str]:
    """A run that ran to the end: `completed`, or `completed_with_failures` with the counts."""
    parts = [f"{counts[s]} {s}" for s in ("failed", "invalid") if counts.get(s)]
    if not parts:
        return "completed", ""
    return "completed_with_failures", "finished with failures: " + ", ".join(parts)


def run_status(run_dir: str | Path) -> dict[str, Any]:
    """Counts per state, tokens, cost and what is left, read from the ledger (read-only)."""
    rd, ledger = open_existing_run(run_dir)
    try:
        ledger.db.execute("BEGIN")  # one snapshot: a live run commits meanwhile
        counts = ledger.state_counts()
        settled, unsettled = ledger.spend()
        per_ds: dict[str, dict[str, int]] = {}
        for (ds, _tid), st in ledger.task_states().items():
            d = per_ds.setdefault(ds, {"tasks": 0, "complete": 0})
            d["tasks"] += 1
            d["complete"] += int(set(st) == {"ok"})
        reasons: dict[str, int] = {}
        for u in ledger.units():
            if u.state in ("failed", "invalid", "skipped") and u.reason:
                key = u.reason.split(":")[0][:60]
                reasons[key] = reasons.get(key, 0) + 1
        extra = _recipe_status(rd, ledger)
        holder = live_holder(rd.root)
        invs = invocations_seen(ledger.invocations(), holder)
        money = money_problems(ledger)
        leaks = leak_rows.summary(leak_rows.findings(ledger.db))
        sending = bool(invs) and invs[-1]["status"] == "running"
        calls, pending = _calls(ledger.open_calls(), sending, counts.get("pending", 0))
        return {
            "run_id": rd.run_id,
            "run_dir": str(rd.root),
            "units": {s: counts.get(s, 0) for s in ("pending", "ok", "invalid", "failed", "skipped")},
            "datasets": per_ds,
            "pending_units": pending,
            "calls": calls,
            "usage": ledger.usage_totals(),
            "spent_usd": round(settled + unsettled, 6),
            "unsettled_usd": round(unsettled, 6),
            "failure_reasons": reasons,
            "gold_leaks": leaks,
            **extra.fields,
            "recipe_lines": list(extra.lines),
            "invocations": len(invs),
            "last_status": invs[-1]["status"] if invs else "planned",
            "last_message": invs[-1]["message"] if invs else "",
            "live": holder.as_dict() if holder else None,
            "budget_usd": invs[-1]["budget_usd"] if invs else None,
            "problems": money,
        }
    finally:
        ledger.close()


def _calls(open_: dict[str, Any], sending: bool,
           pending: int) -> tuple[dict[str, Any], dict[str, int]]:
    """(calls in flight vs finished, pending units awaiting an answer vs not sent yet).
    An online call is in flight only while the invocation that sent it runs (`sending`);
    once its process is gone it is unsettled: counted at its reservation, sent again on
    resume. A batch's calls stay in flight at the provider until the batch is reconciled."""
    online = open_["online"] if sending else 0
    calls = {
        "in_flight": online + open_["batch"],
        "in_flight_online": online,
        "in_flight_batch": open_["batch"],
        "open_batches": open_["batches"],
        "unsettled": open_["other"] + open_["online"] - online,
        "finished": open_["finished"],
    }
    return calls, {"awaiting_answer": open_["units"], "not_sent": pending - open_["units"]}


def _recipe_status(rd: RunDir, ledger: Ledger) -> StatusSummary:
    """What the run's recipe adds to `status`; nothing when its recipe cannot be built
    (`status` still reports the ledger; `validate-run` names the problem)."""
    try:
        recipe = recipe_of_run(rd.root)
    except ConfigError:
        return StatusSummary()
    return recipe.status(ledger) if recipe.status is not None else StatusSummary()


def read_records(
    run_dir: str | Path, dataset: str | None = None, stage: str | None = None
) -> Iterator[dict[str, Any]]:
    """Valid records straight from the ledger (same rows as datasets/<ds>/<stage>.jsonl).
    `stage`: default, the one the run's recipe names as its result."""
    from benchsmith.export.jsonl import record_rows

    rd = existing_run_dir(run_dir)
    if stage is None:
        stage = recipe_of_run(rd.root).primary_stage
    _rd, ledger = open_existing_run(rd.root)
    try:
        leaking = leak_rows.leaking_tasks(ledger.db)
        for ds in [dataset] if dataset else ledger.datasets():
            yield from record_rows(ledger, ds, stage, leaking)
    finally:
        ledger.close()


def export_datasets(run_dir: str | Path, fmt: str = "jsonl", out: str | Path | None = None) -> Any:
    """Every dataset of a run (and the recipe's own tables, e.g. predictions) as JSONL,
    parquet or a `datasets.DatasetDict` ("hf"), with a dataset card; default
    `<run_dir>/export/<fmt>/`. Read-only on the run. Returns export.datasets.ExportReport."""
    from benchsmith.export.datasets import export_run

    return export_run(run_dir, fmt, out)


def write_report(run_dir: str | Path, out: str | Path | None = None) -> Any:
    """The run's self-contained HTML report (default `<run_dir>/report.html`). Read-only on
    the run. Returns report.build.ReportResult."""
    from benchsmith.report.build import write_report as write

    return write(run_dir, out)


def copy_template(dest: Path) -> None:
    """Write the commented sample config (init-config)."""
    from importlib import resources

    text = resources.files("benchsmith.prompts").joinpath("sample_config.yaml").read_text("utf-8")
    if dest.exists():
        raise BenchsmithError(f"{dest}: already exists; choose another path or delete it")
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text(text, encoding="utf-8")
    except OSError as e:
        if dest.is_file():
            dest.unlink()  # no half-written sample
        raise ConfigError(
            str(dest), "", f"cannot write the config here ({e.strerror}); choose a path in a "
            "folder this user can write"
        ) from None

