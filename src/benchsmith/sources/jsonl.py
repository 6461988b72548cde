"""Generic JSONL / JSONL.gz source with a field mapping."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from benchsmith.config_sections import FieldMap
from benchsmith.errors import ConfigError
from benchsmith.records import Task
from benchsmith.sources.rows import iter_file


def row_to_task(
    dataset: str, row: dict[str, Any], fm: FieldMap, where: str, line: int
) -> Task:
    for key in (fm.id, fm.primary):
        if key not in row:
            raise ConfigError(
                where, f"line {line}", f"missing field {key!r}; set fields.id/fields.primary "
                f"to one of {sorted(row)[:12]}"
            )
    gold = set(fm.gold)
    context_keys = [k for k in fm.context if k not in gold and k != fm.primary]
    return Task(
        id=str(row[fm.id]),
        dataset=dataset,
        primary_field=fm.primary,
        primary=str(row[fm.primary]),
        context={k: row[k] for k in context_keys if k in row},
        extras={k: row[k] for k in fm.gold if k in row},
    )


def to_tasks(
    dataset: str, rows: Iterable[tuple[int, dict[str, Any]]], fm: FieldMap, where: str
) -> list[Task]:
    return [row_to_task(dataset, row, fm, where, n) for n, row in rows]


def load(dataset: str, path: Path, fields: FieldMap | None, field: str) -> list[Task]:
    return to_tasks(dataset, iter_file(path, field), fields or FieldMap(), str(path))
