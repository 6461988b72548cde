"""Render a run's plans as Markdown for people to read, regenerated from the ledger.

Layout (default)::

    runs/R/readable/index.md
    runs/R/readable/<dataset>/<task>_b<batch>_a<attempt>_<hash>.md         per accepted answer
    runs/R/failed_plans/readable/index.md
    runs/R/failed_plans/readable/<dataset>/<task>_b<batch>_a<attempt>_<hash>.md  per invalid try

With an output dir D: ``D/index.md``, ``D/<dataset>/...`` and ``D/failed_plans/...``.

`batch` is the call index + 1, `attempt` the number of the API call (per request), `hash` the
first 8 hex characters of the request id. Everything shown comes from the model or the
benchmark and is treated as untrusted text: Markdown is escaped, code and raw output go in
fences longer than any backtick run they contain, and file names are sanitised and checked to
stay inside the output folder. Every file is written atomically; re-rendering removes the
files of a previous rendering that are no longer produced.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import sqlite3
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from benchsmith.errors import BenchsmithError, ConfigError
from benchsmith.export.jsonl import failed_rows, record_rows
from benchsmith.recipes.prompt import task_text
from benchsmith.records import Task
from benchsmith.store.ledger import Ledger
from benchsmith.store.rundir import RunDir, atomic_write_bytes

__all__ = [
    "ReadableReport",
    "render_after_run",
    "render_readable",
    "safe_name",
]

STAGE = "plans"
READABLE = "readable"
FAILED = "failed_plans"
INDEX = "index.md"
NAME_MAX_CHARS = 60  # of the task / dataset part of a file name
NAME_MAX_BYTES = 120  # same, UTF-8 encoded (file systems cap names at 255 bytes)
CELL_MAX = 200  # characters of a validation error shown in an index table

# A file this module writes in a dataset folder; only such files are removed as stale.
_OURS = re.compile(r"^.+_b\d+_a\d+_[0-9a-f]{8}(_\d+)?\.md$")
_WINDOWS_RESERVED = {
    "con", "prn", "aux", "nul", "conin$", "conout$",
    *(f"com{i}" for i in range(10)), *(f"lpt{i}" for i in range(10)),
}


@dataclass(frozen=True)
class ReadableReport:
    """What render_readable wrote."""

    index: Path
    failed_index: Path
    files: tuple[Path, ...] = ()
    failed_files: tuple[Path, ...] = ()
    tasks: int = 0
    plans: int = 0
    removed: tuple[Path, ...] = ()


# --------------------------------------------------------------------------- file names


def _short_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:8]


def safe_name(name: str, *, reserved: Iterable[str] = ()) -> str:
    """A readable, portable file-name part for an arbitrary id.

    Letters, digits, `_`, `-` and `.` are kept (Unicode letters too, NFC-normalised); any other
    run of characters becomes `_`; leading and trailing dots, dashes and underscores go; the
    result is capped. If anything was changed, or the result is empty, a Windows device name
    or in `reserved` (compared case-insensitively), `_<8 hex of the original>` is appended so
    distinct ids keep distinct names. Never contains a path separator, never starts with `.`.
    """
    text = unicodedata.normalize("NFC", str(name))
    out = re.sub(r"[^\w.-]+", "_", text)
    out = re.sub(r"\.{2,}", "_", out)
    altered = out != text
    if altered:
        out = re.sub(r"_{2,}", "_", out)
    stripped = out.strip("._- ")
    altered = altered or stripped != out
    out = stripped
    if len(out) > NAME_MAX_CHARS:
        out, altered = out[:NAME_MAX_CHARS], True
    while len(out.encode("utf-8")) > NAME_MAX_BYTES:
        out, altered = out[:-1], True
    out = out.rstrip("._- ")
    low = out.lower()
    device = low.split(".")[0] in _WINDOWS_RESERVED  # CON, con.txt, ... even with a suffix
    if device:
        out = out.replace(".", "_")
    clash = not out or device or low in {r.lower() for r in reserved}
    if altered or clash:
        out = f"{out}_{_short_hash(str(name))}" if out else f"id_{_short_hash(str(name))}"
    return out


def _request_hash(request_id: str) -> str:
    """First 8 hex characters of the request id after its `r1_` prefix."""
    rest = request_id.split("_", 1)[1] if "_" in request_id else request_id
    hexpart = rest[:8].lower()
    if len(hexpart) == 8 and all(c in "0123456789abcdef" for c in hexpart):
        return hexpart
    return _short_hash(request_id)


def _inside(root: Path, target: Path) -> Path:
    """`target`, resolved; raises unless it lies inside `root` (symlinks followed)."""
    base = root.resolve()
    real = target.resolve()
    if real == base or base not in real.parents:
        raise BenchsmithError(f"{target}: refusing to write outside {base}")
    return real


# --------------------------------------------------------------------------- Markdown


_INLINE = re.compile(r"([\\`*_\[\]<>|#~])")
# Line starts that would make a list, quote, heading underline or thematic break.
_LINE_START = re.compile(r"^(\s*)(\d*)([-+=>.)])")


def _escape_line(line: str) -> str:
    s = _INLINE.sub(r"\\\1", line)
    m = _LINE_START.match(s)
    if m and (m.group(2) or m.group(3) in "-+=>"):
        s = m.group(1) + m.group(2) + "\\" + m.group(3) + s[m.end():]
    return s


def md_inline(text: Any) -> str:
    """One line of escaped Markdown (safe in headings, list items and table cells)."""
    return _escape_line(" ".join(str(text).split()))


def md_block(text: Any, indent: str = "") -> str:
    """Escaped Markdown keeping line breaks; continuation lines get `indent`."""
    lines = [ln.strip() for ln in str(text).splitlines()] or [""]
    out = []
    for i, ln in enumerate(lines):
        esc = _escape_line(ln)
        if i and esc:
            esc = indent + esc
        out.append(esc)
    # A blank line would end the paragraph / list item; keep structure with a hard break.
    return "  \n".join(x for x in out if x) or ""


def md_cell(text: Any, limit: int | None = None) -> str:
    s = " ".join(str(text).split())
    if limit is not None and len(s) > limit:
        s = s[: limit - 1] + "…"
    return md_inline(s)


def code_span(text: Any) -> str:
    s = " ".join(str(text).split())
    longest = max((len(m) for m in re.findall(r"`+", s)), default=0)
    tick = "`" * (longest + 1)
    pad = " " if s.startswith("`") or s.endswith("`") or not s.strip() else ""
    return f"{tick}{pad}{s}{pad}{tick}"


def shown_id(task_id: str) -> str:
    """The id as is, or as a JSON string when whitespace or control characters would hide it."""
    if task_id and task_id == " ".join(task_id.split()) and task_id.isprintable():
        return task_id
    return json.dumps(task_id, ensure_ascii=False)


def fenced(text: str, info: str = "text") -> str:
    """A fenced code block longer than any backtick run in `text`."""
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    body = text if text.endswith("\n") else text + "\n"
    return f"{fence}{info}\n{body}{fence}\n"


def _link(from_dir: Path, target: Path) -> str:
    rel = os.path.relpath(target, from_dir).replace(os.sep, "/")
    return quote(rel, safe="/")


# --------------------------------------------------------------------------- rendering


def _answer_md(rows: list[dict[str, Any]], task: Task | None, include_task_text: bool) -> str:
    first = rows[0]
    out = [
        f"# {md_inline(shown_id(first['task_id']))}",
        "",
        f"- task id: {code_span(shown_id(first['task_id']))}",
        f"- dataset: {code_span(first['dataset'])}",
        f"- model: {code_span(first['model'])}",
        f"- request id: {code_span(first['request_id'])}",
        f"- batch: {int(first.get('call_index', 0)) + 1}, attempt: {first.get('attempt', 1)}",
        f"- plans: {len(rows)}",
        "",
    ]
    if include_task_text and task is not None:
        out += ["## Task", "", fenced(task_text(task))]
    for i, r in enumerate(rows, 1):
        out += [f"## Plan {i}: {md_inline(r.get('title', ''))}", ""]
        out += [f"plan id: {code_span(r.get('plan_id', ''))}", ""]
        summary = md_block(r.get("summary", ""))
        if summary:
            out += [summary, ""]
        steps = r.get("steps") or []
        for j, step in enumerate(steps, 1):
            prefix = f"{j}. "
            out.append(prefix + md_block(step, indent=" " * len(prefix)))
        out.append("")
    return "\n".join(out).rstrip("\n") + "\n"


def _failed_md(row: dict[str, Any], task: Task | None, include_task_text: bool) -> str:
    out = [
        f"# {md_inline(shown_id(row['task_id']))} (invalid answer)",
        "",
        f"- task id: {code_span(shown_id(row['task_id']))}",
        f"- dataset: {code_span(row['dataset'])}",
        f"- model: {code_span(row['model'])}",
        f"- request id: {code_span(row['request_id'])}",
        f"- batch: {int(row.get('call_index', 0)) + 1}, attempt: {row.get('attempt', 1)}",
        "",
        "## Validation error",
        "",
    ]
    issues = [str(i) for i in row.get("issues") or []] or [str(row.get("validation_error") or "")]
    out += [f"- {md_inline(i)}" for i in issues]
    out.append("")
    if include_task_text and task is not None:
        out += ["## Task", "", fenced(task_text(task))]
    raw = row.get("raw_output")
    out += ["## Raw output", ""]
    out.append(fenced(raw) if raw is not None else "(no output recorded)\n")
    return "\n".join(out).rstrip("\n") + "\n"


class _Writer:
    """Atomic writes confined to one root; remembers what it wrote for stale cleanup."""

    def __init__(self, root: Path):
        self.root = root
        self.written: set[Path] = set()
        self.dirs: dict[str, str] = {}  # dataset -> folder name
        self.names: set[str] = set()  # casefolded "folder/file", to stay unique everywhere

    def dataset_dir(self, dataset: str, reserved: Iterable[str]) -> str:
        if dataset not in self.dirs:
            taken = {d.casefold() for d in self.dirs.values()}
            name = safe_name(dataset, reserved=[*reserved, "index.md"])
            if name.casefold() in taken:
                name = f"{name}_{_short_hash(dataset)}"
            self.dirs[dataset] = name
        return self.dirs[dataset]

    def unique(self, folder: str, stem: str) -> str:
        name, n = f"{stem}.md", 1
        while f"{folder}/{name}".casefold() in self.names:
            n += 1
            name = f"{stem}_{n}.md"
        self.names.add(f"{folder}/{name}".casefold())
        return name

    def write(self, rel: Path, text: str) -> Path:
        target = self.root / rel
        self.root.mkdir(parents=True, exist_ok=True)
        _inside(self.root, target)
        data = text.encode("utf-8")
        # Unchanged files are left alone: re-rendering a large run costs reads, not fsyncs.
        if not (target.is_file() and not target.is_symlink() and target.read_bytes() == data):
            atomic_write_bytes(target, data)
        real = _inside(self.root, target)
        self.written.add(real)
        return target

    def remove_stale(self, skip: Path | None = None) -> list[Path]:
        """Delete .md files this module could have written that this rendering did not."""
        removed: list[Path] = []
        if not self.root.is_dir():
            return removed
        base = self.root.resolve()
        skip_real = skip.resolve() if skip is not None and skip.exists() else None
        for sub in sorted(self.root.iterdir()):
            if sub.is_symlink() or not sub.is_dir():
                continue
            if skip_real is not None and sub.resolve() == skip_real:
                continue
            deleted = False
            for f in sorted(sub.iterdir()):
                if f.is_symlink() or not f.is_file() or not _OURS.match(f.name):
                    continue
                real = f.resolve()
                if real in self.written or real.parent.parent != base:
                    continue
                f.unlink()
                removed.append(f)
                deleted = True
            if deleted and not any(sub.iterdir()):
                sub.rmdir()
        return removed


def _slot(row: dict[str, Any]) -> tuple[str, str]:
    """(index label, file-name suffix `_b<call+1>_a<attempt>_<hash>`) of an answer row."""
    batch = int(row.get("call_index") or 0) + 1
    attempt = int(row.get("attempt") or 1)
    return f"b{batch} a{attempt}", f"_b{batch}_a{attempt}_{_request_hash(row['request_id'])}"


def _n(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def _table_row(cells: list[str]) -> str:
    return "| " + " | ".join(c if c else " " for c in cells) + " |"


def render_readable(
    run_dir: Path | str, output_dir: Path | str | None = None, *, include_task_text: bool = True
) -> ReadableReport:
    """Render the run's plans (and its invalid attempts) as Markdown. See the module docstring."""
    rd = RunDir(Path(run_dir))
    if not rd.ledger.is_file():
        raise ConfigError(str(rd.root), "", "not a run directory (no ledger.sqlite)")
    if output_dir is None:
        root = rd.root / READABLE
        failed_root = rd.root / FAILED / READABLE
    else:
        root = Path(output_dir)
        if root.exists() and not root.is_dir():
            raise ConfigError(str(root), "--output-dir", "exists and is not a folder")
        if root.resolve() == rd.root.resolve():
            raise ConfigError(str(root), "--output-dir", "must not be the run directory itself")
        failed_root = root / FAILED
    try:
        ledger = Ledger(rd.ledger)
    except sqlite3.Error as e:
        raise BenchsmithError(f"{rd.ledger}: cannot read the ledger: {e}") from None
    try:
        return _render(ledger, rd, root, failed_root, include_task_text)
    except sqlite3.Error as e:
        raise BenchsmithError(f"{rd.ledger}: cannot read the ledger: {e}") from None
    except OSError as e:
        raise BenchsmithError(f"cannot write readable output: {e}") from None
    finally:
        ledger.close()


