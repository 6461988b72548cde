"""Benchmark loaders: each turns rows into Task records."""

from __future__ import annotations

from benchsmith.config import DatasetConfig, RunConfig
from benchsmith.records import Task
from benchsmith.sources import humaneval, jsonl
from benchsmith.sources.select import select_tasks


def load_tasks(name: str, ds: DatasetConfig, cfg: RunConfig) -> list[Task]:
    """Load, sort, filter and cap the tasks of one configured dataset."""
    if ds.source == "humaneval":
        tasks = humaneval.load(name, cfg.resolve(ds.path) if ds.path else None)
    else:
        assert ds.path is not None
        tasks = jsonl.load(name, cfg.resolve(ds.path), ds.fields, f"datasets.{name}")
    allow = cfg.resolve(ds.task_ids_file) if ds.task_ids_file else None
    return select_tasks(tasks, max_tasks=ds.max_tasks, task_ids_file=allow, field=f"datasets.{name}")
