"""The info-pct split of an edit history: the first k steps are shown (pre_edits), the rest
is the answer (ground_truth)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal


@dataclass(frozen=True)
class Split:
    k: int
    n: int
    pre_edits: tuple[tuple[str, ...], ...]  # the first k steps, each a list of diffs
    ground_truth: str  # the diffs of steps k+1..n in order, each ending with "\n"
    ground_truth_diffs: tuple[str, ...]


def split_index(n: int, info_pct: float | None) -> int:
    """k = min(max(floor(p*n + 0.5), 1), n - 1); 0 when `info_pct` is None (no history).

    p*n is computed in decimal from p's shortest repr, so 0.1*5 = 0.5 rounds up to 1 and
    0.35*10 = 3.5 to 4, as the written form of p says (binary floats would disagree)."""
    if info_pct is None:
        return 0
    raw = math.floor(Decimal(repr(float(info_pct))) * n + Decimal("0.5"))
    return min(max(raw, 1), n - 1)


def with_newline(diff: str) -> str:
    return diff if diff.endswith("\n") else diff + "\n"


def split_steps(
    steps: Sequence[Sequence[str]], info_pct: float | None
) -> Split | str:
    """The split, or the reason the instance is skipped (a str)."""
    n = len(steps)
    if n < 2:
        return f"{n} step(s): nothing left to predict after at least one shown step"
    k = split_index(n, info_pct)
    rest = [d for step in steps[k:] for d in step if d.strip()]
    if not rest:
        return f"steps {k + 1}..{n} hold no diff: empty ground truth"
    return Split(
        k=k, n=n,
        pre_edits=tuple(tuple(step) for step in steps[:k]),
        ground_truth="".join(with_newline(d) for d in rest),
        ground_truth_diffs=tuple(rest),
    )
