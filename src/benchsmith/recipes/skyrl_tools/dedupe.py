"""Near-duplicate user prompts within a run: rapidfuzz's token-sort ratio (0-1) on the user
messages, lower-cased with punctuation stripped (rapidfuzz's default processor).

Two places use it, for one guarantee: no two rows of the dataset are near duplicates.
- At ask time (`Accepted`, in the stage's parse): an answer whose prompt is at least
  `threshold` similar to one accepted earlier in this process is refused and asked again.
  The engine calls parse on one thread (the event loop, or reconcile's loop), so a plain dict
  needs no lock; with requests in flight, which of two near duplicates arrives first (and
  stays) depends on the timing of the answers.
- At write time (`keep_distinct`): rows are taken in slot order and one too similar to an
  earlier kept row is left out. This catches what parse could not see: prompts accepted by an
  earlier invocation (a resumed run) or judged ahead of ingest.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from rapidfuzz import fuzz, process, utils

T = TypeVar("T")


def user_text(prompt: list[dict[str, Any]]) -> str:
    return "\n".join(m["content"] for m in prompt if m.get("role") == "user")


class Accepted:
    """The user prompts accepted so far, by task id."""

    def __init__(self, threshold: float):
        self.threshold = threshold
        self._texts: dict[str, str] = {}

    def near(self, task_id: str, text: str) -> tuple[str, float] | None:
        """(task id, similarity) of the most similar accepted prompt of another task, if it is
        at least the threshold."""
        return _nearest(text, {k: v for k, v in self._texts.items() if k != task_id},
                        self.threshold)

    def add(self, task_id: str, text: str) -> None:
        self._texts[task_id] = text


def _nearest(text: str, choices: dict[str, str], threshold: float) -> tuple[str, float] | None:
    if not choices:
        return None
    hit = process.extractOne(text, choices, scorer=fuzz.token_sort_ratio,
                             processor=utils.default_process, score_cutoff=threshold * 100)
    return None if hit is None else (hit[2], hit[1] / 100)


def keep_distinct(items: Iterable[T], key: Callable[[T], tuple[str, str]], threshold: float
                  ) -> tuple[list[T], list[tuple[str, str, float]]]:
    """(kept items, [(task id, near duplicate of, similarity)]): in the given order, an item
    too similar to an earlier kept one is left out. `key(item)` -> (task id, text)."""
    kept: list[T] = []
    texts: dict[str, str] = {}
    dropped: list[tuple[str, str, float]] = []
    for item in items:
        tid, text = key(item)
        hit = _nearest(text, texts, threshold)
        if hit is not None:
            dropped.append((tid, hit[0], round(hit[1], 4)))
            continue
        kept.append(item)
        texts[tid] = text
    return kept, dropped
