"""Progress of long work, as displays show it: counts, rate, ETA and cost read over time
(`Meter`), the fields of a one-line display kept by priority to fit a width (`fit`), and the
plain log lines written where there is no terminal. Rendering is the CLI's (cli/console)."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class BatchView:
    """One Batch API job as a display shows it."""

    local_id: str
    batch_id: str | None
    status: str
    completed: int
    failed: int
    total: int
    created_at: float  # when its input file was prepared (just before it was submitted)


@dataclass(frozen=True)
class Snapshot:
    """What a display shows at one moment. `total` None: not known yet."""

    label: str
    done: int
    total: int | None
    failed: int = 0
    invalid: int = 0
    retries: int = 0
    tokens: int | None = None
    cost_usd: float | None = None  # None: the work has no cost
    elapsed_s: float = 0.0
    rate: float | None = None  # done per second, None until it can be told
    eta_s: float | None = None
    note: str = ""  # what is being worked on
    unit: str = "req"
    batches: tuple[BatchView, ...] = ()


class Meter:
    """Rate and ETA of a done count read over time: the rate is that of the last `window_s`
    seconds (of all of them, at first), counted from the first reading, so work done
    before (a resumed run) does not inflate it."""

    def __init__(self, label: str, unit: str = "req", window_s: float = 30.0,
                 clock: Callable[[], float] = time.monotonic):
        self.label = label
        self.unit = unit
        self.window_s = window_s
        self.clock = clock
        self.start = clock()
        self._samples: deque[tuple[float, int]] = deque()
        self._lock = threading.Lock()  # read by a drawing thread and the caller's

    def read(self, done: int, total: int | None, *, failed: int = 0, invalid: int = 0,
             retries: int = 0, tokens: int | None = None, cost_usd: float | None = None,
             note: str = "", batches: tuple[BatchView, ...] = ()) -> Snapshot:
        now = self.clock()
        with self._lock:
            s = self._samples
            if s and done < s[-1][1]:
                s.clear()  # another piece of work started (the next model of a command)
            s.append((now, done))
            while len(s) > 2 and s[1][0] <= now - self.window_s:
                s.popleft()  # the oldest kept is at or before the window's start
            t0, d0 = s[0]
        rate: float | None = None
        if now > t0 and (done > d0 or now - t0 >= 1.0):
            rate = max(0, done - d0) / (now - t0)
        eta: float | None = None
        if rate and total is not None:
            eta = max(0, total - done) / rate
        elif total is not None and done >= total:
            eta = 0.0
        return Snapshot(self.label, done, total, failed, invalid, retries, tokens, cost_usd,
                        now - self.start, rate, eta, note, self.unit, batches)


def duration(seconds: float | None) -> str:
    """H:MM:SS; `--:--` when not known."""
    if seconds is None:
        return "--:--"
    m, sec = divmod(int(seconds + 0.5), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{sec:02d}"


def money(usd: float) -> str:
    return f"${usd:.4f}" if usd < 100 else f"${usd:,.2f}"


def rate_text(s: Snapshot) -> str:
    if s.rate is None:
        return f"-- {s.unit}/s"
    return f"{s.rate:,.1f} {s.unit}/s" if s.rate < 100 else f"{s.rate:,.0f} {s.unit}/s"


def count_text(s: Snapshot) -> str:
    return f"{s.done:,}/{s.total:,}" if s.total is not None else f"{s.done:,}/?"


def percent(s: Snapshot) -> str | None:
    if not s.total:
        return None
    return f"{min(100, 100 * s.done // s.total)}%"


# A display's fields in the order shown, each with its priority (0 is dropped last) and
# its text; BAR stands for the bar, which takes the room left (within BAR_MIN..BAR_MAX).
BAR = "\0bar"
BAR_MIN, BAR_MAX = 10, 40


def fields(s: Snapshot) -> list[tuple[int, str]]:
    out = [(9, s.label), (5, BAR), (0, count_text(s))]
    pct = percent(s)
    if pct:
        out.append((6, pct))
    out.append((4, f"{s.failed:,} failed"))
    if s.invalid:
        out.append((8, f"{s.invalid:,} invalid"))
    if s.retries:
        out.append((11, f"{s.retries:,} retries"))
    if s.tokens is not None:
        out.append((10, f"{s.tokens:,} tok"))
    if s.cost_usd is not None:
        out.append((3, money(s.cost_usd)))
    out.append((2, rate_text(s)))
    out.append((7, duration(s.elapsed_s)))
    out.append((1, f"ETA {duration(s.eta_s)}"))
    if s.note:
        out.append((12, s.note))
    return out


def fit(items: list[tuple[int, str]], width: int) -> tuple[list[str], int]:
    """The texts of `items` that fit in `width` columns (one space apart), dropping the
    least important first, never cutting one; and the bar's width (0: no bar)."""
    kept = list(items)

    def need() -> int:
        texts = [t for _, t in kept]
        n = sum(len(t) for t in texts if t != BAR) + max(0, len(texts) - 1)
        return n + (BAR_MIN if BAR in texts else 0)

    while kept and need() > width:
        worst = max(range(len(kept)), key=lambda i: kept[i][0])
        del kept[worst]
    texts = [t for _, t in kept]
    bar = min(BAR_MAX, BAR_MIN + width - need()) if BAR in texts else 0
    return texts, bar


def plain_line(s: Snapshot) -> str:
    """The line logged every few seconds where there is no terminal."""
    parts = [count_text(s) + (f" ({percent(s)})" if percent(s) else ""), f"{s.failed:,} failed"]
    if s.invalid:
        parts.append(f"{s.invalid:,} invalid")
    if s.cost_usd is not None:
        parts.append(money(s.cost_usd))
    parts += [rate_text(s), f"elapsed {duration(s.elapsed_s)}", f"ETA {duration(s.eta_s)}"]
    return f"{s.label}: " + ", ".join(parts)


def batch_line(b: BatchView, now: float) -> str:
    """A Batch API job: its ids, state, request counts and time since it was submitted."""
    ids = b.local_id + (f" ({b.batch_id})" if b.batch_id else "")
    return (f"batch {ids}: {b.status}, {b.completed:,}/{b.total:,} done, {b.failed:,} failed, "
            f"submitted {duration(max(0.0, now - b.created_at))} ago")
