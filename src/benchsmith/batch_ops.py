"""Batch operations on an existing run: status, cancel, offline export and ingest.

Export writes the run's pending requests as Batch API lines for a runner elsewhere (a vLLM
`run-batch` job, another provider); ingest reconciles the result lines exactly as the batch
executor does. Ingesting the same file twice changes nothing.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchsmith.config import api_keys
from benchsmith.engine.batch_lines import ENDPOINTS, request_lines, too_big_reason
from benchsmith.engine.context import ContextLimits, skip_too_long, skip_units
from benchsmith.engine.history import load_histories
from benchsmith.engine.local_units import local_stages, settle_local
from benchsmith.engine.param_fallback import ParamFallback
from benchsmith.engine.planning import fail_units
from benchsmith.errors import ConfigError
from benchsmith.execute import _bounds
from benchsmith.export.run_files import write_run_files
from benchsmith.planner import wire_for
from benchsmith.ingest import IngestReport, batch_ingest  # noqa: F401 - re-exported
from benchsmith.recipe_of import recipe_for
from benchsmith.run_open import open_run_dir
from benchsmith.store import batches as bstore
from benchsmith.store.lock import LOCK_NAME, locks_run, run_lock_if_free
from benchsmith.store.rundir import LEDGER_NAME, open_existing_run


def _unfinished(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Batches the provider has and may still change."""
    return [b for b in rows if b["batch_id"] and b["status"] not in bstore.TERMINAL_BATCH]


def batch_status(run_dir: str | Path, refresh: bool = True) -> list[dict[str, Any]]:
    """The run's batches from the ledger; with `refresh`, unfinished ones are re-read from the API.

    Reading opens the ledger read-only. A refresh writes the ledger, so it needs the run lock;
    while a run is live (it polls its batches itself) the ledger is shown as that run last
    recorded it.
    """
    rd, ledger = open_existing_run(run_dir)
    try:
        rows = bstore.batches(ledger)
    finally:
        ledger.close()
    if not refresh or not _unfinished(rows):
        return rows
    with run_lock_if_free(rd.root, "batch status") as mine:
        return _refresh_status(rd.root) if mine else rows


def _refresh_status(run_dir: Path) -> list[dict[str, Any]]:
    rd, ledger, cfg = open_run_dir(run_dir)
    try:
        live = _unfinished(bstore.batches(ledger))
        if live:
            from benchsmith.engine.batch_api import BatchApi

            async def go() -> None:
                keys = api_keys(cfg)
                async with BatchApi(cfg.openai.base_url, keys[0] if keys else None) as api:
                    for b in live:
                        rb = await api.retrieve(b["batch_id"])
                        bstore.update_batch(ledger, b["local_id"], status=rb["status"],
                                            request_counts=rb.get("request_counts"))

            asyncio.run(go())
        return bstore.batches(ledger)
    finally:
        ledger.close()


def batch_cancel(run_dir: str | Path) -> list[str]:
    """Ask the provider to cancel every submitted, unfinished batch. Returns their ids.

    Their partial results are reconciled by the next `run --resume`, or by the live run: a
    run in progress holds the lock and records the new status itself when it polls, so only
    the provider is asked then (one writer per run).
    """
    rd, ledger = open_existing_run(run_dir)
    try:
        live = _unfinished(bstore.batches(ledger, unreconciled=True))
    finally:
        ledger.close()
    if not live:
        return []
    with run_lock_if_free(rd.root, "batch cancel") as mine:
        return _batch_cancel(rd.root, record=mine)


def _batch_cancel(run_dir: Path, record: bool) -> list[str]:
    rd, ledger, cfg = open_run_dir(run_dir, readonly=not record)
    try:
        live = _unfinished(bstore.batches(ledger, unreconciled=True))
        if not live:
            return []
        from benchsmith.engine.batch_api import BatchApi

        async def go() -> None:
            keys = api_keys(cfg)
            async with BatchApi(cfg.openai.base_url, keys[0] if keys else None) as api:
                for b in live:
                    rb = await api.cancel(b["batch_id"])
                    if record:
                        bstore.update_batch(ledger, b["local_id"],
                                            status=rb.get("status", "cancelling"))

        asyncio.run(go())
        return [b["batch_id"] for b in live]
    finally:
        ledger.close()


