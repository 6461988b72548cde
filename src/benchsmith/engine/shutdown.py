"""Stopping a run cleanly: SIGINT/SIGTERM handlers and the executors' halt switch.

First signal: dispatch stops at once and requests in flight get a grace period to finish and
be recorded (their answers are paid for; losing them means paying again on resume). Second
signal, or the grace period over: what is still in flight is abandoned (cancelled attempts,
counted at their reservation; resume sends those units again).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Halt:
    """A switch the executors check before every dispatch; waits that are not requests in
    flight (retry backoff, rate limits) end as soon as it is thrown."""

    def __init__(self) -> None:
        self.on = False
        self._evt: asyncio.Event | None = None
        self._timer: asyncio.TimerHandle | None = None

    def _event(self) -> asyncio.Event:
        if self._evt is None:
            self._evt = asyncio.Event()
            if self.on:
                self._evt.set()
        return self._evt

    def set(self) -> None:
        self.on = True
        if self._evt is not None:
            self._evt.set()

    def later(self, seconds: float, fn: Callable[[], Any]) -> None:
        """Call `fn` after `seconds` (once; the first call wins)."""
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(max(0.0, seconds), fn)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()

    async def pause(self, seconds: float) -> bool:
        """Sleep `seconds`; False (at once) if the switch is or gets thrown."""
        if self.on:
            return False
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._event().wait(), seconds)
        return not self.on

    async def until(self, aw: Awaitable[Any]) -> bool:
        """Await `aw` unless the switch is thrown first (then `aw` is cancelled): True if done."""
        if self.on:
            if asyncio.iscoroutine(aw):
                aw.close()
            return False
        task = asyncio.ensure_future(aw)
        stop = asyncio.ensure_future(self._event().wait())
        try:
            await asyncio.wait((task, stop), return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
            if not task.done():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        if task.cancelled():
            return False
        task.result()  # its exception, if any
        return not self.on


@contextlib.contextmanager
def stop_signals(on_first: Callable[[str], None], on_second: Callable[[], None]) -> Iterator[None]:
    """Route SIGINT/SIGTERM to `on_first(signal name)`, then `on_second()`, while the block
    runs on this event loop. Handlers in place before are restored afterwards. Outside the
    main thread (no signal handlers there) nothing is installed; a SIGINT ignored by the
    parent process stays ignored."""
    loop = asyncio.get_running_loop()
    seen = [0]

    def handle(name: str) -> None:
        seen[0] += 1
        if seen[0] == 1:
            on_first(name)
        else:
            on_second()

    installed: list[tuple[signal.Signals, Any]] = []
    for sig in STOP_SIGNALS:
        prev = signal.getsignal(sig)
        if sig == signal.SIGINT and prev == signal.SIG_IGN:
            # Ignored by whoever started us (a background job): Ctrl-C is not for this run.
            continue
        try:
            loop.add_signal_handler(sig, handle, sig.name)
        except (ValueError, RuntimeError, NotImplementedError):
            continue
        installed.append((sig, prev))
    try:
        yield
    finally:
        for sig, prev in installed:
            loop.remove_signal_handler(sig)
            if prev is not None:
                with contextlib.suppress(ValueError, TypeError, OSError):
                    signal.signal(sig, prev)
