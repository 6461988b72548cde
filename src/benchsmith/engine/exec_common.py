"""What the executors share: their settings, live counters and outcome, and the cyclic-GC
setting while requests are in flight; and the online executor's backoff between retries."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import random
from dataclasses import dataclass, field
from typing import Any

from benchsmith.engine.context import ContextLimits


@dataclass
class Stats:
    """Live counters for progress display."""

    total: int = 0
    ok: int = 0
    invalid: int = 0
    failed: int = 0
    retries: int = 0
    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    batches: tuple[Any, ...] = ()  # progress.BatchView of each batch of this invocation

    @property
    def done(self) -> int:
        return self.ok + self.invalid + self.failed


@dataclass
class EngineSettings:
    api: str
    structured: str
    keys: list[str]
    concurrency: int
    max_retries: int
    backoff_base_s: float
    backoff_max_s: float
    extra_body: dict[str, Any] = field(default_factory=dict)
    schema_bounds: tuple[int, int] | None = None  # llama-cpp adapter: (max chars, max items)
    context: ContextLimits | None = None  # requests that cannot fit are skipped, never sent


@dataclass
class Outcome:
    stopped: str | None = None  # None (all done), "budget", "auth", "interrupted"
    message: str = ""


async def cancel_all(tasks: list[asyncio.Task[None]]) -> None:
    """Cancel the tasks and wait until each has ended."""
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def backoff_s(s: EngineSettings, k: int, retry_after: float | None, rng: random.Random) -> float:
    """The wait before the (k+1)-th retry in this invocation, with jitter."""
    if retry_after is not None:
        # Honour the server's delay (as the official SDK does, up to 120 s).
        return min(retry_after, max(120.0, s.backoff_max_s))
    base = min(s.backoff_base_s * (2**k), s.backoff_max_s)
    return base * (0.5 + rng.random() * 0.5)


@contextlib.contextmanager
def quiet_cyclic_gc() -> Any:
    """Fewer and shorter cyclic-GC pauses while requests are in flight.

    Every pause stalls all in-flight requests. `gc.freeze()` takes what exists before the run
    (configs, planned units, modules) out of the collector's scans, which made the full
    collections during a 5,000-request run ~5x shorter (40 ms -> 11 ms), and a higher
    second threshold makes middle-generation passes rarer. Reference counting, which frees
    almost everything here, is unaffected. Restored afterwards; left alone when the caller
    already manages the collector (disabled, or objects frozen).
    """
    if not gc.isenabled() or gc.get_freeze_count():
        yield
        return
    old = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(old[0], max(old[1], 50), old[2])
    try:
        yield
    finally:
        gc.set_threshold(*old)
        gc.unfreeze()
