"""The batch executor: the same units as online, sent through the OpenAI Batch API.

Lifecycle of each input file, every transition written to the ledger:
  prepare  attempts (worst case reserved at the batch price) + batch row, input file on disk
  upload   POST /files (purpose=batch)            -> input_file_id
  create   POST /batches (metadata: local id)     -> batch_id
  poll     GET /batches/{id} with backoff         -> status, request_counts
  download output and error files                 -> batches/<local id>_{output,errors}.jsonl
  reconcile join on custom_id; invalid answers, expired/cancelled/missing and retryable lines
           stay pending and go in a later file; one transaction per batch
A crash at any point re-attaches on resume: a prepared batch is looked up by its local id
in the provider's batch list before anything is uploaded again. So does a stop signal
(`interrupt`): polling stops at once and open batches are left on the server.
A server that billed past the worst cases (see engine/budget) makes them count at the ratio
seen, and stops the run before another file is sent once spend could pass the budget.
A line refusing the reasoning parameter (engine/param_fallback) is sent again in a later file
without it, as are the model's other requests from then on.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from benchsmith.config_sections import BatchConfig, Price
from benchsmith.engine.batch_api import BatchApi
from benchsmith.engine.batch_lines import ENDPOINTS, Chunk, plan_chunks, request_lines
from benchsmith.engine.budget import Budget, final_stop, overbilled_note
from benchsmith.engine.context import ContextLimits, skip_too_long, skip_units
from benchsmith.engine.expected import ExpectedWork
from benchsmith.engine.history import load_histories
from benchsmith.engine.online import Outcome, Stats
from benchsmith.engine.param_fallback import ParamFallback
from benchsmith.engine.planning import fail_units
from benchsmith.engine.local_units import settle_local
from benchsmith.engine.reconcile import Reconciler
from benchsmith.errors import AuthError
from benchsmith.progress import BatchView
from benchsmith.recipes.base import Recipe
from benchsmith.records import Task
from benchsmith.store import batches as bstore
from benchsmith.store.io_errors import file_error
from benchsmith.store.ledger import Ledger

META_KEY = "benchsmith_local_id"


@dataclass(frozen=True)
class BatchSettings:
    api: str
    structured: str
    bounds: tuple[int, int] | None
    max_retries: int
    cfg: BatchConfig
    context: ContextLimits | None = None  # requests that cannot fit are skipped, never sent


class BatchExecutor:
    def __init__(
        self, *, ledger: Ledger, recipe: Recipe, tasks: dict[tuple[str, str], Task], invocation: int,
        settings: BatchSettings, client: BatchApi, budget: Budget, workdir: Path,
        price_for: Callable[[str], Price | None], on_progress: Callable[[Stats], None] | None = None,
        sleep: Callable[[float], Any] = asyncio.sleep, echo: Callable[[str], None] | None = None,
    ):
        self.ledger = ledger
        self.recipe = recipe
        self.tasks = tasks
        self.inv = invocation
        self.s = settings
        self.client = client
        self.budget = budget
        self.workdir = workdir
        self.price_for = price_for
        self.on_progress = on_progress or (lambda _s: None)
        self.sleep = sleep
        self.outcome = Outcome()
        self.fallback = ParamFallback(echo)
        self._loop_task: asyncio.Future[None] | None = None
        self._interrupted = False
        self._expect = ExpectedWork(recipe)

    # -- the loop -------------------------------------------------------------------------
    async def run(self) -> Outcome:
        # A server that overbilled before will again: count worst cases at the ratio seen.
        self.budget.factor = max(self.budget.factor, self.ledger.overbilling()[2])
        self._progress()
        self._loop_task = asyncio.ensure_future(self._loop())
        try:
            if self._interrupted:
                self._loop_task.cancel()
            await self._loop_task
        except AuthError as e:
            self.outcome = Outcome("auth", str(e))
        except asyncio.CancelledError:
            if not self._interrupted:
                raise
        self._refresh_budget()
        # Open batches (if stopped) count at their worst case, as in the run's summary.
        self.budget.spent, self.budget.reserved = self.budget.spent + self.budget.reserved, 0.0
        self.outcome = Outcome(*final_stop(self.budget, self.outcome.stopped, self.outcome.message))
        self._progress()
        return self.outcome

    def interrupt(self, signal_name: str = "a second signal") -> None:
        """Stop at once: nothing more is sent or polled; open batches stay on the server (the
        ledger knows them) and `run --resume` picks them up."""
        if self.outcome.stopped is None:
            self.outcome = Outcome(
                "interrupted", f"interrupted by {signal_name}; batches still open stay on the "
                "server and are picked up on resume",
            )
        self._interrupted = True
        if self._loop_task is not None:
            self._loop_task.cancel()

    async def _loop(self) -> None:
        while True:
            open_ = bstore.batches(self.ledger, unreconciled=True)
            if open_:
                await asyncio.gather(*(self._drive(b["local_id"]) for b in open_))
                self._refresh_budget()
            if self.outcome.stopped or self._overbilled_stop():
                break
            chunks, budget_stopped, refused, n_failed = self._prepare_next()
            if not chunks:
                if budget_stopped:
                    self._stop_budget(refused)
                    break
                if n_failed:  # units failed unsent: what follows them may be pending
                    continue
                break
            await asyncio.gather(*(self._drive(c) for c in chunks))
            self._refresh_budget()
            if self._overbilled_stop():
                break
            if budget_stopped and (self.budget.remaining or 0.0) < self.budget.cost_bound(refused):
                self._stop_budget(refused)
                break

    def _overbilled_stop(self) -> bool:
        """After overbilling: stop before another file once spend could pass the budget."""
        if self.budget.overbilled_n and self.budget.at_risk:
            self.outcome = Outcome("budget", "")  # the message is final_stop's
            return True
        return False

    def _stop_budget(self, refused: float) -> None:
        self.outcome = Outcome("budget", self.budget.refusal(refused, " at the batch price"))

    def _refresh_budget(self) -> None:
        settled, unsettled = self.ledger.spend()
        # Requests still in open batches count as reserved: at `factor` if overbilled.
        self.budget.spent, self.budget.reserved = settled, unsettled

    def _progress(self) -> None:
        """The run's counts (the current plan; pending units with what they are expected to
        plan, skipped ones left out) and this invocation's batches."""
        c = self.ledger.state_counts(current_plan=True)
        u = self.ledger.usage_totals()
        settled, _ = self.ledger.spend()
        done = sum(c.get(k, 0) for k in ("ok", "invalid", "failed"))
        views = tuple(
            BatchView(b["local_id"], b["batch_id"], b["status"],
                      *_counts(b["request_counts"], b["n_requests"]), b["created_at"])
            for b in bstore.batches(self.ledger) if b["invocation"] == self.inv)
        self.on_progress(Stats(
            total=done + self._expect.counted(self.ledger.pending_by_stage()),
            ok=c.get("ok", 0), invalid=c.get("invalid", 0), failed=c.get("failed", 0),
            calls=u["api_calls"], input_tokens=u["input_tokens"],
            output_tokens=u["output_tokens"], cost_usd=settled, batches=views,
        ))

    # -- prepare ----------------------------------------------------------------------------
    def input_path(self, local_id: str) -> Path:
        return self.workdir / f"{local_id}_input.jsonl"

    def _prepare_next(self) -> tuple[list[str], bool, float, int]:
        """Write the next input files for pending units not already in a batch. Units whose
        request line alone is over the per-file cap fail unsent (the last value: how many)."""
        # Model-free units are answered here, never written to a request file.
        settle_local(self.ledger, self.recipe, self.tasks, self.inv)
        if self.s.context is not None:  # a raised limit re-opens units skipped before
            skip_too_long(self.ledger, self.s.context, scan=False)
        busy = bstore.units_in_flight(self.ledger)
        pending = (u for u in self.ledger.units(state="pending") if u.unit_id not in busy)
        self.fallback.load(self.ledger)  # parameters refused so far are left out
        lines = request_lines(
            pending, load_histories(self.ledger), api=self.s.api, structured=self.s.structured,
            price_for=self.price_for, multiplier=self.s.cfg.price_multiplier, bounds=self.s.bounds,
            context=self.s.context, fallback=self.fallback,
        )
        try:
            plan = plan_chunks(
                lines, workdir=self.workdir, max_requests=self.s.cfg.max_requests_per_file,
                max_bytes=self.s.cfg.max_bytes_per_file, budget=self.budget,
            )
        except OSError as e:  # a full disk: one line naming the run (io_errors)
            err = file_error(self.workdir, e)
            if err is None:
                raise
            raise err from e
        skip_units(self.ledger, plan.too_long)  # a skipped call ends its chain
        n_failed = fail_units(self.ledger, self.recipe, self.tasks, plan.too_big)
        return ([self._record(ch) for ch in plan.chunks], plan.budget_stopped, plan.refused_usd,
                n_failed)

    def _record(self, ch: Chunk) -> str:
        local_id = "b" + secrets.token_hex(8)
        ch.path.replace(self.input_path(local_id))
        counts = {uid: self.ledger.attempt_count(uid) for uid in ch.unit_ids}
        with self.ledger.tx():
            items = []
            for uid, reserve in zip(ch.unit_ids, ch.reserves):
                aid = self.ledger.begin_attempt(uid, self.inv, counts[uid] + 1, ch.model, reserve,
                                                f"batch:{local_id}")
                items.append((uid, aid))
            bstore.add_batch(
                self.ledger, local_id=local_id, invocation=self.inv, model=ch.model,
                endpoint=_endpoint(self.s.api), n_requests=len(items), n_bytes=ch.bytes,
                reserved_usd=ch.reserved_usd, items=items,
            )
        return local_id

    # -- one batch, from wherever it stands -------------------------------------------------
    async def _drive(self, local_id: str) -> None:
        b = bstore.batch(self.ledger, local_id)
        assert b is not None
        if b["batch_id"] is None:
            found = await self._find_remote(local_id)
            if found is not None:
                bstore.update_batch(self.ledger, local_id, batch_id=found["id"],
                                    input_file_id=found.get("input_file_id"), status=found["status"])
            else:
                if b["input_file_id"] is None:
                    f = await self.client.upload(self.input_path(local_id))
                    bstore.update_batch(self.ledger, local_id, input_file_id=f["id"], status="uploaded")
                    b = bstore.batch(self.ledger, local_id) or b
                created = await self.client.create(
                    b["input_file_id"], b["endpoint"], {META_KEY: local_id}
                )
                bstore.update_batch(self.ledger, local_id, batch_id=created["id"],
                                    status=created["status"])
        await self._poll(local_id)

    async def _find_remote(self, local_id: str) -> dict[str, Any] | None:
        async for rb in self.client.list_all():
            if (rb.get("metadata") or {}).get(META_KEY) == local_id:
                return rb
        return None

    async def _poll(self, local_id: str) -> None:
        b = bstore.batch(self.ledger, local_id)
        assert b is not None and b["batch_id"]
        delay = self.s.cfg.poll_interval_s
        while True:
            rb = await self.client.retrieve(b["batch_id"])
            bstore.update_batch(
                self.ledger, local_id, status=rb["status"], request_counts=rb.get("request_counts"),
                output_file_id=rb.get("output_file_id"), error_file_id=rb.get("error_file_id"),
                errors=rb.get("errors"), usage=rb.get("usage"),
            )
            self._progress()
            if rb["status"] in bstore.TERMINAL_BATCH:
                break
            await self.sleep(delay)
            delay = min(delay * 1.5, self.s.cfg.max_poll_interval_s)
        await self._reconcile(local_id, rb)
        self._progress()

    # -- reconcile --------------------------------------------------------------------------
    async def _reconcile(self, local_id: str, rb: dict[str, Any]) -> None:
        files = []
        for key, suffix in (("output_file_id", "output"), ("error_file_id", "errors")):
            if rb.get(key):
                files.append(await self.client.download(
                    rb[key], self.workdir / f"{local_id}_{suffix}.jsonl"
                ))
        items = bstore.items(self.ledger, local_id)
        api = ENDPOINTS.get(rb.get("endpoint") or "", self.s.api)
        rec = Reconciler(
            self.ledger, self.recipe, self.tasks, invocation=self.inv, price_for=self.price_for,
            multiplier=self.s.cfg.price_multiplier, max_retries=self.s.max_retries,
        )
        line_errors = _line_errors(rb, self.input_path(local_id))
        with self.ledger.tx():
            seen: set[str] = set()
            for path in files:
                for n, line in _result_lines(path):
                    if not isinstance(line, dict):  # its request, if any, counts as missing
                        rec.counts.note(f"{path.name} line {n}: {line}")
                        continue
                    uid = line.get("custom_id")
                    if not isinstance(uid, str) or not uid:
                        rec.no_custom_id(line)
                    elif uid not in items:
                        rec.counts.unknown += 1
                    elif uid not in seen:
                        seen.add(uid)
                        rec.apply(line, items[uid], api)
            why = rec.counts.notes[0] if rec.counts.notes else ""
            for uid, aid in items.items():
                if uid in seen:
                    continue
                if uid in line_errors:  # the input file failed validation on this line
                    rec.apply({"custom_id": uid, "response": {"status_code": 400, "body": {
                        "error": {"message": line_errors[uid]}}}}, aid, api)
                else:
                    rec.missing(uid, aid, why)
            for reserved, cost in bstore.mark_overbilled(self.ledger, local_id, overbilled_note):
                self.budget.note_overbilled(reserved, cost)
            bstore.update_batch(self.ledger, local_id, reconciled_at=time.time())
        if rec.counts.stop:
            raise AuthError(rec.counts.stop[0])


