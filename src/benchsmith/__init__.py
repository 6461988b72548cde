"""benchsmith: turn code benchmarks into validated, reproducible LLM-generated datasets.

Public API (the CLI uses exactly these):

    from benchsmith import load_config, run, dry_run, read_records, run_status
"""

from __future__ import annotations

from typing import Any

__all__ = ["BenchsmithError", "Task", "dry_run", "load_config", "read_records", "run", "run_status"]
__version__ = "0.1.0"

_FROM = {"BenchsmithError": "benchsmith.errors", "Task": "benchsmith.records"}


def __getattr__(name: str) -> Any:
    # Imported on first use: a command (or a child process) that needs one module of the
    # package does not pay for the whole engine.
    if name not in __all__:
        raise AttributeError(f"module 'benchsmith' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(_FROM.get(name, "benchsmith.api")), name)
    globals()[name] = value
    return value
