"""Budget: reserve the worst case before a request is sent, settle to actual usage after.

The worst case assumes the server bills at most `max_output_tokens` of output. Some servers
bill past it (reasoning tokens, for one): such an attempt is *overbilled*. From then on the
worst case of every request, in flight or next, counts at the largest ratio of cost to worst
case seen (`factor`), so "could this pass the budget" stays an honest question; and the run
says by how much the server went past the caps.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

_TOL = 1e-12  # USD; float sums in another order differ by far less


@dataclass
class Budget:
    """In-process spend accounting. `spent` starts from the ledger (settled + unsettled).

    Amounts reserved and settled are worst cases at the requests' caps; `reserved` is their
    sum, counted at `factor` against the budget.
    """

    max_usd: float | None
    spent: float = 0.0
    reserved: float = 0.0
    refused: int = field(default=0)
    factor: float = 1.0  # >1 once a server billed past the caps
    overbilled: float = 0.0  # USD billed past the caps, in this process
    overbilled_n: int = 0

    def try_reserve(self, amount: float) -> bool:
        if self.max_usd is not None and (
            self.spent + (self.reserved + amount) * self.factor > self.max_usd + _TOL
        ):
            self.refused += 1
            return False
        self.reserved += amount
        return True

    def settle(self, reserved: float, actual: float) -> bool:
        """Release a reservation and count its actual cost; True when it was overbilled."""
        self.reserved -= reserved
        self.spent += actual
        if actual <= reserved + _TOL:
            return False
        self.note_overbilled(reserved, actual)
        return True

    def note_overbilled(self, reserved: float, actual: float) -> None:
        self.overbilled += actual - reserved
        self.overbilled_n += 1
        if reserved > 0:
            self.factor = max(self.factor, actual / reserved)

    def cost_bound(self, amount: float) -> float:
        """What a request whose worst case at its cap is `amount` may cost."""
        return amount * self.factor

    def refusal(self, amount: float, at: str = "") -> str:
        """Why a request whose worst case at its cap is `amount` was refused (`at`: the
        price it counts at, if not the online one)."""
        return (f"budget: the next request could cost up to ${self.cost_bound(amount):.4f}{at} "
                f"and only ${self.remaining or 0:.4f} of ${self.max_usd or 0:.4f} is left")

    @property
    def remaining(self) -> float | None:
        if self.max_usd is None:
            return None
        return max(0.0, self.max_usd - self.spent - self.reserved * self.factor)

    @property
    def at_risk(self) -> bool:
        """What is spent plus what is in flight could pass the budget."""
        return self.max_usd is not None and (
            self.spent + self.reserved * self.factor > self.max_usd + _TOL
        )

    @property
    def overspent(self) -> bool:
        return self.max_usd is not None and self.spent > self.max_usd + _TOL


def overbilled_note(reserved: float, cost: float) -> str:
    """An overbilled attempt's note (its `error` in the ledger and the call log)."""
    return f"overbilled: cost ${cost:.6f} > reserved ${reserved:.6f} (billed past max_output_tokens)"


def overbilled_message(b: Budget) -> str:
    """`the server billed $X more than the requests' cost caps ...; spent $S of the $M budget`."""
    msg = (
        f"the server billed ${b.overbilled:.4f} more than the requests' cost caps "
        f"(max_output_tokens) on {b.overbilled_n} request(s)"
    )
    if b.max_usd is not None:
        msg += f"; spent ${b.spent:.4f} of the ${b.max_usd:.4f} budget"
    return msg


def final_stop(b: Budget, stopped: str | None, message: str) -> tuple[str | None, str]:
    """The run's (stop kind, message) once its requests are settled.

    Overbilling is always reported: as the stop reason when it ended the run or took the
    spend past the budget (a budget stop whatever else happened), else as a note.
    """
    if b.overbilled_n == 0:
        return stopped, message
    note = overbilled_message(b)
    if b.overspent or stopped == "budget":
        return "budget", note
    return stopped, f"{message}; {note}" if message else note


def overspend_problems(rows: list[tuple[int, float, float, float | None]]) -> list[str]:
    """Invocations that spent money while total spend passed their budget.

    `rows`: (invocation, its own spend, total spend at its end, its budget) in order; a resume
    with a budget below what was already spent is no overspend unless it spent more.
    """
    out = []
    for inv, own, total, max_usd in rows:
        if max_usd is not None and own > _TOL and total > max_usd + _TOL:
            out.append(
                f"invocation {inv} spent ${own:.4f}, bringing the run to ${total:.4f}, "
                f"past its ${max_usd:.4f} budget"
            )
    return out


def money_problems(ledger: Any) -> list[str]:
    """Spend past the budget, read from a ledger (`spend_by_invocation`, `overbilling`);
    with the server's overbilling as the likely cause when there was any."""
    out = overspend_problems(ledger.spend_by_invocation())
    usd, n, _ratio = ledger.overbilling()
    if out and n:
        out.append(
            f"the server billed ${usd:.4f} more than the requests' cost caps "
            f"(max_output_tokens) on {n} request(s)"
        )
    return out
