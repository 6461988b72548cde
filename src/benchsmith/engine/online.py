"""The online executor: bounded concurrency over pending ledger units.

For each unit: reserve the worst-case cost, wait for rate-limit capacity, record the attempt,
send, judge the answer, and do what engine/unit_machine decides (finish the unit, re-ask,
or send again after a backoff with jitter, Retry-After honoured). Besides:
  stop       401 / 403 (and exhausted quota): the whole run stops at once
  budget     the next request cannot fit: dispatch stops, the unit stays pending
  overbilled an answer cost more than its worst case (the server billed past
             max_output_tokens): worst cases count at the ratio seen (see engine/budget),
             and dispatch stops at once if what is in flight could pass the budget
  signal     SIGINT/SIGTERM (`interrupt`): dispatch stops, requests in flight get a grace
             period to finish and be recorded; then, or on a second signal, `abort`
  fallback   a 400 refusing the reasoning parameter: sent again at once without it, and the
             model's later requests leave it out (engine/param_fallback)
"""

from __future__ import annotations

import asyncio
import itertools
import dataclasses
import random
from collections import deque
from collections.abc import Callable
from typing import Any, NamedTuple

import orjson

from benchsmith.config_sections import Price
from benchsmith.engine.budget import Budget, final_stop, overbilled_note
from benchsmith.engine.exec_common import (  # Stats, Outcome, EngineSettings: re-exported
    EngineSettings, Outcome, Stats, backoff_s, cancel_all, quiet_cyclic_gc,
)
from benchsmith.engine.expected import ExpectedWork
from benchsmith.engine.history import UnitHistory, load_histories
from benchsmith.engine.http import TRANSIENT_EXC, HttpClient
from benchsmith.engine.local_units import answer_local
from benchsmith.engine.online_chain import Children
from benchsmith.engine.online_request import build_request
from benchsmith.engine.outcome import http_error_text, judge, stop_message
from benchsmith.engine.param_fallback import ParamFallback, rejected_param
from benchsmith.engine.pricing import cost_usd
from benchsmith.engine.ratelimit import RateLimiter
from benchsmith.engine.shutdown import Halt
from benchsmith.engine.unit_machine import (
    Decision, Failure, Limits, UnitState, http_failure, next_step, validation_exhausted,
)
from benchsmith.engine.wire import PATHS, MalformedAnswer, parse_completion
from benchsmith.errors import AuthError
from benchsmith.recipes.base import Recipe, RequestSpec, Stage, with_feedback
from benchsmith.records import Task, Usage
from benchsmith.store.group_commit import GroupCommit
from benchsmith.store.ledger import Ledger, Unit


_NO_HISTORY = UnitHistory()


class _Ok(NamedTuple):  # a valid answer, to be written
    comp: Any  # records.Completion
    cost: float
    records: list[Any]


class _Unit(NamedTuple):  # what `_process` works out once per unit
    unit: Unit
    spec: RequestSpec
    stage: Stage
    price: Price | None
    history: UnitHistory
    limits: Limits


