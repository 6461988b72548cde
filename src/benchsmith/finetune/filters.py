"""The filters an attempt must pass to be used in any pair, in the order that names the
reason when several apply:

1. `unknown_failure_category`: a failed attempt whose category is `unknown` (the test output
   said nothing the categorizer recognised), so a reflection pair could not say what failed;
2. `empty_patch`: nothing but whitespace (or null);
3. `not_a_unified_diff`: starts with neither `---` nor `diff --git` (its very first
   characters, as the issue states it: a patch with text or blank lines before its first
   header is not one);
4. `patch_too_long`: more than `max_patch_chars` characters;
5. `problem_statement_too_short`: fewer than `min_problem_words` whitespace-separated words.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from benchsmith.finetune.trajectories import Entry

REASONS = ("unknown_failure_category", "empty_patch", "not_a_unified_diff", "patch_too_long",
           "problem_statement_too_short")
UNKNOWN = "unknown"


@dataclass(frozen=True)
class FilterOptions:
    min_problem_words: int = 20
    max_patch_chars: int = 8000


@dataclass(frozen=True)
class Filtered:
    kept: tuple[Entry, ...]
    reasons: dict[str, int]  # every reason, 0 included, in REASONS order
    categories: dict[str, int]  # failure categories of the kept failed attempts


def reject_reason(e: Entry, opts: FilterOptions) -> str | None:
    """The first filter `e` fails, or None when it passes them all."""
    if not e.resolved and (e.failure_category or UNKNOWN).strip() == UNKNOWN:
        return "unknown_failure_category"
    if not e.patch.strip():
        return "empty_patch"
    if not e.patch.startswith(("---", "diff --git")):
        return "not_a_unified_diff"
    if len(e.patch) > opts.max_patch_chars:
        return "patch_too_long"
    if len(e.problem_statement.split()) < opts.min_problem_words:
        return "problem_statement_too_short"
    return None


def apply_filters(entries: Iterable[Entry], opts: FilterOptions) -> Filtered:
    kept: list[Entry] = []
    reasons = dict.fromkeys(REASONS, 0)
    for e in entries:
        reason = reject_reason(e, opts)
        if reason is None:
            kept.append(e)
        else:
            reasons[reason] += 1
    categories = Counter(e.failure_category or UNKNOWN for e in kept if not e.resolved)
    return Filtered(tuple(kept), reasons, dict(sorted(categories.items())))
