"""Deterministic task selection: sort by id, apply an allowlist, cap."""

from __future__ import annotations

import json
from pathlib import Path

from benchsmith.errors import ConfigError
from benchsmith.records import Task
from benchsmith.userfiles import read_user_text


def read_id_list(path: Path, field: str) -> list[str]:
    """The ids of dataset `field`'s task_ids_file (`read_ids`)."""
    return read_ids(path, f"{field}.task_ids_file")


def read_ids(path: Path, field: str) -> list[str]:
    """A JSON list of ids, or one id per line; errors name `field` (the option or key that
    named the file)."""
    if not path.is_file():
        raise ConfigError(str(path), field, "file not found")
    text = read_user_text(path, field).strip()
    if text.startswith("["):
        try:
            ids = json.loads(text)
        except json.JSONDecodeError as e:
            raise ConfigError(str(path), field, f"not valid JSON: {e.msg}") from None
        if not all(isinstance(i, str) for i in ids):
            raise ConfigError(str(path), field, "must be a list of strings")
        return ids
    return [line.strip() for line in text.splitlines() if line.strip()]


def select_tasks(
    tasks: list[Task], *, max_tasks: int | None, task_ids_file: Path | None, field: str
) -> list[Task]:
    tasks = sorted(tasks, key=lambda t: t.id)
    seen: set[str] = set()
    for t in tasks:
        if t.id in seen:
            raise ConfigError(t.dataset, field, f"duplicate task id {t.id!r} in the source data")
        seen.add(t.id)
    if task_ids_file is not None:
        wanted = read_id_list(task_ids_file, field)
        unknown = [i for i in wanted if i not in seen]
        if unknown:
            raise ConfigError(
                str(task_ids_file),
                f"{field}.task_ids_file",
                f"{len(unknown)} id(s) not in the dataset, e.g. {unknown[0]!r}",
            )
        keep = set(wanted)
        tasks = [t for t in tasks if t.id in keep]
    if max_tasks is not None:
        tasks = tasks[:max_tasks]
    return tasks
