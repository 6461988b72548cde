"""prepare-sections: split a config's big datasets into section configs and a manifest.

`prepare_sections` turns one config into N section configs, each with an explicit task-id
allowlist per sectioned dataset; every section runs as its own run (`benchsmith run`), so it
can be validated and its cost inspected before the next one is started.
"""

from __future__ import annotations

import copy
import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from benchsmith.config import RunConfig
from benchsmith.recipe_of import load_checked as load_config
from benchsmith.errors import ConfigError
from benchsmith.recipes.registry import legacy_keys
from benchsmith.sections.names import NAME_RE, check_run_id
from benchsmith.sources import load_tasks
from benchsmith.store.rundir import atomic_write_bytes, atomic_write_json

# Datasets split into sections by default (matched by dataset name or source).
SECTIONED_SOURCES = ("swebench_verified", "refactorbench_py")
MANIFEST_NAME = "sections_manifest.json"
SECTION_CONFIG_NAME = "section_config.yaml"


@dataclass(frozen=True)
class SectionsPlan:
    """What `prepare_sections` wrote."""

    output_dir: Path
    manifest_path: Path
    sections: list[dict[str, Any]]
    leftover: dict[str, int]
    excluded: dict[str, str]
    commands: list[str]
    merge_command: str


def section_name(i: int) -> str:
    """1-based section number -> `section_01`."""
    return f"section_{i:02d}"


def id_file_name(dataset: str) -> str:
    return f"{dataset}_task_ids.json"


def _sectioned_datasets(cfg: RunConfig, wanted: Sequence[str] | None, file: str) -> list[str]:
    if wanted:
        unknown = [d for d in wanted if d not in cfg.datasets]
        if unknown:
            raise ConfigError(
                file, "--dataset", f"no dataset {unknown[0]!r} in the config; "
                f"it has: {', '.join(cfg.datasets)}"
            )
        return [d for d in cfg.datasets if d in set(wanted)]
    names = [
        n for n, ds in cfg.datasets.items()
        if n in SECTIONED_SOURCES or ds.source_for(n) in SECTIONED_SOURCES
    ]
    if not names:
        raise ConfigError(
            file, "datasets",
            f"no dataset to section (looked for {' / '.join(SECTIONED_SOURCES)}); "
            "name the datasets to split with --dataset",
        )
    return names


def _abs(cfg: RunConfig, path: str) -> str:
    return str(cfg.resolve(path).absolute())


def _section_config(
    raw: dict[str, Any], cfg: RunConfig, counts: dict[str, int], sectioned: list[str]
) -> dict[str, Any]:
    """The main config's own mapping with paths made absolute and section allowlists set."""
    sec = copy.deepcopy(raw)
    sec["run_dir"] = _abs(cfg, cfg.run_dir)
    datasets: dict[str, Any] = {}
    raw_datasets = raw.get("datasets") or {}
    for name, ds in cfg.datasets.items():
        if name not in sectioned or counts.get(name, 0) == 0:
            continue
        # A dataset the file does not spell out (the default humaneval) gets its source.
        d = dict(raw_datasets.get(name) or {"source": ds.source_for(name)})
        if d.get("path"):
            d["path"] = _abs(cfg, d["path"])
        d.pop("max_tasks", None)
        # Relative to the section config's folder, where the id file is written.
        d["task_ids_file"] = id_file_name(name)
        datasets[name] = d
    sec["datasets"] = datasets
    # The recipe's options, complete, with their paths absolute (old section names go).
    for key in legacy_keys():
        sec.pop(key, None)
    options = dict(cfg.recipe_options)
    for key in cfg.recipe_spec().path_fields:
        if options.get(key):
            options[key] = _abs(cfg, options[key])
    sec["recipe"] = cfg.recipe
    sec["recipe_options"] = options
    if cfg.provider == "local" or isinstance(sec.get("local"), dict):
        local = dict(sec.get("local") or {})
        local["model_path"] = _abs(cfg, cfg.local.model_path)
        sec["local"] = local
    return sec


