"""benchsmith: turn code benchmarks into validated, reproducible LLM-generated datasets.

Public API (the CLI uses exactly these):

    from benchsmith import load_config, run, dry_run, read_records, run_status
"""

from benchsmith.api import dry_run, load_config, read_records, run, run_status
from benchsmith.errors import BenchsmithError
from benchsmith.records import Task

__all__ = ["BenchsmithError", "Task", "dry_run", "load_config", "read_records", "run", "run_status"]
__version__ = "0.1.0"
