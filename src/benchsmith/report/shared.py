"""The report's sections every run has: config and plan, counts, cost and tokens, spend over
time, latency and retries, failure reasons, gold leaks, and a sample of records. Built from
`report.queries` (SQL aggregates); no recipe is named here."""

from __future__ import annotations

import sqlite3
import time
from typing import Any

import orjson

from benchsmith.recipes.report_section import Block, Chart, Section, Series, Table
from benchsmith.report import queries as q
from benchsmith.store import leak_rows

# How many records (and failed units) the page shows at most, and how much of each.
RECORD_SAMPLE = 60
FAILED_SAMPLE = 20
BODY_CHARS = 3000
# Leaking (task, field) rows the gold-leak table shows at most, and the sample's length.
LEAK_ROWS = 200
LEAK_SAMPLE_CHARS = 120


def when(t: float | None) -> str:
    return "-" if t is None else time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(t))


def _iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1000):03d}"


def _short(v: Any, n: int = 200) -> str:
    text = v if isinstance(v, str) else orjson.dumps(v).decode()
    return text if len(text) <= n else text[: n - 1] + "…"


def config_rows(cfg: dict[str, Any]) -> list[tuple[str, str]]:
    """The settings a reader of the report needs, from the run's config snapshot; never the
    endpoint or the key's variable (`openai.base_url`, `openai.api_key_env`)."""
    rows: list[tuple[str, str]] = [("recipe", str(cfg.get("recipe", "-"))),
                                   ("provider", str(cfg.get("provider", "-")))]
    oa = cfg.get("openai") or {}
    rows.append(("api", f"{oa.get('api', '-')} ({'batch' if oa.get('use_batch_api') else 'online'}"
                        " by default)"))
    for slot in ("model", "model1", "model2", "model3"):
        m = cfg.get(slot)
        if isinstance(m, dict) and m.get("name"):
            keep = {k: m[k] for k in ("temperature", "reasoning_effort", "max_output_tokens")
                    if m.get(k) is not None}
            rows.append((slot, f"{m['name']} {_short(keep) if keep else ''}".strip()))
    for name, d in (cfg.get("datasets") or {}).items():
        if isinstance(d, dict):
            keep = {k: v for k, v in d.items() if v is not None}
            rows.append((f"dataset {name}", _short(keep)))
    eng = cfg.get("engine") or {}
    rows.append(("engine", _short({k: eng.get(k) for k in ("concurrency", "rpm", "tpm",
                                                            "max_retries", "timeout_s")})))
    rows.append(("budget.max_usd", str((cfg.get("budget") or {}).get("max_usd"))))
    for k, v in (cfg.get("recipe_options") or {}).items():
        rows.append((f"recipe_options.{k}", _short(v)))
    return rows


def run_section(run_id: str, cfg: dict[str, Any] | None, plan: Any, n_plans: int,
                invocations: list[dict[str, Any]]) -> Section:
    fp = plan.fingerprint if plan is not None else "-"
    text = f"Run {run_id}; plan fingerprint {fp} ({n_plans} plan(s) recorded)."
    tables = []
    if cfg is not None:
        tables.append(Table(("setting", "value"), tuple(config_rows(cfg)), "Config summary"))
    if plan is not None:
        tables.append(Table(("plan field", "value"), tuple(
            (k, _short(v)) for k, v in sorted(plan.fields.items())), "Plan-shaping settings"))
    tables.append(Table(
        ("invocation", "started (UTC)", "ended (UTC)", "mode", "status", "budget USD", "message"),
        tuple((i["id"], when(i["started_at"]), when(i["ended_at"]), i["mode"], i["status"],
               i["budget_usd"], _short(i["message"] or "", 300)) for i in invocations),
        "Invocations (each `run` / `--resume`)"))
    return Section("Run", text, tuple(tables))


def counts_section(db: sqlite3.Connection) -> Section:
    per: dict[tuple[str, str], dict[str, int]] = {}
    for ds, model, state, n in q.state_counts(db):
        per.setdefault((ds, model), {})[state] = n
    states = [s for s in q.STATES if any(s in d for d in per.values())] or ["ok"]
    rows = tuple((ds, m, *(d.get(s, 0) for s in states), sum(d.values()))
                 for (ds, m), d in per.items())
    labels = tuple(f"{ds} / {m}" for ds, m in per)
    chart = Chart("Requests per state", "bar", labels, tuple(
        Series(s, tuple(float(d.get(s, 0)) for d in per.values())) for s in states),
        stacked=True, y_title="requests")
    return Section("Requests per state", "Units (one request of one stage for one task) of the "
                   "current plan, by dataset and model.",
                   (Table(("dataset", "model", *states, "total"), rows),), (chart,) if rows else ())


