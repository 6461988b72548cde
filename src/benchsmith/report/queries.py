"""What the run report shows, read from the ledger with SQL aggregates and capped samples,
so a run of 100k units reads in a few seconds and its page stays small.

Every function takes the ledger's read-only connection and returns plain data; nothing here
knows HTML or charts.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any

from benchsmith.store import leak_rows
from benchsmith.store.ledger_reads import CURRENT_PLAN

STATES = ("ok", "invalid", "failed", "skipped", "pending")
# How many points the spend curve and bars the latency histogram have, at most.
TIME_BUCKETS = 200
LATENCY_BINS = 40
# A reason's group: its text up to the first ':' (as `status` groups them), 60 characters.
_KEY = "substr(CASE WHEN instr({c}, ':') > 0 THEN substr({c}, 1, instr({c}, ':') - 1) " \
       "ELSE {c} END, 1, 60)"


@dataclass(frozen=True)
class Reason:
    key: str
    count: int
    examples: tuple[tuple[str, str], ...]  # (where: dataset / task / stage, full text)


def state_counts(db: sqlite3.Connection) -> list[tuple[str, str, str, int]]:
    """(dataset, model, state, units) of the current plan."""
    return db.execute(
        f"SELECT dataset, model, state, COUNT(*) FROM units WHERE {CURRENT_PLAN} "
        "GROUP BY 1, 2, 3 ORDER BY 1, 2, 3").fetchall()


def usage_by_model(db: sqlite3.Connection) -> list[dict[str, Any]]:
    """Per model (every attempt of the run): calls, tokens, cost (settled, and reserved by
    calls never settled)."""
    cur = db.execute(
        "SELECT model, COUNT(*) AS calls, SUM(input_tokens) AS input_tokens, "
        "SUM(cached_input_tokens) AS cached_input_tokens, SUM(output_tokens) AS output_tokens, "
        "SUM(reasoning_tokens) AS reasoning_tokens, COALESCE(SUM(cost_usd), 0) AS cost_usd, "
        "COALESCE(SUM(CASE WHEN status='sent' THEN reserved_usd END), 0) AS unsettled_usd "
        "FROM attempts GROUP BY model ORDER BY model")
    cols = [c[0] for c in cur.description]
    return [dict(zip(cols, r)) for r in cur]


def spend_over_time(db: sqlite3.Connection) -> list[tuple[float, float]]:
    """(time, cumulative USD at that time), at most TIME_BUCKETS points: each attempt counts
    when it ended (a call never settled: its reservation, when it started)."""
    t0, t1 = db.execute(
        "SELECT MIN(COALESCE(ended_at, started_at)), MAX(COALESCE(ended_at, started_at)) "
        "FROM attempts").fetchone()
    if t0 is None:
        return []
    width = max((t1 - t0) / TIME_BUCKETS, 1e-6)
    rows = db.execute(
        "SELECT CAST((COALESCE(ended_at, started_at) - ?) / ? AS INTEGER) AS b, "
        "SUM(COALESCE(cost_usd, CASE WHEN status='sent' THEN reserved_usd ELSE 0 END)) "
        "FROM attempts GROUP BY b ORDER BY b", (t0, width)).fetchall()
    out, total = [(t0, 0.0)], 0.0
    for b, usd in rows:
        total += usd or 0.0
        out.append((min(t0 + (b + 1) * width, t1), total))
    return out


def budgets(db: sqlite3.Connection) -> list[tuple[float, float | None]]:
    """(start time, budget USD) of each invocation, in order."""
    return [(float(t), b) for t, b in db.execute(
        "SELECT started_at, budget_usd FROM invocations ORDER BY id")]


def latency_histogram(db: sqlite3.Connection) -> tuple[float, list[tuple[str, int, int]]]:
    """(bin width in seconds, [(attempt status, bin, calls)]) over answered calls."""
    lo, hi = db.execute(
        "SELECT MIN(latency_s), MAX(latency_s) FROM attempts WHERE latency_s IS NOT NULL"
    ).fetchone()
    if lo is None:
        return 0.0, []
    width = max(hi / LATENCY_BINS, 1e-4)
    rows = db.execute(
        "SELECT status, MIN(CAST(latency_s / ? AS INTEGER), ?), COUNT(*) FROM attempts "
        "WHERE latency_s IS NOT NULL GROUP BY 1, 2 ORDER BY 1, 2",
        (width, LATENCY_BINS - 1)).fetchall()
    return width, rows


def latency_percentiles(db: sqlite3.Connection) -> list[tuple[str, int, float, float, float]]:
    """(status, calls, p50, p90, p99 seconds) of answered calls per attempt status."""
    out = []
    for status, n in db.execute(
        "SELECT status, COUNT(*) FROM attempts WHERE latency_s IS NOT NULL GROUP BY 1 ORDER BY 1"
    ).fetchall():
        ps = []
        for q in (0.5, 0.9, 0.99):
            (v,) = db.execute(
                "SELECT latency_s FROM attempts WHERE latency_s IS NOT NULL AND status=? "
                "ORDER BY latency_s LIMIT 1 OFFSET ?", (status, min(n - 1, int(q * n)))
            ).fetchone()
            ps.append(float(v))
        out.append((status, n, *ps))
    return out


def attempt_statuses(db: sqlite3.Connection) -> list[tuple[str, int | None, int]]:
    """(attempt status, HTTP status, calls) over the run."""
    return db.execute("SELECT status, http_status, COUNT(*) FROM attempts GROUP BY 1, 2 "
                      "ORDER BY 3 DESC").fetchall()


def attempts_per_unit(db: sqlite3.Connection) -> list[tuple[str, int, int]]:
    """(unit state, attempts it took, units) of the current plan's units."""
    return db.execute(
        "SELECT u.state, COALESCE(a.n, 0), COUNT(*) FROM units u LEFT JOIN "
        "(SELECT unit_id, COUNT(*) AS n FROM attempts GROUP BY unit_id) a USING (unit_id) "
        f"WHERE {CURRENT_PLAN} GROUP BY 1, 2 ORDER BY 1, 2").fetchall()


