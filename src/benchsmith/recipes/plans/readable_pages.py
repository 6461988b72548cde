"""The Markdown of the plans recipe's readable pages: one accepted answer, one invalid attempt,
and the pieces both layouts (`readable.py`: a file per answer; `readable_bulk.py`: parts)
share. Everything shown comes from the model or the benchmark and is treated as untrusted
text: Markdown is escaped, code and raw output go in fences longer than any backtick run
they contain.
"""

from __future__ import annotations

from typing import Any

from benchsmith.export.markdown import code_span, fenced, md_block, md_inline, short_hash, shown_id
from benchsmith.recipes.prompt import task_text
from benchsmith.records import Task

STAGE = "plans"
FAILED = "failed_plans"
INDEX = "index.md"
CELL_MAX = 200  # characters of a validation error shown in an index table


def request_hash(request_id: str) -> str:
    """First 8 hex characters of the request id after its `r1_` prefix."""
    rest = request_id.split("_", 1)[1] if "_" in request_id else request_id
    hexpart = rest[:8].lower()
    if len(hexpart) == 8 and all(c in "0123456789abcdef" for c in hexpart):
        return hexpart
    return short_hash(request_id)


def slot(row: dict[str, Any]) -> tuple[str, str]:
    """(index label, file-name suffix `_b<call+1>_a<attempt>_<hash>`) of an answer row."""
    batch = int(row.get("call_index") or 0) + 1
    attempt = int(row.get("attempt") or 1)
    return f"b{batch} a{attempt}", f"_b{batch}_a{attempt}_{request_hash(row['request_id'])}"


def n_of(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def task_fields(row: dict[str, Any]) -> list[str]:
    return [
        f"- task id: {code_span(shown_id(row['task_id']))}",
        f"- dataset: {code_span(row['dataset'])}",
    ]


def request_fields(row: dict[str, Any]) -> list[str]:
    return [
        f"- model: {code_span(row['model'])}",
        f"- request id: {code_span(row['request_id'])}",
        f"- batch: {int(row.get('call_index', 0)) + 1}, attempt: {row.get('attempt', 1)}",
    ]


def task_section(task: Task | None, include_task_text: bool, h: str = "##") -> list[str]:
    if include_task_text and task is not None:
        return [f"{h} Task", "", fenced(task_text(task))]
    return []


def plans_md(rows: list[dict[str, Any]], h: str = "##") -> list[str]:
    """The plans of one answer, each under a `<h> Plan i: title` heading."""
    out: list[str] = []
    for i, r in enumerate(rows, 1):
        out += [f"{h} Plan {i}: {md_inline(r.get('title', ''))}", ""]
        out += [f"plan id: {code_span(r.get('plan_id', ''))}", ""]
        summary = md_block(r.get("summary", ""))
        if summary:
            out += [summary, ""]
        for j, step in enumerate(r.get("steps") or [], 1):
            prefix = f"{j}. "
            out.append(prefix + md_block(step, indent=" " * len(prefix)))
        out.append("")
    return out


def invalid_md(row: dict[str, Any], h: str = "##") -> tuple[list[str], list[str]]:
    """(the validation error section, the raw output section) of an invalid attempt."""
    issues = [str(i) for i in row.get("issues") or []] or [str(row.get("validation_error") or "")]
    err = [f"{h} Validation error", "", *(f"- {md_inline(i)}" for i in issues), ""]
    raw = row.get("raw_output")
    out = [f"{h} Raw output", "", fenced(raw) if raw is not None else "(no output recorded)\n"]
    return err, out


def answer_md(rows: list[dict[str, Any]], task: Task | None, include_task_text: bool) -> str:
    """The page of one accepted answer (its plans)."""
    r0 = rows[0]
    out = [f"# {md_inline(shown_id(r0['task_id']))}", "", *task_fields(r0),
           *request_fields(r0), f"- plans: {len(rows)}", ""]
    out += task_section(task, include_task_text)
    out += plans_md(rows)
    return "\n".join(out).rstrip("\n") + "\n"


def failed_md(row: dict[str, Any], task: Task | None, include_task_text: bool) -> str:
    """The page of one invalid attempt: its validation error, the task, the raw output."""
    err, raw = invalid_md(row)
    out = [f"# {md_inline(shown_id(row['task_id']))} (invalid answer)", "", *task_fields(row),
           *request_fields(row), "", *err]
    out += task_section(task, include_task_text)
    out += raw
    return "\n".join(out).rstrip("\n") + "\n"
