"""Generic JSONL / JSONL.gz source with a field mapping."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from benchsmith.config import FieldMap
from benchsmith.errors import ConfigError
from benchsmith.records import Task


def iter_rows(path: Path, field: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield (line number, row) from a .jsonl or .jsonl.gz file, with one-line errors."""
    if not path.is_file():
        raise ConfigError(str(path), f"{field}.path", "file not found")
    opener = gzip.open if path.name.endswith(".gz") else open
    try:
        with opener(path, "rt", encoding="utf-8") as fh:
            for n, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as e:
                    raise ConfigError(str(path), f"line {n}", f"not valid JSON: {e.msg}") from None
                if not isinstance(row, dict):
                    raise ConfigError(str(path), f"line {n}", "each line must be a JSON object")
                yield n, row
    except (OSError, EOFError, UnicodeDecodeError) as e:
        raise ConfigError(str(path), f"{field}.path", f"cannot read: {e}") from None


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


def load(dataset: str, path: Path, fields: FieldMap | None, field: str) -> list[Task]:
    fm = fields or FieldMap()
    return [row_to_task(dataset, row, fm, str(path), n) for n, row in iter_rows(path, field)]