class OnlineExecutor:
    """Runs pending units to a terminal state (or until budget/auth stops the run)."""

    def __init__(
        self, *, ledger: Ledger, recipe: Recipe, tasks: dict[tuple[str, str], Task],
        invocation: int, settings: EngineSettings, http: HttpClient, budget: Budget,
        limiter: RateLimiter, prices: Callable[[str], Price | None],
        on_progress: Callable[[Stats], None] | None = None, rng: random.Random | None = None,
        echo: Callable[[str], None] | None = None,
    ):
        self.ledger = ledger
        self.recipe = recipe
        self.tasks = tasks
        self.inv = invocation
        self.s = settings
        self.http = http
        self.budget = budget
        self.limiter = limiter
        self.prices = prices
        self.on_progress = on_progress or (lambda _s: None)
        self.rng = rng or random.Random()
        self.stats = Stats()
        self._expect = ExpectedWork(recipe)
        self.queue: deque[Unit] = deque()
        self.outcome = Outcome()
        self._keys = itertools.cycle(range(len(settings.keys))) if settings.keys else None
        self._history: dict[str, UnitHistory] = {}
        self._limits: dict[str, Limits] = {}  # by stage
        self._children = Children(ledger, recipe, tasks, self._history)
        self.fallback = ParamFallback(echo)
        self._inflight = 0
        self._wake = asyncio.Event()
        self._commits: GroupCommit
        self._halt = Halt()
        self._aborted = False
        self._workers: list[asyncio.Task[None]] = []

    # -- public -------------------------------------------------------------------------
    async def run(self, units: list[Unit]) -> Outcome:
        self._history = load_histories(self.ledger) if units else {}
        if units:
            self.fallback.load(self.ledger)  # refusals of earlier invocations hold
        self._children = Children(self.ledger, self.recipe, self.tasks, self._history)
        # A server that overbilled before will again: count worst cases at the ratio seen.
        self.budget.factor = max(self.budget.factor, self.ledger.overbilling()[2])
        self.queue.extend(units)
        self.stats.total = self._expect.total(units)  # children to come counted up front
        self.on_progress(self.stats)
        n = min(self.s.concurrency, max(1, len(units)))
        self._commits = GroupCommit(self.ledger)
        with quiet_cyclic_gc():
            workers = self._workers = [asyncio.create_task(self._worker()) for _ in range(n)]
            try:
                if self._aborted:
                    raise asyncio.CancelledError
                await asyncio.gather(*workers)
            except AuthError as e:
                self.outcome = Outcome("auth", str(e))
                await cancel_all(workers)
            except asyncio.CancelledError:
                if not self._aborted:  # not ours: the caller is cancelling the run
                    raise
                await cancel_all(workers)
            except Exception:
                # A fatal error (e.g. the disk is full): every worker stops, its own errors
                # dying with it, before this one is raised.
                await cancel_all(workers)
                raise
            finally:
                self._halt.close()
                self._commits.close()
        self.outcome = Outcome(*final_stop(self.budget, self.outcome.stopped, self.outcome.message))
        return self.outcome

    def interrupt(self, signal_name: str, grace_s: float) -> None:
        """Stop dispatching; requests in flight get `grace_s` to finish, then `abort`."""
        if self.outcome.stopped is None:
            self.outcome = Outcome(
                "interrupted", f"interrupted by {signal_name}; requests in flight were recorded"
            )
        self._stop_dispatch()
        self._halt.later(grace_s, lambda: self.abort(f"after the {grace_s:g} s grace period"))

    def abort(self, why: str = "on a second signal") -> None:
        """Cancel everything still in flight (attempts end `cancelled`, at their reservation)."""
        if self._aborted:
            return
        self._aborted = True
        if self.outcome.stopped in (None, "interrupted"):
            head = self.outcome.message.split(";")[0] or "interrupted"
            self.outcome = Outcome(
                "interrupted", f"{head}; {self._inflight} unit(s) in flight abandoned {why}"
            )
        self._stop_dispatch()
        for w in self._workers:
            w.cancel()

    def _stop_dispatch(self) -> None:
        self._halt.set()
        self._wake.set()  # idle workers look again, and leave

    # -- internals ----------------------------------------------------------------------
    def _next_key(self) -> tuple[str | None, str]:
        if self._keys is None:
            return None, ""
        i = next(self._keys)
        key = self.s.keys[i]
        return key, f"key#{i + 1}" if key != "local" else "local"

    async def _worker(self) -> None:
        # Workers stay alive while others are in flight: a finished unit may plan children.
        while self.outcome.stopped is None:
            if not self.queue:
                if self._inflight == 0:
                    self._wake.set()
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            unit = self.queue.popleft()
            self._inflight += 1
            try:
                await self._process(unit)
            finally:
                self._inflight -= 1
                self._wake.set()

    async def _process(self, unit: Unit) -> None:
        """Send the unit's requests until unit_machine ends it, or the run stops."""
        spec = RequestSpec.from_dict(unit.spec)
        stage = self.recipe.stage(spec.stage)
        price = self.prices(spec.model)
        h = self._history.get(unit.unit_id, _NO_HISTORY)
        n, state = h.attempts, h.state  # counted over every invocation
        limits = self._limits.get(stage.name) or self._limits.setdefault(
            stage.name, Limits(self.s.max_retries, stage.max_validation_retries))
        u = _Unit(unit, spec, stage, price, h, limits)
        messages: list[dict[str, str]] = list(h.messages or spec.messages)
        tries = 0  # transient failures in this invocation: the backoff's exponent
        if stage.local is not None:  # model-free: answered here, nothing sent
            self._answer_local(unit)
            return
        if validation_exhausted(state, limits):
            self._finish(unit, "invalid", "validation retries exhausted", None)
            return
        while True:
            if self._halt.on:
                return  # stopping: the unit stays pending
            params = self.fallback.params_for(spec.model, spec.params)
            sent = spec if params is spec.params else dataclasses.replace(spec, params=params)
            req = build_request(self.s, sent, messages, price)
            if req.too_long:
                # Not a request to send: no chain successor (it would be as long).
                self.ledger.finish_unit(unit.unit_id, "skipped", req.too_long, None)
                self.stats.total -= self._expect.of(unit.stage, unit.sample_index)
                self.on_progress(self.stats)
                return
            reserve = req.reserve
            if not self.budget.try_reserve(reserve):
                if self.outcome.stopped is None:
                    self.outcome = Outcome("budget", self.budget.refusal(reserve))
                self.queue.appendleft(unit)
                return
            if self.limiter.limited and not await self._halt.until(self.limiter.acquire(req.tokens)):
                self.budget.settle(reserve, 0.0)  # stopping while waiting: never sent
                return
            key, hint = self._next_key()
            n += 1
            # The attempt row (with its reserved cost) is committed before the request is
            # sent: at once, in one transaction with the finished units queued by other
            # workers (see GroupCommit), so the send never waits for the event loop.
            begun = self._commits.submit(
                lambda n=n, reserve=reserve, hint=hint: self.ledger.begin_attempt(
                    unit.unit_id, self.inv, n, spec.model, reserve, hint
                ),
                at_once=True,
            )
            try:
                aid = await begun
            except asyncio.CancelledError:
                # Written but not sent: settle it as cancelled, as for a cancelled send.
                # Not yet written: the row is dropped, as if cancelled before recording.
                if begun.done() and not begun.cancelled() and begun.exception() is None:
                    self._end(begun.result(), reserve, "cancelled", None, None, Usage(), reserve,
                              error="run stopped")
                raise
            self.stats.calls += 1
            retry_after: float | None = None
            at_once = False
            try:
                res = await self.http.post(PATHS[self.s.api], req.payload, key)
            except asyncio.CancelledError:
                self._end(aid, reserve, "cancelled", None, None, Usage(), reserve, error="run stopped")
                raise
            except TRANSIENT_EXC as e:
                is_timeout = isinstance(e, asyncio.TimeoutError)
                # A timed-out request may still be billed: count its worst case.
                charge = reserve if is_timeout else 0.0
                status = "timeout" if is_timeout else "connection_error"
                d = next_step(state, Failure("transient", status), limits)
                self._end(aid, reserve, status, None, None, Usage(), charge, error=f"{status}: {e!r}"[:300])
            else:
                if res.status == 200:
                    step = self._answer(u, state, aid, reserve, res)
                    if isinstance(step, _Ok):
                        await self._finish_ok(u, aid, reserve, step, res.latency_s)
                        return
                    d, reask = step
                    if reask is not None:
                        messages = reask
                else:
                    msg = http_error_text(res.status, res.body)
                    refused = rejected_param(res.status, msg)
                    if refused is not None and refused in sent.params:
                        self.fallback.drop(spec.model, refused, msg)
                        failure, at_once = Failure("fallback", f"HTTP 400: {msg}"), True
                    else:
                        failure = http_failure(res.status, msg)
                    d = next_step(state, failure, limits)
                    self._end(aid, reserve, "http_error", res.status, res.latency_s, Usage(), 0.0,
                              error=f"HTTP {res.status}: {msg}")
                    if d.action == "stop":
                        raise AuthError(stop_message(res.status, msg, self.http.base_url))
                    retry_after = res.retry_after
            state = d.state
            if d.action == "fail":
                self._finish(unit, "failed", d.reason, None)
                return
            if d.action == "invalid":  # recorded with the attempt
                self.stats.invalid += 1
                self.on_progress(self.stats)
                self._continue_chain(unit, spec)
                return
            self.stats.retries += 1
            if d.action == "retry" and not at_once:
                tries += 1
                if not await self._halt.pause(backoff_s(self.s, tries - 1, retry_after, self.rng)):
                    return  # stopping: the unit stays pending

    def _answer(self, u: _Unit, state: UnitState, aid: int, reserve: float, res: Any
                ) -> _Ok | tuple[Decision, list[dict[str, str]] | None]:
        """Judge a 200 answer: a valid one is returned to be written by `_finish_ok`; else it
        is recorded, and what follows returned (with the messages of a re-ask)."""
        spec, limits = u.spec, u.limits
        try:
            comp = parse_completion(self.s.api, orjson.loads(res.body))
        except (orjson.JSONDecodeError, MalformedAnswer) as e:
            d = next_step(state, Failure("transient", "malformed answers"), limits)
            self._end(aid, reserve, "malformed", 200, res.latency_s, Usage(), reserve,
                      error=f"malformed answer: {e}"[:300])
            return d, None
        cost = cost_usd(comp.usage, u.price)
        self.stats.input_tokens += comp.usage.input_tokens
        self.stats.output_tokens += comp.usage.output_tokens
        verdict = judge(u.stage, spec, comp)
        if verdict.ok:
            return _Ok(comp, cost, verdict.records)
        issues = verdict.issues
        d = next_step(state, Failure("invalid", "", issues), limits)
        with self.ledger.tx():
            self._end(aid, reserve, "invalid", 200, res.latency_s, comp.usage, cost,
                      raw=comp.text, issues=issues)
            if d.action == "invalid":
                self.ledger.finish_unit(u.unit.unit_id, "invalid", d.reason, None)
        if d.action != "reask":
            return d, None
        return d, list(with_feedback(spec.messages, comp.text, issues, json=spec.schema is not None))

    async def _finish_ok(self, u: _Unit, aid: int, reserve: float, ok: _Ok, lat: float) -> None:
        unit, (comp, cost, records) = u.unit, ok
        over = overbilled_note(reserve, cost) if self._settle(reserve, cost) else None
        # Children are built (pure) before the parent is written so that their rows can
        # share its group commit; a build error is raised after the parent is committed,
        # as when children were planned afterwards.
        build_error: Exception | None = None
        try:
            rows = self._children.rows(unit, u.spec, records)
        except Exception as e:
            rows, build_error = [], e
        # A re-opened unit's chain may have gone on already: decided after its commit.
        later, rows = (rows, []) if u.history.reopened else ([], rows)

        def finish_ok() -> Exception | None:
            self.ledger.end_attempt(
                aid, status="ok", http_status=200, latency_s=lat, usage=comp.usage,
                cost_usd=cost, raw_output=comp.text, error=over, issues=None,
            )
            self.ledger.finish_unit(unit.unit_id, "ok", None, records)
            return self.ledger.insert_units_after(rows) if rows else None

        # Durable (committed, grouped with concurrent writers) before anything else sees
        # the unit as done; shielded so a stop cannot drop the write.
        insert_error = await asyncio.shield(self._commits.submit(finish_ok))
        self.stats.ok += 1
        self.on_progress(self.stats)
        if build_error is not None:
            raise build_error
        if insert_error is not None:
            raise insert_error
        self._queue_children(unit, self._children.after_reopen(unit.unit_id, later) if later else rows)

    def _answer_local(self, unit: Unit) -> None:
        with self.ledger.tx():
            state, rows = answer_local(self.ledger, self.recipe, self.tasks, unit, self.inv)
        if state == "ok":
            self.stats.ok += 1
        else:
            self.stats.invalid += 1
        self.on_progress(self.stats)
        self._queue_children(unit, rows)

    def _end(self, aid: int, reserve: float, status: str, http_status: int | None,
             latency: float | None, usage: Usage, cost: float, *, raw: str | None = None,
             error: str | None = None, issues: tuple[str, ...] | None = None) -> None:
        if self._settle(reserve, cost):
            error = overbilled_note(reserve, cost) + (f"; {error}" if error else "")
        self.ledger.end_attempt(
            aid, status=status, http_status=http_status, latency_s=latency, usage=usage,
            cost_usd=cost, raw_output=raw, error=error, issues=issues,
        )

    def _settle(self, reserve: float, cost: float) -> bool:
        """Count an attempt's cost; True when the server billed past its reservation."""
        self.stats.cost_usd += cost
        if not self.budget.settle(reserve, cost):
            return False
        if self.budget.at_risk and not self._halt.on:
            # What is in flight could now pass the budget: no further request goes out.
            if self.outcome.stopped is None:
                self.outcome = Outcome("budget", "")  # the message is final_stop's
            self._stop_dispatch()
        return True

    def _finish(self, unit: Unit, state: str, reason: str | None, result: Any) -> None:
        self.ledger.finish_unit(unit.unit_id, state, reason, result)
        if state == "failed":
            self.stats.failed += 1
        elif state == "invalid":
            self.stats.invalid += 1
        self.on_progress(self.stats)
        self._continue_chain(unit, RequestSpec.from_dict(unit.spec))

    def _continue_chain(self, unit: Unit, spec: RequestSpec) -> None:
        self._queue_children(unit, self._children.after_failure(unit, spec))

    def _queue_children(self, parent: Unit, rows: list[tuple[str, dict[str, Any]]]) -> None:
        kids = [u for u in map(self.ledger.unit, (uid for uid, _ in rows))
                if u is not None and u.state == "pending"]
        self.queue.extend(kids)
        self.stats.total += self._expect.change(parent, kids)  # what was expected, refined
