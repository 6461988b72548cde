"""Apply Batch API result lines to the ledger, exactly like the online executor would.

Accepts OpenAI output and error lines, and vLLM `run-batch` lines (successes and errors in one
file; `error` may be a plain string). Every line is joined on `custom_id` (the unit id),
never on its position. Callers wrap calls in a ledger transaction.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from benchsmith.config import Price
from benchsmith.engine.outcome import classify_status, judge
from benchsmith.engine.planning import child_rows
from benchsmith.engine.pricing import cost_usd
from benchsmith.engine.wire import MalformedAnswer, error_message, parse_completion
from benchsmith.recipes.base import Recipe, RequestSpec
from benchsmith.records import Task, Usage
from benchsmith.store.ledger import Ledger, Unit

REQUEUE_CODES = ("batch_expired", "batch_cancelled", "request_timeout")


@dataclass
class ReconcileCounts:
    ok: int = 0
    invalid: int = 0  # invalid answers (a unit may be re-asked)
    requeued: int = 0  # expired / cancelled / missing / retryable: sent again later
    failed: int = 0
    unknown: int = 0  # custom_id not in this run
    already_done: int = 0  # unit already finished (e.g. the same file ingested twice)
    stop: list[str] = field(default_factory=list)
    unknown_ids: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k not in ("stop", "unknown_ids")}


class Reconciler:
    def __init__(
        self, ledger: Ledger, recipe: Recipe, tasks: dict[tuple[str, str], Task], *,
        invocation: int, price_for: Callable[[str], Price | None], multiplier: float,
        max_retries: int,
    ):
        self.ledger = ledger
        self.recipe = recipe
        self.tasks = tasks
        self.inv = invocation
        self.price_for = price_for
        self.multiplier = multiplier
        self.max_retries = max_retries
        self.counts = ReconcileCounts()
        self.new_units: list[str] = []
        self._unit: Unit

    # -- entry points ---------------------------------------------------------------------
    def apply(
        self, line: dict[str, Any], attempt_id: int | None, api: str,
        known: dict[str, Unit] | None = None,
    ) -> None:
        """`known`: units already read for this block of lines (saves one query per line)."""
        uid = line.get("custom_id")
        if not isinstance(uid, str):
            unit = None
        elif known is not None and uid in known:
            unit = known.pop(uid)
        else:
            unit = self.ledger.unit(uid)
        if unit is None:
            self.counts.unknown += 1
            self.counts.unknown_ids.append(str(uid))
            if attempt_id is not None:
                self._end(attempt_id, "unknown", None, Usage(), 0.0, error="unknown custom_id")
            return
        if unit.state != "pending":
            self.counts.already_done += 1
            if attempt_id is not None:
                self._end(attempt_id, "duplicate", None, Usage(), 0.0, error="unit already finished")
            return
        self._unit = unit  # an ingested line (attempt_id None) becomes one new attempt row
        resp = line.get("response")
        err = line.get("error")
        status = resp.get("status_code") if isinstance(resp, dict) else None
        body = resp.get("body") if isinstance(resp, dict) else None
        if status == 200 and isinstance(body, dict):
            self._answer(unit, attempt_id, api, body)
            return
        if isinstance(err, dict) and err.get("code") in REQUEUE_CODES:
            self._end(attempt_id, str(err["code"]), None, Usage(), 0.0, error=str(err.get("message")))
            self._maybe_fail_transient(unit, f"{err['code']}")
            return
        msg = error_message(body if body is not None else err, str(err or f"HTTP {status}"))
        self._http_error(unit, attempt_id, int(status or 400), msg)

    def missing(self, unit_id: str, attempt_id: int | None) -> None:
        """A request in neither the output nor the error file: sent again later."""
        self._end(attempt_id, "missing", None, Usage(), 0.0, error="not in the batch output")
        unit = self.ledger.unit(unit_id)
        if unit is not None:
            self._maybe_fail_transient(unit, "missing from the batch output")

    # -- outcomes -------------------------------------------------------------------------
    def _answer(self, unit: Unit, aid: int | None, api: str, body: dict[str, Any]) -> None:
        spec = RequestSpec.from_dict(unit.spec)
        try:
            comp = parse_completion(api, body)
        except MalformedAnswer as e:
            self._end(aid, "malformed", 200, Usage(), 0.0, error=str(e))
            self._maybe_fail_transient(unit, "malformed answers")
            return
        cost = cost_usd(comp.usage, self.price_for(unit.model), self.multiplier)
        stage = self.recipe.stage(spec.stage)
        j = judge(stage, spec, comp)
        if j.ok:
            self._end(aid, "ok", 200, comp.usage, cost, raw=comp.text)
            self.ledger.finish_unit(unit.unit_id, "ok", None, j.records)
            self.counts.ok += 1
            self._children(unit, spec, j.records, ok=True)
            return
        self._end(aid, "invalid", 200, comp.usage, cost, raw=comp.text, issues=j.issues)
        self.counts.invalid += 1
        if self._count(unit.unit_id, "status='invalid'") > stage.max_validation_retries:
            self.ledger.finish_unit(unit.unit_id, "invalid", f"validation: {j.issues[0]}"[:500], None)
            self._children(unit, spec, [], ok=False)

    def _http_error(self, unit: Unit, aid: int | None, status: int, msg: str) -> None:
        self._end(aid, "http_error", status, Usage(), 0.0, error=f"HTTP {status}: {msg}")
        kind = classify_status(status, msg)
        if kind == "stop":
            self.counts.stop.append(f"HTTP {status}: {msg}")
            self.counts.requeued += 1
        elif kind == "retry":
            self._maybe_fail_transient(unit, f"HTTP {status}: {msg}")
        else:
            self._fail(unit, f"HTTP {status}: {msg}")

    def _maybe_fail_transient(self, unit: Unit, reason: str) -> None:
        n = self._count(
            unit.unit_id,
            "(status IN ('malformed','timeout','connection_error','missing','batch_expired',"
            "'batch_cancelled','request_timeout') OR "
            "(status='http_error' AND (http_status IN (408,409,429) OR http_status>=500)))",
        )
        if n > self.max_retries:
            self._fail(unit, f"{reason} after {n} tries")
        else:
            self.counts.requeued += 1

    def _fail(self, unit: Unit, reason: str) -> None:
        self.ledger.finish_unit(unit.unit_id, "failed", reason[:500], None)
        self.counts.failed += 1
        self._children(unit, RequestSpec.from_dict(unit.spec), [], ok=False)

    def _children(self, unit: Unit, spec: RequestSpec, records: list[dict[str, Any]], ok: bool) -> None:
        task = self.tasks.get((spec.dataset, spec.task_id))
        if task is None:
            return
        rows = child_rows(self.recipe, task, unit.unit_id, spec, records, ok=ok)
        if rows:
            self.ledger.insert_units(rows)
            self.new_units.extend(uid for uid, _ in rows)

    def _count(self, unit_id: str, where: str) -> int:
        return int(self.ledger.db.execute(
            f"SELECT COUNT(*) FROM attempts WHERE unit_id=? AND {where}", (unit_id,)
        ).fetchone()[0])

    def _end(self, aid: int | None, status: str, http: int | None, usage: Usage, cost: float, *,
             raw: str | None = None, error: str | None = None, issues: tuple[str, ...] | None = None
             ) -> None:
        if aid is None:
            self.ledger.record_attempt(
                self._unit.unit_id, self.inv, self._unit.model, "ingest", status=status,
                http_status=http, usage=usage, cost_usd=cost, raw_output=raw, error=error,
                issues=issues,
            )
            return
        self.ledger.end_attempt(aid, status=status, http_status=http, latency_s=None, usage=usage,
                                cost_usd=cost, raw_output=raw, error=error, issues=issues)
