"""Planning a run: open its directory, load tasks, plan units, estimate the worst-case cost."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import orjson

from benchsmith.config import RunConfig
from benchsmith.engine.context import ContextLimits, is_too_long, skip_too_long
from benchsmith.engine.planning import child_rows
from benchsmith.engine.pricing import worst_case_usd
from benchsmith.engine.wire import build_body
from benchsmith.errors import ConfigError
from benchsmith.recipes import get_recipe
from benchsmith.recipes.base import Recipe, RequestSpec
from benchsmith.records import Task
from benchsmith.sources import load_tasks
from benchsmith.store.ids import unit_id
from benchsmith.store.ledger import Ledger
from benchsmith.store.rundir import RunDir, atomic_write_bytes, atomic_write_json, new_run_id

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
    try:
        rd.root.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(
            cfg.config_dir, "run_dir",
            f"cannot create {rd.root} ({e.strerror}); set run_dir to a folder this user can write",
        ) from None
    return rd


def plan_run(cfg: RunConfig, rd: RunDir, echo: Echo) -> tuple[Ledger, Recipe, dict[tuple[str, str], Task]]:
    """Load tasks, write the config snapshot and prompt template, and plan first-stage units."""
    recipe = get_recipe(cfg)
    all_tasks: list[Task] = []
    for name, ds in cfg.datasets.items():
        tasks = load_tasks(name, ds, cfg)
        if cfg.recipe != "plans" and (cfg.rollout.start is not None or cfg.rollout.end is not None):
            tasks = tasks[cfg.rollout.start or 0 : cfg.rollout.end]  # a range of sorted ids
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
    for name, text in recipe.templates:
        atomic_write_bytes(rd.prompts / name, text.encode("utf-8"))
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
    replan_children(ledger, recipe, by_key)
    skipped, _ = skip_too_long(ledger, ContextLimits.from_config(cfg, *wire_for(cfg)))
    if skipped:
        echo(
            f"warning: {skipped} request(s) skipped, their prompt is longer than the model's "
            "context (reason prompt_too_long in `benchsmith status`); raise "
            "model.max_context_tokens (local: local.n_ctx) if the model takes more"
        )
    ledger.set_meta("recipe", recipe.name)
    return ledger, recipe, by_key


def replan_children(ledger: Ledger, recipe: Recipe, tasks: dict[tuple[str, str], Task]) -> None:
    """Plan children of finished units (idempotent: ids are content hashes).

    Covers a crash between a unit finishing and its children being recorded. A chain also
    goes on past an invalid or failed unit, shown only the plans accepted so far.
    """
    rows = []
    for u in ledger.units():
        task = tasks.get((u.dataset, u.task_id))
        if task is None or u.state == "pending" or is_too_long(u.reason):
            continue  # a prompt too long for the model ends its chain
        spec = RequestSpec.from_dict(u.spec)
        rows.extend(child_rows(recipe, task, u.unit_id, spec, u.result or [], ok=u.state == "ok"))
    if rows:
        ledger.add_units(rows)


def estimate(cfg: RunConfig, ledger: Ledger, recipe: Recipe, multiplier: float = 1.0) -> Estimate:
    """Upper bounds: first attempts, and with every validation retry (at `multiplier` x price)."""
    api, structured = wire_for(cfg)
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
