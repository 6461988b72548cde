"""Apply Batch API result lines to the ledger, exactly like the online executor would.

Accepts OpenAI output and error lines, and vLLM `run-batch` lines (successes and errors in one
file; `error` may be a plain string); `result_status` reads the status of a failed line. Every
line is joined on `custom_id` (the unit id), never on its position. Callers wrap calls in a
ledger transaction.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from benchsmith.config_sections import Price
from benchsmith.engine.param_fallback import refused_before, rejected_param
from benchsmith.engine.planning import child_rows
from benchsmith.engine.result_status import read_line_error
from benchsmith.engine.unit_machine import (
    TRANSIENT_SQL, Decision, Failure, Limits, UnitState, http_failure, next_step,
)
from benchsmith.engine.batch_answer import Answer, answer_body, judge_answer
from benchsmith.recipes.base import Recipe, RequestSpec
from benchsmith.records import Task, Usage
from benchsmith.store.ledger import Ledger, Unit, UnitRow
from benchsmith.store.reopen import children_after_reopen, reopened_ids

MAX_NOTES = 20  # notes kept about skipped lines (the count is exact)


@dataclass
class ReconcileCounts:
    ok: int = 0
    invalid: int = 0  # invalid answers (a unit may be re-asked)
    requeued: int = 0  # expired / cancelled / missing / retryable: sent again later
    failed: int = 0
    unknown: int = 0  # custom_id not in this run
    already_done: int = 0  # unit already finished (e.g. the same file ingested twice)
    no_custom_id: int = 0  # lines without a custom_id: nothing to join them to
    stop: list[str] = field(default_factory=list)
    unknown_ids: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # one line per skipped line (first few)

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items()
                if k not in ("stop", "unknown_ids", "notes")}

    def note(self, text: str) -> None:
        if len(self.notes) < MAX_NOTES:
            self.notes.append(text[:300])


class Reconciler:
    def __init__(
        self, ledger: Ledger, recipe: Recipe, tasks: dict[tuple[str, str], Task], *,
        invocation: int, price_for: Callable[[str], Price | None], multiplier: float,
        max_retries: int, buffered: bool = False,
    ):
        """`buffered`: the writes of ingested lines (new attempt rows, finished units, planned
        children) are held and written in bulk by `flush`, which the caller must call before
        its transaction commits. Reads (a unit not in `known`, attempt counts) flush first, so
        every decision sees exactly what the unbuffered writes would have left."""
        self.ledger = ledger
        self.buffered = buffered
        self._attempt_rows: list[tuple[Any, ...]] = []
        self._finish_rows: list[tuple[str, str, str | None, Any]] = []
        self._child_rows: list[tuple[str, dict[str, Any]]] = []
        self._followed_by: dict[str, bool] = {}
        self.recipe = recipe
        self.tasks = tasks
        self.inv = invocation
        self.price_for = price_for
        self.multiplier = multiplier
        self.max_retries = max_retries
        self.counts = ReconcileCounts()
        self.new_units: list[str] = []
        self._unit: Unit | UnitRow
        self._reopened = reopened_ids(ledger)  # their children are planned with care

    # -- buffered writes ----------------------------------------------------------------
    def flush(self) -> None:
        """Write the held rows (buffered mode), inside the caller's transaction.

        Per table the rows keep their order, so attempt ids and numbers are what one write per
        line would give."""
        if self._attempt_rows:
            rows, self._attempt_rows = self._attempt_rows, []
            self.ledger.record_attempts(rows)
        if self._finish_rows:
            done, self._finish_rows = self._finish_rows, []
            self.ledger.finish_units(done)
        if self._child_rows:
            kids, self._child_rows = self._child_rows, []
            self.ledger.insert_units(kids)

    def discard(self) -> None:
        """Drop held rows (the caller's transaction is rolled back)."""
        self._attempt_rows.clear()
        self._finish_rows.clear()
        self._child_rows.clear()

    def _sync(self) -> None:
        if self._attempt_rows or self._finish_rows or self._child_rows:
            self.flush()

    def _finish(self, unit_id: str, state: str, reason: str | None, result: Any) -> None:
        if self.buffered:
            self._finish_rows.append((unit_id, state, reason, result))
        else:
            self.ledger.finish_unit(unit_id, state, reason, result)

    # -- entry points ---------------------------------------------------------------------
    def apply(
        self, line: dict[str, Any], attempt_id: int | None, api: str,
        known: dict[str, Unit | UnitRow] | None = None,
    ) -> None:
        """`known`: units already read for this block of lines (saves one query per line)."""
        uid = line.get("custom_id")
        if not isinstance(uid, str) or not uid:
            self.no_custom_id(line)
            return
        unit = self._pending_unit(uid, attempt_id, known)
        if unit is None:
            return
        resp = line.get("response")
        body = answer_body(resp)
        if body is not None:
            self._answer(unit, attempt_id, api, body)
            return
        e = read_line_error(resp, line.get("error"))
        if e.requeue is not None:  # never ran (expired, cancelled): sent again later
            self._failed(unit, attempt_id, Failure("transient", e.requeue), e.requeue, None,
                         error=e.message)
        elif e.status == 200:  # an answer line without an answer
            self._failed(unit, attempt_id, Failure("transient", "malformed answers"), "malformed",
                         200, error="status 200 without a response body")
        elif e.status is None:  # no status, no known error name: transient, within retries
            self._failed(unit, attempt_id, Failure("transient", f"batch error: {e.message}"),
                         "batch_error", None, error=e.message)
        else:
            self._failed(unit, attempt_id, self._http_failure(unit, e.status, e.message),
                         "http_error", e.status, error=f"HTTP {e.status}: {e.message}")

    def _http_failure(self, unit: Unit | UnitRow, status: int, message: str) -> Failure:
        """A refused reasoning parameter is a `fallback` the first time for a unit (its next
        line goes without it, engine/param_fallback); any other error as unit_machine says."""
        param = rejected_param(status, message)
        if param is not None and param in unit.spec.get("params", {}):
            self._sync()
            if not refused_before(self.ledger, unit.unit_id, param):
                return Failure("fallback", f"HTTP {status}: {message}")
        return http_failure(status, message)

    def no_custom_id(self, line: dict[str, Any]) -> None:
        """Count (and note) a line that names no request."""
        self.counts.no_custom_id += 1
        if answer_body(line.get("response")) is not None:
            what = "an answer"
        else:
            what = read_line_error(line.get("response"), line.get("error")).message
        self.counts.note(f"a result line without a custom_id was skipped: {what}")

    def apply_answer(
        self, uid: str, answer: Answer, known: dict[str, Unit | UnitRow] | None = None,
    ) -> None:
        """`apply` for an ingested line that `ok_answer_parts` accepts, already judged by
        `judge_answer` for the unit `uid` names."""
        unit = self._pending_unit(uid, None, known)
        if unit is not None:
            self._settle(unit, None, answer, None)

    def apply_answers(self, items: list[tuple[str, str, str, Answer]]) -> bool:
        """`apply_answer` for a run of lines at once, (custom_id, model, stage, answer) each
        (the unit's model and stage), when that surely does the same as one by one: every
        answer valid, each for a distinct pending unit (the update checks it) of a stage that
        nothing follows. Otherwise returns False having changed nothing: apply them one by
        one. Buffered mode only."""
        if not self.buffered or not items:
            return False
        for _uid, _model, stage, a in items:
            if not a.ok or a.records is None or self._followed(stage):
                return False
        self.flush()
        db = self.ledger.db
        db.execute("SAVEPOINT apply_answers")
        try:
            done = self.ledger.finish_units_ok(
                [(uid, a.records) for uid, _m, _s, a in items]  # type: ignore[misc]
            )
            if done != len(items):  # a unit not (or no longer) pending: one by one instead
                db.execute("ROLLBACK TO apply_answers")
                return False
            self.ledger.record_ok_attempts(
                self.inv, "ingest",
                [(uid, model, a.usage, a.cost, a.text) for uid, model, _s, a in items],
            )
        except BaseException:
            db.execute("ROLLBACK TO apply_answers")
            raise
        finally:
            db.execute("RELEASE apply_answers")
        self.counts.ok += len(items)
        return True

    def _followed(self, stage: str) -> bool:
        """Whether finishing a unit of this stage may plan more units."""
        f = self._followed_by.get(stage)
        if f is None:
            f = self._followed_by[stage] = bool(self.recipe.children_of(stage))
        return f

    def _pending_unit(self, uid: str, attempt_id: int | None,
                      known: dict[str, Unit | UnitRow] | None) -> Unit | UnitRow | None:
        """The unit a line is for, if it is still pending; else the line is counted (and its
        attempt, if any, closed) and None returned."""
        if known is not None and uid in known:
            unit = known.pop(uid)
        else:
            self._sync()
            unit = self.ledger.unit(uid)
        if unit is None:
            self.counts.unknown += 1
            self.counts.unknown_ids.append(str(uid))
            if attempt_id is not None:
                self._end(attempt_id, "unknown", None, Usage(), 0.0, error="unknown custom_id")
            return None
        if unit.state != "pending":
            self.counts.already_done += 1
            if attempt_id is not None:
                self._end(attempt_id, "duplicate", None, Usage(), 0.0, error="unit already finished")
            return None
        self._unit = unit  # an ingested line (attempt_id None) becomes one new attempt row
        return unit

    def missing(self, unit_id: str, attempt_id: int | None, why: str = "") -> None:
        """A request in neither the output nor the error file: sent again later. `why`: what
        may explain it (e.g. result lines that could not be read)."""
        error = ("not in the batch output" + (f" ({why})" if why else ""))[:500]
        self._sync()
        unit = self.ledger.unit(unit_id)
        if unit is None:
            self._end(attempt_id, "missing", None, Usage(), 0.0, error=error)
            return
        self._failed(unit, attempt_id, Failure("transient", "missing from the batch output"),
                     "missing", None, error=error)

    # -- outcomes -------------------------------------------------------------------------
    def _answer(self, unit: Unit | UnitRow, aid: int | None, api: str, body: dict[str, Any]) -> None:
        spec = RequestSpec.from_dict(unit.spec)
        answer = judge_answer(self.recipe, api, self.price_for, self.multiplier, unit.model, spec, body)
        self._settle(unit, aid, answer, spec)

    def _settle(self, unit: Unit | UnitRow, aid: int | None, answer: Answer,
                spec: RequestSpec | None) -> None:
        """Record a judged answer. `spec`: the unit's, if already parsed."""
        if answer.malformed is not None:
            self._failed(unit, aid, Failure("transient", "malformed answers"), "malformed", 200,
                         error=answer.malformed)
            return
        usage = Usage(*answer.usage)
        if answer.ok:
            assert answer.records is not None
            self._end(aid, "ok", 200, usage, answer.cost, raw=answer.text)
            # the stored JSON is the records' own: dumping them again gives the same bytes
            self._finish(unit.unit_id, "ok", None, orjson.Fragment(answer.records))
            self.counts.ok += 1
            self._children(unit, spec, answer.records, ok=True)
            return
        self.counts.invalid += 1
        self._failed(unit, aid, Failure("invalid", "", answer.issues), "invalid", 200, usage,
                     answer.cost, raw=answer.text, issues=answer.issues, spec=spec)

    def _failed(self, unit: Unit | UnitRow, aid: int | None, failure: Failure, status: str,
                http: int | None, usage: Usage | None = None, cost: float = 0.0, *,
                raw: str | None = None, error: str | None = None,
                issues: tuple[str, ...] | None = None, spec: RequestSpec | None = None) -> None:
        """Record a failed attempt and do what unit_machine decides for its unit."""
        d = next_step(self._state(unit.unit_id), failure, self._limits(unit.stage))
        self._end(aid, status, http, usage or Usage(), cost, raw=raw, error=error, issues=issues)
        self._act(unit, d, spec)

    def _act(self, unit: Unit | UnitRow, d: Decision, spec: RequestSpec | None) -> None:
        if d.action == "stop":  # the unit stays pending; the caller stops the run
            self.counts.stop.append(d.reason or "")
            self.counts.requeued += 1
        elif d.action == "retry":  # sent again later (a later file, or exported again)
            self.counts.requeued += 1
        elif d.action == "fail":
            self._finish(unit.unit_id, "failed", d.reason, None)
            self.counts.failed += 1
            self._children(unit, spec, None, ok=False)
        elif d.action == "invalid":
            self._finish(unit.unit_id, "invalid", d.reason, None)
            self._children(unit, spec, None, ok=False)
        # "reask": the next request carries the issues (engine/history.py)

    def _limits(self, stage: str) -> Limits:
        return Limits(self.max_retries, self.recipe.stage(stage).max_validation_retries)

    def _children(self, unit: Unit | UnitRow, spec: RequestSpec | None, records: bytes | None,
                  ok: bool) -> None:
        """Plan what follows a finished unit. `records`: its records' JSON (ok units)."""
        if not self.recipe.children_of(unit.stage):  # nothing follows: no need for the spec
            return
        if spec is None:
            spec = RequestSpec.from_dict(unit.spec)
        task = self.tasks.get((spec.dataset, spec.task_id))
        if task is None:
            return
        recs = orjson.loads(records) if records is not None else []
        rows = child_rows(self.recipe, task, unit.unit_id, spec, recs, ok=ok)
        if rows and unit.unit_id in self._reopened:
            self._sync()
            rows, revived = children_after_reopen(self.ledger, unit.unit_id, rows)
            self._reopened.update(revived)
        if rows:
            if self.buffered:
                self._child_rows.extend(rows)
            else:
                self.ledger.insert_units(rows)
            self.new_units.extend(uid for uid, _ in rows)

    def _state(self, unit_id: str) -> UnitState:
        """The unit's failed tries recorded so far, since it was last re-opened (if it was)."""
        self._sync()
        tr, inv = self.ledger.db.execute(
            f"SELECT COALESCE(SUM({TRANSIENT_SQL}), 0), COALESCE(SUM(status='invalid'), 0) "
            "FROM attempts WHERE unit_id=? AND id > COALESCE((SELECT MAX(after_attempt) FROM "
            "unit_resets WHERE unit_id=? AND new_state='pending'), 0)", (unit_id, unit_id),
        ).fetchone()
        return UnitState(int(tr), int(inv))

    def _end(self, aid: int | None, status: str, http: int | None, usage: Usage, cost: float, *,
             raw: str | None = None, error: str | None = None, issues: tuple[str, ...] | None = None
             ) -> None:
        if aid is None:
            if self.buffered:
                self._attempt_rows.append(self.ledger.attempt_row(
                    self._unit.unit_id, self.inv, self._unit.model, "ingest", status=status,
                    http_status=http, usage=usage, cost_usd=cost, raw_output=raw, error=error,
                    issues=issues,
                ))
                return
            self.ledger.record_attempt(
                self._unit.unit_id, self.inv, self._unit.model, "ingest", status=status,
                http_status=http, usage=usage, cost_usd=cost, raw_output=raw, error=error,
                issues=issues,
            )
            return
        self._sync()
        self.ledger.end_attempt(aid, status=status, http_status=http, latency_s=None, usage=usage,
                                cost_usd=cost, raw_output=raw, error=error, issues=issues)
