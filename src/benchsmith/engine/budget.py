"""Budget: reserve the worst case before a request is sent, settle to actual usage after."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Budget:
    """In-process spend accounting. `spent` starts from the ledger (settled + unsettled)."""

    max_usd: float | None
    spent: float = 0.0
    reserved: float = 0.0
    refused: int = field(default=0)

    def try_reserve(self, amount: float) -> bool:
        if self.max_usd is not None and self.spent + self.reserved + amount > self.max_usd + 1e-12:
            self.refused += 1
            return False
        self.reserved += amount
        return True

    def settle(self, reserved: float, actual: float) -> None:
        self.reserved -= reserved
        self.spent += actual

    @property
    def remaining(self) -> float | None:
        if self.max_usd is None:
            return None
        return max(0.0, self.max_usd - self.spent - self.reserved)