def _counts(rc: dict[str, Any] | None, n: int) -> tuple[int, int, int]:
    """(completed, failed, total) of a batch's request_counts (none yet: 0, 0, n)."""
    rc = rc or {}
    return int(rc.get("completed") or 0), int(rc.get("failed") or 0), int(rc.get("total") or n)


def _endpoint(api: str) -> str:
    return "/v1/responses" if api == "responses" else "/v1/chat/completions"


def _result_lines(path: Path) -> Iterator[tuple[int, Any]]:
    """(line number, parsed line) of a result file's non-blank lines; a line that is not a
    JSON object comes as a one-line description instead."""
    with path.open("rb") as fh:
        for n, raw in enumerate(fh, 1):
            if not raw.strip():
                continue
            try:
                line = orjson.loads(raw)
            except orjson.JSONDecodeError as e:
                yield n, f"not JSON ({e})"
                continue
            yield n, line if isinstance(line, dict) else "not a JSON object"


def _line_errors(rb: dict[str, Any], input_path: Path) -> dict[str, str]:
    """custom_id -> message, for a batch that failed validation with per-line errors."""
    data = ((rb.get("errors") or {}).get("data")) or []
    by_line = {e.get("line"): e for e in data if isinstance(e, dict) and e.get("line")}
    if rb.get("status") != "failed" or not by_line or not input_path.exists():
        return {}
    out = {}
    with input_path.open("rb") as fh:
        for n, raw in enumerate(fh, 1):
            if n in by_line:
                e = by_line[n]
                out[orjson.loads(raw)["custom_id"]] = (
                    f"batch validation, line {n}: {e.get('code')}: {e.get('message')}"
                )
    return out
