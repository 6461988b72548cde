"""The `ledger` check: unit states, ok attempts, reasons and unsettled attempts are consistent."""

from __future__ import annotations

from collections import Counter

import orjson

from benchsmith.store.ledger import TERMINAL
from benchsmith.validate.run_checks.base import Outcome, Problems
from benchsmith.validate.run_checks.loader import Run

STATES = ("pending", *TERMINAL)


def check_ledger(run: Run) -> Outcome:
    if run.ledger is None:
        return "ledger could not be opened", run.ledger_problems or ["ledger.sqlite: not opened"]
    p = Problems()
    db = run.ledger.db
    units = db.execute("SELECT unit_id, state, reason, result_json FROM units").fetchall()
    ok_attempts = dict(
        db.execute(
            "SELECT unit_id, COUNT(*) FROM attempts WHERE status='ok' GROUP BY unit_id"
        ).fetchall()
    )
    counts: Counter[str] = Counter()
    for uid, state, reason, result in units:
        counts[state] += 1
        if state not in STATES:
            p.add(
                f"unit {uid}: unknown state {state!r} (known: {', '.join(STATES)})",
                "unit in an unknown state",
            )
        elif state == "ok":
            _check_ok_unit(p, uid, ok_attempts.get(uid, 0), result)
        else:
            _check_other_unit(p, uid, state, ok_attempts.get(uid, 0), reason)
    orphans = db.execute(
        "SELECT a.id, a.unit_id FROM attempts a LEFT JOIN units u USING (unit_id) "
        "WHERE u.unit_id IS NULL"
    ).fetchall()
    for aid, uid in orphans:
        p.add(f"attempt {aid}: unit {uid} does not exist", "attempt of an unknown unit")
    invs = {r["id"]: r["status"] for r in run.ledger.invocations()}
    for aid, uid, inv in db.execute(
        "SELECT id, unit_id, invocation FROM attempts WHERE status='sent' ORDER BY id"
    ).fetchall():
        st = invs.get(inv)
        if st is None:
            p.add(
                f"attempt {aid} ({uid}): left 'sent' by unknown invocation {inv}",
                "attempt of an unknown invocation",
            )
        elif st not in ("crashed", "interrupted", "running", "error"):
            p.add(
                f"attempt {aid} ({uid}): left 'sent' (never settled) although invocation {inv} "
                f"ended {st!r}; only an interrupted or failed invocation may leave unsettled "
                "attempts",
                "unsettled attempt of a finished invocation",
            )
    for aid, inv in db.execute(
        "SELECT id, invocation FROM attempts WHERE status!='sent' ORDER BY id"
    ).fetchall():
        if inv not in invs:
            p.add(f"attempt {aid}: unknown invocation {inv}", "attempt of an unknown invocation")
    n_att = db.execute("SELECT COUNT(*) FROM attempts").fetchone()[0]
    states = ", ".join(f"{s} {counts[s]}" for s in STATES if counts[s])
    detail = f"{len(units)} units ({states or 'none'}), {n_att} attempts, {len(invs)} invocation(s)"
    return detail, p.finish()


def _check_ok_unit(p: Problems, uid: str, n_ok: int, result: bytes | None) -> None:
    if n_ok != 1:
        p.add(
            f"unit {uid}: ok with {n_ok} ok attempts (exactly 1 expected)",
            "ok unit without exactly one ok attempt",
        )
    if result is None:
        p.add(f"unit {uid}: ok but has no result", "ok unit without result")
        return
    try:
        res = orjson.loads(result)
    except orjson.JSONDecodeError:
        res = None
    if not isinstance(res, list):
        p.add(f"unit {uid}: result is not a list of records", "ok unit with a bad result")


def _check_other_unit(p: Problems, uid: str, state: str, n_ok: int, reason: str | None) -> None:
    if n_ok:
        p.add(
            f"unit {uid}: state {state} but {n_ok} ok attempt(s)",
            "non-ok unit with an ok attempt",
        )
    if state in TERMINAL and not (reason or "").strip():
        p.add(f"unit {uid}: state {state} without a reason", "terminal unit without a reason")
