"""The gold-leak guard of a run: every request a recipe builds is checked against its
task's gold before it is recorded as planned.

The guard wraps the recipe's stages (`guard_recipe`), so first stages, children, chains and
re-asks planned by either executor, by resume and by batch ingest all pass through it. Each
request's text (every message) is checked with the task's gold index (built once per task);
a request that carries gold gets its finding in `spec.meta["gold_leak"]` (meta is not part
of the unit id: under `warn` ids stay what they were), which the ledger records in
`gold_leaks` (store/leak_rows.py).

`redact` builds the requests from a copy of the task whose context fields have their
leaking lines replaced with MARKER (the primary field is never edited: a leaking primary
field leaves the request leaking, recorded as such); the lines removed are recorded.
`skip`: the ledger ends a leaking unit `skipped`, reason `gold_leak:<field>`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from benchsmith.leaks.finding import META_KEY, OTHER_TEXT
from benchsmith.leaks.index import (
    GoldIndex, LeakFinding, LeakSettings, as_text, escaped_forms, find,
)
from benchsmith.leaks.table import task_index, task_texts
from benchsmith.recipes.base import Recipe, RequestSpec, Stage
from benchsmith.records import Task

if TYPE_CHECKING:  # passed through only
    from benchsmith.config import RunConfig

MARKER = "[line removed by benchsmith: it holds the task's gold answer]"
_MAX_REMOVED = 50  # lines recorded per field
_MAX_LINE = 300


@dataclass(frozen=True)
class _Prepared:
    index: GoldIndex
    task: Task  # what requests are built from (under redact, the redacted copy)
    removed: Mapping[str, tuple[str, ...]]  # context field -> lines removed


@dataclass(frozen=True)
class LeakGuard:
    """The run's policy, settings and answer keys per dataset; `_cache` holds what is built
    once per task (its gold index and, under redact, the redacted task)."""

    policy: str
    settings: LeakSettings
    answers: Mapping[str, tuple[str, ...]]
    _cache: dict[tuple[str, str], _Prepared] = field(default_factory=dict, compare=False)

    def prepared(self, task: Task) -> _Prepared:
        key = (task.dataset, task.id)
        got = self._cache.get(key)
        if got is None:
            index = task_index(task, self.answers.get(task.dataset, ()), self.settings)
            got = _Prepared(index, task, {})
            if self.policy == "redact" and not index.empty:
                got = _Prepared(index, *redact_task(task, index))
            self._cache[key] = got
        return got

    def check(self, task: Task, specs: list[RequestSpec]) -> list[RequestSpec]:
        """`specs` as planned: each with its finding in meta when it carries gold (or when
        lines were removed for it)."""
        p = self.prepared(task)
        if p.index.empty:
            return specs
        out = []
        for spec in specs:
            text = "\n".join(as_text(m.get("content")) for m in spec.messages)
            f = find(p.index, {OTHER_TEXT: text})
            removed = p.removed if p.removed and MARKER in text else {}
            if not f.leaks and not removed:
                out.append(spec)
                continue
            meta = {**spec.meta, META_KEY: finding_meta(f, p.task, removed, self.policy)}
            out.append(dataclasses.replace(spec, meta=meta))
        return out


def finding_meta(f: LeakFinding, task: Task, removed: Mapping[str, tuple[str, ...]],
                 policy: str) -> dict[str, Any]:
    """The finding as recorded: each leaking field with its gold line count, primary first
    (a line is attributed to the first of the task's fields holding it; else to the
    recipe's own text, `prompt`), and the lines removed per context field."""
    per: dict[str, int] = {}
    if f.leaks:
        texts = task_texts(task)
        for s in f.lines.get(OTHER_TEXT, ()):
            name = next((k for k, v in texts.items() if s in v), None)
            if name is None:  # as a JSON string writes it, else the recipe's own text
                forms = escaped_forms(s)
                name = next((k for k, v in texts.items() if any(e in v for e in forms)),
                            OTHER_TEXT)
            per[name] = per.get(name, 0) + 1
        order = [*texts, OTHER_TEXT]
        per = dict(sorted(per.items(), key=lambda kv: order.index(kv[0])))
    return {"policy": policy, "matched": f.matched, "fields": per, "sample": f.sample,
            "gold_fields": list(f.gold_fields),
            "removed": {k: list(v) for k, v in removed.items()}}


def redact_task(task: Task, index: GoldIndex) -> tuple[Task, dict[str, tuple[str, ...]]]:
    """A copy of `task` whose context fields have each line that holds gold replaced by
    MARKER (in a list or dict field, each string inside it, the structure kept), and the
    lines removed per field. The primary field is kept as it is."""
    context = dict(task.context)
    removed: dict[str, tuple[str, ...]] = {}
    for k, v in task.context.items():
        gone: list[str] = []
        new = _redact_value(v, index, gone)
        if gone:
            context[k] = new
            removed[k] = tuple(gone[:_MAX_REMOVED])
    return dataclasses.replace(task, context=context), removed


def _redact_value(value: Any, index: GoldIndex, gone: list[str]) -> Any:
    """`value` with the gold lines of each string in it replaced (`gone` gets them)."""
    if isinstance(value, str):
        return _redact_text(value, index, gone)
    if isinstance(value, list):
        return [_redact_value(v, index, gone) for v in value]
    if isinstance(value, dict):
        return {k: _redact_value(v, index, gone) for k, v in value.items()}
    return value


def _redact_text(text: str, index: GoldIndex, gone: list[str]) -> str:
    f = find(index, {"text": text})
    if not f.leaks:
        return text
    # a line may hold the gold as JSON writes it (a string field quoting a JSON blob)
    hits = {e for s in f.lines["text"] for e in (s, *escaped_forms(s))}
    kept = []
    for line in text.splitlines(keepends=True):
        if any(s in line for s in hits):
            end = line[len(line.rstrip("\r\n")):]
            kept.append(MARKER + end)
            gone.append(line.strip()[:_MAX_LINE])
        else:
            kept.append(line)
    return "".join(kept)


def _guarded(stage: Stage, guard: LeakGuard) -> Stage:
    build = stage.build

    def guarded_build(task: Task, parent: dict[str, Any] | None) -> list[RequestSpec]:
        return guard.check(task, build(guard.prepared(task).task, parent))

    return dataclasses.replace(stage, build=guarded_build)


def guard_recipe(recipe: Recipe, guard: LeakGuard | None) -> Recipe:
    """The recipe with every model stage's requests checked by `guard` (None: as it is)."""
    if guard is None:
        return recipe
    stages = tuple(s if s.local is not None else _guarded(s, guard) for s in recipe.stages)
    return dataclasses.replace(recipe, stages=stages)


def guard_for(cfg: RunConfig) -> LeakGuard | None:
    """The guard of a run config; None when no dataset has answer fields to check."""
    from benchsmith.sources import answer_fields

    answers = {name: answer_fields(name, ds) for name, ds in cfg.datasets.items()}
    if not any(answers.values()):
        return None
    return LeakGuard(cfg.leaks.leak_policy, LeakSettings.from_config(cfg.leaks), answers)
