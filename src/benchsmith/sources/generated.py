"""The `generated` source: N numbered task slots with a seed each, for recipes that ask a
model to invent the tasks (no input file).

Slot i is `slot-<i>` (zero-padded, so sorting by id keeps slot order) with context
`{"slot": i, "seed": <derived from the dataset's seed and i>}`. The same config gives the
same tasks in every process, so resume and the plan fingerprint stay stable.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from pathlib import Path

from benchsmith.records import Task
from benchsmith.sources.select import read_id_list

PREFIX = "slot-"
MIN_DIGITS = 5
SEED_BITS = 31  # fits every seed parameter (int32 APIs, numpy's legacy seed)
_SLOT_ID = re.compile(r"slot-([0-9]+)")


def digits(count: int) -> int:
    """Width of the slot numbers: 5, or more when `count` needs it (same width for all)."""
    return max(MIN_DIGITS, len(str(count - 1)))


def slot_id(i: int, count: int) -> str:
    return f"{PREFIX}{i:0{digits(count)}d}"


def slot_seed(seed: int, i: int) -> int:
    """A per-slot seed from the dataset's seed and the slot number: a hash, so neighbouring
    slots (and seeds) get unrelated values, and no RNG state is shared between processes."""
    h = hashlib.sha256(f"benchsmith-slot:{seed}:{i}".encode()).digest()
    return int.from_bytes(h[:8], "big") >> (64 - SEED_BITS)


def slot_task(dataset: str, i: int, count: int, seed: int) -> Task:
    return Task(
        id=slot_id(i, count), dataset=dataset, primary_field="prompt", primary="",
        context={"slot": i, "seed": slot_seed(seed, i)},
    )


def load(
    dataset: str, count: int, seed: int, *, max_tasks: int | None, task_ids_file: Path | None,
    field: str,
) -> list[Task]:
    """The slots the selection can keep, built without building the others: the first
    `max_tasks`, or those `task_ids_file` names (an id that is no slot is left for
    `select_tasks` to report)."""
    return [slot_task(dataset, i, count, seed) for i in _slots(count, max_tasks, task_ids_file, field)]


def _slots(
    count: int, max_tasks: int | None, task_ids_file: Path | None, field: str
) -> Iterable[int]:
    if task_ids_file is None:
        return range(min(count, max_tasks or count))
    width = digits(count)
    wanted = set()
    for tid in read_id_list(task_ids_file, field):
        m = _SLOT_ID.fullmatch(tid)
        if m and len(m.group(1)) == width and int(m.group(1)) < count:
            wanted.add(int(m.group(1)))
    return sorted(wanted)
