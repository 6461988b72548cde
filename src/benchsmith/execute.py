"""Running planned units: the endpoint (or the local model server) and the executor."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

from benchsmith.config import RunConfig
from benchsmith.engine.budget import Budget
from benchsmith.engine.context import ContextLimits
from benchsmith.engine.http import HttpClient
from benchsmith.engine.online import EngineSettings, OnlineExecutor, Stats
from benchsmith.engine.ratelimit import RateLimiter
from benchsmith.engine.shutdown import stop_signals
from benchsmith.recipes.base import Recipe
from benchsmith.records import Task
from benchsmith.store.ledger import Ledger
from benchsmith.store.units import Unit
from benchsmith.store.rundir import RunDir

Echo = Callable[[str], None]


@contextlib.contextmanager
def endpoint(cfg: RunConfig, rd: RunDir, echo: Echo) -> Iterator[str]:
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


async def execute_online(
    cfg: RunConfig, ledger: Ledger, recipe: Recipe, tasks: dict[tuple[str, str], Task], inv: int,
    api: str, structured: str, keys: list[str], base_url: str, budget: Budget,
    on_progress: Callable[[Stats], None] | None, echo: Echo = lambda _m: None,
    pending: list[Unit] | None = None,
) -> Any:
    """`pending`: the run's pending units, when the caller has read them already."""
    eng = cfg.engine
    settings = EngineSettings(
        api=api, structured=structured, keys=keys, concurrency=eng.concurrency,
        max_retries=eng.max_retries, backoff_base_s=eng.backoff_base_s,
        backoff_max_s=eng.backoff_max_s,
        schema_bounds=_bounds(cfg, structured),
        context=ContextLimits.from_config(cfg, api, structured),
    )
    if pending is None:
        pending = list(ledger.units(state="pending"))
    prices = (lambda _m: None) if cfg.provider == "local" else cfg.price_for
    async with HttpClient(base_url, eng.concurrency, eng.timeout_s) as http:
        ex = OnlineExecutor(
            ledger=ledger, recipe=recipe, tasks=tasks, invocation=inv, settings=settings,
            http=http, budget=budget, limiter=RateLimiter(eng.rpm, eng.tpm), prices=prices,
            on_progress=on_progress, echo=echo,
        )
        grace = eng.shutdown_grace_s

        def first(name: str) -> None:
            echo(f"{name}: stopping; requests in flight get up to {grace:g} s to finish and be "
                 "recorded (signal again to abandon them)")
            ex.interrupt(name, grace)

        with stop_signals(first, ex.abort):
            return await ex.run(pending)


async def execute_batch(
    cfg: RunConfig, ledger: Ledger, recipe: Recipe, tasks: dict[tuple[str, str], Task], inv: int,
    api: str, structured: str, keys: list[str], budget: Budget, rd: RunDir,
    on_progress: Callable[[Stats], None] | None, echo: Echo = lambda _m: None,
) -> Any:
    from benchsmith.engine.batch import BatchExecutor, BatchSettings
    from benchsmith.engine.batch_api import BatchApi

    settings = BatchSettings(
        api=api, structured=structured, bounds=_bounds(cfg, structured),
        max_retries=cfg.engine.max_retries, cfg=cfg.batch,
        context=ContextLimits.from_config(cfg, api, structured),
    )
    async with BatchApi(cfg.openai.base_url, keys[0] if keys else None,
                        timeout_s=max(cfg.engine.timeout_s, 300.0),
                        max_retries=cfg.engine.max_retries) as client:
        ex = BatchExecutor(
            ledger=ledger, recipe=recipe, tasks=tasks, invocation=inv, settings=settings,
            client=client, budget=budget, workdir=rd.root / "batches", price_for=cfg.price_for,
            on_progress=on_progress, echo=echo,
        )
        def first(name: str) -> None:
            echo(f"{name}: stopping; open batches stay on the server and resume picks them up")
            ex.interrupt(name)

        with stop_signals(first, ex.interrupt):
            return await ex.run()


def _bounds(cfg: RunConfig, structured: str) -> tuple[int, int] | None:
    return (cfg.local.max_string_chars, cfg.local.max_array_items) if structured == "llama_cpp" else None
