"""Read-side queries of the ledger: counts, spend, usage, attempts for reports and exports.

A mixin of `Ledger` (uses its connection); kept apart so the ledger's write path stays small.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from typing import Any

import orjson

# SQL: the newest plan's id, and "this row belongs to the current plan". While no plan is
# recorded (a run made before plans were pinned, or merged from sections) every row does.
NEWEST_PLAN = "(SELECT MAX(id) FROM plans)"


def in_current_plan(col: str = "plan") -> str:
    return f"({col} = {NEWEST_PLAN} OR NOT EXISTS (SELECT 1 FROM plans))"


CURRENT_PLAN = in_current_plan()


class LedgerReads:
    db: sqlite3.Connection

    def ok_results(self, dataset: str, stage: str) -> Iterator[tuple[str, str, str, str, bytes | None]]:
        """(unit_id, dataset, task_id, model, result_json) of the ok units of one stage of the
        current plan, in the order of `units()`, streamed; the spec is not read."""
        yield from self.db.execute(
            "SELECT unit_id, dataset, task_id, model, result_json FROM units "
            f"WHERE state='ok' AND dataset=? AND stage=? AND {CURRENT_PLAN} "
            "ORDER BY dataset, task_id, stage, sample_index, unit_id",
            (dataset, stage),
        )

    def state_counts(self, current_plan: bool = False) -> dict[str, int]:
        """Units per state: of every plan of the run, or of the current plan only."""
        where = f" WHERE {CURRENT_PLAN}" if current_plan else ""
        rows = self.db.execute(f"SELECT state, COUNT(*) FROM units{where} GROUP BY state").fetchall()
        return {s: n for s, n in rows}

    def pending_by_stage(self) -> dict[tuple[str, int], int]:
        """Pending units of the current plan per (stage, sample index)."""
        rows = self.db.execute(
            f"SELECT stage, sample_index, COUNT(*) FROM units WHERE state='pending' AND "
            f"{CURRENT_PLAN} GROUP BY 1, 2").fetchall()
        return {(st, i): n for st, i, n in rows}

    def task_states(self) -> dict[tuple[str, str], dict[str, int]]:
        """Unit counts per state of each task, in the current plan."""
        out: dict[tuple[str, str], dict[str, int]] = {}
        for ds, tid, state, n in self.db.execute(
            f"SELECT dataset, task_id, state, COUNT(*) FROM units WHERE {CURRENT_PLAN} "
            "GROUP BY 1, 2, 3"
        ):
            out.setdefault((ds, tid), {})[state] = n
        return out

    def attempts(
        self, unit_id: str | None = None, *, status: str | None = None,
        dataset: str | None = None, stage: str | None = None, with_output: bool = True,
        current_plan: bool = False,
    ) -> Iterator[dict[str, Any]]:
        """Attempts in id order, streamed; filters run in SQL. `with_output=False` skips the
        (large) raw outputs; `current_plan` keeps the attempts of the current plan's units."""
        raw = "a.raw_output" if with_output else "NULL AS raw_output"
        q = (
            "SELECT a.id, a.unit_id, a.invocation, a.n, a.model, a.started_at, a.ended_at, "
            "a.status, a.http_status, a.latency_s, a.input_tokens, a.cached_input_tokens, "
            "a.output_tokens, a.reasoning_tokens, a.reserved_usd, a.cost_usd, a.key_hint, "
            f"{raw}, a.error, a.issues_json, u.dataset, u.task_id, u.stage, u.sample_index "
            "FROM attempts a JOIN units u USING (unit_id)"
        )
        where: list[str] = [in_current_plan("u.plan")] if current_plan else []
        args: list[Any] = []
        for col, val in (("a.unit_id", unit_id), ("a.status", status), ("u.dataset", dataset),
                         ("u.stage", stage)):
            if val is not None:
                where.append(f"{col}=?")
                args.append(val)
        if where:
            q += " WHERE " + " AND ".join(where)
        cur = self.db.execute(q + " ORDER BY a.id", args)
        cols = [c[0] for c in cur.description]
        for r in cur:
            d = dict(zip(cols, r))
            d["issues"] = orjson.loads(d.pop("issues_json")) if d["issues_json"] else []
            yield d

    def attempt_datasets(self, status: str, stage: str) -> set[str]:
        """The datasets with an attempt of this status in this stage (current plan)."""
        return {r[0] for r in self.db.execute(
            f"SELECT DISTINCT dataset FROM units WHERE stage=? AND {CURRENT_PLAN} AND unit_id IN "
            "(SELECT unit_id FROM attempts WHERE status=?)", (stage, status),
        )}

    def call_log(self) -> Iterator[tuple[Any, ...]]:
        """Every attempt as a tuple for the call log, in id order, streamed (no raw output or
        issues): (id, unit_id, invocation, dataset, task_id, stage, n, model, status, http_status,
        latency_s, started_at, input_tokens, cached_input_tokens, output_tokens,
        reasoning_tokens, reserved_usd, cost_usd, key_hint, error)."""
        yield from self.db.execute(
            "SELECT a.id, a.unit_id, a.invocation, u.dataset, u.task_id, u.stage, a.n, a.model, "
            "a.status, a.http_status, a.latency_s, a.started_at, a.input_tokens, "
            "a.cached_input_tokens, a.output_tokens, a.reasoning_tokens, a.reserved_usd, "
            "a.cost_usd, a.key_hint, a.error "
            "FROM attempts a JOIN units u USING (unit_id) ORDER BY a.id"
        )

    def invocation_totals(self) -> dict[int, dict[str, Any]]:
        """Per invocation: calls, tokens, cost and calls by status (one SQL pass)."""
        out: dict[int, dict[str, Any]] = {}
        for inv, status, n, i, c, o, r, cost in self.db.execute(
            "SELECT invocation, status, COUNT(*), SUM(input_tokens), SUM(cached_input_tokens), "
            "SUM(output_tokens), SUM(reasoning_tokens), COALESCE(SUM(cost_usd), 0) "
            "FROM attempts GROUP BY invocation, status ORDER BY invocation, status"
        ):
            d = out.setdefault(inv, {"api_calls": 0, "input_tokens": 0, "cached_input_tokens": 0,
                                     "output_tokens": 0, "reasoning_tokens": 0, "cost_usd": 0.0,
                                     "by_status": {}})
            d["api_calls"] += n
            d["input_tokens"] += i
            d["cached_input_tokens"] += c
            d["output_tokens"] += o
            d["reasoning_tokens"] += r
            d["cost_usd"] += cost
            d["by_status"][status] = n
        return out

    def pending_attempts(
        self,
    ) -> Iterator[tuple[str, dict[str, Any], str, int | None, str | None, list[str], bool]]:
        """(unit id, spec, status, http status, raw output, issues, fresh) of attempts of pending
        units; `fresh`: made after the unit was last re-opened (store/reopen.py), or never
        re-opened."""
        cur = self.db.execute(
            "SELECT a.unit_id, u.spec_json, a.status, a.http_status, a.raw_output, a.issues_json, "
            "a.id > COALESCE((SELECT MAX(r.after_attempt) FROM unit_resets r "
            "WHERE r.unit_id=a.unit_id AND r.new_state='pending'), 0) "
            "FROM attempts a JOIN units u USING (unit_id) WHERE u.state='pending' ORDER BY a.id"
        )
        for uid, spec, status, http_status, raw, issues, fresh in cur:
            yield (uid, orjson.loads(spec), status, http_status, raw,
                   orjson.loads(issues) if issues else [], bool(fresh))

    def pending_reopened(self) -> set[str]:
        """Pending units that were re-opened (store/reopen.py)."""
        return {r[0] for r in self.db.execute(
            "SELECT DISTINCT r.unit_id FROM unit_resets r JOIN units u USING (unit_id) "
            "WHERE u.state='pending' AND r.new_state='pending'"
        )}

    def ok_attempt_numbers(self) -> dict[str, int]:
        """unit_id -> number of its accepted attempt."""
        return dict(self.db.execute("SELECT unit_id, n FROM attempts WHERE status='ok'").fetchall())

    def open_calls(self) -> dict[str, Any]:
        """Calls not settled yet (attempts still `sent`) against settled ones: `online` (sent
        by a process, answered or lost with it), `batch` (carried by batches not reconciled
        yet) with `batches` {status: batches}, `other` (a reconciled batch's unsettled ones),
        `finished`, and the pending `units` with an open call."""
        total, sent = self.db.execute(
            "SELECT COUNT(*), COALESCE(SUM(status='sent'), 0) FROM attempts").fetchone()
        online = self.db.execute(
            "SELECT COUNT(*) FROM attempts a WHERE a.status='sent' AND NOT EXISTS "
            "(SELECT 1 FROM batch_items i WHERE i.attempt_id = a.id)").fetchone()[0]
        in_batches = self.db.execute(
            "SELECT COUNT(*) FROM attempts a JOIN batch_items i ON i.attempt_id = a.id "
            "JOIN batches b USING (local_id) WHERE a.status='sent' AND b.reconciled_at IS NULL"
        ).fetchone()[0]
        batches = dict(self.db.execute(
            "SELECT status, COUNT(*) FROM batches WHERE reconciled_at IS NULL GROUP BY status "
            "ORDER BY status").fetchall())
        units = self.db.execute(
            "SELECT COUNT(DISTINCT a.unit_id) FROM attempts a JOIN units u USING (unit_id) "
            "WHERE a.status='sent' AND u.state='pending'").fetchone()[0]
        return {"online": online, "batch": in_batches, "batches": batches,
                "other": sent - online - in_batches, "finished": total - sent, "units": units}

    def spend(self) -> tuple[float, float]:
        """(settled USD, USD reserved by attempts that never settled, e.g. after a crash)."""
        settled, open_ = self.db.execute(
            "SELECT COALESCE(SUM(cost_usd), 0), "
            "COALESCE(SUM(CASE WHEN status='sent' THEN reserved_usd ELSE 0 END), 0) "
            "FROM attempts"
        ).fetchone()
        return float(settled), float(open_)

    def spend_by_invocation(self) -> list[tuple[int, float, float, float | None]]:
        """(invocation, its own spend, total spend at its end, its budget) in order; spend as
        in `spend` (unsettled attempts at their reservation)."""
        rows = self.db.execute(
            "SELECT i.id, i.budget_usd, COALESCE(SUM(COALESCE(a.cost_usd, "
            "CASE WHEN a.status='sent' THEN a.reserved_usd ELSE 0 END)), 0) "
            "FROM invocations i LEFT JOIN attempts a ON a.invocation = i.id "
            "GROUP BY i.id ORDER BY i.id"
        ).fetchall()
        out, total = [], 0.0
        for inv, max_usd, own in rows:
            total += own
            out.append((inv, float(own), total, max_usd))
        return out

    def overbilling(self) -> tuple[float, int, float]:
        """(USD billed past the reservations, attempts overbilled, largest cost / reservation
        ratio, 1.0 if none) over the run: attempts whose cost exceeds their reserved worst
        case (ingested results reserve nothing and are not counted)."""
        usd, n, ratio = self.db.execute(
            "SELECT COALESCE(SUM(cost_usd - reserved_usd), 0), COUNT(*), "
            "COALESCE(MAX(cost_usd / reserved_usd), 1.0) FROM attempts "
            "WHERE reserved_usd > 0 AND cost_usd > reserved_usd + 1e-12"
        ).fetchone()
        return float(usd), int(n), max(1.0, float(ratio))

    def usage_totals(self) -> dict[str, int]:
        r = self.db.execute(
            "SELECT COUNT(*), COALESCE(SUM(input_tokens),0), COALESCE(SUM(cached_input_tokens),0),"
            " COALESCE(SUM(output_tokens),0), COALESCE(SUM(reasoning_tokens),0) FROM attempts"
        ).fetchone()
        return {
            "api_calls": r[0],
            "input_tokens": r[1],
            "cached_input_tokens": r[2],
            "output_tokens": r[3],
            "reasoning_tokens": r[4],
        }

    def unit_specs(self, ids: list[str]) -> dict[str, tuple[str, bytes]]:
        """unit_id -> (model, spec JSON) of the units that exist (what never changes of a unit)."""
        out: dict[str, tuple[str, bytes]] = {}
        for i in range(0, len(ids), 500):
            part = ids[i : i + 500]
            q = f"SELECT unit_id, model, spec_json FROM units WHERE unit_id IN ({','.join('?' * len(part))})"
            for uid, model, spec in self.db.execute(q, part):
                out[uid] = (model, spec)
        return out


    def attempt_count(self, unit_id: str) -> int:
        return int(
            self.db.execute("SELECT COUNT(*) FROM attempts WHERE unit_id=?", (unit_id,)).fetchone()[0]
        )
