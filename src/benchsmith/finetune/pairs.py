"""Training pairs from the attempts that passed the filters, per instance:

- positive: each resolved attempt -> its own patch (a patch already given as a positive for
  the instance is not repeated);
- reflection: each failed attempt followed by a resolved one (a higher attempt number) ->
  the patch of the first resolved attempt after it; the prompt adds the failed patch, its
  category and the error context of its test output;
- preference: each failed attempt of an instance with a resolved attempt -> chosen: the
  patch of the instance's first resolved attempt, rejected: the failed patch; the prompt is
  the resolved attempt's positive prompt.

A failed patch is never a target: it appears only as the rejected side of a preference pair
and inside a reflection prompt. A failed attempt whose patch equals the resolved patch (a
flaky test) makes no reflection or preference pair; those are counted as `same_patch`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from benchsmith.finetune.prompts import SYSTEM_PROMPT, PromptBounds, user_prompt
from benchsmith.finetune.trajectories import Entry

PAIR_TYPES = ("positive", "reflection", "preference")


@dataclass(frozen=True)
class Pair:
    pair_type: str  # one of PAIR_TYPES
    instance_id: str
    repo: str
    attempt: int  # the attempt the pair is about: the resolved one (positive), else the failed
    target_attempt: int  # the resolved attempt whose patch is the target (chosen)
    category: str | None  # the failed attempt's category; None for positive
    source: str
    system: str
    user: str
    target: str  # always a resolved patch
    rejected: str | None = None  # preference only: the failed patch

    def metadata(self) -> dict[str, Any]:
        """The same keys and types in every row (dataset loaders infer one schema)."""
        return {"instance_id": self.instance_id, "repo": self.repo, "pair_type": self.pair_type,
                "category": self.category, "attempt": self.attempt,
                "target_attempt": self.target_attempt, "source": self.source}


@dataclass(frozen=True)
class PairSet:
    pairs: tuple[Pair, ...]  # by instance id, then positive, reflection, preference
    counts: dict[str, int]  # per pair type
    duplicate_positives: int
    same_patch: int


def _same(a: str, b: str) -> bool:
    return a.strip() == b.strip()


def _instance_pairs(attempts: list[Entry], bounds: PromptBounds, reflection: bool,
                    tally: dict[str, int]) -> list[Pair]:
    resolved = [e for e in attempts if e.resolved]
    if not resolved:
        return []  # nothing to teach: failed patches are never targets
    failed = [e for e in attempts if not e.resolved]
    prompts = {e.attempt: user_prompt(e, bounds) for e in resolved}
    out: list[Pair] = []
    seen: set[str] = set()
    for r in resolved:
        if r.patch.strip() in seen:
            tally["duplicate_positives"] += 1
            continue
        seen.add(r.patch.strip())
        out.append(Pair("positive", r.instance_id, r.repo, r.attempt, r.attempt, None,
                        r.source, SYSTEM_PROMPT, prompts[r.attempt], r.patch))
    first = resolved[0]
    for f in failed:
        later = next((r for r in resolved if r.attempt > f.attempt), None)
        if reflection and later is not None:
            if _same(f.patch, later.patch):
                tally["same_patch"] += 1
            else:
                out.append(Pair("reflection", f.instance_id, f.repo, f.attempt, later.attempt,
                                f.failure_category, f.source, SYSTEM_PROMPT,
                                user_prompt(f, bounds, failed=f), later.patch))
    for f in failed:
        if _same(f.patch, first.patch):
            tally["same_patch"] += 1
            continue
        out.append(Pair("preference", f.instance_id, f.repo, f.attempt, first.attempt,
                        f.failure_category, f.source, SYSTEM_PROMPT, prompts[first.attempt],
                        first.patch, rejected=f.patch))
    return out


def make_pairs(kept: Iterable[Entry], bounds: PromptBounds = PromptBounds(),
               reflection: bool = True) -> PairSet:
    """Pairs of the kept attempts (see the module docstring); `reflection=False` makes
    no reflection pair (--no-reflection)."""
    by_instance: dict[str, list[Entry]] = defaultdict(list)
    for e in kept:
        by_instance[e.instance_id].append(e)
    tally = {"duplicate_positives": 0, "same_patch": 0}
    pairs: list[Pair] = []
    for iid in sorted(by_instance):
        attempts = sorted(by_instance[iid], key=lambda e: e.attempt)
        pairs.extend(_instance_pairs(attempts, bounds, reflection, tally))
    counts = dict.fromkeys(PAIR_TYPES, 0)
    for p in pairs:
        counts[p.pair_type] += 1
    return PairSet(tuple(pairs), counts, tally["duplicate_positives"], tally["same_patch"])
