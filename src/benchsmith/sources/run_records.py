"""The `run` source: the valid records of another benchsmith run, one task per record.

The other run is opened read-only (no migration, no write: its files stay byte for byte as
found) and its recipe, built from its config snapshot, names the stage read by default and
the field that names a record. A run being written (by another process, or by this one:
the run being planned) is refused: its records are not final.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from benchsmith.errors import BenchsmithError, ConfigError
from benchsmith.records import Task
from benchsmith.store.ids import canonical_json
from benchsmith.store.ledger import Ledger
from benchsmith.store.lock import held_here, live_holder
from benchsmith.store.rundir import LEDGER_NAME

PRIMARY_FIELD = "record"
MAX_ID_CHARS = 200
_ORIGIN = ("dataset", "task_id", "request_id", "model")
_HINT = "point it at a run folder (runs/<run id>, holding ledger.sqlite)"


def load(dataset: str, root: Path, stage: str | None, field: str) -> list[Task]:
    """One task per valid record of `stage` (default: the run's record stage)."""
    _check_run(root, field)
    name, label = _recipe_stage(root, stage, field)
    try:
        rows = list(_rows(root, name, field))
    except sqlite3.Error as e:  # damaged past the header
        raise ConfigError(str(root), f"{field}.path", f"not a readable run: {e}") from None
    if not rows:
        raise ConfigError(
            str(root), f"{field}.path", f"the run has no valid records of stage {name!r}; "
            "finish that run first, or pick another stage"
        )
    return _tasks(dataset, rows, label)


def digest(tasks: list[Task]) -> str:
    """What the tasks hold, as pinned in the plan fingerprint: a changed source run changes
    the plan, named as this dataset's setting."""
    body = canonical_json([t.to_dict() for t in sorted(tasks, key=lambda t: t.id)])
    return f"{len(tasks)} records, sha256:" + hashlib.sha256(body).hexdigest()[:16]


# --------------------------------------------------------------------------- reading


def _rows(root: Path, stage: str, field: str) -> Iterator[dict[str, Any]]:
    """The rows of datasets/<ds>/<stage>.jsonl of every dataset, from the ledger."""
    from benchsmith.export.jsonl import record_rows  # export imports the recipes: load lazily

    ledger = _open(root, field)
    try:
        for ds in ledger.datasets():
            yield from record_rows(ledger, ds, stage)
    finally:
        ledger.close()


def _check_run(root: Path, field: str) -> None:
    where = f"{field}.path"
    if not root.is_dir():
        what = "is not a folder" if root.exists() else "not found"
        raise ConfigError(str(root), where, f"{what}; {_HINT}")
    if not (root / LEDGER_NAME).is_file():
        raise ConfigError(str(root), where, f"not a benchsmith run (no {LEDGER_NAME}); {_HINT}")
    if held_here(root):
        raise ConfigError(
            str(root), where, "is the run being planned: a run cannot read its own records; "
            "point it at an earlier run"
        )
    holder = live_holder(root)
    if holder is not None:
        raise ConfigError(
            str(root), where, f"the run is being written by {holder.describe()}; its records "
            "are not final: wait for it to finish"
        )


def _recipe_stage(root: Path, stage: str | None, field: str) -> tuple[str, str | None]:
    """(stage to read, the field naming its records) from the run's own recipe."""
    from benchsmith.recipe_of import recipe_of_run  # builds recipes: load lazily

    try:
        recipe = recipe_of_run(root)
    except ConfigError as e:
        raise ConfigError(str(root), f"{field}.path", f"not a readable run: {e.problem}") from None
    names = [s.name for s in recipe.stages]
    if stage is None:
        stage = recipe.primary_stage
    elif stage not in names:
        raise ConfigError(
            str(root), f"{field}.stage", f"the run (recipe {recipe.name}) has no stage "
            f"{stage!r}; use one of {', '.join(names)}, or leave it unset for {recipe.primary_stage}"
        )
    return stage, recipe.stage(stage).record_label


def _open(root: Path, field: str) -> Ledger:
    try:
        return Ledger.open_readonly(root / LEDGER_NAME)
    except (BenchsmithError, OSError) as e:  # a damaged or foreign ledger
        raise ConfigError(str(root), f"{field}.path", f"not a readable run: {e}") from None


# --------------------------------------------------------------------------- tasks


def _tasks(dataset: str, rows: list[dict[str, Any]], label: str | None) -> list[Task]:
    tasks = []
    for tid, row in zip(_ids(rows, label), rows):
        record = {k: v for k, v in row.items() if k not in _ORIGIN and k != "attempt"}
        context = {k: row[k] for k in _ORIGIN}
        context[PRIMARY_FIELD] = record  # shown once, as the primary text
        tasks.append(Task(
            id=tid, dataset=dataset, primary_field=PRIMARY_FIELD,
            primary=orjson.dumps(record).decode(), context=context,
        ))
    return tasks


def _ids(rows: list[dict[str, Any]], label: str | None) -> list[str]:
    """The record's own id (its stage's `record_label` field) when every record has one that
    reads as an id and no two share it; else `<task id>#<request id>.<index of the record
    in its answer>`. A label that is prose (a title, a sentence) is no id."""
    labels = [row.get(label) if label else None for row in rows]
    if all(_id_like(v) for v in labels) and len(set(labels)) == len(labels):
        return [str(v) for v in labels]
    ids = []
    index, last = 0, None
    for row in rows:
        index = index + 1 if row["request_id"] == last else 0
        last = row["request_id"]
        ids.append(f"{row['task_id']}#{row['request_id']}.{index}")
    return ids


def _id_like(v: Any) -> bool:
    return isinstance(v, str) and 0 < len(v) <= MAX_ID_CHARS and not any(c.isspace() for c in v)