def usage_section(db: sqlite3.Connection) -> Section:
    models = q.usage_by_model(db)
    rows = []
    for m in models:
        hit = m["cached_input_tokens"] / m["input_tokens"] if m["input_tokens"] else 0.0
        rows.append((m["model"], m["calls"], m["input_tokens"], m["cached_input_tokens"],
                     f"{hit:.1%}", m["output_tokens"], m["reasoning_tokens"],
                     round(m["cost_usd"] + m["unsettled_usd"], 6)))
    names = tuple(m["model"] for m in models)
    tokens = Chart("Tokens by model", "bar", names, (
        Series("input, not cached", tuple(float(m["input_tokens"] - m["cached_input_tokens"])
                                          for m in models)),
        Series("input, cached", tuple(float(m["cached_input_tokens"]) for m in models)),
        Series("output", tuple(float(m["output_tokens"]) for m in models)),
        Series("of which reasoning", tuple(float(m["reasoning_tokens"]) for m in models)),
    ), y_title="tokens")
    cost = Chart("Cost by model", "bar", names, (
        Series("USD", tuple(float(m["cost_usd"] + m["unsettled_usd"]) for m in models)),),
        y_title="USD")
    return Section(
        "Cost and tokens by model",
        "Every API call of the run. Cache hit: cached input tokens / input tokens. Cost "
        "includes the reservation of calls never settled (a crash).",
        (Table(("model", "calls", "input", "cached", "cache hit", "output", "reasoning",
                "cost USD"), tuple(rows)),), (tokens, cost) if models else ())


def spend_section(db: sqlite3.Connection) -> Section:
    points = q.spend_over_time(db)
    budget = next((b for _t, b in reversed(q.budgets(db)) if b is not None), None)
    total = points[-1][1] if points else 0.0
    text = f"Spent ${total:.4f}" + (f" of the ${budget:.4f} budget (budget.max_usd of the last "
                                    "invocation)." if budget is not None else "; no budget set.")
    if not points:
        return Section("Spend over time", text)
    chart = Chart("Cumulative spend", "line", tuple(_iso(t) for t, _ in points),
                  (Series("spent USD", tuple(usd for _, usd in points)),),
                  x_title="time (UTC)", y_title="USD",
                  hline=("budget", budget) if budget is not None else None)
    return Section("Spend over time", text, charts=(chart,))


def latency_section(db: sqlite3.Connection) -> Section:
    width, bins = q.latency_histogram(db)
    charts = []
    if bins:
        statuses = sorted({s for s, _b, _n in bins})
        nbins = max(b for _s, b, _n in bins) + 1
        counts = {(s, b): n for s, b, n in bins}
        charts.append(Chart(
            "Latency of answered calls", "bar",
            tuple(round((b + 0.5) * width, 4) for b in range(nbins)),
            tuple(Series(s, tuple(float(counts.get((s, b), 0)) for b in range(nbins)))
                  for s in statuses), stacked=True, x_title="seconds", y_title="calls"))
    per_unit = q.attempts_per_unit(db)
    if per_unit:
        states = sorted({s for s, _a, _n in per_unit})
        most = max(a for _s, a, _n in per_unit)
        cells = {(s, a): n for s, a, n in per_unit}
        charts.append(Chart(
            "API calls per request, by the request's state", "bar",
            tuple(str(a) for a in range(most + 1)),
            tuple(Series(s, tuple(float(cells.get((s, a), 0)) for a in range(most + 1)))
                  for s in states), stacked=True, x_title="calls (1 = no retry)",
            y_title="requests"))
    tables = (
        Table(("call status", "calls", "p50 s", "p90 s", "p99 s"),
              tuple((s, n, round(a, 3), round(b, 3), round(c, 3))
                    for s, n, a, b, c in q.latency_percentiles(db)), "Latency percentiles"),
        Table(("call status", "HTTP status", "calls"), tuple(q.attempt_statuses(db)),
              "API calls by status"),
    )
    return Section("Latency and retries", "Each API call (attempt) of the run; a request is "
                   "retried after an error or an answer that failed validation.", tables,
                   tuple(charts))


def reasons_section(db: sqlite3.Connection) -> Section:
    units, calls = q.unit_reasons(db), q.attempt_problems(db)
    tables = (
        Table(("why requests ended failed / invalid / skipped", "requests"),
              tuple((r.key, r.count) for r in units)),
        Table(("why calls were not accepted", "calls"), tuple((r.key, r.count) for r in calls)),
    )
    blocks = tuple(
        Block(f"{r.key} ({r.count})", "\n\n".join(f"{where}\n{text}" for where, text in r.examples))
        for r in (*units, *calls))
    return Section("Failures and invalid answers", "Most frequent first; open one for examples.",
                   tables, blocks=blocks)


