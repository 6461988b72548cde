"""What `benchsmith repo-structure build` does: read SWE-bench instances (a file or a dataset
name, an id list, a cap), then write one Agentless structure file per instance."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import orjson

from benchsmith.errors import BenchsmithError, ConfigError
from benchsmith.sources import swebench
from benchsmith.sources.repo_structure.agentless_json import structure_to_json
from benchsmith.sources.repo_structure.lookup import (
    build_structure,
    check_iid,
    check_repo,
    clone_candidates,
    clone_fix,
    find_clone,
)
from benchsmith.sources.repo_structure.model import RepoStructure
from benchsmith.sources.rows import iter_file, iter_hf
from benchsmith.sources.select import read_ids
from benchsmith.store.rundir import atomic_write_bytes


@dataclass(frozen=True)
class Instance:
    instance_id: str
    repo: str
    base_commit: str


def _iter_rows(dataset: str, split: str) -> tuple[str, Iterable[tuple[int, dict[str, Any]]]]:
    path = Path(dataset).expanduser()
    if path.exists():
        return str(path), iter_file(path, "dataset")
    hf = swebench.HF_NAMES.get(dataset)
    file_like = dataset.endswith((".jsonl", ".gz", ".parquet", ".json"))
    if hf is None and "/" in dataset and not file_like:
        hf = dataset
    if hf is None:
        raise ConfigError(
            dataset, "--dataset",
            "file not found; give a .jsonl/.jsonl.gz/.parquet file or a dataset name "
            f"({', '.join(swebench.HF_NAMES)} or a Hugging Face owner/name)",
        )
    return hf, iter_hf(hf, split, "dataset")


def load_instances(
    dataset: str | Path, *, split: str = "test", instance_ids_file: Path | None = None,
    limit: int | None = None,
) -> list[Instance]:
    """SWE-bench instances of a file or dataset name, sorted by id, filtered by the id list,
    capped at `limit`."""
    where, rows = _iter_rows(str(dataset), split)
    found: dict[str, Instance] = {}
    for n, row in rows:
        vals = []
        for key in ("instance_id", "repo", "base_commit"):
            v = row.get(key)
            if not isinstance(v, str) or not v:
                raise ConfigError(
                    where, f"line {n}",
                    f"missing field {key!r}; a SWE-bench row needs instance_id, repo, base_commit",
                )
            vals.append(v)
        if vals[0] in found:
            raise ConfigError(where, f"line {n}", f"duplicate instance_id {vals[0]!r}")
        found[vals[0]] = Instance(*vals)
    out = [found[i] for i in sorted(found)]
    if instance_ids_file is not None:
        wanted = read_ids(Path(instance_ids_file), "--instance-ids")
        unknown = [i for i in wanted if i not in found]
        if unknown:
            raise ConfigError(
                str(instance_ids_file), "--instance-ids",
                f"{len(unknown)} id(s) not in {where}, e.g. {unknown[0]!r}",
            )
        keep = set(wanted)
        out = [i for i in out if i.instance_id in keep]
    if limit is not None:
        out = out[: max(limit, 0)]
    return out


@dataclass(frozen=True)
class BuildReport:
    """What `build_dataset_structures` did, per instance id."""

    out_dir: Path
    built: tuple[str, ...]
    existing: tuple[str, ...]
    skipped: tuple[tuple[str, str], ...]  # (instance id, one-line reason)

    @property
    def available(self) -> int:
        return len(self.built) + len(self.existing)


def build_dataset_structures(
    instances: list[Instance], *, repos_dir: Path | str, out_dir: Path | str,
    force: bool = False, cache_dir: Path | str | None = None, use_cache: bool = False,
    on_instance: Callable[[Instance, str, str | None], None] | None = None,
) -> BuildReport:
    """Write `<out_dir>/<instance_id>.json` (Agentless layout) for each instance from its
    clone under `repos_dir`. Files already there are kept unless `force`. Instances whose
    clone or commit is missing are skipped with a reason. `on_instance(instance, status,
    reason)` is called after each one; status: built, existing or skipped."""
    out = Path(out_dir).expanduser()
    built: list[str] = []
    existing: list[str] = []
    skipped: list[tuple[str, str]] = []
    last: tuple[tuple[str, str], RepoStructure] | None = None
    for inst in instances:
        status, reason = "built", None
        target = out / f"{inst.instance_id}.json"
        data: bytes | None = None
        try:
            check_iid(inst.instance_id)
            if target.exists() and not force:
                status = "existing"
            else:
                repo = check_repo(inst.instance_id, inst.repo)
                cands = clone_candidates(repos_dir, repo)
                clone = find_clone(cands)
                if clone is None:
                    raise BenchsmithError(
                        f"no clone of {repo} at {' or '.join(str(c) for c in cands)}; "
                        f"{clone_fix(repo, cands[0])}"
                    )
                key = (repo, inst.base_commit)
                if last is None or last[0] != key:
                    last = (key, build_structure(clone, inst.base_commit, repo=repo,
                                                 cache_dir=cache_dir, use_cache=use_cache))
                data = orjson.dumps(structure_to_json(replace(last[1], instance_id=inst.instance_id)))
        except BenchsmithError as e:
            status, reason = "skipped", str(e)
        if data is not None:
            try:
                atomic_write_bytes(target, data + b"\n")
            except OSError as e:
                raise ConfigError(
                    str(target), "--out", f"cannot write: {e.strerror or e}"
                ) from None
        if status == "built":
            built.append(inst.instance_id)
        elif status == "existing":
            existing.append(inst.instance_id)
        else:
            skipped.append((inst.instance_id, reason or ""))
        if on_instance is not None:
            on_instance(inst, status, reason)
    return BuildReport(out, tuple(built), tuple(existing), tuple(skipped))
