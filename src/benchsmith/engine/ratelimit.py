"""Client-side requests-per-minute and tokens-per-minute limits (token buckets).

Waiters sleep exactly until capacity is available; nothing polls.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


class TokenBucket:
    def __init__(self, per_minute: float, clock: Callable[[], float] = time.monotonic):
        self.rate = per_minute / 60.0
        self.capacity = float(per_minute)
        self.level = float(per_minute)
        self.clock = clock
        self.t = clock()
        self._lock = asyncio.Lock()

    def _refill(self) -> None:
        now = self.clock()
        self.level = min(self.capacity, self.level + (now - self.t) * self.rate)
        self.t = now

    async def take(self, amount: float) -> None:
        amount = min(amount, self.capacity)  # a single huge request must still pass eventually
        async with self._lock:  # FIFO: one waiter at a time owns the refill
            self._refill()
            while self.level < amount:
                await asyncio.sleep((amount - self.level) / self.rate)
                self._refill()
            self.level -= amount


class RateLimiter:
    def __init__(self, rpm: int | None, tpm: int | None):
        self.rpm = TokenBucket(rpm) if rpm else None
        self.tpm = TokenBucket(tpm) if tpm else None
        self.limited = self.rpm is not None or self.tpm is not None  # else acquire never waits

    async def acquire(self, tokens: int) -> None:
        if self.rpm is not None:
            await self.rpm.take(1)
        if self.tpm is not None:
            await self.tpm.take(tokens)