def _clear_old_sections(out: Path, keep: set[str]) -> None:
    """--force: remove section folders of a previous manifest that the new one does not have
    (only the files prepare-sections writes; a folder holding anything else is left alone)."""
    try:
        old = json.loads((out / MANIFEST_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    for s in old.get("sections", []):
        name = s.get("name", "")
        if name in keep or not NAME_RE.match(name):
            continue
        d = out / name
        if not d.is_dir():
            continue
        for f in d.iterdir():
            if f.name == SECTION_CONFIG_NAME or f.name.endswith("_task_ids.json"):
                f.unlink()
        try:
            d.rmdir()
        except OSError:
            pass


def prepare_sections(
    config_path: str | Path,
    *,
    section_size: int,
    output_dir: str | Path,
    max_sections: int | None = None,
    run_prefix: str | None = None,
    datasets: Sequence[str] | None = None,
    force: bool = False,
) -> SectionsPlan:
    """Split the config's sectioned datasets into consecutive chunks of `section_size` tasks.

    Section k holds chunk k of every sectioned dataset (tasks sorted by id, after the
    dataset's own `task_ids_file` / `max_tasks`). At most `max_sections` sections are written;
    the tasks after them are reported as leftover. Datasets that are not sectioned (e.g.
    humaneval) are left out of the section configs and named in the manifest.
    """
    if section_size < 1:
        raise ConfigError("command line", "--section-size", "must be at least 1")
    if max_sections is not None and max_sections < 1:
        raise ConfigError("command line", "--sections", "must be at least 1")
    cfg_file = Path(config_path)
    cfg = load_config(cfg_file)
    prefix = run_prefix if run_prefix is not None else cfg_file.stem
    check_run_id(prefix, "--run-prefix")
    raw = yaml.safe_load(cfg_file.read_text(encoding="utf-8")) or {}
    raw = {k.replace("-", "_") if isinstance(k, str) else k: v for k, v in raw.items()}

    sectioned = _sectioned_datasets(cfg, datasets, str(cfg_file))
    excluded = {
        n: "not sectioned: left out of the section configs; run it with the main config"
        for n in cfg.datasets if n not in sectioned
    }
    ids: dict[str, list[str]] = {
        n: [t.id for t in load_tasks(n, cfg.datasets[n], cfg)] for n in sectioned
    }
    needed = max(math.ceil(len(v) / section_size) for v in ids.values())
    if needed == 0:
        raise ConfigError(str(cfg_file), "datasets", "no tasks selected in the sectioned datasets")
    n_sections = min(needed, max_sections) if max_sections else needed

    out = Path(output_dir)
    manifest_path = out / MANIFEST_NAME
    if manifest_path.exists() and not force:
        raise ConfigError(
            str(manifest_path), "", "sections already prepared here; use another --out "
            "or add --force to rewrite them"
        )
    run_root = cfg.resolve(cfg.run_dir).absolute()
    names = [section_name(i) for i in range(1, n_sections + 1)]
    for longest in (f"{prefix}_{names[-1]}", f"{prefix}_merged"):  # the ids built from it
        check_run_id(longest, "--run-prefix")
    if force:
        _clear_old_sections(out, set(names))

    sections: list[dict[str, Any]] = []
    commands: list[str] = []
    for k, name in enumerate(names):
        sdir = out / name
        chunk = {n: v[k * section_size:(k + 1) * section_size] for n, v in ids.items()}
        counts = {n: len(v) for n, v in chunk.items()}
        for n, v in chunk.items():
            atomic_write_json(sdir / id_file_name(n), v)
        sec = _section_config(raw, cfg, counts, sectioned)
        cfg_path = sdir / SECTION_CONFIG_NAME
        header = (
            f"# {name} of {n_sections}, generated by `benchsmith prepare-sections` from "
            f"{cfg_file.absolute()}\n# Tasks: "
            + ", ".join(f"{n} {c}" for n, c in counts.items())
            + ". Edit the main config and prepare again rather than this file.\n"
        )
        body = yaml.safe_dump(sec, sort_keys=False, allow_unicode=True)
        atomic_write_bytes(cfg_path, (header + body).encode("utf-8"))
        load_config(cfg_path)  # the section config must be valid as written
        run_id = f"{prefix}_{name}"
        cmd = f"benchsmith run --config {cfg_path} --run-id {run_id}"
        commands.append(cmd)
        sections.append(
            {
                "name": name,
                "run_id": run_id,
                "run_dir": str(run_root / run_id),
                "config": f"{name}/{SECTION_CONFIG_NAME}",
                "command": cmd,
                "tasks": sum(counts.values()),
                "datasets": {
                    n: {
                        "count": len(v),
                        "first_id": v[0] if v else None,
                        "last_id": v[-1] if v else None,
                        "task_ids_file": f"{name}/{id_file_name(n)}",
                        "in_config": len(v) > 0,
                    }
                    for n, v in chunk.items()
                },
            }
        )
    covered = n_sections * section_size
    leftover = {n: max(0, len(v) - covered) for n, v in ids.items()}
    merge_cmd = (
        "benchsmith merge-sections "
        + " ".join(f"--section-run {s['name']}={s['run_dir']}" for s in sections)
        + f" --output-run-id {prefix}_merged"
    )
    manifest = {
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "main_config": str(cfg_file.absolute()),
        "run_prefix": prefix,
        "run_dir": str(run_root),
        "section_size": section_size,
        "sections_requested": max_sections,
        "sections_needed": needed,
        "sections_written": n_sections,
        "datasets": {
            n: {
                "tasks": len(v),
                "in_sections": min(len(v), covered),
                "leftover": leftover[n],
                "leftover_first_id": v[covered] if leftover[n] else None,
            }
            for n, v in ids.items()
        },
        "excluded_datasets": excluded,
        "leftover": leftover,
        "sections": sections,
        "merge_command": merge_cmd,
    }
    atomic_write_json(manifest_path, manifest)
    return SectionsPlan(out, manifest_path, sections, leftover, excluded, commands, merge_cmd)
