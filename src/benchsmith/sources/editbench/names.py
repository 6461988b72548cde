"""Infbench file names, as users of the original tool write them:
`{name}-task-instances_{run_id}.jsonl`, where name is `all` or `owner-repo` and run id is
what follows (`0.2`, `0.2_bm25_5`, `0.2_body_issue`, `None_body_issue`)."""

from __future__ import annotations

import re
from pathlib import Path

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
