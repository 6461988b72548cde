"""Trajectory entries: one attempt of an agent at one SWE-bench instance, read from JSONL
files (or from an adapter's dicts) and checked field by field.

Schema (one JSON object per line):

| field | type | required | default |
|---|---|---|---|
| `instance_id` | non-empty str | yes | |
| `problem_statement` | str | yes | |
| `patch` | str or null (null = empty patch) | yes | |
| `resolved` | bool | yes | |
| `attempt` | int >= 0 | yes | |
| `repo` | str | no | `""` |
| `failure_category` | str or null | no | null: filled by `failures.categorize` on a failed attempt |
| `test_stdout` | str or null | no | null |
| `localised_files` | list of str | no | `[]` |
| `file_contents` | object {path: text} | no | `{}` (shown in prompts when present) |
| `source` | str | no | the file name (adapters set e.g. `swe-agent:<file>`) |

Any other key is kept in `Entry.metadata` (not exported to the training rows, where it could
be large or change type from row to row). Two entries with the same instance_id and attempt
are an error: the second one is a bad line.
"""

from __future__ import annotations

import gzip
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from benchsmith.errors import ConfigError
from benchsmith.finetune.failures import categorize

REQUIRED = ("instance_id", "problem_statement", "patch", "resolved", "attempt")
KNOWN = frozenset(REQUIRED + ("repo", "failure_category", "test_stdout", "localised_files",
                              "file_contents", "source"))
BOM = b"\xef\xbb\xbf"
SCHEMA_HINT = "an entry needs instance_id, problem_statement, patch, resolved, attempt"


@dataclass(frozen=True)
class Entry:
    instance_id: str
    problem_statement: str
    patch: str
    resolved: bool
    attempt: int
    repo: str = ""
    failure_category: str | None = None  # always set on a failed attempt after loading
    test_stdout: str | None = None
    localised_files: tuple[str, ...] = ()
    file_contents: tuple[tuple[str, str], ...] = ()  # (path, text), in the given order
    source: str = ""
    where: str = ""  # "<file>: line N" or "<where>: entry N"
    category_inferred: bool = False  # failure_category came from failures.categorize
    metadata: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)


@dataclass(frozen=True)
class Loaded:
    """Checked entries and what was skipped on the way."""

    entries: tuple[Entry, ...]
    bad_lines: tuple[str, ...] = ()  # one-line reasons of the skipped lines (skip_bad_lines)
    files: tuple[str, ...] = ()


