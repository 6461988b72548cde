"""The structure of a commit of a local clone, read through `sources.gitread` (git objects
only: the user's checkout is never touched)."""

from __future__ import annotations

from pathlib import Path

from benchsmith.sources.gitread import cat_blobs, check_clone, ls_tree, resolve_commit
from benchsmith.sources.repo_structure.model import FileEntry, RepoStructure
from benchsmith.sources.repo_structure.python_ast import decode_source, parse_python

__all__ = ["check_clone", "read_commit", "resolve_commit"]


def read_commit(clone: Path, sha: str, repo: str) -> RepoStructure:
    """Every file of commit `sha` (full id); `.py` blobs parsed (each distinct blob once)."""
    entries: dict[str, FileEntry] = {}
    wanted: dict[str, list[str]] = {}
    for mode, typ, oid, path in ls_tree(clone, sha):
        if typ != "blob":
            continue  # submodules (type commit) are not files of this repository
        entries[path] = FileEntry(path=path)
        if path.endswith(".py") and mode in ("100644", "100755"):
            wanted.setdefault(oid, []).append(path)
    blobs = cat_blobs(clone, list(wanted))
    for oid, paths in wanted.items():
        text = decode_source(blobs[oid])
        for path in paths:
            entries[path] = parse_python(path, text)
    return RepoStructure(repo=repo, base_commit=sha, entries=entries)
