"""What a rollout adds to `benchsmith report`: each instance's sample outcomes (as
output.jsonl judges a sample: its localize request, then its second-stage one)."""

from __future__ import annotations

from typing import Any

from benchsmith.recipes.report_section import Chart, Section, Series, Table
from benchsmith.store.ledger_reads import in_current_plan

ROWS = 200  # instances listed at most
BARS = 60  # instances charted at most


def _outcome(loc_state: str, second_state: str | None, second_stage: str) -> str:
    if loc_state != "ok":
        return f"{loc_state} at localize"
    if second_state is None:
        return "skipped: over the context budget"
    return "ok" if second_state == "ok" else f"{second_state} at {second_stage}"


def report_sections(ledger: Any, second_stage: str) -> list[Section]:
    rows = ledger.db.execute(
        "SELECT l.dataset, l.task_id, l.sample_index, l.state, s.state, "
        "COALESCE(CASE WHEN l.state != 'ok' THEN l.reason END, s.reason) "
        "FROM units l LEFT JOIN units s ON s.parent_id = l.unit_id AND s.stage = ? "
        f"AND {in_current_plan('s.plan')} WHERE l.stage = 'localize' AND "
        f"{in_current_plan('l.plan')} ORDER BY l.dataset, l.task_id, l.sample_index",
        (second_stage,)).fetchall()
    per: dict[tuple[str, str], list[tuple[int, str, str | None]]] = {}
    for ds, tid, k, loc, sec, reason in rows:
        per.setdefault((ds, tid), []).append((k, _outcome(loc, sec, second_stage), reason))
    kinds = sorted({o for samples in per.values() for _k, o, _r in samples},
                   key=lambda o: (o != "ok", o))
    solved = sum(1 for samples in per.values() if any(o == "ok" for _k, o, _r in samples))
    table_rows = []
    for (ds, tid), samples in list(per.items())[:ROWS]:
        why = next((r for _k, o, r in samples if o != "ok" and r), "")
        table_rows.append((ds, tid, len(samples), sum(o == "ok" for _k, o, _r in samples),
                           ", ".join(f"{k}: {o}" for k, o, _r in samples), (why or "")[:200]))
    charted = list(per.items())[:BARS]
    chart = Chart(
        "Sample outcomes per instance", "bar", tuple(tid for (_ds, tid), _s in charted),
        tuple(Series(kind, tuple(float(sum(o == kind for _k, o, _r in s)) for _i, s in charted))
              for kind in kinds), stacked=True, y_title="samples")
    more = f" (first {ROWS} listed, first {BARS} charted)" if len(per) > BARS else ""
    text = (f"{solved} of {len(per)} instance(s) have at least one accepted sample "
            f"({second_stage}){more}.")
    table = Table(("dataset", "instance", "samples", "ok", "outcome per sample",
                   "first reason"), tuple(table_rows))
    return [Section("Samples per instance", text, (table,), (chart,) if per else ())]
