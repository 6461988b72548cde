"""Train/val split grouped by instance: every pair of an instance goes to the same side.

An instance's side depends only on the seed and its id: sha256("<seed>:<instance_id>") read
as a fraction in [0, 1); val when the fraction is below `val_fraction`. No random state is
used, so the same seed gives the same split on any machine and in any order, and adding
instances never moves the others. Exceptions keep small datasets usable: a single instance
always goes to train (a val side would leave nothing to train on); with at least two
instances, a `val_fraction` > 0 that leaves val empty moves the instance with the lowest
fraction to val, and a split that leaves train empty moves the one with the highest to train.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Split:
    train: frozenset[str]
    val: frozenset[str]


def instance_fraction(seed: int, instance_id: str) -> float:
    digest = hashlib.sha256(f"{seed}:{instance_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def split_instances(instance_ids: Iterable[str], val_fraction: float, seed: int) -> Split:
    if not 0 <= val_fraction < 1:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    fractions = {iid: instance_fraction(seed, iid) for iid in set(instance_ids)}
    val = {iid for iid, f in fractions.items() if f < val_fraction}
    if len(fractions) < 2:
        val.clear()  # one instance: all of it is training data
    if len(fractions) >= 2 and val_fraction > 0:
        if not val:
            val.add(min(fractions, key=lambda i: (fractions[i], i)))
        elif len(val) == len(fractions):
            val.discard(max(fractions, key=lambda i: (fractions[i], i)))
    return Split(frozenset(fractions.keys() - val), frozenset(val))
