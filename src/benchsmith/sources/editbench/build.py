"""Bench -> infbench: split each edit history at --info-pct, write the requirement, the code
context (oracle from a clone, else rebuilt from the diffs; BM25 on request) and the prompt,
one JSON line per instance (row format: notes in prompt.py and README)."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchsmith.errors import BenchsmithError, ConfigError
from benchsmith.sources.editbench import diffs
from benchsmith.sources.editbench.bench import BenchRow
from benchsmith.sources.editbench.names import split_name
from benchsmith.sources.editbench.prompt import number_lines, render_history, render_prompt
from benchsmith.sources.editbench.split import Split, split_steps
from benchsmith.sources.repo_structure.lookup import clone_candidates, find_clone
from benchsmith.store.rundir import atomic_write_jsonl

NEW_FILE = "(new file: it does not exist before these edits)"
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class BuildOptions:
    info_pct: float | None
    pr_mes: bool = True
    issue_mes: bool = True
    use_bm25: bool = False
    topn: int = 10
    repos_dir: Path | None = None
    cache_dir: Path | None = None  # BM25 indexes


@dataclass(frozen=True)
class BuildSummary:
    save_path: Path
    skipped_path: Path
    run_id: str | None  # None: the save path does not follow `<name>-task-instances_<id>`
    rows_read: int
    written: int
    skipped: tuple[tuple[str, str], ...]  # (instance_id, reason)
    context_kinds: dict[str, int] = field(default_factory=dict)
    bm25_fallbacks: int = 0  # --use-bm25 rows that got oracle context instead

    def skipped_by_reason(self) -> dict[str, int]:
        return dict(Counter(reason for _, reason in self.skipped))


# --------------------------------------------------------------------------- requirement

_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)


def clean_text(text: str) -> str:
    """HTML comments out, CRLF to LF, runs of newlines to one (as the original tool)."""
    text = _COMMENT.sub("", text)
    text = re.sub(r"\r\n?", "\n", text)
    return re.sub(r"\n+", "\n", text).strip()


def requirement_text(row: BenchRow, pr_mes: bool = True, issue_mes: bool = True) -> str:
    """PR title and body, then the issue text; each part only when switched on."""
    parts = []
    if pr_mes:
        parts.append(clean_text(f"{row.title}\n{row.body}"))
    if issue_mes:
        parts.append(clean_text(row.issue))
    return "\n".join(p for p in parts if p)


# --------------------------------------------------------------------------- context


@dataclass(frozen=True)
class Context:
    kind: str
    files: tuple[dict[str, str], ...]
    note: str = ""


def _numbered(text: str) -> str:
    return number_lines(text[:-1] if text.endswith("\n") else text)


def _gt_file_diffs(gt_diffs: Sequence[str]) -> dict[str, diffs.FileDiff]:
    """The first ground-truth file diff of each file, by path, in first-touch order."""
    first: dict[str, diffs.FileDiff] = {}
    for d in gt_diffs:
        for fd in diffs.parse(d):
            first.setdefault(fd.path, fd)
    return first


def from_diffs(gt_diffs: Sequence[str], why: str) -> Context:
    """Oracle context rebuilt from what the ground-truth diffs show of each file."""
    files = []
    for path, fd in _gt_file_diffs(gt_diffs).items():
        fr = diffs.fragments(path, gt_diffs)
        if fr.new_file or fr.lines:
            files.append({"path": fd.old_path or path, "content": diffs.render_fragments(fr)})
    if not files:
        return Context("no_context", (), f"{why}; the ground-truth diffs show no line of "
                       "the files they change")
    return Context("oracle_diffs", tuple(files), f"{why}; fragments of the files rebuilt from "
                   "the ground-truth diffs (real line numbers, '...' = lines not shown)")


def _read_after(
    clone: Path, commit: str, paths: list[str], pre_edits: Sequence[Sequence[str]]
) -> dict[str, str | None]:
    """The files at `commit` with the previous edits touching them applied, in memory."""
    from benchsmith.sources import gitread

    wanted = set(paths)
    pre = [d for step in pre_edits for d in step
           if any(fd.path in wanted or fd.old_path in wanted for fd in diffs.parse(d))]
    need = dict.fromkeys(paths)
    for d in pre:
        for fd in diffs.parse(d):
            need.update(dict.fromkeys(p for p in (fd.old_path, fd.new_path) if p))
    state = gitread.read_files(clone, commit, list(need))
    return diffs.apply(state, pre)


def from_clone(clone: Path, commit: str, gt_diffs: Sequence[str],
               pre_edits: Sequence[Sequence[str]]) -> Context:
    firsts = _gt_file_diffs(gt_diffs)
    paths = [fd.old_path or path for path, fd in firsts.items()]
    state = _read_after(clone, commit, paths, pre_edits)
    files, missing = [], []
    for path, fd in firsts.items():
        src = fd.old_path or path
        text = state.get(src)
        if text is None and not fd.is_new:
            missing.append(src)
            continue
        files.append({"path": src, "content": NEW_FILE if text is None else _numbered(text)})
    note = (f"not at base_commit after the previous edits: {', '.join(missing)}"
            if missing else "")
    if not files:
        return Context("no_context", (), note)
    return Context("oracle", tuple(files), note)


def from_bm25(clone: Path, commit: str, query: str, pre_edits: Sequence[Sequence[str]],
              topn: int, cache_dir: Path | None) -> Context:
    from benchsmith.sources.editbench import bm25

    paths = bm25.top_files(clone, commit, query, topn, cache_dir)
    state = _read_after(clone, commit, list(paths), pre_edits)
    files = tuple({"path": p, "content": _numbered(state[p] or "")}
                  for p in paths if state.get(p) is not None)
    return Context("bm25", files)


# --------------------------------------------------------------------------- rows


class _Clones:
    """Clone lookup per repo (checked once): (clone, None) or (None, why not)."""

    def __init__(self, repos_dir: Path | None):
        self.repos_dir = repos_dir
        self.seen: dict[str, tuple[Path | None, str]] = {}

    def find(self, repo: str) -> tuple[Path | None, str]:
        if self.repos_dir is None:
            return None, "no --repos-dir"
        if repo not in self.seen:
            cands = clone_candidates(self.repos_dir, repo)
            clone = find_clone(cands)
            why = "" if clone else f"no clone of {repo} at {' or '.join(map(str, cands))}"
            if clone is not None:
                from benchsmith.sources import gitread

                try:
                    gitread.check_clone(clone)
                except BenchsmithError as e:
                    clone, why = None, str(e)
            self.seen[repo] = (clone, why)
        return self.seen[repo]


def _context(row: BenchRow, sp: Split, requirement: str, opts: BuildOptions,
             clones: _Clones) -> tuple[Context, bool]:
    """(context, whether --use-bm25 fell back to oracle)."""
    clone, why = clones.find(row.repo)
    if clone is not None and not row.base_commit:
        clone, why = None, "the row has no base_commit"
    commit = ""
    if clone is not None:
        from benchsmith.sources import gitread

        try:
            commit = gitread.resolve_commit(clone, row.base_commit or "")
        except BenchsmithError as e:
            clone, why = None, str(e)
    fallback = ""
    if opts.use_bm25 and clone is not None:
        query = requirement + "\n" + render_history(sp.pre_edits)
        try:
            ctx = from_bm25(clone, commit, query, sp.pre_edits, opts.topn, opts.cache_dir)
        except diffs.DiffError as e:
            fallback = f"bm25 files: previous edits do not apply ({e}); oracle used"
        except BenchsmithError as e:  # the index could not be built or read
            fallback = f"bm25 failed ({e}); oracle used"
        else:
            if ctx.files:
                return ctx, False
            fallback = "bm25 found no file; oracle used"
    elif opts.use_bm25:
        fallback = f"bm25 needs a clone and base_commit ({why}); oracle used"
    if clone is not None:
        try:
            ctx = from_clone(clone, commit, sp.ground_truth_diffs, sp.pre_edits)
        except diffs.DiffError as e:
            ctx = from_diffs(sp.ground_truth_diffs, f"previous edits do not apply at "
                             f"base_commit ({e})")
    else:
        ctx = from_diffs(sp.ground_truth_diffs, why)
    if fallback:
        note = ctx.note
        if why and note.startswith(why):  # the fallback already gave the reason
            note = note[len(why):].lstrip("; ")
        ctx = Context(ctx.kind, ctx.files, "; ".join(x for x in (fallback, note) if x))
    return ctx, bool(opts.use_bm25)


def build_row(row: BenchRow, sp: Split, opts: BuildOptions,
              clones: _Clones | None = None) -> tuple[dict[str, Any], bool]:
    """(infbench row, whether --use-bm25 fell back to oracle)."""
    requirement = requirement_text(row, opts.pr_mes, opts.issue_mes)
    ctx, fell_back = _context(row, sp, requirement, opts, clones or _Clones(opts.repos_dir))
    pre = [list(step) for step in sp.pre_edits]
    files = [dict(f) for f in ctx.files]
    return {
        "instance_id": row.instance_id,
        "repo": row.repo,
        "pull_number": row.pull_number,
        "base_commit": row.base_commit,
        "info_pct": opts.info_pct,
        "k": sp.k,
        "n": sp.n,
        "pre_edits": pre,
        "ground_truth": sp.ground_truth,
        "ground_truth_files": diffs.files_touched(sp.ground_truth_diffs),
        "requirement": requirement,
        "context_kind": ctx.kind,
        "context_files": files,
        "context_note": ctx.note,
        "prompt": render_prompt(requirement, pre, files),
    }, fell_back


def skipped_path_of(save_path: Path) -> Path:
    return save_path.with_name(save_path.name + ".skipped.jsonl")


def check_paths(save_path: Path, repos_dir: Path | None) -> None:
    """Before any work: the two files to write can be files, and --repos-dir is a folder
    (a mistyped one would otherwise quietly give every row diff-only context)."""
    if not save_path.name or save_path.name in (".", ".."):
        raise ConfigError(str(save_path), "--save-path", "needs a file name, e.g. "
                          "infbench/all-task-instances_0.2.jsonl")
    for path in (save_path, skipped_path_of(save_path)):
        if path.is_dir():
            raise ConfigError(str(path), "--save-path", "is a folder; give a file path, e.g. "
                              f"{save_path / 'all-task-instances_0.2.jsonl'}")
    if repos_dir is not None and not repos_dir.expanduser().is_dir():
        what = "is not a folder" if repos_dir.expanduser().exists() else "folder not found"
        raise ConfigError(str(repos_dir), "--repos-dir", f"{what}: give the folder holding "
                          "your clones (`<owner>__<name>` or `<name>`), or leave it out for "
                          "context rebuilt from the diffs")


def build_infbench(rows: Sequence[BenchRow], save_path: Path, opts: BuildOptions,
                   progress: Progress | None = None) -> BuildSummary:
    """Write the infbench of `rows` to `save_path` (atomically) and the skipped instances
    to `<save_path>.skipped.jsonl`; the summary says what was written and why not."""
    clones = _Clones(opts.repos_dir)
    out: list[dict[str, Any]] = []
    skipped: list[tuple[str, str]] = []
    kinds: Counter[str] = Counter()
    fallbacks = 0
    for i, row in enumerate(rows, 1):
        sp = split_steps(row.work_patch_list, opts.info_pct)
        if isinstance(sp, str):
            skipped.append((row.instance_id, sp))
        else:
            try:
                built, fell_back = build_row(row, sp, opts, clones)
            except diffs.DiffError as e:
                skipped.append((row.instance_id, f"ground truth does not parse: {e}"))
            else:
                out.append(built)
                kinds[built["context_kind"]] += 1
                fallbacks += fell_back
        if progress is not None:
            progress(i, len(rows))
    skipped_path = skipped_path_of(save_path)
    atomic_write_jsonl(save_path, out)
    atomic_write_jsonl(skipped_path, ({"instance_id": i, "reason": r} for i, r in skipped))
    parts = split_name(save_path)
    return BuildSummary(
        save_path=save_path, skipped_path=skipped_path, run_id=parts[1] if parts else None,
        rows_read=len(rows), written=len(out), skipped=tuple(skipped),
        context_kinds=dict(kinds), bm25_fallbacks=fallbacks,
    )
