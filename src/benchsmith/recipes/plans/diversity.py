"""Plan diversity: reject plans too similar to ones already accepted for the same task.

rapidfuzz's token-sort ratio on normalized text: order-insensitive, fast (C++), well kept.
"""

from __future__ import annotations

from typing import Any

from rapidfuzz import fuzz

from benchsmith.recipes.plans.rules import norm

DUPLICATE_PREFIX = "duplicate_of:"


def plan_text(plan: dict[str, Any]) -> str:
    return norm(" ".join([plan["title"], plan["summary"], *plan["steps"]]))


def similarity(a: str, b: str) -> float:
    return fuzz.token_sort_ratio(a, b) / 100.0


def duplicate_issues(
    records: list[dict[str, Any]], prior: list[dict[str, Any]], threshold: float
) -> list[str]:
    """One issue per new plan that is too similar to an accepted or an earlier new plan.

    The issue text starts with `duplicate_of:<plan id>` so reports can count rejections.
    """
    issues = []
    seen = [(p["plan_id"], p.get("text") or norm(p["title"])) for p in prior]
    for r in records:
        text = plan_text(r)
        best_id, best = None, 0.0
        for pid, other in seen:
            s = similarity(text, other)
            if s > best:
                best_id, best = pid, s
        if best_id is not None and best >= threshold:
            issues.append(
                f"{DUPLICATE_PREFIX}{best_id} (plan {r['plan_index']} '{r['title'][:60]}' is "
                f"{best:.0%} similar; propose a different approach)"
            )
        seen.append((r["plan_id"], text))
    return issues