@dataclass(frozen=True)
class ExportReport:
    written: int
    failed: list[tuple[str, str]]  # (unit id, reason): request lines over the per-file cap


def batch_export(run_dir: str | Path, out: Path, endpoint: str | None = None) -> int:
    """Write the pending requests (with any validation feedback) as Batch API lines.
    Returns how many were written (`export_requests` also says which units failed)."""
    return export_requests(run_dir, out, endpoint).written


def _not_a_run_file(root: Path, out: Path) -> None:
    """Refuse `--out` onto the run's ledger (and its journal), lock or config: the run
    would be gone. Other files in the run dir are regenerated from the ledger anyway."""
    target = out.resolve()
    root = root.resolve()
    own = {root / LEDGER_NAME, root / LOCK_NAME, *(root / f"{LEDGER_NAME}{s}"
                                                  for s in ("-wal", "-shm", "-journal"))}
    if target in own or target.is_relative_to(root / "config"):
        raise ConfigError("command line", "--out",
                          f"{out} is a file of the run itself; write the requests elsewhere")


def _tasks(ledger: Any) -> dict[tuple[str, str], Any]:
    return {(t.dataset, t.id): t for t in ledger.tasks()}


@locks_run("batch export")  # exported requests must not also be sent by a live run
def export_requests(run_dir: str | Path, out: Path, endpoint: str | None = None) -> ExportReport:
    """`batch_export`. A request line over `batch.max_bytes_per_file` alone is not written:
    no provider would take a file holding it, so its unit fails with the reason."""
    rd, ledger, cfg = open_run_dir(run_dir)
    try:
        _not_a_run_file(rd.root, out)
        api, structured = wire_for(cfg)
        if endpoint is not None:
            if endpoint not in ENDPOINTS:
                raise ConfigError("command line", "--endpoint", f"must be one of {sorted(ENDPOINTS)}")
            api = ENDPOINTS[endpoint]
            if structured == "llama_cpp" and api != "chat":
                raise ConfigError("command line", "--endpoint", "llama_cpp output needs /v1/chat/completions")
        context = ContextLimits.from_config(cfg, api, structured)
        skip_too_long(ledger, context, scan=False)  # re-opens; each line is checked below
        recipe = recipe_for(cfg)
        answered = {}
        if local_stages(recipe):  # model-free units are answered here, never in the file
            answered = settle_local(ledger, recipe, _tasks(ledger))
        busy = bstore.units_in_flight(ledger)
        pending = (u for u in ledger.units(state="pending") if u.unit_id not in busy)
        fallback = ParamFallback()  # parameters refused in ingested lines are left out
        fallback.load(ledger)
        lines = request_lines(
            pending, load_histories(ledger), api=api, structured=structured,
            price_for=cfg.price_for, multiplier=cfg.batch.price_multiplier,
            bounds=_bounds(cfg, structured), context=context, fallback=fallback,
        )
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".{out.name}.tmp")
        n = 0
        cap = cfg.batch.max_bytes_per_file
        too_big: list[tuple[str, str]] = []
        too_long: list[tuple[str, str]] = []
        with tmp.open("wb") as fh:
            for line in lines:
                if line.too_long is not None:
                    too_long.append((line.unit_id, line.too_long))
                    continue
                if len(line.data) > cap:
                    too_big.append((line.unit_id, too_big_reason(len(line.data), cap)))
                    continue
                fh.write(line.data)
                n += 1
        tmp.replace(out)
        skip_units(ledger, too_long)
        if too_big or too_long or answered:
            if too_big:
                fail_units(ledger, recipe, _tasks(ledger), too_big)
            write_run_files(ledger, rd, recipe)  # failures and local answers show in the outputs
        return ExportReport(n, too_big)
    finally:
        ledger.close()


