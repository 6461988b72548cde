"""The `matches_ledger` check: the exported JSONL files hold exactly the rows the ledger yields."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchsmith.export.jsonl import failed_rows, record_rows
from benchsmith.store.leak_rows import leaking_tasks
from benchsmith.store.ledger import Ledger
from benchsmith.validate.run_checks.base import Outcome, Problems, no_ledger, norm
from benchsmith.validate.run_checks.loader import Jsonl, Run

Row = dict[str, Any]
_Key = Callable[[Row], Any]
_Name = Callable[[Row], str]


def diff_rows(
    p: Problems, label: str, actual: Jsonl, expected: list[Row], key: _Key, name: _Name
) -> None:
    """Problems for rows of `actual` added, repeated or edited against `expected`, or lost."""
    exp: dict[Any, Row] = {}
    for row in expected:
        exp[key(row)] = norm(row)
    seen: Counter[Any] = Counter()
    for line, row in actual.rows:
        try:
            k = key(row)
            hash(k)
        except (KeyError, TypeError):
            p.add(
                f"{label}:{line}: row without a usable id; not written from the ledger",
                f"{label}: extra row",
            )
            continue
        seen[k] += 1
        want = exp.get(k)
        if want is None:
            p.add(
                f"{label}:{line}: {name(row)} is not in the ledger (added)",
                f"{label}: row not in the ledger",
            )
        elif seen[k] > 1:
            p.add(
                f"{label}:{line}: {name(row)} repeated (the ledger has it once)",
                f"{label}: repeated row",
            )
        elif row != want:
            fields = sorted(k2 for k2 in set(row) | set(want) if row.get(k2) != want.get(k2))
            p.add(
                f"{label}:{line}: {name(row)} differs from the ledger in "
                f"{', '.join(fields)} (edited)",
                f"{label}: edited row",
            )
    for k, row in exp.items():
        if not seen[k]:
            p.add(
                f"{label}: {name(row)} is in the ledger but not in the file (lost)",
                f"{label}: lost row",
            )


def _task_name(r: Row) -> str:
    return f"task {r.get('task_id')!r}"


def _task_key(r: Row) -> Any:
    return r["task_id"]


def _record_key(fields: tuple[str, ...]) -> _Key:
    return lambda r: (r["request_id"], *(r[f] for f in fields))


def _record_name(stage: str, label: str | None, fields: tuple[str, ...]) -> _Name:
    if label:
        return lambda r: f"{stage} record {r.get(label)!r}"
    return lambda r: f"{stage} record of {r.get('request_id')!r}" + "".join(
        f" {f}={r.get(f)!r}" for f in fields)


def _failed_name(r: Row) -> str:
    return f"failed attempt {r.get('attempt_id')!r} ({r.get('task_id')})"


def _expected_files(run: Run, led: Ledger, ds: str) -> list[tuple[Path, list[Row], _Key, _Name]]:
    """(file, rows the ledger yields for it, row key, row name) of each exported file of `ds`:
    per stage of the run's recipe its records and failed attempts, then the task files."""
    assert run.recipe is not None
    tasks = [t.to_dict() for t in led.tasks(ds)]
    by_id = {t["task_id"]: t for t in tasks}
    out: list[tuple[Path, list[Row], _Key, _Name]] = []
    failed_tasks: set[str] = set()
    leaking = leaking_tasks(led.db)
    for stage, path, failed_path in run.stage_files(ds):
        st = run.recipe.stage(stage)
        expected_failed = failed_rows(led, ds, stage)
        failed_tasks |= {r["task_id"] for r in expected_failed}
        out.append((path, list(record_rows(led, ds, stage, leaking)), _record_key(st.record_key),
                    _record_name(stage, st.record_label, st.record_key)))
        out.append((failed_path, expected_failed, lambda r: r["attempt_id"], _failed_name))
    out.append((run.rd.dataset_file(ds, "tasks.jsonl"), tasks, _task_key, _task_name))
    out.append((run.rd.failed_file(ds, "tasks.jsonl"),
                [by_id[t] for t in sorted(failed_tasks) if t in by_id], _task_key, _task_name))
    return out


def check_matches_ledger(run: Run) -> Outcome:
    if run.ledger is None:
        return no_ledger()
    if run.recipe is None:
        return "recipe unknown", ["the run's recipe could not be built (see check 'recipe')"]
    p = Problems()
    n = 0
    known = set(run.datasets())
    for ds in run.datasets():
        files = _expected_files(run, run.ledger, ds)
        records = {path for _, path, _ in run.stage_files(ds)}
        n += sum(len(rows) for path, rows, _, _ in files if path in records)
        for path, expected, key, name in files:
            actual = run.jsonl(path)
            if actual is None:
                p.add(run.missing(path))
                continue
            diff_rows(p, run.rel(path), actual, expected, key, name)
    for d in run.dataset_roots():
        if d.is_dir():
            for extra in sorted(x.name for x in d.iterdir() if x.is_dir() and x.name not in known):
                p.add(f"{run.rel(d)}/{extra}: dataset not in the ledger")
    return f"{n} record(s) in the ledger", p.finish()
