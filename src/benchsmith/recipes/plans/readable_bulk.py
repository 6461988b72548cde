"""The plans recipe's bulk readable layout: a run's answers in a few large Markdown files.

Per dataset and model, the accepted answers go in part files ``<model>_part001.md``,
``_part002.md``, ... of at most `PART_TASKS` tasks and about `PART_BYTES` bytes each (a
task's answers stay together; its text is shown once). A part opens with a table of its
tasks linking to each answer in it; ``index.md`` lists the parts with their tasks and
counts, and the tasks that have no accepted answer. The invalid attempts are laid out the
same way under ``failed_plans/readable/``, whose index also ranks the validation errors.

Thousands of answers make a handful of files: rendering a 5,000-answer run is a few writes,
not 5,000 (see `readable.py` for the file-per-answer layout, and the shared rules).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from benchsmith.export.file_tree import FileTree
from benchsmith.export.jsonl import failed_rows, record_rows
from benchsmith.export.markdown import (
    code_span,
    link,
    md_cell,
    md_inline,
    safe_name,
    short_hash,
    shown_id,
    table_row,
)
from benchsmith.export.readable_report import BULK, PER_RECORD, ReadableReport
from benchsmith.recipes.plans.readable import OURS, rerender_hint
from benchsmith.recipes.plans.readable_pages import (
    CELL_MAX,
    FAILED,
    INDEX,
    STAGE,
    invalid_md,
    n_of,
    plans_md,
    request_fields,
    slot,
    task_fields,
    task_section,
)
from benchsmith.records import Task
from benchsmith.store.ledger import Ledger
from benchsmith.store.rundir import RunDir

PART_TASKS = 500  # tasks in one part at most
PART_BYTES = 1_000_000  # a part is closed once its text passes this (a task is never split)
MISSING_SHOWN = 50  # task ids without an accepted answer listed in the index
ERRORS_SHOWN = 10  # validation errors ranked in the failed index

# One task's block in a part: (task id, its anchor, its Markdown, [(label, anchor, n plans)]).
Block = tuple[str, str, str, list[tuple[str, str, int]]]


def _grouped(rows: Iterable[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    """Consecutive rows of one key (`request_id`), as lists."""
    group: list[dict[str, Any]] = []
    for r in rows:
        if group and r["request_id"] != group[0]["request_id"]:
            yield group
            group = []
        group.append(r)
    if group:
        yield group


class _Parts:
    """The part files of one dataset folder of a tree: blocks are added per model and written
    as parts fill up; `parts` lists what was written, for the index. `accepted`: answers
    (with their plan counts), else invalid attempts."""

    def __init__(self, tree: FileTree, folder: str, index: Path, accepted: bool):
        self.tree, self.folder, self.index, self.accepted = tree, folder, index, accepted
        self.parts: list[dict[str, Any]] = []  # path, model, first, last, tasks, items, plans

    def write(self, model: str, blocks: Iterable[Block]) -> None:
        stem = safe_name(model) + "_part"
        pending: list[Block] = []
        size = 0
        for b in blocks:
            pending.append(b)
            size += len(b[2])
            if len(pending) >= PART_TASKS or size >= PART_BYTES:
                self._flush(model, stem, pending)
                pending, size = [], 0
        if pending:
            self._flush(model, stem, pending)

    def _flush(self, model: str, stem: str, blocks: list[Block]) -> None:
        n = sum(1 for p in self.parts if p["model"] == model) + 1
        name = self.tree.unique(self.folder, f"{stem}{n:03d}")
        path = self.tree.root / self.folder / name
        items = [it for b in blocks for it in b[3]]
        title = "Plans" if self.accepted else "Invalid attempts"
        what = "answer" if self.accepted else "invalid attempt"
        head = [
            f"# {title}: {md_inline(model)}, part {n}",
            "",
            f"[Index]({link(path.parent, self.index)}) · model {code_span(model)} · "
            f"{n_of(len(blocks), 'task')}, {n_of(len(items), what)}.",
            "",
        ]
        if self.accepted:
            head += [table_row(["task", "plans", "answers"]), "|---|---:|---|"]
        else:
            head += [table_row(["task", "invalid attempts"]), "|---|---|"]
        for tid, anchor, _text, its in blocks:
            task = f"[{md_cell(shown_id(tid))}](#{anchor})"
            links = ", ".join(f"[{label}](#{a})" for label, a, _ in its)
            plans = [str(sum(k for *_, k in its))] if self.accepted else []
            head.append(table_row([task, *plans, links]))
        head.append("")
        text = "\n".join(head) + "\n" + "".join(b[2] for b in blocks)
        self.tree.write(Path(self.folder) / name, text)
        self.parts.append({"path": path, "model": model, "first": blocks[0][0],
                           "last": blocks[-1][0], "tasks": len(blocks), "items": len(items),
                           "plans": sum(k for *_, k in items)})


def _task_head(tid: str, anchor: str, row: dict[str, Any], task: Task | None,
               include_task_text: bool) -> list[str]:
    return [f'<a id="{anchor}"></a>', "", f"## {md_inline(shown_id(tid))}", "",
            *task_fields(row), "", *task_section(task, include_task_text, "###")]


def _answer_blocks(answers: list[list[dict[str, Any]]], tasks: dict[str, Task],
                   stem_of: Callable[[str], str], include_task_text: bool) -> Iterator[Block]:
    """One block per task: the task once, then each of its answers with its plans."""
    i = 0
    while i < len(answers):
        tid = answers[i][0]["task_id"]
        j = i
        while j < len(answers) and answers[j][0]["task_id"] == tid:
            j += 1
        anchor = stem_of(tid)
        out = _task_head(tid, anchor, answers[i][0], tasks.get(tid), include_task_text)
        its = []
        for rows in answers[i:j]:
            label, suffix = slot(rows[0])
            a = anchor + suffix
            its.append((label, a, len(rows)))
            out += [f'<a id="{a}"></a>', "", f"### Answer {label}", "", *request_fields(rows[0]),
                    f"- plans: {len(rows)}", "", *plans_md(rows, "####")]
        yield tid, anchor, "\n".join(out).rstrip("\n") + "\n\n", its
        i = j


def _failed_blocks(rows: list[dict[str, Any]], tasks: dict[str, Task],
                   stem_of: Callable[[str], str], include_task_text: bool) -> Iterator[Block]:
    i = 0
    while i < len(rows):
        tid = rows[i]["task_id"]
        j = i
        while j < len(rows) and rows[j]["task_id"] == tid:
            j += 1
        anchor = stem_of(tid)
        out = _task_head(tid, anchor, rows[i], tasks.get(tid), include_task_text)
        its = []
        for row in rows[i:j]:
            label, suffix = slot(row)
            a = anchor + suffix
            its.append((label, a, 0))
            err, raw = invalid_md(row, "####")
            out += [f'<a id="{a}"></a>', "", f"### Invalid answer {label}", "",
                    *request_fields(row), "", *err, *raw]
        yield tid, anchor, "\n".join(out).rstrip("\n") + "\n\n", its
        i = j


def _parts_table(parts: list[dict[str, Any]], base: Path, what: str) -> list[str]:
    if not parts:
        return []
    plans = what == "answers"
    out = [table_row(["part", "model", "tasks", what, *(["plans"] if plans else [])]),
           "|---|---|---|---:|" + ("---:|" if plans else "")]
    for p in parts:
        span = md_cell(shown_id(p["first"]))
        if p["tasks"] > 1:
            span += " … " + md_cell(shown_id(p["last"]))
        out.append(table_row([
            f"[{md_cell(p['path'].name)}]({link(base, p['path'])})", code_span(p["model"]),
            f"{span} ({p['tasks']})", str(p["items"]), *([str(p["plans"])] if plans else []),
        ]))
    return [*out, ""]


def render_bulk(
    ledger: Ledger, rd: RunDir, root: Path, failed_root: Path, include_task_text: bool
) -> ReadableReport:
    ok_w, bad_w = FileTree(root, OURS), FileTree(failed_root, OURS)
    reserved = [FAILED] if failed_root.parent == root else []
    index, failed_index = root / INDEX, failed_root / INDEX
    files: list[Path] = []
    failed_files: list[Path] = []
    ok_sections: list[str] = []
    bad_sections: list[str] = []
    n_tasks = n_plans = n_answers = n_failed = 0

    for ds in ledger.datasets():
        tasks = {t.id: t for t in ledger.tasks(ds)}
        order = {tid: k for k, tid in enumerate(tasks)}
        stems: dict[str, str] = {}
        used: set[str] = set()

        def stem_of(tid: str) -> str:  # a task's anchor: its file-name stem, unique
            if tid not in stems:
                s = safe_name(tid)
                if s.casefold() in used:
                    s = f"{s}_{short_hash(tid)}"
                used.add(s.casefold())
                stems[tid] = s
            return stems[tid]

        for tid in tasks:
            stem_of(tid)

        by_model: dict[str, list[list[dict[str, Any]]]] = {}
        for rows in _grouped(record_rows(ledger, ds, STAGE)):
            by_model.setdefault(rows[0]["model"], []).append(rows)
        ok = _Parts(ok_w, ok_w.dataset_dir(ds, [*reserved, INDEX]), index, True)
        answered: set[str] = set()
        ds_plans = ds_answers = 0
        for model, answers in by_model.items():
            answers.sort(key=lambda rows: (order.get(rows[0]["task_id"], len(order)),
                                           rows[0]["task_id"]))
            ok.write(model, _answer_blocks(answers, tasks, stem_of, include_task_text))
            answered.update(rows[0]["task_id"] for rows in answers)
            ds_answers += len(answers)
            ds_plans += sum(len(rows) for rows in answers)

        bad_by_model: dict[str, list[dict[str, Any]]] = {}
        for row in failed_rows(ledger, ds, STAGE):
            bad_by_model.setdefault(row["model"], []).append(row)
        bad = _Parts(bad_w, bad_w.dataset_dir(ds, [INDEX]), failed_index, False)
        errors: Counter[str] = Counter()
        bad_tasks: set[str] = set()
        ds_bad = 0
        for model, rows in bad_by_model.items():
            rows.sort(key=lambda r: (order.get(r["task_id"], len(order)), r["task_id"],
                                     r["attempt_id"]))
            bad.write(model, _failed_blocks(rows, tasks, stem_of, include_task_text))
            errors.update(" ".join(str(r.get("validation_error") or "").split())[:CELL_MAX]
                          for r in rows)
            bad_tasks.update(r["task_id"] for r in rows)
            ds_bad += len(rows)

        all_ids = [*tasks, *sorted((answered | bad_tasks) - set(tasks))]
        missing = [tid for tid in tasks if tid not in answered]
        n_tasks += len(all_ids)
        n_plans += ds_plans
        n_answers += ds_answers
        n_failed += ds_bad
        files += [p["path"] for p in ok.parts]
        failed_files += [p["path"] for p in bad.parts]
        sec = [f"## {md_inline(ds)}", "",
               f"{n_of(len(all_ids), 'task')}, {n_of(ds_plans, 'plan')} in "
               f"{n_of(ds_answers, 'answer')}, {n_of(ds_bad, 'invalid attempt')}.", "",
               *_parts_table(ok.parts, root, "answers")]
        if missing:
            shown = ", ".join(code_span(shown_id(t)) for t in missing[:MISSING_SHOWN])
            more = f" and {len(missing) - MISSING_SHOWN} more" if len(missing) > MISSING_SHOWN else ""
            sec += [f"Without an accepted answer: {n_of(len(missing), 'task')}: {shown}{more}.", ""]
        ok_sections.append("\n".join(sec))
        bsec = [f"## {md_inline(ds)}", "",
                f"{n_of(ds_bad, 'invalid attempt')} in {n_of(len(bad_tasks), 'task')}.", "",
                *_parts_table(bad.parts, failed_root, "invalid attempts")]
        if errors:
            bsec += ["Most frequent validation errors:", "", table_row(["attempts", "validation error"]),
                     "|---:|---|"]
            bsec += [table_row([str(k), md_cell(e, CELL_MAX)])
                     for e, k in errors.most_common(ERRORS_SHOWN)]
            bsec.append("")
        bad_sections.append("\n".join(bsec))

    head = [
        f"# Plans of run {md_inline(rd.run_id)}",
        "",
        f"{n_of(n_tasks, 'task')}, {n_of(n_plans, 'plan')} in {n_of(n_answers, 'answer')}, "
        f"{n_of(n_failed, 'invalid attempt')} ([invalid attempts]({link(root, failed_index)})).",
        "",
        f"Generated from the run ledger: the answers of each dataset and model in parts of at "
        f"most {PART_TASKS} tasks (about {PART_BYTES // 1_000_000} MB). One file per answer: "
        + rerender_hint(rd, PER_RECORD) + "; this layout again: " + rerender_hint(rd, BULK) + ".",
        "",
    ]
    ok_w.write(Path(INDEX), "\n".join(head + ok_sections).rstrip("\n") + "\n")
    bhead = [
        f"# Invalid attempts of run {md_inline(rd.run_id)}",
        "",
        f"{n_of(n_failed, 'invalid attempt')}; each with its validation error and raw output. "
        f"[Accepted plans]({link(failed_root, index)}).",
        "",
    ]
    bad_w.write(Path(INDEX), "\n".join(bhead + bad_sections).rstrip("\n") + "\n")
    removed = ok_w.remove_stale(skip=failed_root if failed_root.parent == root else None)
    removed += bad_w.remove_stale()
    ok_w.sync()
    bad_w.sync()
    return ReadableReport(index=index, failed_index=failed_index, files=tuple(files),
                          failed_files=tuple(failed_files), tasks=n_tasks, plans=n_plans,
                          removed=tuple(removed))
