"""A commit of a local clone, read with `git ls-tree` and `git cat-file --batch` only: the
user's checkout (working tree, index, HEAD) is never touched."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from benchsmith.errors import BenchsmithError, ConfigError
from benchsmith.sources.repo_structure.model import FileEntry, RepoStructure
from benchsmith.sources.repo_structure.python_ast import decode_source, parse_python


def _git_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(GIT_TERMINAL_PROMPT="0", GIT_OPTIONAL_LOCKS="0", GIT_NO_LAZY_FETCH="1")
    return env


def _git(clone: Path, *args: str, data: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    try:
        return subprocess.run(
            ["git", "-C", str(clone), *args], input=data, capture_output=True, env=_git_env(),
            check=False,
        )
    except FileNotFoundError:
        raise BenchsmithError(
            "git not found on PATH: install git to build repo structures from clones"
        ) from None


def _stderr_line(r: subprocess.CompletedProcess[bytes]) -> str:
    msg = r.stderr.decode("utf-8", "replace").strip().splitlines()
    return msg[-1] if msg else f"exit status {r.returncode}"


def check_clone(clone: Path) -> None:
    """A ConfigError unless `clone` is a git clone (with a work tree or bare)."""
    if not clone.is_dir():
        raise ConfigError(str(clone), "", "no such folder; clone the repository there")
    bare = (clone / "objects").is_dir() and (clone / "HEAD").is_file()
    if not (clone / ".git").exists() and not bare:
        raise ConfigError(str(clone), "", "not a git clone (no .git); clone the repository there")


def resolve_commit(clone: Path, commit: str) -> str:
    """The full id of `commit` (any revision naming a commit) in the clone."""
    if not commit or commit.startswith("-") or any(c.isspace() for c in commit):
        raise ConfigError(str(clone), "base_commit", f"not a commit id: {commit!r}")
    r = _git(clone, "rev-parse", "--verify", "--quiet", f"{commit}^{{commit}}")
    sha = r.stdout.decode().strip()
    if r.returncode != 0 or not sha:
        raise ConfigError(
            str(clone), "base_commit",
            f"commit {commit} is not in this clone; git fetch it: `git -C {clone} fetch origin "
            f"{commit}` (a shallow clone: `git -C {clone} fetch --unshallow`)",
        )
    return sha


def _ls_tree(clone: Path, sha: str) -> list[tuple[str, str, str, str]]:
    """(mode, type, object id, path) of every entry of the commit's tree, recursively."""
    r = _git(clone, "ls-tree", "-r", "-z", "--full-tree", sha)
    if r.returncode != 0:
        raise BenchsmithError(f"{clone}: git ls-tree {sha} failed: {_stderr_line(r)}")
    out = []
    for rec in r.stdout.split(b"\0"):
        if not rec:
            continue
        meta, _, path = rec.partition(b"\t")
        mode, typ, oid = meta.decode().split()
        out.append((mode, typ, oid, path.decode("utf-8", errors="replace")))
    return out


def _cat_blobs(clone: Path, oids: list[str]) -> dict[str, bytes]:
    """Contents of the blobs, read with one `git cat-file --batch` (no checkout)."""
    if not oids:
        return {}
    r = _git(clone, "cat-file", "--batch", data=("\n".join(oids) + "\n").encode())
    if r.returncode != 0:
        raise BenchsmithError(f"{clone}: git cat-file failed: {_stderr_line(r)}")
    out: dict[str, bytes] = {}
    buf, pos = r.stdout, 0
    while pos < len(buf):
        nl = buf.index(b"\n", pos)
        header = buf[pos:nl].decode().split()
        if len(header) != 3:
            raise BenchsmithError(
                f"{clone}: object {header[0] if header else '?'} is missing from the clone "
                "(a partial clone? fetch the blobs: git fetch --refetch)"
            )
        oid, _typ, size = header[0], header[1], int(header[2])
        out[oid] = buf[nl + 1 : nl + 1 + size]
        pos = nl + 1 + size + 1
    return out


def read_commit(clone: Path, sha: str, repo: str) -> RepoStructure:
    """Every file of commit `sha` (full id); `.py` blobs parsed (each distinct blob once)."""
    entries: dict[str, FileEntry] = {}
    wanted: dict[str, list[str]] = {}
    for mode, typ, oid, path in _ls_tree(clone, sha):
        if typ != "blob":
            continue  # submodules (type commit) are not files of this repository
        entries[path] = FileEntry(path=path)
        if path.endswith(".py") and mode in ("100644", "100755"):
            wanted.setdefault(oid, []).append(path)
    blobs = _cat_blobs(clone, list(wanted))
    for oid, paths in wanted.items():
        text = decode_source(blobs[oid])
        for path in paths:
            entries[path] = parse_python(path, text)
    return RepoStructure(repo=repo, base_commit=sha, entries=entries)
