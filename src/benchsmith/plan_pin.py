"""A run is pinned to its plan: an invocation whose settings would ask other requests stops
before anything is written, unless `--replan` records them as the run's next plan."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from benchsmith.errors import ConfigError
from benchsmith.fingerprint import Fingerprint, differences
from benchsmith.store.batches import units_in_flight
from benchsmith.store.ledger import Ledger
from benchsmith.store.plans import Plan, current_plan, plan_history, record_plan

MAX_SHOWN = 6  # differences named in the one-line refusal


def refusal(diffs: list[str]) -> str:
    shown = "; ".join(diffs[:MAX_SHOWN])
    if len(diffs) > MAX_SHOWN:
        shown += f"; +{len(diffs) - MAX_SHOWN} more"
    return (
        f"this run was planned with other settings ({shown}); to keep it as it is, start a new "
        "run with another --run-id; to continue it with these settings, add --replan (its "
        "pending requests are marked superseded, completed ones are kept)"
    )


def pin_plan(
    ledger: Ledger, fp: Fingerprint, config: dict[str, Any], *, replan: bool, where: str,
    echo: Callable[[str], None],
) -> Plan:
    """The plan this invocation carries out. Records the first plan of a run (also of a run
    made before plans were pinned: its settings are taken as they are now). Raises
    ConfigError when the settings differ from the current plan's and `replan` is false."""
    cur = current_plan(ledger)
    if cur is None:
        return record_plan(ledger, fp.digest, fp.fields, config, settled=True)
    if cur.fingerprint == fp.digest:
        if replan and cur.settled:
            echo(f"--replan: the settings are those of plan {cur.id}; nothing to replan")
        return cur
    diffs = differences(cur.fields, fp.fields)
    if not replan:
        raise ConfigError(where, "", refusal(diffs))
    busy = units_in_flight(ledger)
    if busy:  # their answers would be paid for and then dropped as superseded
        raise ConfigError(
            where, "--replan",
            f"{len(busy)} request(s) are in Batch API jobs not reconciled yet; finish them "
            "first (run --resume with the run's current settings; `batch cancel` stops them "
            "early), then replan",
        )
    plan = record_plan(ledger, fp.digest, fp.fields, config, settled=False)
    echo(f"replanned: plan {plan.id} replaces plan {cur.id} ({'; '.join(diffs[:MAX_SHOWN])})")
    return plan


def plan_manifest(ledger: Ledger) -> dict[str, Any]:
    """config/plan.json: the current plan's fingerprint and settings, and the history."""
    history = plan_history(ledger)
    cur = history[-1]
    return {
        "plan": cur.id,
        "fingerprint": cur.fingerprint,
        "created_at": cur.created_at,
        "fields": cur.fields,
        "history": [
            {"plan": p.id, "fingerprint": p.fingerprint, "created_at": p.created_at}
            for p in history
        ],
    }
