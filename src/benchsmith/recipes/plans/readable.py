"""The plans recipe's readable rendering: its plans as Markdown, regenerated from the ledger.

Two layouts (`layout`), into the same folders:

- ``bulk`` (what `run` writes by default): the answers of each dataset and model in a few
  part files, each under a size cap, with an index of the parts (`readable_bulk.py`)::

    runs/R/readable/index.md
    runs/R/readable/<dataset>/<model>_part<NNN>.md
    runs/R/failed_plans/readable/index.md
    runs/R/failed_plans/readable/<dataset>/<model>_part<NNN>.md

- ``per_record`` (`render-readable`'s default): one file per accepted answer and one per
  invalid attempt, and an index with a row per task (this module)::

    runs/R/readable/index.md
    runs/R/readable/<dataset>/<task>_b<batch>_a<attempt>_<hash>.md         per accepted answer
    runs/R/failed_plans/readable/index.md
    runs/R/failed_plans/readable/<dataset>/<task>_b<batch>_a<attempt>_<hash>.md  per invalid try

With an output dir D: ``D/index.md``, ``D/<dataset>/...`` and ``D/failed_plans/...``.

`batch` is the call index + 1, `attempt` the number of the API call (per request), `hash` the
first 8 hex characters of the request id. File names are sanitised and checked to stay
inside the output folder (the page text is escaped: `readable_pages.py`). Every file is
written atomically; re-rendering, in either layout, removes the files of a previous
rendering (of either layout) that are no longer produced.
"""

from __future__ import annotations

import re
import shlex
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
from benchsmith.export.readable_report import BULK, PER_RECORD, READABLE, ReadableReport
from benchsmith.recipes.plans.readable_pages import (
    CELL_MAX,
    FAILED,
    INDEX,
    STAGE,
    answer_md,
    failed_md,
    n_of as _n,
    slot as _slot,
)
from benchsmith.store.ledger import Ledger
from benchsmith.store.rundir import RunDir

# A file this module or `readable_bulk` writes in a dataset folder; only such files are
# removed as stale.
OURS = re.compile(r"^.+_b\d+_a\d+_[0-9a-f]{8}(_\d+)?\.md$|^.+_part\d{3,}(_\d+)?\.md$")


def render_plans(
    ledger: Ledger, rd: RunDir, output_dir: Path | None, include_task_text: bool,
    layout: str = PER_RECORD,
) -> ReadableReport:
    """The recipe's `readable` hook: render the run's plans and invalid attempts."""
    if output_dir is None:
        root, failed_root = rd.root / READABLE, rd.root / FAILED / READABLE
    else:
        root = Path(output_dir)
        failed_root = root / FAILED
    if layout == BULK:
        from benchsmith.recipes.plans.readable_bulk import render_bulk

        return render_bulk(ledger, rd, root, failed_root, include_task_text)
    return _render(ledger, rd, root, failed_root, include_task_text)


def rerender_hint(rd: RunDir, layout: str) -> str:
    """The command that renders the run again in `layout`."""
    return code_span(f"benchsmith render-readable {shlex.quote(rd.root.as_posix())}"
                     + ("" if layout == PER_RECORD else f" --layout {layout}"))


