"""Sanity rules for implementation plans beyond the schema."""

from __future__ import annotations

from typing import Any


def norm(text: str) -> str:
    return " ".join(text.lower().split())


def _all_good(plans: list[dict[str, Any]], expected: int, min_steps: int) -> bool:
    """The common case, decided fast; on False, `check_plans` works out the messages.

    `norm` is inlined (same expression): this runs for every step of every answer."""
    if len(plans) != expected:
        return False
    titles = set()
    for p in plans:
        raw = p["steps"]
        n = len(raw)
        if n < min_steps:
            return False
        # n distinct normalised steps, none empty
        steps = {" ".join(s.lower().split()) for s in raw}
        if len(steps) != n or "" in steps:
            return False
        if not p["summary"].strip():
            return False
        t = " ".join(p["title"].lower().split())
        if not t or t in titles:
            return False
        titles.add(t)
    return True


def check_plans(plans: list[dict[str, Any]], expected: int, min_steps: int) -> list[str]:
    if _all_good(plans, expected, min_steps):
        return []
    issues: list[str] = []
    if len(plans) != expected:
        issues.append(f"expected exactly {expected} plans, got {len(plans)}")
    titles: dict[str, int] = {}
    for i, p in enumerate(plans):
        where = f"plans[{i}]"
        if not p["title"].strip():
            issues.append(f"{where}.title is empty")
        if not p["summary"].strip():
            issues.append(f"{where}.summary is empty")
        steps = [norm(s) for s in p["steps"]]
        if len(steps) < min_steps:
            issues.append(f"{where}.steps has {len(steps)} steps; at least {min_steps} required")
        if any(not s for s in steps):
            issues.append(f"{where}.steps contains an empty step")
        seen: set[str] = set()
        for j, s in enumerate(steps):
            if s and s in seen:
                issues.append(f"{where}.steps[{j}] repeats an earlier step")
            seen.add(s)
        t = norm(p["title"])
        if t and t in titles:
            issues.append(f"{where}.title repeats plans[{titles[t]}].title")
        titles.setdefault(t, i)
    return issues


def plan_schema(plans_per_call: int, min_steps: int = 2) -> dict[str, Any]:
    """Strict-mode JSON Schema: every object closed, every property required."""
    plan = {
        "type": "object",
        "additionalProperties": False,
        "required": ["title", "summary", "steps"],
        "properties": {
            "title": {"type": "string", "description": "Short name of the approach."},
            "summary": {"type": "string", "description": "One paragraph: the idea and why."},
            "steps": {
                "type": "array",
                "description": "Concrete, ordered implementation steps.",
                "minItems": min_steps,
                "items": {"type": "string"},
            },
        },
    }
    return {
        "type": "object",
        "additionalProperties": False,
        "required": ["plans"],
        "properties": {
            "plans": {
                "type": "array",
                "minItems": plans_per_call,
                "maxItems": plans_per_call,
                "items": plan,
            }
        },
    }
