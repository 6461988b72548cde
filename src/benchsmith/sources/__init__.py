"""Benchmark loaders: each turns rows into Task records."""

from __future__ import annotations

from typing import TYPE_CHECKING

from benchsmith.config_sections import DatasetConfig, FieldMap
from benchsmith.errors import ConfigError
from benchsmith.records import Task
from benchsmith.sources import (
    generated, humaneval, infbench, jsonl, refactorbench, run_records, swebench,
)
from benchsmith.sources.rows import iter_file, iter_hf
from benchsmith.sources.select import select_tasks

if TYPE_CHECKING:  # the run config is only passed through (no import: config imports recipes)
    from benchsmith.config import RunConfig

_FIELDS: dict[str, FieldMap] = {
    "swebench_verified": swebench.FIELDS,
    "swebench_lite": swebench.FIELDS,
    "swebench": swebench.FIELDS,
    "refactorbench_py": refactorbench.FIELDS,
    "infbench": infbench.FIELDS,
}


def field_map(name: str, ds: DatasetConfig) -> FieldMap | None:
    """How the dataset's rows map onto tasks (None: its tasks are not read from rows)."""
    source = ds.source_for(name)
    if source in ("generated", "run"):
        return None
    if source == "humaneval":
        return humaneval.FIELDS
    return ds.fields or _FIELDS.get(source) or FieldMap()


def answer_fields(name: str, ds: DatasetConfig) -> tuple[str, ...]:
    """The gold keys of the dataset's tasks that hold answer text (checked for leaks)."""
    fm = field_map(name, ds)
    if fm is None:
        return ()
    return tuple(fm.answer if fm.answer is not None else fm.gold)


def load_tasks(name: str, ds: DatasetConfig, cfg: RunConfig) -> list[Task]:
    """Load, sort, filter and cap the tasks of one configured dataset."""
    field = f"datasets.{name}"
    source = ds.source_for(name)
    allow = cfg.resolve(ds.task_ids_file) if ds.task_ids_file else None
    if source == "generated":
        assert ds.count is not None  # required by the config model
        tasks = generated.load(name, ds.count, ds.seed or 0, max_tasks=ds.max_tasks,
                               task_ids_file=allow, field=field)
    elif source == "run":
        assert ds.path is not None  # required by the config model
        tasks = run_records.load(name, cfg.resolve(ds.path), ds.stage, field)
    elif source == "humaneval":
        tasks = humaneval.load(name, cfg.resolve(ds.path) if ds.path else None)
    else:
        fm = ds.fields or _FIELDS.get(source) or FieldMap()
        if ds.path:
            path = cfg.resolve(ds.path)
            tasks = jsonl.to_tasks(name, iter_file(path, field), fm, str(path))
        elif ds.hf_name:
            tasks = jsonl.to_tasks(name, iter_hf(ds.hf_name, ds.split, field), fm, ds.hf_name)
        else:  # pragma: no cover - rejected by the config model
            raise ConfigError("config", f"{field}.path", "set `path` or `hf_name`")
    return select_tasks(tasks, max_tasks=ds.max_tasks, task_ids_file=allow, field=field)
