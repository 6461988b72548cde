"""The result types: a repository's files at one commit, Python files with their classes and
functions (1-based inclusive line spans), and the indented tree shown in prompts."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from types import MappingProxyType
from typing import Any


@dataclass(frozen=True)
class CodeSpan:
    """A function or method: 1-based inclusive lines; `text` is those lines joined by \\n."""

    name: str
    start_line: int
    end_line: int
    text: str


@dataclass(frozen=True)
class ClassSpan:
    """A class with the functions defined directly in its body."""

    name: str
    start_line: int
    end_line: int
    text: str
    methods: tuple[CodeSpan, ...] = ()


@dataclass(frozen=True)
class FileEntry:
    """One file. `text` is None for files whose content is not kept (non-Python files)."""

    path: str
    text: str | None = None
    classes: tuple[ClassSpan, ...] = ()
    functions: tuple[CodeSpan, ...] = ()

    @property
    def is_python(self) -> bool:
        return self.text is not None and self.path.endswith(".py")


@dataclass(frozen=True)
class RepoStructure:
    """The files of a repository at one commit, Python files with text, classes, functions."""

    repo: str
    base_commit: str
    entries: Mapping[str, FileEntry] = field(default_factory=dict, hash=False, repr=False)
    instance_id: str | None = None

    def __post_init__(self) -> None:
        ordered = {p: self.entries[p] for p in sorted(self.entries)}
        object.__setattr__(self, "entries", MappingProxyType(ordered))

    def __repr__(self) -> str:
        return (f"RepoStructure(repo={self.repo!r}, base_commit={self.base_commit!r}, "
                f"files={len(self.entries)}, instance_id={self.instance_id!r})")

    # ---- queries

    def files(self) -> list[str]:
        """Every file path (repository-relative, `/`-separated), sorted."""
        return list(self.entries)

    @cached_property
    def _python(self) -> tuple[str, ...]:
        return tuple(p for p, e in self.entries.items() if e.is_python)

    def python_files(self) -> list[str]:
        """Paths of the `.py` files whose text is known, sorted."""
        return list(self._python)

    def file(self, path: str) -> FileEntry | None:
        return self.entries.get(_norm_path(path))

    def file_text(self, path: str) -> str | None:
        """The file's text, or None for an unknown path or a file without stored text."""
        e = self.file(path)
        return None if e is None else e.text

    def tree_text(
        self, max_files: int | None = None, *, python_only: bool = True,
        exclude_tests: bool = False,
    ) -> str:
        """An indented tree like Agentless's `show_project_structure`: `dir/` lines, then
        files, 4 spaces a level; in each folder its files come first, then its subfolders,
        each sorted by name. Only `.py` files by default; folders without a shown file are
        left out. `exclude_tests` drops paths with a part starting with `test` (Agentless's
        filter). `max_files` caps the files shown and ends with `... (N more files)`."""
        if max_files is not None and max_files < 0:
            raise ValueError("max_files must be >= 0")
        paths = self.python_files() if python_only else self.files()
        if exclude_tests:
            paths = [p for p in paths if not any(s.startswith("test") for s in p.split("/"))]
        tree: dict[str, Any] = {}
        for p in paths:
            *dirs, name = p.split("/")
            node = tree
            for d in dirs:
                node = node.setdefault(d + "/", {})
            node[name] = None
        lines: list[str] = []
        shown = 0
        for depth, name, is_file in _walk_tree(tree, 0):
            if is_file:
                if max_files is not None and shown >= max_files:
                    break
                shown += 1
            lines.append("    " * depth + name)
        if shown < len(paths):
            while lines and lines[-1].endswith("/"):
                lines.pop()  # folders whose first file was cut
            lines.append(f"... ({len(paths) - shown} more files)")
        return "\n".join(lines)


def _walk_tree(node: dict[str, Any], depth: int) -> Iterator[tuple[int, str, bool]]:
    files = sorted(k for k, v in node.items() if v is None)
    dirs = sorted(k for k, v in node.items() if v is not None)
    for f in files:
        yield depth, f, True
    for d in dirs:
        yield depth, d, False
        yield from _walk_tree(node[d], depth + 1)


def _norm_path(path: str) -> str:
    p = path.strip().replace("\\", "/")
    while p.startswith("./"):
        p = p[2:]
    return p.lstrip("/")
