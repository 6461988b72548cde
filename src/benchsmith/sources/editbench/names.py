"""Infbench file names, as users of the original tool write them:
`{name}-task-instances_{run_id}.jsonl`, where name is `all` or `owner-repo` and run id is
what follows (`0.2`, `0.2_bm25_5`, `0.2_body_issue`, `None_body_issue`)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchsmith.errors import ConfigError

MARK = "-task-instances_"
_NAME = re.compile(r"^(?P<name>.+?)-task-instances_(?P<run_id>.+?)\.jsonl(?:\.gz)?$")
_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def split_name(path: str | Path) -> tuple[str, str] | None:
    """(dataset name, run id) of `{name}-task-instances_{run_id}.jsonl`, else None."""
    m = _NAME.match(Path(path).name)
    return (m.group("name"), m.group("run_id")) if m else None


def run_id_of(path: str | Path) -> str:
    """The run id a file name carries; a ConfigError naming the expected form otherwise."""
    parts = split_name(path)
    if parts is None:
        raise ConfigError(
            str(path), "", "cannot tell the run id from the file name: name it "
            "`<name>-task-instances_<run_id>.jsonl` (e.g. all-task-instances_0.2.jsonl)",
        )
    return parts[1]


def check_run_id(run_id: str, field: str = "--run-id") -> str:
    if not _RUN_ID.match(run_id) or ".." in run_id:
        raise ConfigError(
            field, "", f"{run_id!r} is not a run id: letters, digits, '.', '_' and '-' only "
            "(e.g. 0.2, 0.2_bm25_5, None_body_issue)",
        )
    return run_id


def repo_slug(repo: str) -> str:
    """`owner/repo` -> `owner-repo` (file names); `all` stays `all`."""
    return repo.replace("/", "-")


def infbench_file(infbench_dir: Path, dataset_name: str, run_id: str) -> Path:
    """Where `--dataset-name` (`all`, `owner/repo`) and a run id point in the infbench dir."""
    check_run_id(run_id)
    return infbench_dir / f"{repo_slug(dataset_name)}{MARK}{run_id}.jsonl"


def stem_of(path: Path) -> str:
    """The file name without .jsonl / .jsonl.gz (results files are named after it)."""
    name = path.name
    for ext in (".jsonl.gz", ".jsonl"):
        if name.endswith(ext):
            return name[: -len(ext)]
    return path.stem


# --------------------------------------------------------------------------- merge-infbench


@dataclass(frozen=True)
class MergeSummary:
    out: Path
    files: tuple[Path, ...]  # merged, in order
    rows_read: int
    written: int
    duplicates: tuple[str, ...]  # ids seen again after their first file (first wins)


def _inputs(infbench_dir: Path, run_id: str, repos: Sequence[str] | None) -> list[Path]:
    if repos:
        files = [infbench_file(infbench_dir, r, run_id) for r in repos]
        for f in files:
            if not f.is_file():
                raise ConfigError(str(f), "--repos", "file not found: build it (`benchsmith "
                                  f"infbench build ... --save-path {f}`) or leave the repo "
                                  "out of --repos")
        return files
    if not infbench_dir.is_dir():
        raise ConfigError(str(infbench_dir), "--infbench-dir", "folder not found")
    # Exact run id only: `_0.2` must not pick up `_0.2_bm25_5` files.
    files = sorted(p for p in infbench_dir.glob(f"*{MARK}{run_id}.jsonl")
                   if (parts := split_name(p)) is not None and parts[1] == run_id
                   and parts[0] != "all")
    if not files:
        raise ConfigError(str(infbench_dir), "--infbench-dir", f"no `<owner-repo>{MARK}"
                          f"{run_id}.jsonl` file to merge (check --run-id)")
    return files


def merge_infbench(
    infbench_dir: Path, run_id: str, repos: Sequence[str] | None = None,
    out: Path | None = None, force: bool = False,
) -> MergeSummary:
    """Merge the per-repo infbench files of `run_id` (never `all-...`) into
    `all-task-instances_{run_id}.jsonl` (or `out`), atomically; a repeated instance id
    keeps its first row and is reported. An existing target is replaced only with `force`
    (it may be the `all` file `infbench build` wrote from the whole bench)."""
    from benchsmith.sources.rows import iter_file
    from benchsmith.store.rundir import atomic_write_jsonl

    check_run_id(run_id)
    infbench_dir = Path(infbench_dir)
    files = _inputs(infbench_dir, run_id, repos)
    target = Path(out) if out else infbench_file(infbench_dir, "all", run_id)
    if any(f.resolve() == target.resolve() for f in files):
        raise ConfigError(str(target), "--out", "is one of the files to merge: pick another")
    if target.is_dir():
        raise ConfigError(str(target), "--out", "is a folder; give a file path")
    if target.exists() and not force:
        raise ConfigError(str(target), "", "already exists; pass --force to replace it, or "
                          "--out for another file")
    rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    dups: list[str] = []
    read = 0
    for f in files:
        for n, row in iter_file(f, "--infbench-dir"):
            iid = row.get("instance_id")
            if not isinstance(iid, str) or not iid:
                raise ConfigError(f"{f}: line {n}", "instance_id", "missing or not a string")
            read += 1
            if iid in seen:
                dups.append(iid)
                continue
            seen.add(iid)
            rows.append(row)
    atomic_write_jsonl(target, rows)
    return MergeSummary(target, tuple(files), read, len(rows), tuple(dups))
