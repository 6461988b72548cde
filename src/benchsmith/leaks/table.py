"""The leak table of a dataset: which tasks' own fields (primary and context) carry their gold.

No model is called: this reads tasks as a run would load them and checks each text field
against the task's gold index.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from benchsmith.leaks.index import GoldIndex, LeakSettings, as_text, build_index, find
from benchsmith.records import Task
from benchsmith.sources import answer_fields, load_tasks

if TYPE_CHECKING:  # passed through only
    from benchsmith.config import RunConfig


@dataclass(frozen=True)
class LeakRow:
    """One task field that carries gold."""

    dataset: str
    task_id: str
    field: str
    primary: bool
    gold_fields: tuple[str, ...]
    matched: int
    sample: str

    def to_dict(self) -> dict[str, Any]:
        return {"dataset": self.dataset, "task_id": self.task_id, "field": self.field,
                "primary": self.primary, "gold_fields": list(self.gold_fields),
                "matched": self.matched, "sample": self.sample}


def task_index(task: Task, answer: Iterable[str], settings: LeakSettings) -> GoldIndex:
    """The gold index of a task: its answer fields (those of `answer` its extras hold)."""
    return build_index({k: task.extras[k] for k in answer if k in task.extras}, settings)


def task_texts(task: Task) -> dict[str, str]:
    """The task's fields a prompt may show, as text: primary first, then context."""
    return {task.primary_field: task.primary,
            **{k: as_text(v) for k, v in task.context.items()}}


def task_rows(task: Task, index: GoldIndex) -> list[LeakRow]:
    if index.empty:
        return []
    rows = []
    for name, text in task_texts(task).items():
        f = find(index, {name: text})
        if f.leaks:
            rows.append(LeakRow(task.dataset, task.id, name, name == task.primary_field,
                                f.gold_fields, f.matched, f.sample))
    return rows


def leak_table(tasks: Iterable[Task], answer: Iterable[str], settings: LeakSettings) -> list[LeakRow]:
    """Every (task, field) of `tasks` whose text carries the task's gold, in task order."""
    keys = tuple(answer)
    out: list[LeakRow] = []
    for t in tasks:
        out.extend(task_rows(t, task_index(t, keys, settings)))
    return out


def summary(rows: Iterable[LeakRow]) -> dict[str, dict[str, int]]:
    """{dataset: {field: leaking tasks}} for the rows given."""
    out: dict[str, dict[str, int]] = {}
    for r in rows:
        per = out.setdefault(r.dataset, {})
        per[r.field] = per.get(r.field, 0) + 1
    return out


def config_leaks(cfg: RunConfig) -> tuple[dict[str, int], list[LeakRow]]:
    """The leak table of every dataset of a config: ({dataset: tasks checked}, rows)."""
    settings = LeakSettings.from_config(cfg.leaks)
    counts: dict[str, int] = {}
    rows: list[LeakRow] = []
    for name, ds in cfg.datasets.items():
        tasks = load_tasks(name, ds, cfg)
        counts[name] = len(tasks)
        rows.extend(leak_table(tasks, answer_fields(name, ds), settings))
    return counts, rows