def leaks_section(db: sqlite3.Connection, cfg: dict[str, Any] | None) -> Section:
    """Requests that carried their task's gold (the gold-leak guard's findings): counts per
    dataset and field, what the policy did with them, and the leaking tasks."""
    title = "Gold leaks"
    policy = str(((cfg or {}).get("leaks") or {}).get("leak_policy", "-"))
    if not q.has_leak_table(db):
        return Section(title, "This run's ledger predates the gold-leak guard (no gold_leaks "
                       "table): its requests were not checked for gold. A command that writes "
                       "the run upgrades its ledger; a new run checks every request.")
    rows = q.leak_rows_by_task(db)
    requests, tasks, sent, skipped, redacted = q.leak_totals(db)
    by_field: dict[str, int] = {}
    per: dict[tuple[str, str], list[Any]] = {}
    for r in rows:
        if r.requests:
            by_field[r.field] = by_field.get(r.field, 0) + r.requests
        acc = per.setdefault((r.dataset, r.field), [set(), 0, 0, 0, 0, 0, 0])
        acc[0].update(p for p in r.policies.split(",") if p)
        acc[1] += r.requests
        acc[2] += 1 if r.requests else 0
        acc[3] += r.sent
        acc[4] += r.skipped
        acc[5] += r.redacted
        acc[6] += r.removed
    said = leak_rows.describe({"requests": requests, "tasks": tasks, "by_field": by_field,
                               "skipped": skipped, "redacted": redacted})
    text = f"Policy in force: {policy} (leaks.leak_policy). "
    if not rows:
        return Section(title, text + "No request carried gold: no request of the current "
                       "plan holds a line of its task's gold answer.")
    sent_said = f"; {sent} of the {requests} request(s) carrying gold were sent" if requests else ""
    text += (f"{said}{sent_said}. A request can carry gold through several fields; every "
             "leaking task: manifests/<dataset>_gold_leaks.json and the records' `gold_leak` "
             "flag.")
    counts = Table(
        ("dataset", "field", "planned under", "requests carrying gold", "tasks", "sent",
         "skipped", "requests redacted", "lines removed"),
        tuple((ds, f, ", ".join(sorted(a[0])), *a[1:]) for (ds, f), a in sorted(per.items())),
        "Per dataset and field (lines removed: per task, the most removed for one request)")
    shown = rows[:LEAK_ROWS]
    caption = "Leaking tasks" + (f" (the first {LEAK_ROWS} of {len(rows)} task fields)"
                                 if len(rows) > LEAK_ROWS else "")
    table = Table(
        ("dataset", "task id", "field", "matched lines", "requests", "sent", "skipped",
         "lines removed", "sample"),
        tuple((r.dataset, r.task_id, r.field, r.matched, r.requests, r.sent, r.skipped,
               r.removed, _short(r.sample, LEAK_SAMPLE_CHARS)) for r in shown), caption)
    return Section(title, text, (counts, table))


def sample_section(db: sqlite3.Connection) -> Section:
    blocks = []
    for ds, tid, stage, model, k, result in q.record_sample(db, RECORD_SAMPLE):
        body = _pretty(result)
        blocks.append(Block(f"ok · {ds} · {tid} · {stage} · sample {k} · {model}", body))
    for ds, tid, stage, state, reason, raw in q.failed_sample(db, FAILED_SAMPLE):
        body = f"reason: {reason}\n\nlast answer:\n{raw or '(none)'}"
        blocks.append(Block(f"{state} · {ds} · {tid} · {stage}", _cut(body)))
    return Section(
        "Sample of records",
        f"Up to {RECORD_SAMPLE} accepted requests (their records) and {FAILED_SAMPLE} failed or "
        "invalid ones, spread over the run; all of them: datasets/ and `benchsmith export`.",
        blocks=tuple(blocks))


def _pretty(result: bytes | None) -> str:
    if result is None:
        return "(no records)"
    try:
        text = orjson.dumps(orjson.loads(result), option=orjson.OPT_INDENT_2).decode()
    except orjson.JSONDecodeError:
        text = bytes(result).decode("utf-8", "replace")
    return _cut(text)


def _cut(text: str) -> str:
    return text if len(text) <= BODY_CHARS else text[:BODY_CHARS] + "\n… (cut)"