def _render(
    ledger: Ledger, rd: RunDir, root: Path, failed_root: Path, include_task_text: bool
) -> ReadableReport:
    ok_w, bad_w = FileTree(root, OURS), FileTree(failed_root, OURS)
    # Under --output-dir the failed files live in D/failed_plans: no dataset folder may take it.
    reserved = [FAILED] if failed_root.parent == root else []
    files: list[Path] = []
    failed_files: list[Path] = []
    ok_sections: list[str] = []
    bad_sections: list[str] = []
    n_tasks = n_plans = n_failed = 0
    failed_index = failed_root / INDEX
    index = root / INDEX

    for ds in ledger.datasets():
        tasks = {t.id: t for t in ledger.tasks(ds)}
        ds_dir = ok_w.dataset_dir(ds, [*reserved, INDEX])
        bad_dir = bad_w.dataset_dir(ds, [INDEX])
        task_stems: dict[str, str] = {}
        used_stems: dict[str, str] = {}

        def stem_of(task_id: str) -> str:
            if task_id not in task_stems:
                s = safe_name(task_id)
                if s.casefold() in used_stems and used_stems[s.casefold()] != task_id:
                    s = f"{s}_{short_hash(task_id)}"
                used_stems[s.casefold()] = task_id
                task_stems[task_id] = s
            return task_stems[task_id]

        for tid in tasks:
            stem_of(tid)

        # Accepted answers: one file per request.
        answers: dict[str, list[dict[str, Any]]] = {}
        for row in record_rows(ledger, ds, STAGE):
            answers.setdefault(row["request_id"], []).append(row)
        per_task_ok: dict[str, list[tuple[str, Path, int]]] = {}
        for rid, rows in answers.items():
            r0 = rows[0]
            label, suffix = _slot(r0)
            name = ok_w.unique(ds_dir, stem_of(r0["task_id"]) + suffix)
            path = ok_w.write(
                Path(ds_dir) / name, answer_md(rows, tasks.get(r0["task_id"]), include_task_text)
            )
            files.append(path)
            per_task_ok.setdefault(r0["task_id"], []).append((label, path, len(rows)))
            n_plans += len(rows)

        # Invalid attempts: one file per attempt.
        per_task_bad: dict[str, list[tuple[str, Path, str]]] = {}
        for row in failed_rows(ledger, ds, STAGE):
            label, suffix = _slot(row)
            name = bad_w.unique(bad_dir, stem_of(row["task_id"]) + suffix)
            path = bad_w.write(
                Path(bad_dir) / name, failed_md(row, tasks.get(row["task_id"]), include_task_text)
            )
            failed_files.append(path)
            per_task_bad.setdefault(row["task_id"], []).append(
                (label, path, str(row.get("validation_error") or ""))
            )
            n_failed += 1

        # Index sections.
        all_ids = list(tasks)
        all_ids += sorted({*per_task_ok, *per_task_bad} - set(tasks))
        n_tasks += len(all_ids)
        ds_plans = sum(n for v in per_task_ok.values() for _, _, n in v)
        ds_files = sum(len(v) for v in per_task_ok.values())
        ds_bad = sum(len(v) for v in per_task_bad.values())
        sec = [
            f"## {md_inline(ds)}",
            "",
            f"{_n(len(all_ids), 'task')}, {_n(ds_plans, 'plan')} in {_n(ds_files, 'answer')}, "
            f"{_n(ds_bad, 'invalid attempt')}.",
            "",
            table_row(["task", "plans", "answers", "invalid attempts"]),
            "|---|---:|---|---|",
        ]
        for tid in all_ids:
            oks = per_task_ok.get(tid, [])
            bads = per_task_bad.get(tid, [])
            links = ", ".join(f"[{label}]({link(root, p)})" for label, p, _ in oks) or "none"
            bad_links = ", ".join(f"[{label}]({link(root, p)})" for label, p, _ in bads)
            bad_cell = f"{len(bads)}" + (f": {bad_links}" if bads else "")
            n_ok = sum(n for _, _, n in oks)
            sec.append(table_row([md_cell(shown_id(tid)), str(n_ok), links, bad_cell]))
        sec += ["", f"Total: {_n(ds_plans, 'plan')}, {_n(ds_bad, 'invalid attempt')}.", ""]
        ok_sections.append("\n".join(sec))

        bsec = [
            f"## {md_inline(ds)}",
            "",
            f"{_n(ds_bad, 'invalid attempt')} in {_n(len(per_task_bad), 'task')}.",
            "",
        ]
        if per_task_bad:
            bsec += [table_row(["task", "attempt", "validation error"]), "|---|---|---|"]
            for tid in all_ids:
                for label, p, err in per_task_bad.get(tid, []):
                    cell = f"[{label}]({link(failed_root, p)})"
                    bsec.append(table_row([md_cell(shown_id(tid)), cell, md_cell(err, CELL_MAX)]))
            bsec.append("")
        bad_sections.append("\n".join(bsec))

    head = [
        f"# Plans of run {md_inline(rd.run_id)}",
        "",
        f"{_n(n_tasks, 'task')}, {_n(n_plans, 'plan')} in {_n(len(files), 'answer')}, "
        f"{_n(n_failed, 'invalid attempt')} ([invalid attempts]({link(root, failed_index)})).",
        "",
        "Generated from the run ledger, one file per answer; re-render with "
        + rerender_hint(rd, PER_RECORD) + ", or in a few large files with "
        + rerender_hint(rd, BULK) + ".",
        "",
    ]
    ok_w.write(Path(INDEX), "\n".join(head + ok_sections).rstrip("\n") + "\n")
    bhead = [
        f"# Invalid attempts of run {md_inline(rd.run_id)}",
        "",
        f"{_n(n_failed, 'invalid attempt')}; each file has the validation error and the raw "
        f"output. [Accepted plans]({link(failed_root, index)}).",
        "",
    ]
    bad_w.write(Path(INDEX), "\n".join(bhead + bad_sections).rstrip("\n") + "\n")

    removed = ok_w.remove_stale(skip=failed_root if failed_root.parent == root else None)
    removed += bad_w.remove_stale()
    ok_w.sync()
    bad_w.sync()
    return ReadableReport(
        index=index,
        failed_index=failed_index,
        files=tuple(files),
        failed_files=tuple(failed_files),
        tasks=n_tasks,
        plans=n_plans,
        removed=tuple(removed),
    )