def unit_reasons(db: sqlite3.Connection, limit: int = 30, examples: int = 3) -> list[Reason]:
    """Why units of the current plan ended failed, invalid or skipped: grouped, most
    frequent first, with a few examples each."""
    key = _KEY.format(c="reason")
    return _ranked(db, (
        f"SELECT state || ': ' || {key} AS k, dataset || ' / ' || task_id || ' / ' || stage, "
        "reason, unit_id FROM units WHERE state IN ('failed', 'invalid', 'skipped') "
        f"AND reason IS NOT NULL AND {CURRENT_PLAN}"), limit, examples)


def attempt_problems(db: sqlite3.Connection, limit: int = 30, examples: int = 3) -> list[Reason]:
    """Calls that were not accepted (errors, invalid answers, ...), grouped by status and the
    error's or first issue's text, most frequent first, with examples."""
    text = ("COALESCE(a.error, json_extract(CAST(a.issues_json AS TEXT), '$[0]'), "
            "'(no detail)')")
    key = _KEY.format(c=text)
    return _ranked(db, (
        f"SELECT a.status || COALESCE(' ' || a.http_status, '') || ': ' || {key} AS k, "
        "u.dataset || ' / ' || u.task_id || ' / ' || u.stage || ' / call ' || a.n, "
        f"{text}, a.id FROM attempts a JOIN units u USING (unit_id) "
        "WHERE a.status NOT IN ('ok', 'sent')"), limit, examples)


def _ranked(db: sqlite3.Connection, inner: str, limit: int, examples: int) -> list[Reason]:
    """`inner` yields (group key, where, full text, order); the `limit` largest groups with
    their first `examples` rows."""
    rows = db.execute(
        f"WITH r(k, loc, txt, ord) AS ({inner}), "
        "top AS (SELECT k, COUNT(*) AS n FROM r GROUP BY k ORDER BY n DESC, k LIMIT ?), "
        "ex AS (SELECT r.k, r.loc, r.txt, ROW_NUMBER() OVER (PARTITION BY r.k ORDER BY r.ord) "
        "AS i FROM r WHERE r.k IN (SELECT k FROM top)) "
        "SELECT top.k, top.n, ex.loc, substr(ex.txt, 1, 600) FROM top JOIN ex ON ex.k = top.k "
        "AND ex.i <= ? ORDER BY top.n DESC, top.k, ex.i", (limit, examples)).fetchall()
    out: list[Reason] = []
    for k, n, where, full in rows:
        if not out or out[-1].key != k:
            out.append(Reason(k, n, ()))
        out[-1] = Reason(k, n, (*out[-1].examples, (where, full or "")))
    return out


def record_sample(db: sqlite3.Connection, limit: int) -> list[tuple[str, str, str, str, int, bytes]]:
    """(dataset, task_id, stage, model, sample_index, result JSON) of up to `limit` ok units
    of the current plan, spread over the run (unit ids are hashes)."""
    return db.execute(
        "SELECT dataset, task_id, stage, model, sample_index, result_json FROM units "
        f"WHERE state='ok' AND {CURRENT_PLAN} ORDER BY unit_id LIMIT ?", (limit,)).fetchall()


