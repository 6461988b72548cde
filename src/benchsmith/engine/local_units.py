"""Model-free units (a Stage with `local`): answered here, recorded like any unit.

Every executor path ends in `answer_local`: the online executor for each such unit it takes,
the batch executor and offline export before writing request files, ingest after recording
answers. A local unit never reaches a request file or the network, and costs nothing.
"""

from __future__ import annotations

from typing import Any

import orjson

from benchsmith.engine.planning import child_rows
from benchsmith.recipes.base import NO_MODEL, Parsed, Recipe, RequestSpec, Stage
from benchsmith.records import Task, Usage
from benchsmith.store.ledger import Ledger, Unit

Rows = list[tuple[str, dict[str, Any]]]


def local_stages(recipe: Recipe) -> set[str]:
    return {s.name for s in recipe.stages if s.local is not None}


def run_local(stage: Stage, spec: RequestSpec) -> Parsed:
    """The step's answer; an exception in it makes the unit invalid with the error, as a
    parse error would (the step is deterministic: asking again gives the same)."""
    assert stage.local is not None
    try:
        return _checked(stage.name, stage.local(spec))
    except Exception as e:  # a bug in one step must not stop the run
        return Parsed(issues=(f"local step {stage.name} raised {type(e).__name__}: {e}"[:500],))


def _checked(name: str, parsed: Any) -> Parsed:
    """The step's answer as the ledger can hold it, or why it cannot (one issue)."""
    if not isinstance(parsed, Parsed):
        return Parsed(issues=(f"local step {name} returned {type(parsed).__name__}, not Parsed",))
    if isinstance(parsed.issues, str):  # one issue, not a tuple of them
        return Parsed(issues=(parsed.issues,))
    if not parsed.ok:
        return Parsed(issues=tuple(str(i) for i in parsed.issues))
    for r in parsed.records:
        if not isinstance(r, dict):
            return Parsed(issues=(f"local step {name} returned a record that is not a JSON "
                                  f"object: {r!r}"[:500],))
        try:
            orjson.dumps(r)
        except TypeError as e:
            return Parsed(issues=(f"local step {name} returned a record that is not JSON: "
                                  f"{e}"[:500],))
    return parsed


def answer_local(ledger: Ledger, recipe: Recipe, tasks: dict[tuple[str, str], Task],
                 unit: Unit, invocation: int) -> tuple[str, Rows]:
    """Answer one pending local unit: its attempt (no cost), its end state, and the units it
    plans (inserted, returned). Returns (state, child rows). Call inside a transaction."""
    spec = RequestSpec.from_dict(unit.spec)
    stage = recipe.stage(spec.stage)
    parsed = run_local(stage, spec)
    records = [dict(r) for r in parsed.records]
    state = "ok" if parsed.ok else "invalid"
    raw = orjson.dumps(records if parsed.ok else list(parsed.issues)).decode()
    ledger.record_attempt(unit.unit_id, invocation, NO_MODEL, "local", status=state,
                          http_status=None, usage=Usage(), cost_usd=0.0, raw_output=raw,
                          issues=None if parsed.ok else parsed.issues)
    reason = None if parsed.ok else "; ".join(parsed.issues)[:500]
    ledger.finish_unit(unit.unit_id, state, reason, records if parsed.ok else None)
    rows: Rows = []
    task = tasks.get((spec.dataset, spec.task_id))
    if task is not None and recipe.children_of(stage.name):
        rows = child_rows(recipe, task, unit.unit_id, spec, records, ok=parsed.ok)
        if rows:
            ledger.insert_units(rows)
    return state, rows


def settle_local(ledger: Ledger, recipe: Recipe, tasks: dict[tuple[str, str], Task],
                 invocation: int | None = None) -> dict[str, int]:
    """Answer every pending local unit, and the local units those plan, until none is left.
    Without an invocation one is opened for the work (none when there is nothing to do).
    Returns counts by end state."""
    names = local_stages(recipe)
    counts: dict[str, int] = {}
    if not names:
        return counts
    own = None
    status = "error"
    try:
        while True:
            pending = [u for u in ledger.units(state="pending") if u.stage in names]
            if not pending:
                status = "completed"
                return counts
            if invocation is None:
                invocation = own = ledger.start_invocation("local", None)
            with ledger.tx():
                for u in pending:
                    state, _ = answer_local(ledger, recipe, tasks, u, invocation)
                    counts[state] = counts.get(state, 0) + 1
    finally:
        if own is not None:
            ledger.end_invocation(own, status, f"answered {sum(counts.values())} local units")
