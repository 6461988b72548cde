"""What the ledger already knows about pending units: attempts so far and re-ask messages."""

from __future__ import annotations

from dataclasses import dataclass, replace

from benchsmith.engine.unit_machine import UnitState, is_transient
from benchsmith.recipes.base import RequestSpec, with_feedback
from benchsmith.store.ledger import Ledger


@dataclass(frozen=True)
class UnitHistory:
    attempts: int = 0  # API calls made for the unit (all of them: the next one is numbered after)
    # Since the unit was last re-opened (`run --retry-failed/--retry-invalid`), if it was:
    state: UnitState = UnitState()  # failed tries: invalid answers, transient failures
    messages: tuple[dict[str, str], ...] | None = None  # re-ask with the last validation issues
    reopened: bool = False  # its children are planned with care (store/reopen.py)


def load_histories(ledger: Ledger) -> dict[str, UnitHistory]:
    """Histories of pending units that have attempts or were re-opened (others have none)."""
    out: dict[str, UnitHistory] = {}
    specs: dict[str, RequestSpec] = {}
    reopened = ledger.pending_reopened()
    for uid, spec_json, status, http_status, raw, issues, fresh in ledger.pending_attempts():
        h = out.get(uid, UnitHistory())
        n, inv, tr, msgs = h.attempts + 1, h.state.invalid, h.state.transient, h.messages
        if not fresh:  # before the unit was re-opened: counts only as an attempt
            pass
        elif status == "invalid":
            inv += 1
            if raw is not None:
                spec = specs.get(uid) or RequestSpec.from_dict(spec_json)
                specs[uid] = spec
                msgs = with_feedback(spec.messages, raw, tuple(issues), json=spec.schema is not None)
        elif is_transient(status, http_status):
            tr += 1
        out[uid] = UnitHistory(n, UnitState(tr, inv), msgs)
    for uid in reopened:
        out[uid] = replace(out.get(uid, UnitHistory()), reopened=True)
    return out