def failed_sample(db: sqlite3.Connection, limit: int) -> list[tuple[str, str, str, str, str, str]]:
    """(dataset, task_id, stage, state, reason, last raw answer) of up to `limit` units of the
    current plan that ended failed or invalid."""
    return db.execute(
        "SELECT u.dataset, u.task_id, u.stage, u.state, COALESCE(u.reason, ''), "
        "COALESCE((SELECT substr(a.raw_output, 1, 4000) FROM attempts a WHERE "
        "a.unit_id = u.unit_id AND a.raw_output IS NOT NULL ORDER BY a.id DESC LIMIT 1), '') "
        f"FROM units u WHERE u.state IN ('failed', 'invalid') AND {CURRENT_PLAN} "
        "ORDER BY u.unit_id LIMIT ?", (limit,)).fetchall()


@dataclass(frozen=True)
class LeakRow:
    """One (dataset, task, field) of the gold-leak table, over the current plan's requests."""

    dataset: str
    task_id: str
    field: str
    policies: str  # the policies its requests were planned under, comma-separated
    requests: int  # requests carrying gold through this field
    matched: int  # the most gold lines one of them carried through it
    sent: int  # of those requests, the ones with an API call recorded
    skipped: int
    redacted: int  # requests built with lines of this field removed
    removed: int  # the most lines removed from it for one request
    sample: str  # a gold line one of its requests carried


# Per request and field: gold lines carried (fields_json) and lines removed (removed_json).
_LEAK_ENTRIES = (
    "WITH e(unit_id, dataset, task_id, policy, field, m, r, sample) AS ("
    "SELECT g.unit_id, g.dataset, g.task_id, g.policy, j.key, j.value, 0, g.sample "
    f"FROM {leak_rows.TABLE} g JOIN units USING (unit_id), "
    f"json_each(CAST(g.fields_json AS TEXT)) j WHERE g.matched > 0 AND {CURRENT_PLAN} "
    "UNION ALL SELECT g.unit_id, g.dataset, g.task_id, g.policy, j.key, 0, "
    f"json_array_length(j.value), '' FROM {leak_rows.TABLE} g JOIN units USING (unit_id), "
    "json_each(CAST(g.removed_json AS TEXT)) j WHERE g.removed_json IS NOT NULL "
    f"AND {CURRENT_PLAN}), "
    "u AS (SELECT e.unit_id, e.dataset, e.task_id, e.policy, e.field, MAX(e.m) AS m, "
    "MAX(e.r) AS r, MAX(e.sample) AS sample, units.state = 'skipped' AS skipped, "
    "EXISTS (SELECT 1 FROM attempts a WHERE a.unit_id = e.unit_id) AS sent "
    "FROM e JOIN units USING (unit_id) GROUP BY e.unit_id, e.field) "
)


def has_leak_table(db: sqlite3.Connection) -> bool:
    """False for a ledger made before the gold-leak guard (migration m005)."""
    return leak_rows.has_table(db)


def leak_rows_by_task(db: sqlite3.Connection) -> list[LeakRow]:
    """Every (dataset, task, field) whose text carried gold into a request of the current
    plan or had lines removed for one, by dataset, task and field. One row per task and
    field (not per request), so a run's leaking tasks fit in memory."""
    rows = db.execute(
        _LEAK_ENTRIES
        + "SELECT dataset, task_id, field, group_concat(DISTINCT policy), SUM(m > 0), MAX(m), "
        "SUM(m > 0 AND sent), SUM(m > 0 AND skipped), SUM(r > 0), MAX(r), "
        "COALESCE(MAX(CASE WHEN m > 0 THEN sample END), '') "
        "FROM u GROUP BY 1, 2, 3 ORDER BY 1, 2, 3").fetchall()
    return [LeakRow(*r) for r in rows]


def leak_totals(db: sqlite3.Connection) -> tuple[int, int, int, int, int]:
    """(requests carrying gold, their tasks, of them sent, of them skipped, requests built
    with context lines removed) of the current plan, each request counted once."""
    return db.execute(
        "SELECT COUNT(CASE WHEN g.matched > 0 THEN 1 END), "
        "COUNT(DISTINCT CASE WHEN g.matched > 0 THEN g.dataset || char(0) || g.task_id END), "
        "COUNT(CASE WHEN g.matched > 0 AND EXISTS (SELECT 1 FROM attempts a "
        "WHERE a.unit_id = g.unit_id) THEN 1 END), "
        "COUNT(CASE WHEN g.matched > 0 AND units.state = 'skipped' THEN 1 END), "
        "COUNT(CASE WHEN g.removed_json IS NOT NULL AND CAST(g.removed_json AS TEXT) != '{}' "
        f"THEN 1 END) FROM {leak_rows.TABLE} g JOIN units USING (unit_id) "
        f"WHERE {CURRENT_PLAN}").fetchone()
