"""Placeholder failure categorizer with the shared contract's signatures; replaced by the
real one (the adapters branch)."""

from __future__ import annotations


def categorize(test_stdout: str | None, patch: str | None = None) -> str:
    """The failure category of a failed attempt; this stand-in knows none."""
    return "unknown"


def error_context(test_stdout: str | None, lines_around: int = 3) -> str:
    """The first actionable error with a few lines around it; this stand-in gives the last
    lines of the output."""
    if not test_stdout:
        return ""
    return "\n".join(test_stdout.strip().splitlines()[-(2 * lines_around + 1):])
