"""Planning a run: open its directory, load tasks, plan units, estimate the worst-case cost."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from benchsmith.config import RunConfig
from benchsmith.engine.context import ContextLimits, is_too_long, skip_too_long
from benchsmith.engine.planning import child_rows
from benchsmith.engine.pricing import worst_case_usd
from benchsmith.engine.wire import build_body
from benchsmith.errors import ConfigError
from benchsmith.fingerprint import plan_fingerprint
from benchsmith.leaks.finding import is_leak_skip
from benchsmith.plan_pin import pin_plan, plan_manifest
from benchsmith.recipe_of import recipe_for
from benchsmith.recipes.base import Recipe, RequestSpec
from benchsmith.records import Task
from benchsmith.sources import load_tasks
from benchsmith.store.ids import unit_id
from benchsmith.store.ledger import Ledger
from benchsmith.store.units import Unit
from benchsmith.store.names import check_run_id
from benchsmith.store.plans import Plan, adopt_units, settle, supersede_pending
from benchsmith.store.reopen import CHAIN_SUPERSEDED, children_after_reopen, reopened_ids
from benchsmith.store.rundir import RunDir, atomic_write_bytes, atomic_write_json, new_run_id
from benchsmith.store.rundir import claim_run_dir

Echo = Callable[[str], None]


@dataclass(frozen=True)
class Estimate:
    units: int
    first_attempt_usd: float
    upper_bound_usd: float
    priced: bool


def wire_for(cfg: RunConfig) -> tuple[str, str]:
    """(api, structured-output adapter) for the configured provider."""
    if cfg.provider == "local":
        return "chat", "llama_cpp"
    return cfg.openai.api, cfg.openai.structured_output


def open_run(cfg: RunConfig, run_id: str | None, resume: bool, create: bool) -> RunDir:
    if resume and not run_id:
        raise ConfigError("command line", "--run-id", "--resume needs the id of the run to continue")
    if run_id is not None:
        check_run_id(run_id)
    rd = RunDir(cfg.resolve(cfg.run_dir) / (run_id or new_run_id()))
    if resume and not rd.ledger.exists():
        raise ConfigError(str(rd.root), "--run-id", "no run to resume here; check the run id")
    existed = rd.ledger.exists()
    claim_run_dir(rd.root, field="run_dir / --run-id")  # a ledger made elsewhere is whole now
    if create and not resume and existed:
        led = Ledger(rd.ledger)
        try:
            started = led.usage_totals()["api_calls"] > 0
        finally:
            led.close()
        if started:
            raise ConfigError(
                str(rd.root), "--run-id", "this run already exists; add --resume to continue it"
            )
    return rd


def plan_run(
    cfg: RunConfig, rd: RunDir, echo: Echo, replan: bool = False,
) -> tuple[Ledger, Recipe, dict[tuple[str, str], Task]]:
    """Load tasks, pin the plan, write the config snapshot and prompt template, and plan
    first-stage units. A run whose plan changed stops here, before anything is written,
    unless `replan` (see plan_pin)."""
    recipe = recipe_for(cfg)
    all_tasks: list[Task] = []
    for name, ds in cfg.datasets.items():
        tasks = load_tasks(name, ds, cfg)
        if recipe.select is not None:
            tasks = recipe.select(tasks)
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
    first = recipe.stages[0]
    rows = []
    for t in all_tasks:
        for spec in first.build(t, None):
            d = spec.to_dict()
            rows.append((unit_id(recipe.name, recipe.version, d), d))
    fp = plan_fingerprint(cfg, recipe, wire_for(cfg)[1], (uid for uid, _ in rows))
    ledger = Ledger(rd.ledger)
    try:
        plan = pin_plan(ledger, fp, cfg.public_dict(), replan=replan, where=str(rd.root), echo=echo)
        atomic_write_json(rd.config_json, cfg.public_dict())
        atomic_write_json(rd.plan_json, plan_manifest(ledger))
        for name, text in recipe.templates:
            atomic_write_bytes(rd.prompts / name, text.encode("utf-8"))
        ledger.add_tasks(all_tasks)
        ledger.add_units(rows)
        by_key = {(t.dataset, t.id): t for t in all_tasks}
        if plan.settled:
            replan_children(ledger, recipe, by_key)
        else:
            _finish_replan(ledger, recipe, by_key, plan, [uid for uid, _ in rows], echo)
        skipped, _ = skip_too_long(ledger, ContextLimits.from_config(cfg, *wire_for(cfg)))
        if skipped:
            echo(
                f"warning: {skipped} request(s) skipped, their prompt is longer than the model's "
                "context (reason prompt_too_long in `benchsmith status`); raise "
                "model.max_context_tokens (local: local.n_ctx) if the model takes more"
            )
        ledger.set_meta("recipe", recipe.name)
    except BaseException:
        ledger.close()
        raise
    return ledger, recipe, by_key


def _finish_replan(
    ledger: Ledger, recipe: Recipe, tasks: dict[tuple[str, str], Task], plan: Plan,
    first_ids: list[str], echo: Echo,
) -> None:
    """The new plan takes over the units it asks for again (and, level by level, their
    children), then the other pending units are superseded. Idempotent: a replan cut short
    is finished by the next invocation with the same settings."""
    adopt_units(ledger, plan.id, first_ids)
    replan_children(ledger, recipe, tasks, adopt_into=plan.id)
    n = supersede_pending(ledger, plan)
    settle(ledger, plan)
    echo(f"plan {plan.id}: {n} pending request(s) of earlier plans marked skipped (superseded)")


def replan_children(
    ledger: Ledger, recipe: Recipe, tasks: dict[tuple[str, str], Task],
    adopt_into: int | None = None,
) -> None:
    """Plan children of the current plan's finished units (idempotent: ids are content hashes).

    Covers a crash between a unit finishing and its children being recorded. A chain also
    goes on past an invalid or failed unit, shown only the plans accepted so far. With
    `adopt_into`, children that exist from an earlier plan join that plan, until none does.
    """
    while True:
        rows = []
        reopened = reopened_ids(ledger)
        later: list[tuple[str, list[tuple[str, dict[str, Any]]]]] = []
        # Pending units plan nothing: not read (a new run of 100k units has only those).
        for u in ledger.units(current_plan=True, finished=True):
            task = tasks.get((u.dataset, u.task_id))
            if task is None or u.reason == CHAIN_SUPERSEDED:
                continue  # a chain call set aside by a re-open plans nothing
            if is_too_long(u.reason) or is_leak_skip(u.reason):
                continue  # a prompt too long for the model (or skipped) ends its chain
            spec = RequestSpec.from_dict(u.spec)
            kids = child_rows(recipe, task, u.unit_id, spec, u.result or [], ok=u.state == "ok")
            if u.unit_id in reopened:
                later.append((u.unit_id, kids))
            else:
                rows.extend(kids)
        for parent_id, kids in later:  # after the streamed read: this may write
            rows.extend(children_after_reopen(ledger, parent_id, kids)[0])
        if rows:
            ledger.add_units(rows)
        if adopt_into is None or not rows:
            return
        if not adopt_units(ledger, adopt_into, [uid for uid, _ in rows]):
            return


def estimate(cfg: RunConfig, ledger: Ledger, recipe: Recipe, multiplier: float = 1.0,
             pending: list[Unit] | None = None) -> Estimate:
    """Upper bounds: first attempts, and with every validation retry (at `multiplier` x price).
    `pending`: the run's pending units when the caller has read them already."""
    api, structured = wire_for(cfg)
    first = total = 0.0
    n = 0
    priced = True
    local = cfg.provider == "local"
    other_prices = [None if local else cfg.price_for(m.name) for m in cfg.all_models()] or [None]
    free = {s.name for s in recipe.stages if s.local is not None}  # model-free: no cost
    for u in ledger.units(state="pending") if pending is None else pending:
        if u.stage in free:
            continue
        spec = u.spec
        price = cfg.price_for(spec["model"]) if cfg.provider != "local" else None
        if price is None and cfg.provider != "local":
            priced = False
        body = build_body(
            api=api, structured=structured, model=spec["model"], messages=spec["messages"],
            schema=spec["schema"], schema_name=spec["schema_name"], params=spec["params"],
            tools=spec.get("tools"), tool_choice=spec.get("tool_choice"), n=spec.get("n", 1),
        )
        # Every one of the n choices is billed.
        max_out = int(spec["params"].get("max_output_tokens", 0) or 0) * spec.get("n", 1)
        stage = recipe.stage(spec["stage"])
        tries = 1 + stage.max_validation_retries
        size = len(orjson.dumps(body))
        # A chained unit is followed by the rest of its chain, each with a longer prompt.
        following = max(1, stage.chain_length - spec["sample_index"]) if stage.needs == stage.name else 1
        for j in range(following):
            grown = size + j * stage.chain_growth_bytes
            # Later units of a chain may go to another model: take the dearest.
            cands = [price] if j == 0 else other_prices
            one = max(worst_case_usd(grown, len(spec["messages"]), max_out, p, multiplier) for p in cands)
            # A re-ask also carries the previous answer (up to max_output_tokens) and the issues.
            retry = max(
                worst_case_usd(grown + 4 * max_out + 2000, len(spec["messages"]) + 2, max_out, p, multiplier)
                for p in cands
            )
            first += one
            total += one + (tries - 1) * retry
            n += 1
    return Estimate(n, first, total, priced)


def check_prices(cfg: RunConfig) -> None:
    if cfg.provider == "local" or cfg.budget.max_usd is None:
        return
    for m in cfg.all_models():
        if cfg.price_for(m.name) is None:
            raise ConfigError(
                cfg.config_dir, f"prices.{m.name}",
                "budget.max_usd is set but this model has no price; add input/output USD per 1M tokens",
            )