def _render(
    ledger: Ledger, rd: RunDir, root: Path, failed_root: Path, include_task_text: bool
) -> ReadableReport:
    ok_w, bad_w = _Writer(root), _Writer(failed_root)
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
        ds_dir = ok_w.dataset_dir(ds, reserved)
        bad_dir = bad_w.dataset_dir(ds, [])
        task_stems: dict[str, str] = {}
        used_stems: dict[str, str] = {}

        def stem_of(task_id: str) -> str:
            if task_id not in task_stems:
                s = safe_name(task_id)
                if s.casefold() in used_stems and used_stems[s.casefold()] != task_id:
                    s = f"{s}_{_short_hash(task_id)}"
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
                Path(ds_dir) / name, _answer_md(rows, tasks.get(r0["task_id"]), include_task_text)
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
                Path(bad_dir) / name, _failed_md(row, tasks.get(row["task_id"]), include_task_text)
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
            _table_row(["task", "plans", "answers", "invalid attempts"]),
            "|---|---:|---|---|",
        ]
        for tid in all_ids:
            oks = per_task_ok.get(tid, [])
            bads = per_task_bad.get(tid, [])
            links = ", ".join(f"[{label}]({_link(root, p)})" for label, p, _ in oks) or "none"
            bad_links = ", ".join(f"[{label}]({_link(root, p)})" for label, p, _ in bads)
            bad_cell = f"{len(bads)}" + (f": {bad_links}" if bads else "")
            n_ok = sum(n for _, _, n in oks)
            sec.append(_table_row([md_cell(shown_id(tid)), str(n_ok), links, bad_cell]))
        sec += ["", f"Total: {_n(ds_plans, 'plan')}, {_n(ds_bad, 'invalid attempt')}.", ""]
        ok_sections.append("\n".join(sec))

        bsec = [
            f"## {md_inline(ds)}",
            "",
            f"{_n(ds_bad, 'invalid attempt')} in {_n(len(per_task_bad), 'task')}.",
            "",
        ]
        if per_task_bad:
            bsec += [_table_row(["task", "attempt", "validation error"]), "|---|---|---|"]
            for tid in all_ids:
                for label, p, err in per_task_bad.get(tid, []):
                    link = f"[{label}]({_link(failed_root, p)})"
                    bsec.append(_table_row([md_cell(shown_id(tid)), link, md_cell(err, CELL_MAX)]))
            bsec.append("")
        bad_sections.append("\n".join(bsec))

    head = [
        f"# Plans of run {md_inline(rd.run_id)}",
        "",
        f"{_n(n_tasks, 'task')}, {_n(n_plans, 'plan')} in {_n(len(files), 'answer')}, "
        f"{_n(n_failed, 'invalid attempt')} ([invalid attempts]({_link(root, failed_index)})).",
        "",
        "Generated from the run ledger; re-render with "
        + code_span(f"benchsmith render-readable --run-dir {shlex.quote(rd.root.as_posix())}")
        + ".",
        "",
    ]
    ok_w.write(Path(INDEX), "\n".join(head + ok_sections).rstrip("\n") + "\n")
    bhead = [
        f"# Invalid attempts of run {md_inline(rd.run_id)}",
        "",
        f"{_n(n_failed, 'invalid attempt')}; each file has the validation error and the raw "
        f"output. [Accepted plans]({_link(failed_root, index)}).",
        "",
    ]
    bad_w.write(Path(INDEX), "\n".join(bhead + bad_sections).rstrip("\n") + "\n")

    removed = ok_w.remove_stale(skip=failed_root if failed_root.parent == root else None)
    removed += bad_w.remove_stale()
    return ReadableReport(
        index=index,
        failed_index=failed_index,
        files=tuple(files),
        failed_files=tuple(failed_files),
        tasks=n_tasks,
        plans=n_plans,
        removed=tuple(removed),
    )


def render_after_run(run_dir: Path | str) -> str | None:
    """Render with defaults at the end of a run. Never raises: returns a warning or None."""
    try:
        render_readable(Path(run_dir))
    except Exception as e:  # a rendering problem must never fail the run
        msg = " ".join(str(e).split()) or type(e).__name__
        return f"warning: could not render readable plans for {run_dir}: {msg}"
    return None
