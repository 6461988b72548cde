"""A commit of a local clone, read with `git rev-parse`, `git ls-tree` and
`git cat-file --batch` only: the user's checkout (working tree, index, HEAD) is never
touched, and uncommitted changes are never read."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from benchsmith.errors import BenchsmithError, ConfigError

_REGULAR = ("100644", "100755")  # file modes of regular files (not links or submodules)


def _git_env() -> dict[str, str]:
    env = dict(os.environ)
    # no credential prompts, no index refresh (which would write .git/index), no lazy fetch
    env.update(GIT_TERMINAL_PROMPT="0", GIT_OPTIONAL_LOCKS="0", GIT_NO_LAZY_FETCH="1")
    return env


def _git(clone: Path, *args: str, data: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    try:
        return subprocess.run(
            ["git", "-C", str(clone), *args], input=data, capture_output=True, env=_git_env(),
            check=False,
        )
    except FileNotFoundError:
        raise BenchsmithError("git not found on PATH: install git to read local clones") from None


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


def ls_tree(clone: Path, sha: str) -> list[tuple[str, str, str, str]]:
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


_TYPES = (b"blob", b"tree", b"commit", b"tag")


def _batch(clone: Path, names: list[str]) -> list[tuple[str, bytes] | None]:
    """One `git cat-file --batch` over object names: each one's (type, content), None if
    missing."""
    if not names:
        return []
    # "<type> <size>" for a found object: no name in it, so names with spaces parse alike
    r = _git(clone, "cat-file", "--batch=%(objecttype) %(objectsize)",
             data=("\n".join(names) + "\n").encode())
    if r.returncode != 0:
        raise BenchsmithError(f"{clone}: git cat-file failed: {_stderr_line(r)}")
    out: list[tuple[str, bytes] | None] = []
    buf, pos = r.stdout, 0
    while pos < len(buf):
        nl = buf.index(b"\n", pos)
        header = buf[pos:nl].split(b" ")
        if len(header) != 2 or header[0] not in _TYPES or not header[1].isdigit():
            out.append(None)  # "<name> missing" (or "ambiguous")
            pos = nl + 1
            continue
        size = int(header[1])
        out.append((header[0].decode(), buf[nl + 1 : nl + 1 + size]))
        pos = nl + 1 + size + 1
    if len(out) != len(names):
        raise BenchsmithError(f"{clone}: git cat-file answered {len(out)} of {len(names)} objects")
    return out


def cat_blobs(clone: Path, oids: list[str]) -> dict[str, bytes]:
    """Contents of the blobs, read with one `git cat-file --batch` (no checkout)."""
    out: dict[str, bytes] = {}
    for oid, data in zip(oids, _batch(clone, oids)):
        if data is None:
            raise BenchsmithError(
                f"{clone}: object {oid} is missing from the clone "
                "(a partial clone? fetch the blobs: git fetch --refetch)"
            )
        out[oid] = data[1]
    return out


def read_files(clone: Path, commit: str, paths: list[str]) -> dict[str, str | None]:
    """The text of each path at `commit` (UTF-8, undecodable bytes replaced); None for a path
    that is not a file there (absent, a folder, a submodule). One `git cat-file --batch` call
    for all paths. A symbolic link gives its target's name, as git stores it."""
    clone = Path(clone)
    check_clone(clone)
    sha = resolve_commit(clone, commit)
    # `<commit>:<path>` names the blob; a path with a newline cannot be named on a batch line
    wanted = [p for p in dict.fromkeys(paths) if p and "\n" not in p]
    got = _batch(clone, [f"{sha}:{p}" for p in wanted])
    texts: dict[str, str | None] = dict.fromkeys(paths)
    for path, got_one in zip(wanted, got):
        # a directory's name resolves to a tree: not a file
        if got_one is not None and got_one[0] == "blob":
            texts[path] = got_one[1].decode("utf-8", errors="replace")
    return texts


def list_files(
    clone: Path, commit: str, suffixes: tuple[str, ...] = (".py",),
) -> list[tuple[str, str]]:
    """(path, blob id) of the regular files of `commit` whose names end with one of
    `suffixes` (all regular files when `suffixes` is empty), sorted by path."""
    clone = Path(clone)
    check_clone(clone)
    sha = resolve_commit(clone, commit)
    return sorted(
        (path, oid) for mode, typ, oid, path in ls_tree(clone, sha)
        if typ == "blob" and mode in _REGULAR and (not suffixes or path.endswith(tuple(suffixes)))
    )
