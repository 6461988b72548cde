"""The structure cache: one JSON file (Agentless layout + `cache_version`) per (repo, commit),
`~/.cache/benchsmith/repo_structure/<owner>__<name>/<commit>.json` (or under `cache_dir`)."""

from __future__ import annotations

import re
from pathlib import Path

import orjson

from benchsmith.errors import ConfigError
from benchsmith.sources.repo_structure.agentless_json import structure_from_json, structure_to_json
from benchsmith.sources.repo_structure.model import RepoStructure
from benchsmith.store.rundir import atomic_write_bytes

# Bump when parsing or the cached layout changes: older cache files are then rebuilt.
CACHE_VERSION = 1
_FULL_SHA = re.compile(r"^(?:[0-9a-f]{40}|[0-9a-f]{64})$")


def default_cache_dir() -> Path:
    """`~/.cache/benchsmith/repo_structure` (set `recipe_options.cache_dir` to choose another)."""
    root = str(Path.home() / ".cache")
    return Path(root) / "benchsmith" / "repo_structure"


def cache_path(repo: str, commit: str, cache_dir: Path | str | None = None) -> Path:
    """Where the structure of `repo` ("owner/name") at full commit id `commit` is cached."""
    base = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    key = re.sub(r"[^A-Za-z0-9_.-]", "_", repo.replace("/", "__")) or "repo"
    return base / key / f"{commit}.json"


def read_cache(path: Path, commit: str) -> RepoStructure | None:
    """The cached structure at `path` if it is of this cache version and `commit`, else None."""
    try:
        data = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return None
    if not isinstance(data, dict) or data.get("cache_version") != CACHE_VERSION:
        return None
    try:
        st = structure_from_json(data, source=str(path))
    except ConfigError:
        return None
    return st if st.base_commit == commit else None


def cached_structure(
    repo: str, commit: str, cache_dir: Path | str | None = None
) -> RepoStructure | None:
    """The cached structure of `repo` at `commit` when `commit` is a full id (any case),
    without asking git; None when it is not a full id or not cached."""
    sha = commit.lower()
    if not _FULL_SHA.match(sha):
        return None
    return read_cache(cache_path(repo, sha, cache_dir), sha)


def write_cache(path: Path, st: RepoStructure) -> None:
    payload = {**structure_to_json(st), "cache_version": CACHE_VERSION}
    try:
        atomic_write_bytes(path, orjson.dumps(payload) + b"\n")
    except OSError:
        pass  # a cache that cannot be written only costs a rebuild next time
