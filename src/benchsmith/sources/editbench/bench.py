"""Bench rows (RealisticEditBench's schema), read from a .jsonl/.jsonl.gz/.parquet file or a
Hugging Face dataset (`owner/name`, split `test`; `owner/name:train` for another split) and
checked field by field.

Required: `instance_id` (str), `repo` ("owner/name"), `work_patch_list` (list of steps, a
step a list of unified-diff strings). Optional: `base_commit` (str), `pull_number` (int),
`files_work_dirs` (list of str), and the requirement texts, each under the first name
present: PR title `title_mes` | `title`; PR body `body_mes` | `body`; issue text
`issues_mes` | `issue` | `problem_statement` (a str, or a list of str joined by blank lines).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchsmith.errors import ConfigError
from benchsmith.sources.rows import iter_file, iter_hf

TITLE_KEYS = ("title_mes", "title")
BODY_KEYS = ("body_mes", "body")
ISSUE_KEYS = ("issues_mes", "issue", "problem_statement")
_REPO = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
_HF_NAME = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
_FILE_EXT = (".jsonl", ".jsonl.gz", ".json", ".parquet", ".gz")


@dataclass(frozen=True)
class BenchRow:
    instance_id: str
    repo: str
    work_patch_list: tuple[tuple[str, ...], ...]
    base_commit: str | None = None
    pull_number: int | None = None
    title: str = ""
    body: str = ""
    issue: str = ""
    files_work_dirs: tuple[str, ...] = ()
    line: int = 0  # where it was read (1-based line or row number)


def _where(source: str, n: int, iid: Any) -> str:
    """`<file>: line N (<id>)`; "row" for parquet and Hugging Face rows."""
    unit = "line" if source.endswith((".jsonl", ".jsonl.gz", ".json")) else "row"
    known = f" ({iid})" if isinstance(iid, str) and iid.strip() else ""
    return f"{source}: {unit} {n}{known}"


def _text(raw: dict[str, Any], keys: tuple[str, ...], bad: Any) -> str:
    for k in keys:
        v = raw.get(k)
        if v is None:
            continue
        if isinstance(v, str):
            return v
        if isinstance(v, list) and all(isinstance(x, str) for x in v):
            return "\n\n".join(v)
        bad(k, f"must be a string (or a list of strings), got {type(v).__name__}")
    return ""


def parse_row(raw: dict[str, Any], source: str, n: int) -> BenchRow:
    """One checked row; a ConfigError naming the file, the row and the field otherwise."""
    iid = raw.get("instance_id")
    where = _where(source, n, iid)

    def bad(field: str, problem: str) -> None:
        raise ConfigError(where, field, problem)

    if "instance_id" not in raw:
        bad("instance_id", "missing (a bench row needs instance_id, repo, work_patch_list)")
    if not isinstance(iid, str) or not iid.strip():
        bad("instance_id", f"must be a non-empty string, got {iid!r:.60}")
    repo = raw.get("repo")
    if repo is None:
        bad("repo", "missing: give the repository as owner/name (e.g. django/django)")
    if not isinstance(repo, str) or not _REPO.match(repo) or any(
            part.strip(".") == "" for part in repo.split("/")):  # "o/..": a folder, no repo
        bad("repo", f"must be owner/name (e.g. django/django), got {repo!r:.60}")
    steps = raw.get("work_patch_list")
    if steps is None:
        bad("work_patch_list", "missing: the ordered edit steps, each a list of diffs")
    if not isinstance(steps, list):
        bad("work_patch_list", f"must be a list of steps, got {type(steps).__name__}")
    for i, step in enumerate(steps, 1):
        if not isinstance(step, list) or not all(isinstance(d, str) for d in step):
            got = type(step).__name__ if not isinstance(step, list) else "a list with a non-string"
            bad(f"work_patch_list[{i}]", f"a step must be a list of diff strings, got {got}")
    commit = raw.get("base_commit")
    if commit is not None and not isinstance(commit, str):
        bad("base_commit", f"must be a commit id string, got {type(commit).__name__}")
    pull = raw.get("pull_number")
    if isinstance(pull, str) and pull.strip().isdigit():
        pull = int(pull)
    if pull is not None and (not isinstance(pull, int) or isinstance(pull, bool)):
        bad("pull_number", f"must be an integer, got {pull!r:.40}")
    dirs = raw.get("files_work_dirs") or []
    if not isinstance(dirs, list) or not all(isinstance(d, str) for d in dirs):
        bad("files_work_dirs", "must be a list of strings")
    return BenchRow(
        instance_id=iid, repo=repo,
        work_patch_list=tuple(tuple(s) for s in steps),
        base_commit=(commit or "").strip() or None, pull_number=pull,
        title=_text(raw, TITLE_KEYS, bad), body=_text(raw, BODY_KEYS, bad),
        issue=_text(raw, ISSUE_KEYS, bad), files_work_dirs=tuple(dirs), line=n,
    )


def _iter_raw(bench: str, split: str) -> Iterator[tuple[int, dict[str, Any]]]:
    path = Path(bench).expanduser()
    name, _, hf_split = bench.partition(":")  # owner/name:split
    if path.exists() or bench.endswith(_FILE_EXT) or not _HF_NAME.match(name):
        if not path.is_file():
            raise ConfigError(bench, "--bench", "file not found (a .jsonl, .jsonl.gz or "
                              ".parquet bench, or a Hugging Face dataset owner/name)")
        return iter_file(path, "--bench")
    return iter_hf(name, hf_split or split, "--bench")


def load_bench(bench: str | Path, split: str = "test") -> list[BenchRow]:
    """All rows of a bench file or Hugging Face dataset, checked; ids must be unique."""
    source = str(bench)
    rows: list[BenchRow] = []
    first: dict[str, int] = {}
    for n, raw in _iter_raw(source, split):
        row = parse_row(raw, source, n)
        if row.instance_id in first:
            raise ConfigError(
                _where(source, n, row.instance_id), "instance_id",
                f"repeats the id of row {first[row.instance_id]}: ids must be unique",
            )
        first[row.instance_id] = n
        rows.append(row)
    if not rows:
        raise ConfigError(source, "--bench", "no rows: the bench is empty")
    return rows
