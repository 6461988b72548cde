"""The public Python API. The CLI calls exactly these functions.

    cfg = load_config("my.yaml")
    summary = run(cfg)                      # or run(cfg, run_id="R", resume=True)
    for plan in read_records(summary.run_dir, "humaneval"):
        ...
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from benchsmith.config import RunConfig, api_keys, load_config
from benchsmith.engine.budget import Budget
from benchsmith.engine.http import HttpClient
from benchsmith.engine.online import EngineSettings, OnlineExecutor, Stats
from benchsmith.engine.pricing import worst_case_usd
from benchsmith.engine.ratelimit import RateLimiter
from benchsmith.engine.wire import build_body
from benchsmith.errors import BenchsmithError, ConfigError
from benchsmith.export.jsonl import write_outputs
from benchsmith.export.readable import render_after_run
from benchsmith.recipes import get_recipe
from benchsmith.recipes.base import Recipe, RequestSpec
from benchsmith.records import Task
from benchsmith.sources import load_tasks
from benchsmith.store.ids import unit_id
from benchsmith.store.ledger import Ledger
from benchsmith.validate.diversity import DUPLICATE_PREFIX
from benchsmith.store.rundir import RunDir, atomic_write_bytes, atomic_write_json, new_run_id

__all__ = ["dry_run", "load_config", "read_records", "run", "run_status"]

Echo = Callable[[str], None]


@dataclass(frozen=True)
class Estimate:
    units: int
    first_attempt_usd: float
    upper_bound_usd: float
    priced: bool


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


def _noop(_msg: str) -> None:
    pass


def _wire(cfg: RunConfig) -> tuple[str, str]:
    """(api, structured-output adapter) for the configured provider."""
    if cfg.provider == "local":
        return "chat", "llama_cpp"
    return cfg.openai.api, cfg.openai.structured_output


def _open_run(cfg: RunConfig, run_id: str | None, resume: bool, create: bool) -> RunDir:
    if resume and not run_id:
        raise ConfigError("command line", "--run-id", "--resume needs the id of the run to continue")
    rd = RunDir(cfg.resolve(cfg.run_dir) / (run_id or new_run_id()))
    if resume and not rd.ledger.exists():
        raise ConfigError(str(rd.root), "--run-id", "no run to resume here; check the run id")
    if create and not resume and rd.ledger.exists():
        led = Ledger(rd.ledger)
        try:
            started = led.usage_totals()["api_calls"] > 0
        finally:
            led.close()
        if started:
            raise ConfigError(
                str(rd.root), "--run-id", "this run already exists; add --resume to continue it"
            )
    rd.root.mkdir(parents=True, exist_ok=True)
    return rd


def _plan(cfg: RunConfig, rd: RunDir, echo: Echo) -> tuple[Ledger, Recipe, dict[tuple[str, str], Task]]:
    """Load tasks, write the config snapshot and prompt template, and plan first-stage units."""
    recipe = get_recipe(cfg)
    all_tasks: list[Task] = []
    for name, ds in cfg.datasets.items():
        tasks = load_tasks(name, ds, cfg)
        if not tasks:
            raise ConfigError(f"datasets.{name}", "", "no tasks selected; check max_tasks / task_ids_file")
        all_tasks.extend(tasks)
    for m in cfg.all_models():
        _, dropped = m.request_params()
        if dropped:
            echo(
                f"warning: {m.name} is a reasoning model; not sending {', '.join(dropped)} "
                "(set reasoning: false on the model to override)"
            )
    atomic_write_json(rd.config_json, cfg.public_dict())
    atomic_write_bytes(rd.prompts / recipe.template_name, recipe.template_text.encode("utf-8"))
    ledger = Ledger(rd.ledger)
    ledger.add_tasks(all_tasks)
    first = recipe.stages[0]
    rows = []
    for t in all_tasks:
        for spec in first.build(t, None):
            d = spec.to_dict()
            rows.append((unit_id(recipe.name, recipe.version, d), d))
    ledger.add_units(rows)
    by_key = {(t.dataset, t.id): t for t in all_tasks}
    _replan_children(ledger, recipe, by_key)
    ledger.set_meta("recipe", recipe.name)
    return ledger, recipe, by_key


def _replan_children(ledger: Ledger, recipe: Recipe, tasks: dict[tuple[str, str], Task]) -> None:
    """Plan children of finished units (idempotent: ids are content hashes).

    Covers a crash between a unit finishing and its children being recorded. A chain also
    goes on past an invalid or failed unit, shown only the plans accepted so far.
    """
    rows = []
    for u in ledger.units():
        task = tasks.get((u.dataset, u.task_id))
        if task is None or u.state == "pending":
            continue
        spec = RequestSpec.from_dict(u.spec)
        for child in recipe.children_of(u.stage):
            if u.state != "ok" and child.needs != u.stage:
                continue  # only a chain goes on past a unit without records
            for cs in child.build(task, {"unit_id": u.unit_id, "spec": spec, "records": u.result or []}):
                d = cs.to_dict()
                d["parent_id"] = u.unit_id
                rows.append((unit_id(recipe.name, recipe.version, d), d))
    if rows:
        ledger.add_units(rows)


def _estimate(cfg: RunConfig, ledger: Ledger, recipe: Recipe) -> Estimate:
    api, structured = _wire(cfg)
    first = total = 0.0
    n = 0
    priced = True
    local = cfg.provider == "local"
    other_prices = [None if local else cfg.price_for(m.name) for m in cfg.all_models()] or [None]
    for u in ledger.units(state="pending"):
        spec = u.spec
        price = cfg.price_for(spec["model"]) if cfg.provider != "local" else None
        if price is None and cfg.provider != "local":
            priced = False
        body = build_body(
            api=api, structured=structured, model=spec["model"], messages=spec["messages"],
            schema=spec["schema"], schema_name=spec["schema_name"], params=spec["params"],
        )
        max_out = int(spec["params"].get("max_output_tokens", 0) or 0)
        stage = recipe.stage(spec["stage"])
        tries = 1 + stage.max_validation_retries
        size = len(orjson.dumps(body))
        # A chained unit is followed by the rest of its chain, each with a longer prompt.
        following = max(1, stage.chain_length - spec["sample_index"]) if stage.needs == stage.name else 1
        for j in range(following):
            grown = size + j * stage.chain_growth_bytes
            # Later units of a chain may go to another model: take the dearest.
            cands = [price] if j == 0 else other_prices
            one = max(worst_case_usd(grown, len(spec["messages"]), max_out, p) for p in cands)
            # A re-ask also carries the previous answer (up to max_output_tokens) and the issues.
            retry = max(
                worst_case_usd(grown + 4 * max_out + 2000, len(spec["messages"]) + 2, max_out, p)
                for p in cands
            )
            first += one
            total += one + (tries - 1) * retry
            n += 1
    return Estimate(n, first, total, priced)


def _check_prices(cfg: RunConfig) -> None:
    if cfg.provider == "local" or cfg.budget.max_usd is None:
        return
    for m in cfg.all_models():
        if cfg.price_for(m.name) is None:
            raise ConfigError(
                cfg.config_dir, f"prices.{m.name}",
                "budget.max_usd is set but this model has no price; add input/output USD per 1M tokens",
            )


def dry_run(cfg: RunConfig, run_id: str | None = None, echo: Echo = _noop) -> DryRunReport:
    """Load tasks, write manifests and tasks.jsonl, estimate cost. Calls no model."""
    rd = _open_run(cfg, run_id, resume=False, create=False)
    ledger, recipe, tasks = _plan(cfg, rd, echo)
    try:
        write_outputs(ledger, rd, [s.name for s in recipe.stages])
        est = _estimate(cfg, ledger, recipe)
        counts: dict[str, int] = {}
        for ds, _ in tasks:
            counts[ds] = counts.get(ds, 0) + 1
        return DryRunReport(rd.root, counts, est.units, est)
    finally:
        ledger.close()


@contextlib.contextmanager
def _endpoint(cfg: RunConfig, rd: RunDir, echo: Echo) -> Iterator[str]:
    if cfg.provider != "local":
        yield cfg.openai.base_url
        return
    from benchsmith.engine.local_server import local_server

    echo(f"starting local model server for {cfg.local.model_path} ...")
    rd.run_log.parent.mkdir(parents=True, exist_ok=True)
    with local_server(
        cfg.resolve(cfg.local.model_path), n_ctx=cfg.local.n_ctx, log_path=rd.root / "logs" / "local_server.log"
    ) as srv:
        yield srv.base_url


def run(
    cfg: RunConfig,
    run_id: str | None = None,
    resume: bool = False,
    *,
    echo: Echo = _noop,
    on_progress: Callable[[Stats], None] | None = None,
    on_estimate: Callable[[Estimate], None] | None = None,
) -> RunSummary:
    """Generate the dataset. Resumable: completed units are never sent again."""
    _check_prices(cfg)
    keys = api_keys(cfg)
    rd = _open_run(cfg, run_id, resume=resume, create=True)
    ledger, recipe, tasks = _plan(cfg, rd, echo)
    try:
        est = _estimate(cfg, ledger, recipe)
        if on_estimate:
            on_estimate(est)
        settled, unsettled = ledger.spend()
        budget = Budget(cfg.budget.max_usd, spent=settled + unsettled)
        inv = ledger.start_invocation("online", cfg.budget.max_usd)
        api, structured = _wire(cfg)
        status, message = "completed", ""
        try:
            with _endpoint(cfg, rd, echo) as base_url:
                outcome = asyncio.run(
                    _execute(cfg, ledger, recipe, tasks, inv, api, structured, keys, base_url,
                             budget, on_progress)
                )
            status = {"budget": "stopped_budget", "auth": "stopped_auth"}.get(
                outcome.stopped or "", "completed"
            )
            message = outcome.message
        except KeyboardInterrupt:
            status, message = "interrupted", "interrupted by user"
            raise
        except BaseException as e:
            status, message = "error", str(e)[:500]
            raise
        finally:
            ledger.end_invocation(inv, status, message)
            write_outputs(ledger, rd, [s.name for s in recipe.stages])
        warning = render_after_run(rd.root)  # a rendering problem never fails the run
        if warning:
            echo(warning)
        counts = ledger.state_counts()
        settled, unsettled = ledger.spend()
        return RunSummary(
            rd.root,
            None if status == "completed" else status,
            message,
            counts,
            settled + unsettled,
            ledger.usage_totals(),
        )
    finally:
        ledger.close()


async def _execute(
    cfg: RunConfig, ledger: Ledger, recipe: Recipe, tasks: dict[tuple[str, str], Task], inv: int,
    api: str, structured: str, keys: list[str], base_url: str, budget: Budget,
    on_progress: Callable[[Stats], None] | None,
) -> Any:
    eng = cfg.engine
    settings = EngineSettings(
        api=api, structured=structured, keys=keys, concurrency=eng.concurrency,
        max_retries=eng.max_retries, backoff_base_s=eng.backoff_base_s,
        backoff_max_s=eng.backoff_max_s,
        schema_bounds=(
            (cfg.local.max_string_chars, cfg.local.max_array_items)
            if structured == "llama_cpp" else None
        ),
    )
    pending = list(ledger.units(state="pending"))
    prices = (lambda _m: None) if cfg.provider == "local" else cfg.price_for
    async with HttpClient(base_url, eng.concurrency, eng.timeout_s) as http:
        ex = OnlineExecutor(
            ledger=ledger, recipe=recipe, tasks=tasks, invocation=inv, settings=settings,
            http=http, budget=budget, limiter=RateLimiter(eng.rpm, eng.tpm), prices=prices,
            on_progress=on_progress,
        )
        return await ex.run(pending)


def _open_existing(run_dir: str | Path) -> tuple[RunDir, Ledger]:
    rd = RunDir(Path(run_dir))
    if not rd.ledger.is_file():
        raise ConfigError(str(rd.root), "", "not a run directory (no ledger.sqlite)")
    return rd, Ledger(rd.ledger)


def run_status(run_dir: str | Path) -> dict[str, Any]:
    """Counts per state, tokens, cost and what is left, read from the ledger."""
    rd, ledger = _open_existing(run_dir)
    try:
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
        similar: dict[str, int] = {}
        for a in ledger.attempts():
            n = sum(1 for i in a["issues"] if i.startswith(DUPLICATE_PREFIX))
            if n:
                similar[a["dataset"]] = similar.get(a["dataset"], 0) + n
        invs = ledger.invocations()
        return {
            "run_id": rd.run_id,
            "run_dir": str(rd.root),
            "units": {s: counts.get(s, 0) for s in ("pending", "ok", "invalid", "failed", "skipped")},
            "datasets": per_ds,
            "usage": ledger.usage_totals(),
            "spent_usd": round(settled + unsettled, 6),
            "unsettled_usd": round(unsettled, 6),
            "failure_reasons": reasons,
            "similarity_rejections": similar,
            "invocations": len(invs),
            "last_status": invs[-1]["status"] if invs else "planned",
            "last_message": invs[-1]["message"] if invs else "",
        }
    finally:
        ledger.close()


def read_records(
    run_dir: str | Path, dataset: str | None = None, stage: str = "plans"
) -> Iterator[dict[str, Any]]:
    """Valid records straight from the ledger (same rows as datasets/<ds>/<stage>.jsonl)."""
    from benchsmith.export.jsonl import record_rows

    _rd, ledger = _open_existing(run_dir)
    try:
        for ds in [dataset] if dataset else ledger.datasets():
            yield from record_rows(ledger, ds, stage)
    finally:
        ledger.close()


def copy_template(dest: Path) -> None:
    """Write the commented sample config (init-config)."""
    from importlib import resources

    text = resources.files("benchsmith.prompts").joinpath("sample_config.yaml").read_text("utf-8")
    if dest.exists():
        raise BenchsmithError(f"{dest}: already exists; choose another path or delete it")
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(text, encoding="utf-8")


_ = shutil  # kept for future copy helpers
