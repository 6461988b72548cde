"""A unit's recorded finding (`spec.meta["gold_leak"]`): its key and what ends a unit.

No imports of the rest of benchsmith: the ledger reads these as it inserts units.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

META_KEY = "gold_leak"
REASON = "gold_leak"
OTHER_TEXT = "prompt"  # matched text the task's fields do not hold (the recipe's own)


def skip_reason(meta: Mapping[str, Any]) -> str | None:
    """`gold_leak:<field>` for a finding that ends its unit skipped, else None."""
    if meta.get("policy") != "skip" or not meta.get("matched"):
        return None
    fields = list(meta.get("fields") or {}) or [OTHER_TEXT]
    return f"{REASON}:{fields[0]}"


def is_leak_skip(reason: str | None) -> bool:
    return bool(reason) and str(reason).startswith(REASON + ":")
