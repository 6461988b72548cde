"""What the commands that build a run config in code share (`infbench run`, one run per
model; `skyrl synth` / `skyrl retrofit`): the run's name from what shapes its requests, so the
same command run again resumes it, and a budget per invocation on top of what the run spent.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

from benchsmith.config import RunConfig
from benchsmith.store.rundir import open_existing_run


def run_name(prefix: str, model: str, shape: dict[str, Any]) -> str:
    """`<prefix>-<model slug>-<hash of shape>`: one name per request shape. Runs made before
    are found by it: its form must not change."""
    digest = hashlib.sha256(json.dumps(shape, sort_keys=True, default=str).encode()).hexdigest()
    return f"{prefix}-{model_slug(model)}-{digest[:12]}"


def model_slug(model: str) -> str:
    """The model's name as a file name: at most 60 of letters, digits, `.`, `_` and `-`."""
    return re.sub(r"[^A-Za-z0-9._-]", "-", model).strip(".-")[:60] or "model"


def spent_usd(run_dir: Path) -> float:
    """What the run at `run_dir` has spent, settled or not (0 before it has a ledger)."""
    if not (run_dir / "ledger.sqlite").exists():
        return 0.0
    _rd, ledger = open_existing_run(run_dir)
    try:
        settled, unsettled = ledger.spend()
        return settled + unsettled
    finally:
        ledger.close()


def with_budget(cfg: RunConfig, spent: float, usd: float) -> RunConfig:
    """`cfg` capped so that this invocation spends at most `usd` on top of `spent`."""
    return cfg.model_copy(update={"budget": cfg.budget.model_copy(
        update={"max_usd": round(spent + usd, 10)})})
