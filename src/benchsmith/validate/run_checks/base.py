"""Shared vocabulary of the run checks: the result type, capped problem lists, value helpers."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import orjson

REL_TOL = 1e-9
ABS_TOL = 1e-12  # USD; sums of floats in another order differ by far less
MAX_LISTED = 20  # problems listed per kind before "... and N more"
DATASETS_UNKNOWN = "; datasets unknown"

# What a check returns: (detail, problems). The check passes when problems is empty.
Outcome = tuple[str, list[str]]


@dataclass(frozen=True)
class CheckResult:
    """Outcome of one named check: `ok` is true exactly when `problems` is empty; `skipped`:
    not run (it cannot hold on a live run; `detail` says why), and not failed."""

    name: str
    ok: bool
    detail: str
    problems: list[str] = field(default_factory=list)
    skipped: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Problems(list[str]):
    """A problem list that caps each kind of problem so a broken 100k-line file stays readable."""

    def __init__(self) -> None:
        super().__init__()
        self._kinds: Counter[str] = Counter()
        self._dropped: Counter[str] = Counter()

    def add(self, msg: str, kind: str | None = None) -> None:
        k = kind or msg
        self._kinds[k] += 1
        if self._kinds[k] > MAX_LISTED:
            self._dropped[k] += 1
        else:
            self.append(msg)

    def finish(self) -> list[str]:
        out = list(self)
        for k, n in self._dropped.items():
            out.append(f"... and {n} more: {k}")
        return out


def no_ledger(why: str = "") -> Outcome:
    """The outcome of a check that needs the ledger when it could not be opened."""
    return "no ledger", [f"ledger.sqlite could not be opened{why}"]


def close(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return math.isclose(a, b, rel_tol=REL_TOL, abs_tol=ABS_TOL)


def num(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    return float(v)


def norm(obj: Any) -> Any:
    """JSON round trip, so ledger values compare equal to what a file holds."""
    return orjson.loads(orjson.dumps(obj))


def h(v: Any) -> Any:
    """`v` if it can be a dict key, else its repr (edited files may hold anything)."""
    try:
        hash(v)
    except TypeError:
        return repr(v)
    return v


def short(items: Iterable[Any], n: int = 5) -> str:
    items = sorted(str(i) for i in items)
    more = f" (+{len(items) - n} more)" if len(items) > n else ""
    return ", ".join(items[:n]) + more
