"""Finding a structure: of a clone at a commit (`build_structure`: cache, else git), and of a
SWE-bench instance (`structure_for`: structure file, clone, cache), with one-line errors that
name what was looked for and the fix."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from benchsmith.errors import ConfigError
from benchsmith.sources.repo_structure.agentless_json import load_structure_file
from benchsmith.sources.repo_structure.cache import (
    cache_path,
    cached_structure,
    read_cache,
    write_cache,
)
from benchsmith.sources.repo_structure.git_tree import check_clone, read_commit, resolve_commit
from benchsmith.sources.repo_structure.model import RepoStructure

_REPO = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")


# --------------------------------------------------------------------------- one clone


def _repo_label(repo: str | None, clone: Path) -> str:
    if repo:
        return repo
    name = clone.expanduser().resolve().name
    return name.replace("__", "/", 1) if "__" in name else name


def build_structure(
    clone_dir: Path | str, commit: str, *, repo: str | None = None,
    cache_dir: Path | str | None = None, use_cache: bool = True,
) -> RepoStructure:
    """The structure of the clone at `commit`, read from git objects (no checkout).

    `repo` ("owner/name") names the cache folder; default: from the clone's folder name
    (`owner__name` -> `owner/name`). A full commit id found in the cache needs no git call.
    """
    clone = Path(clone_dir).expanduser()
    label = _repo_label(repo, clone)
    commit = (commit or "").strip()
    if use_cache:
        hit = cached_structure(label, commit, cache_dir)
        if hit is not None:
            return hit
    check_clone(clone)
    sha = resolve_commit(clone, commit)
    path = cache_path(label, sha, cache_dir)
    if use_cache and sha != commit:
        hit = read_cache(path, sha)
        if hit is not None:
            return hit
    st = read_commit(clone, sha, label)
    if use_cache:
        write_cache(path, st)
    return st


# --------------------------------------------------------------------------- instances


def _instance_fields(instance: Any) -> tuple[str, str | None, str | None]:
    """(instance_id, repo, base_commit) of a SWE-bench row, a benchsmith Task, or an object."""
    if isinstance(instance, Mapping):
        iid, repo, commit = (instance.get(k) for k in ("instance_id", "repo", "base_commit"))
        if iid is None and "task_id" in instance:  # Task.to_dict()
            ctx = instance.get("context") or {}
            iid, repo, commit = instance["task_id"], ctx.get("repo"), ctx.get("base_commit")
    elif hasattr(instance, "context") and hasattr(instance, "id"):  # benchsmith Task
        iid = instance.id
        repo, commit = instance.context.get("repo"), instance.context.get("base_commit")
    else:
        iid = getattr(instance, "instance_id", None)
        repo, commit = getattr(instance, "repo", None), getattr(instance, "base_commit", None)
    if not isinstance(iid, str) or not iid:
        raise ConfigError("instance", "instance_id", "missing; a SWE-bench row has instance_id")
    check_iid(iid)
    for key, v in (("repo", repo), ("base_commit", commit)):
        if v is not None and not isinstance(v, str):
            raise ConfigError(iid, key, "must be a string")
    return iid, repo or None, commit or None


def check_iid(iid: str) -> None:
    """A ConfigError unless the instance id can name a file."""
    if iid in (".", "..") or "/" in iid or "\\" in iid or "\0" in iid:
        raise ConfigError(iid, "instance_id", "must be usable as a file name (no / or \\)")


def check_repo(iid: str, repo: str | None) -> str:
    """`repo` if it is "owner/name", else a ConfigError about instance `iid`."""
    if not repo:
        raise ConfigError(iid, "repo", "missing; a SWE-bench row has repo (\"owner/name\")")
    if not _REPO.match(repo) or any(part in (".", "..") for part in repo.split("/")):
        raise ConfigError(iid, "repo", f"{repo!r} is not \"owner/name\"")
    return repo


def clone_candidates(repos_dir: Path | str, repo: str) -> list[Path]:
    """Where a clone of "owner/name" is looked for: `<repos_dir>/<owner>__<name>`, then
    `<repos_dir>/<name>`."""
    owner, name = repo.split("/", 1)
    base = Path(repos_dir).expanduser()
    return [base / f"{owner}__{name}", base / name]


def find_clone(cands: list[Path]) -> Path | None:
    """The first of `clone_candidates` that is a folder."""
    return next((c for c in cands if c.is_dir()), None)


def clone_fix(repo: str, target: Path) -> str:
    """The fix for a missing clone of "owner/name" at `target`."""
    return f"clone it: git clone https://github.com/{repo}.git {target}"


def _same_commit(a: str, b: str) -> bool:
    a, b = a.lower(), b.lower()
    return a.startswith(b) or b.startswith(a)


def structure_for(
    instance: Any, *, structure_dir: Path | str | None = None,
    repos_dir: Path | str | None = None, cache_dir: Path | str | None = None,
) -> RepoStructure:
    """The structure of one SWE-bench instance at its base_commit.

    `instance`: a mapping or object with instance_id, repo ("owner/name") and base_commit
    (a benchsmith Task works too). Looked up in order: `<structure_dir>/<instance_id>.json`;
    a clone at `<repos_dir>/<owner>__<name>` or `<repos_dir>/<name>` (built, cached); the
    cache alone. Otherwise a one-line ConfigError naming what was looked for and the fix.
    """
    iid, repo, commit = _instance_fields(instance)
    looked: list[str] = []
    if structure_dir is not None:
        f = Path(structure_dir).expanduser() / f"{iid}.json"
        if f.is_file():
            st = load_structure_file(f)
            if commit and st.base_commit and not _same_commit(st.base_commit, commit):
                raise ConfigError(
                    str(f), "base_commit",
                    f"is {st.base_commit} but {iid} needs {commit}; rebuild it: benchsmith "
                    f"repo-structure build --repos-dir <clones> --dataset <swe-bench rows> "
                    f"--out {structure_dir}",
                )
            return st if st.instance_id == iid else replace(st, instance_id=iid)
        looked.append(str(f))
    if repos_dir is not None:
        repo = check_repo(iid, repo)
        cands = clone_candidates(repos_dir, repo)
        clone = find_clone(cands)
        if clone is not None:
            if not commit:
                raise ConfigError(iid, "base_commit", "missing; a SWE-bench row has base_commit")
            return replace(
                build_structure(clone, commit, repo=repo, cache_dir=cache_dir), instance_id=iid
            )
        looked += [str(c) for c in cands]
    if repo and commit and _REPO.match(repo):
        hit = cached_structure(repo, commit, cache_dir)
        if hit is not None:
            return replace(hit, instance_id=iid)
    if not looked:
        raise ConfigError(
            iid, "repo structure",
            "no source: pass structure_dir (Agentless repo-structure files <instance_id>.json) "
            "or repos_dir (local clones) - config: recipe_options.structure_dir / recipe_options.repos_dir",
        )
    fix = []
    if repos_dir is not None and repo:
        fix.append(clone_fix(repo, clone_candidates(repos_dir, repo)[0]))
    if structure_dir is not None:
        fix.append(f"write {structure_dir}/{iid}.json with `benchsmith repo-structure build`")
    raise ConfigError(
        iid, "repo structure", f"not found (looked for {', '.join(looked)}); {', or '.join(fix)}"
    )