def json_type(value: Any) -> str:
    """A parsed JSON value's type as JSON names it ("null", "an array"), for errors."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    for typ, name in ((str, "a string"), ((int, float), "a number"), (list, "an array"),
                      (dict, "an object")):
        if isinstance(value, typ):
            return name
    return type(value).__name__


def _label(where: str, iid: Any) -> str:
    return f"{where} ({iid})" if isinstance(iid, str) and iid.strip() else where


def entry_from_dict(raw: Any, where: str, default_source: str = "",
                    categorizer: Callable[[str | None, str | None], str] = categorize) -> Entry:
    """One checked entry; a ConfigError naming `where` (file and line), the field and the
    fix otherwise."""
    if not isinstance(raw, dict):
        raise ConfigError(where, "", f"must be a JSON object, got {json_type(raw)}")
    iid = raw.get("instance_id")
    label = _label(where, iid)

    def bad(name: str, problem: str) -> None:
        raise ConfigError(label, name, problem)

    for name in REQUIRED:
        if name not in raw:
            bad(name, f"missing ({SCHEMA_HINT})")
    if not isinstance(iid, str) or not iid.strip():
        bad("instance_id", f"must be a non-empty string, got {iid!r:.60}")
    problem = raw["problem_statement"]
    if not isinstance(problem, str):
        bad("problem_statement", f"must be a string, got {json_type(problem)}")
    patch = raw["patch"]
    if patch is None:
        patch = ""  # SWE-bench's "empty patch": counted by the empty-patch filter
    if not isinstance(patch, str):
        bad("patch", f"must be a unified diff string (or null), got {json_type(patch)}")
    resolved = raw["resolved"]
    if not isinstance(resolved, bool):
        bad("resolved", f"must be true or false, got {resolved!r:.40}")
    attempt = raw["attempt"]
    if not isinstance(attempt, int) or isinstance(attempt, bool) or attempt < 0:
        bad("attempt", f"must be an integer >= 0 (1, 2, ... in the order tried), "
                       f"got {attempt!r:.40}")
    repo = raw.get("repo")
    if repo is not None and not isinstance(repo, str):
        bad("repo", f"must be a string such as django/django, got {json_type(repo)}")
    category = raw.get("failure_category")
    if category is not None and not isinstance(category, str):
        bad("failure_category", f"must be a string or null, got {json_type(category)}")
    stdout = raw.get("test_stdout")
    if stdout is not None and not isinstance(stdout, str):
        bad("test_stdout", f"must be a string or null, got {json_type(stdout)}")
    files = raw.get("localised_files")
    if files is None:
        files = []
    if not isinstance(files, list) or not all(isinstance(f, str) for f in files):
        bad("localised_files", "must be a list of file paths (strings)")
    contents = raw.get("file_contents")
    if contents is None:
        contents = {}
    if not isinstance(contents, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in contents.items()):
        bad("file_contents", "must be an object {path: file text}")
    source = raw.get("source")
    if source is not None and not isinstance(source, str):
        bad("source", f"must be a string, got {json_type(source)}")
    inferred = False
    if not resolved and not (category or "").strip():
        category, inferred = categorizer(stdout, patch), True
    return Entry(
        instance_id=iid, problem_statement=problem, patch=patch, resolved=resolved,
        attempt=attempt, repo=repo or "", failure_category=category or None,
        test_stdout=stdout, localised_files=tuple(files),
        file_contents=tuple(contents.items()), source=source or default_source, where=where,
        category_inferred=inferred,
        metadata={k: v for k, v in raw.items() if k not in KNOWN},
    )


class _Collector:
    """Checked entries in order; a bad one raises, or is counted with skip_bad_lines."""

    def __init__(self, skip_bad_lines: bool):
        self.skip = skip_bad_lines
        self.entries: list[Entry] = []
        self.bad: list[str] = []
        self.seen: dict[tuple[str, int], str] = {}

    def bad_line(self, err: ConfigError) -> None:
        if not self.skip:
            raise err
        self.bad.append(str(err))

    def add(self, raw: Any, where: str, source: str) -> None:
        try:
            e = entry_from_dict(raw, where, source)
            key = (e.instance_id, e.attempt)
            if key in self.seen:
                raise ConfigError(_label(where, e.instance_id), "attempt",
                                  f"attempt {e.attempt} of this instance is already at "
                                  f"{self.seen[key]}; number each attempt once")
        except ConfigError as err:
            self.bad_line(err)
            return
        self.seen[key] = where
        self.entries.append(e)


def _lines(path: Path) -> Iterator[tuple[int, bytes]]:
    opener: Any = gzip.open if path.name.endswith(".gz") else open
    try:
        with opener(path, "rb") as fh:
            for n, line in enumerate(fh, 1):
                # a UTF-8 byte order mark (Windows editors write one) is not JSON
                yield n, line.removeprefix(BOM) if n == 1 else line
    except (OSError, EOFError) as e:
        raise read_error(path, e) from None


def read_error(path: Path, e: Exception) -> ConfigError:
    """A file that cannot be read, in one line; a .gz name on plain text says so."""
    if isinstance(e, gzip.BadGzipFile):
        return ConfigError(str(path), "", "not gzip-compressed though named .gz: rename it "
                           "to .jsonl, or compress it with gzip")
    return ConfigError(str(path), "", f"cannot read: {e}")


def trajectory_files(directory: Path) -> list[Path]:
    """The directory's `*.jsonl` and `*.jsonl.gz` files (not its sub-folders), by name."""
    if not directory.is_dir():
        what = "is a file" if directory.exists() else "does not exist"
        raise ConfigError(str(directory), "--trajectories",
                          f"{what}: give the folder holding the *.jsonl files")
    files = sorted(p for p in directory.iterdir()
                   if p.is_file() and p.name.endswith((".jsonl", ".jsonl.gz")))
    if not files:
        raise ConfigError(str(directory), "--trajectories",
                          "holds no *.jsonl or *.jsonl.gz file")
    return files


def load_trajectories(directory: Path, skip_bad_lines: bool = False,
                      on_file: Callable[[Path], None] | None = None) -> Loaded:
    """Every entry of the directory's trajectory files, in file then line order."""
    col = _Collector(skip_bad_lines)
    files = trajectory_files(directory)
    for path in files:
        for n, line in _lines(path):
            if not line.strip():
                continue
            where = f"{path}: line {n}"
            try:
                raw = orjson.loads(line)
            except orjson.JSONDecodeError as e:
                col.bad_line(ConfigError(where, "", f"not valid JSON ({e})"))
                continue
            col.add(raw, where, path.name)
        if on_file is not None:
            on_file(path)
    return Loaded(tuple(col.entries), tuple(col.bad), tuple(str(p) for p in files))


def entries_from_dicts(dicts: Iterable[Any], where: str, skip_bad_lines: bool = False) -> Loaded:
    """An adapter's dicts checked as file lines are; `where` names them in errors
    ("<where>: entry N")."""
    col = _Collector(skip_bad_lines)
    for n, raw in enumerate(dicts, 1):
        col.add(raw, f"{where}: entry {n}", where)
    return Loaded(tuple(col.entries), tuple(col.bad), (where,))
