"""Exact category counts for a run: `simple:0.3,moderate:0.5,complex:0.2` over N samples.

Largest remainder (Hamilton): each category gets floor(N * weight), and the samples left
over go one each to the largest fractional parts, ties to the category named first. The
arithmetic is exact (fractions of the decimal weights), so 200 x 0.3 is 60, never 59.
"""

from __future__ import annotations

import math
import random
from fractions import Fraction

from benchsmith.errors import ConfigError


COMPLEXITY_EXAMPLE = "simple:0.3,moderate:0.5,complex:0.2"
DOMAIN_EXAMPLE = "devops,data analysis or devops:2,data analysis:1"


def parse_distribution(text: str, field: str,
                       allowed: tuple[str, ...] | None = None) -> dict[str, float]:
    """`name:weight,name:weight,...` (a name without a weight counts 1) -> normalised weights
    summing to 1, in the order given. `field` names the flag in errors; `allowed`, when
    given, the only names it may hold (the complexities)."""
    example = COMPLEXITY_EXAMPLE if allowed else DOMAIN_EXAMPLE
    weights: dict[str, float] = {}
    for part in text.split(","):
        name, sep, raw = (x.strip() for x in part.partition(":"))
        if not name:
            raise ConfigError("command line", field, f"{text!r} has an empty name; write "
                              f"e.g. {example}")
        if allowed is not None and name not in allowed:
            raise ConfigError("command line", field, f"{name!r} is not a complexity; use "
                              f"{', '.join(allowed)} (e.g. {example})")
        if name in weights:
            raise ConfigError("command line", field, f"{name!r} is given twice")
        try:
            w = float(raw) if sep else 1.0
        except ValueError:
            raise ConfigError("command line", field, f"{name}:{raw} is not name:number; write "
                              f"e.g. {example}") from None
        weights[name] = w
    return normalise(weights, field)


def normalise(weights: dict[str, float], field: str = "weights") -> dict[str, float]:
    """Weights scaled to sum to 1; ConfigError on a negative, infinite or all-zero set."""
    if not weights:
        raise ConfigError("command line", field, "give at least one name")
    for name, w in weights.items():
        if not math.isfinite(w) or w < 0:
            raise ConfigError("command line", field, f"{name}: weight {w} must be a number >= 0")
    total = math.fsum(weights.values())
    if total <= 0:
        raise ConfigError("command line", field, "the weights sum to 0: give at least one "
                          "positive weight")
    return {k: w / total for k, w in weights.items()}


def counts(n: int, weights: dict[str, float]) -> dict[str, int]:
    """How many of `n` samples each category gets (largest remainder; sums to n)."""
    if n < 0:
        raise ConfigError("command line", "--n-samples", f"{n} must be 0 or more")
    normalise(weights)
    # The decimal a float was written as (0.3 is 3/10), so quotas are exact.
    exact = {k: Fraction(repr(float(w))) for k, w in weights.items()}
    total = sum(exact.values())
    quotas = {k: n * w / total for k, w in exact.items()}
    out = {k: math.floor(q) for k, q in quotas.items()}
    order = list(weights)
    by_remainder = sorted(order, key=lambda k: (-(quotas[k] - out[k]), order.index(k)))
    for k in by_remainder[: n - sum(out.values())]:
        out[k] += 1
    return out


def allocate(n: int, weights: dict[str, float], seed: int) -> list[str]:
    """`n` category names with exactly `counts(n, weights)` of each, shuffled by `seed` (a
    private random.Random: the same seed gives the same order, whatever else ran)."""
    names = [k for k, c in counts(n, weights).items() for _ in range(c)]
    random.Random(seed).shuffle(names)
    return names
