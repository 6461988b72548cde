"""The `costs` check: the call log and runs.jsonl agree with the ledger and the run's prices,
and no invocation spent past its budget.

Attempts sent through the Batch API (in `batch_items`) or ingested from batch result files
(an `ingest` invocation) are priced at `batch.price_multiplier` of the config snapshot.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

from pydantic import ValidationError

from benchsmith.config import BatchConfig, Price
from benchsmith.engine.budget import money_problems
from benchsmith.engine.pricing import cost_usd
from benchsmith.records import Usage
from benchsmith.validate.run_checks.base import Outcome, Problems, close, h, no_ledger, num, short
from benchsmith.validate.run_checks.loader import Run

_USAGE_KEYS = ("input_tokens", "cached_input_tokens", "output_tokens", "reasoning_tokens")
Prices = dict[str, Price]


def _price_table(run: Run) -> tuple[Prices | None, bool, str]:
    """(prices by model, local provider?, problem) from config/run_config.json."""
    cfg = run.config
    if cfg is None:
        return None, False, run.config_problem()
    prices = cfg.get("prices") or {}
    if not isinstance(prices, dict):
        return None, False, "config/run_config.json: prices is not a mapping"
    out: Prices = {}
    for model, pr in prices.items():
        if not isinstance(pr, dict) or None in (num(pr.get("input")), num(pr.get("output"))):
            why = f"config/run_config.json: prices.{model} needs numeric input and output"
            return None, False, why
        try:
            out[model] = Price(
                input=pr["input"], cached_input=num(pr.get("cached_input")), output=pr["output"]
            )
        except ValidationError as e:
            msg = e.errors()[0]["msg"]
            return None, False, f"config/run_config.json: prices.{model}: {msg}"
    return out, cfg.get("provider") == "local", ""


def _batch_multiplier(run: Run) -> tuple[float | None, str]:
    """(batch.price_multiplier of the config snapshot, problem); the default when unset."""
    batch = (run.config or {}).get("batch")
    if batch is None or not isinstance(batch, dict) or "price_multiplier" not in batch:
        return BatchConfig().price_multiplier, ""
    m = num(batch.get("price_multiplier"))
    if m is None or not 0 < m <= 1:
        return None, "config/run_config.json: batch.price_multiplier is not a number in (0, 1]"
    return m, ""


def _usage_cost(usage: dict[str, Any], price: Price | None, multiplier: float = 1.0) -> float:
    """What the engine charges for `usage` (a logged usage object) at `price`."""
    tokens = Usage(
        input_tokens=int(usage.get("input_tokens") or 0),
        cached_input_tokens=int(usage.get("cached_input_tokens") or 0),
        output_tokens=int(usage.get("output_tokens") or 0),
    )
    return cost_usd(tokens, price, multiplier)


def _expected_costs(
    status: Any, from_usage: float, reserved: float, batch: bool = False
) -> list[float | None]:
    """Costs the engine may have settled an attempt at, by its status."""
    if status == "sent":
        return [None]  # never settled (crash); counted at its reservation instead
    if status in ("ok", "invalid"):
        return [from_usage]
    if batch and status == "malformed":
        return [0.0]  # a batch line's malformed answer is settled at no cost
    if status in ("timeout", "malformed", "cancelled"):
        return [reserved]  # may have been billed: its worst case
    if status in ("http_error", "connection_error"):
        return [0.0]
    return [from_usage, reserved, 0.0]


def _check_line(
    p: Problems,
    where: str,
    row: dict[str, Any],
    a: dict[str, Any],
    prices: Prices | None,
    local: bool,
    multiplier: float = 1.0,
) -> float | None:
    """Problems of one call-log line against its ledger attempt; its cost, None if unusable."""
    if row.get("request_id") != a["unit_id"]:
        p.add(
            f"{where}: request_id {row.get('request_id')!r}, ledger has {a['unit_id']}",
            "log line with another request_id",
        )
    if row.get("status") != a["status"]:
        p.add(
            f"{where}: status {row.get('status')!r}, ledger has {a['status']!r}",
            "log line with another status",
        )
    usage = row.get("usage")
    if not isinstance(usage, dict):
        p.add(f"{where}: usage missing", "log line without usage")
        usage = {}
    for k in _USAGE_KEYS:
        if usage.get(k) != a[k]:
            p.add(
                f"{where}: usage.{k} is {usage.get(k)!r}, ledger has {a[k]}",
                "log usage differs from the ledger",
            )
    inp, cached = usage.get("input_tokens"), usage.get("cached_input_tokens")
    if isinstance(inp, int) and isinstance(cached, int) and cached > inp:
        p.add(
            f"{where}: cached_input_tokens {cached} > input_tokens {inp}",
            "cached > input tokens",
        )
    top = row.get("cached_input_tokens")
    if top != usage.get("cached_input_tokens"):
        p.add(
            f"{where}: cached_input_tokens {top!r} != "
            f"usage.cached_input_tokens {usage.get('cached_input_tokens')!r}",
            "cached_input_tokens disagree",
        )
    raw_cost = row.get("cost_usd")
    cost = num(raw_cost)
    if raw_cost is not None and cost is None:
        p.add(f"{where}: cost_usd {raw_cost!r} is not a number", "cost is not a number")
        return None
    if not close(cost, a["cost_usd"]):
        p.add(
            f"{where}: cost_usd {cost!r}, ledger has {a['cost_usd']!r}",
            "log cost differs from the ledger",
        )
    reserved = num(row.get("reserved_usd"))
    if not close(reserved, a["reserved_usd"]):
        p.add(
            f"{where}: reserved_usd {reserved!r}, ledger has {a['reserved_usd']!r}",
            "log reservation differs from the ledger",
        )
    if cost is not None and cost < 0:
        p.add(f"{where}: negative cost {cost}", "negative cost")
    if prices is not None:
        model = row.get("model")
        price = None if local else prices.get(model) if isinstance(model, str) else None
        batch = bool(a.get("batch"))
        mult = multiplier if batch else 1.0
        want = _expected_costs(row.get("status"), _usage_cost(usage, price, mult), reserved or 0.0,
                               batch)
        if not any(close(cost, w) for w in want):
            shown = " or ".join("unsettled" if w is None else f"{w!r}" for w in want)
            at = f" at the batch price (x{mult:g})" if batch else ""
            p.add(
                f"{where}: cost_usd {cost!r} does not match {shown} recomputed from the "
                f"{row.get('status')!r} attempt's usage and the price of {model!r}{at}",
                "cost differs from usage x price",
            )
    return cost or 0.0


def _check_log(
    run: Run, p: Problems, attempts: dict[int, dict[str, Any]], settled: float
) -> dict[Any, list[float]] | None:
    """Problems of logs/batch_calls.jsonl; the logged costs by invocation (None: no log)."""
    prices, local, why = _price_table(run)
    if prices is None:
        p.add(why)
    multiplier, why = _batch_multiplier(run)
    if multiplier is None:
        p.add(why)
        prices = None  # batch attempts cannot be priced
    log_path = run.rd.calls_log
    log = run.jsonl(log_path)
    rel = run.rel(log_path)
    if log is None:
        p.add(run.missing(log_path))
        return None
    per_inv: dict[Any, list[float]] = defaultdict(list)
    log_total = 0.0
    seen: Counter[Any] = Counter()
    for line, row in log.rows:
        where = f"{rel}:{line}"
        aid = row.get("id")
        seen[h(aid)] += 1
        a = attempts.get(aid) if isinstance(aid, int) and not isinstance(aid, bool) else None
        if a is None:
            p.add(
                f"{where}: id {aid!r} is not an attempt in the ledger",
                "log line without a ledger attempt",
            )
            continue
        if seen[h(aid)] > 1:
            p.add(f"{where}: attempt {aid} logged again", "attempt logged twice")
            continue
        cost = _check_line(p, where, row, a, prices, local, multiplier or 1.0)
        if cost is None:
            continue
        log_total += cost
        per_inv[row.get("invocation")].append(cost)
    missing = sorted(set(attempts) - set(seen))
    if missing:
        p.add(f"{rel}: {len(missing)} ledger attempt(s) not logged: ids {short(missing)}")
    if not close(log_total, settled):
        p.add(f"{rel}: costs sum to {log_total!r}, the ledger's settled total is {settled!r}")
    return per_inv


def _check_runs(
    run: Run, p: Problems, invs: set[Any], per_inv: dict[Any, list[float]] | None, settled: float
) -> None:
    """Problems of runs.jsonl: one line per invocation, costs matching the log and ledger."""
    runs_rel = run.rel(run.rd.runs_jsonl)
    runs = run.jsonl(run.rd.runs_jsonl)
    if runs is None:
        p.add(run.missing(run.rd.runs_jsonl))
        return
    runs_total = 0.0
    listed: Counter[Any] = Counter()
    for line, row in runs.rows:
        inv = h(row.get("id"))
        listed[inv] += 1
        c = num(row.get("cost_usd"))
        if c is None:
            p.add(f"{runs_rel}:{line}: cost_usd missing or not a number")
            continue
        runs_total += c
        if inv not in invs:
            p.add(f"{runs_rel}:{line}: invocation {inv!r} is not in the ledger")
        elif per_inv is not None:
            logged = per_inv.get(inv, [])
            if not close(c, sum(logged)):
                p.add(
                    f"{runs_rel}:{line}: invocation {inv} cost_usd {c!r}, "
                    f"its logged calls sum to {sum(logged)!r}",
                )
            if row.get("api_calls") != len(logged):
                p.add(
                    f"{runs_rel}:{line}: invocation {inv} api_calls "
                    f"{row.get('api_calls')!r}, {len(logged)} logged",
                )
    for inv in sorted(invs - set(listed)):
        p.add(f"{runs_rel}: invocation {inv} of the ledger has no line")
    for inv, c in listed.items():
        if c > 1:
            p.add(f"{runs_rel}: invocation {inv!r} has {c} lines")
    if not close(runs_total, settled):
        p.add(f"{runs_rel}: costs sum to {runs_total!r}, the ledger's settled total is {settled!r}")


def check_costs(run: Run) -> Outcome:
    if run.ledger is None:
        return no_ledger()
    led = run.ledger
    p = Problems()
    # Not led.attempts(): that also loads every raw output, which the costs do not need.
    # `batch`: sent in a Batch API file, or ingested from one (priced at the batch price).
    cur = led.db.execute(
        "SELECT a.id AS id, a.unit_id AS unit_id, a.invocation AS invocation, a.model AS model, "
        "a.status AS status, a.reserved_usd AS reserved_usd, a.cost_usd AS cost_usd, "
        f"{', '.join(f'a.{k} AS {k}' for k in _USAGE_KEYS)}, "
        "(a.id IN (SELECT attempt_id FROM batch_items) OR i.mode = 'ingest') AS batch "
        "FROM attempts a LEFT JOIN invocations i ON i.id = a.invocation ORDER BY a.id"
    )
    cols = [c[0] for c in cur.description]
    attempts = {r[0]: dict(zip(cols, r)) for r in cur.fetchall()}
    settled, unsettled = led.spend()
    per_inv = _check_log(run, p, attempts, settled)
    _check_runs(run, p, {i["id"] for i in led.invocations()}, per_inv, settled)
    for problem in money_problems(led):
        p.add(problem, "spent past the budget")
    detail = f"{len(attempts)} attempt(s), settled ${settled:.6f}"
    if unsettled:
        detail += f", ${unsettled:.6f} reserved by unsettled attempts"
    over_usd, over_n, _ratio = led.overbilling()
    if over_n:
        detail += f"; the server billed ${over_usd:.6f} past the cost caps of {over_n} attempt(s)"
    return detail, p.finish()
