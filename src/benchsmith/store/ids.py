"""Stable, versioned content-hash ids for requests."""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

ID_PREFIX = "r1_"  # bump when the fingerprinted fields change


def canonical_json(obj: Any) -> bytes:
    return orjson.dumps(obj, option=orjson.OPT_SORT_KEYS)


def unit_id(recipe: str, recipe_version: str, spec: dict[str, Any]) -> str:
    """Derived from what is sent (model, messages, schema, params, tools, n) and where it belongs.

    43 ASCII characters: fits the Batch API's custom_id limit.
    """
    fp = {
        "recipe": recipe,
        "recipe_version": recipe_version,
        "dataset": spec["dataset"],
        "task_id": spec["task_id"],
        "stage": spec["stage"],
        "sample_index": spec["sample_index"],
        "parent_id": spec.get("parent_id"),
        "model": spec["model"],
        "messages": spec["messages"],
        "schema": spec.get("schema"),
        "params": spec.get("params"),
    }
    # Added only when set, so that a spec without them hashes as it did before they existed
    # (existing runs keep their ids; no ID_PREFIX bump).
    if spec.get("tools"):
        fp["tools"] = spec["tools"]
    if spec.get("tool_choice") is not None:
        fp["tool_choice"] = spec["tool_choice"]
    if spec.get("n", 1) != 1:
        fp["n"] = spec["n"]
    return ID_PREFIX + hashlib.sha256(canonical_json(fp)).hexdigest()[:40]
