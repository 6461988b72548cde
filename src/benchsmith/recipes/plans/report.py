"""What the plans recipe adds to `benchsmith report`: plans per task against what was asked,
and the plans rejected as too similar to accepted ones. SQL aggregates, capped tables."""

from __future__ import annotations

from typing import Any

from benchsmith.recipes.plans.diversity import DUPLICATE_PREFIX
from benchsmith.recipes.report_section import Block, Chart, Section, Series, Table
from benchsmith.store.ledger_reads import in_current_plan

STAGE = "plans"
ROWS = 50  # tasks listed at most per table


def report_sections(ledger: Any, expected: int) -> list[Section]:
    """`expected`: plans asked per task (calls per task x plans per call)."""
    return [_per_task(ledger.db, expected), _similarity(ledger.db)]


def _per_task(db: Any, expected: int) -> Section:
    rows = db.execute(
        "SELECT t.dataset, t.task_id, COALESCE(SUM(json_array_length(CAST(u.result_json AS "
        "TEXT))), 0) AS n FROM tasks t LEFT JOIN units u ON u.dataset = t.dataset AND "
        f"u.task_id = t.task_id AND u.stage = ? AND u.state = 'ok' AND {in_current_plan('u.plan')} "
        f"WHERE {in_current_plan('t.plan')} GROUP BY 1, 2", (STAGE,)).fetchall()
    hist: dict[str, dict[int, int]] = {}
    for ds, _tid, n in rows:
        hist.setdefault(ds, {})
        hist[ds][n] = hist[ds].get(n, 0) + 1
    counts = sorted({n for h in hist.values() for n in h})
    chart = Chart("Tasks by number of accepted plans", "bar", tuple(str(n) for n in counts),
                  tuple(Series(ds, tuple(float(h.get(n, 0)) for n in counts))
                        for ds, h in sorted(hist.items())),
                  x_title=f"accepted plans (asked: {expected})", y_title="tasks")
    short = sorted((r for r in rows if r[2] < expected), key=lambda r: (r[2], r[0], r[1]))
    complete = sum(1 for r in rows if r[2] >= expected)
    table = Table(("dataset", "task", "accepted plans", "asked"),
                  tuple((ds, tid, n, expected) for ds, tid, n in short[:ROWS]),
                  f"Tasks short of {expected} plans (fewest first; {len(short)} in all"
                  f"{', first ' + str(ROWS) + ' shown' if len(short) > ROWS else ''})")
    text = f"{complete} of {len(rows)} task(s) have all {expected} plans asked for."
    return Section("Plans per task", text, (table,), (chart,) if rows else ())


def _similarity(db: Any) -> Section:
    like = DUPLICATE_PREFIX + "%"
    rows = db.execute(
        "SELECT u.dataset, u.task_id, COUNT(*) FROM attempts a JOIN units u USING (unit_id), "
        "json_each(CAST(a.issues_json AS TEXT)) j WHERE a.status = 'invalid' AND u.stage = ? "
        f"AND j.value LIKE ? AND {in_current_plan('u.plan')} GROUP BY 1, 2 "
        "ORDER BY 3 DESC, 1, 2", (STAGE, like)).fetchall()
    per_ds: dict[str, int] = {}
    for ds, _tid, n in rows:
        per_ds[ds] = per_ds.get(ds, 0) + n
    examples = db.execute(
        "SELECT u.dataset || ' / ' || u.task_id || ' / call ' || a.n, j.value FROM attempts a "
        "JOIN units u USING (unit_id), json_each(CAST(a.issues_json AS TEXT)) j "
        f"WHERE a.status = 'invalid' AND u.stage = ? AND j.value LIKE ? AND {in_current_plan('u.plan')} "
        "ORDER BY a.id LIMIT 20", (STAGE, like)).fetchall()
    tables = (
        Table(("dataset", "plans rejected as too similar"), tuple(sorted(per_ds.items()))),
        Table(("dataset", "task", "rejections"), tuple(rows[:ROWS]),
              f"Tasks with the most rejections ({len(rows)} task(s) had any)"),
    )
    chart = Chart("Similarity rejections per task", "bar",
                  tuple(f"{ds} / {tid}" for ds, tid, _n in rows[:ROWS]),
                  (Series("rejections", tuple(float(n) for _d, _t, n in rows[:ROWS])),),
                  y_title="plans rejected")
    return Section(
        "Similarity rejections",
        "Plans rejected because they repeat an accepted plan of the same task "
        "(recipe_options.similarity_threshold); the call was asked again.",
        tables, (chart,) if rows else (),
        tuple(Block(where, text) for where, text in examples))
