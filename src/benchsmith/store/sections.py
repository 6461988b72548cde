"""Split a big job into section runs, and merge approved section runs into one run.

`prepare_sections` turns one config into N section configs, each with an explicit task-id
allowlist per sectioned dataset; every section runs as its own run (`benchsmith run`), so it
can be validated and its cost inspected before the next one is started.

`merge_sections` builds a new run directory from the ledgers of approved section runs: tasks,
units (states, results), invocations and attempts are copied into a fresh `ledger.sqlite`
(invocation and attempt ids renumbered), and every derived file is regenerated from it with
`write_outputs`, so the merged run has the same layout as any run and totals that add up.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import re
import shutil
import sqlite3
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from benchsmith.config import RunConfig, load_config
from benchsmith.errors import BenchsmithError, ConfigError
from benchsmith.export.jsonl import write_outputs
from benchsmith.sources import load_tasks
from benchsmith.store.ledger import Ledger
from benchsmith.store.rundir import (
    RunDir,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_jsonl,
)

# Datasets split into sections by default (matched by dataset name or source).
SECTIONED_SOURCES = ("swebench_verified", "refactorbench_py")
MANIFEST_NAME = "sections_manifest.json"
SECTION_CONFIG_NAME = "section_config.yaml"
MERGE_MANIFEST = "merge_manifest.json"
ATTEMPT_MAP = "merge_attempt_ids.jsonl"

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
_RUN_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_USAGE_KEYS = ("input_tokens", "cached_input_tokens", "output_tokens", "reasoning_tokens")


# =========================================================================== prepare


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
    plans = sec.get("plans")
    if isinstance(plans, dict) and plans.get("prompt_template"):
        plans["prompt_template"] = _abs(cfg, plans["prompt_template"])
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
        if name in keep or not _NAME_RE.match(name):
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
    if not _RUN_ID_RE.match(prefix):
        raise ConfigError(
            "command line", "--run-prefix", f"{prefix!r}: use letters, digits, '.', '-' or '_'"
        )
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
            str(manifest_path), "", "sections already prepared here; use another --output-dir "
            "or add --force to rewrite them"
        )
    run_root = cfg.resolve(cfg.run_dir).absolute()
    names = [section_name(i) for i in range(1, n_sections + 1)]
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


# =========================================================================== merge


@dataclass
class _Tally:
    tasks: dict[str, int] = field(default_factory=dict)
    units: dict[str, int] = field(default_factory=dict)
    usage: dict[str, int] = field(
        default_factory=lambda: {"api_calls": 0, **{k: 0 for k in _USAGE_KEYS}}
    )
    spent_usd: float = 0.0

    def add_attempt(self, a: dict[str, Any]) -> None:
        self.usage["api_calls"] += 1
        for k in _USAGE_KEYS:
            self.usage[k] += int(a.get(k) or 0)
        # Same rule as Ledger.spend(): settled cost, or the reservation of an unsettled call.
        self.spent_usd += float(a.get("cost_usd") or 0.0)
        if a.get("status") == "sent":
            self.spent_usd += float(a.get("reserved_usd") or 0.0)

    def as_dict(self) -> dict[str, Any]:
        return {
            "tasks": dict(self.tasks),
            "units": dict(self.units),
            "usage": dict(self.usage),
            "spent_usd": self.spent_usd,
        }


@dataclass(frozen=True)
class MergeReport:
    run_dir: Path
    sections: list[dict[str, Any]]
    duplicates: int
    dropped_usd: float
    totals: dict[str, Any]
    warnings: list[str]


def parse_section_arg(text: str) -> tuple[str, Path]:
    """`name=path` -> (name, path)."""
    name, sep, path = text.partition("=")
    name = name.strip()
    if not sep or not name or not path.strip():
        raise ConfigError(
            "command line", "--section-run", f"{text!r}: expected NAME=RUN_DIR, e.g. s1=runs/R1"
        )
    if not _NAME_RE.match(name):
        raise ConfigError(
            "command line", "--section-run",
            f"{text!r}: section name {name!r} must be letters, digits, - or _",
        )
    return name, Path(path.strip())


def _open_ro(path: Path) -> sqlite3.Connection:
    """A read-only connection; a section run is never changed by a merge."""
    uri = path.absolute().as_uri()
    try:
        try:
            db = sqlite3.connect(uri + "?mode=ro", uri=True)
            db.execute("SELECT 1 FROM sqlite_master").fetchall()
        except sqlite3.OperationalError:
            # e.g. a read-only folder where SQLite cannot create the WAL index
            db = sqlite3.connect(uri + "?immutable=1", uri=True)
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    except sqlite3.Error as e:
        raise ConfigError(str(path), "", f"cannot read the ledger: {e}") from None
    missing = {"meta", "invocations", "tasks", "units", "attempts"} - tables
    if missing:
        db.close()
        raise ConfigError(str(path), "", f"not a benchsmith ledger (no table {sorted(missing)[0]})")
    return db


def _cols(db: sqlite3.Connection, table: str) -> list[str]:
    return [r[1] for r in db.execute(f"PRAGMA table_info({table})")]


def _rows(db: sqlite3.Connection, sql: str, args: tuple[Any, ...] = ()) -> Iterator[dict[str, Any]]:
    cur = db.execute(sql, args)
    cols = [c[0] for c in cur.description]
    while True:
        batch = cur.fetchmany(1000)
        if not batch:
            return
        for r in batch:
            yield dict(zip(cols, r))


@dataclass
class _Section:
    name: str
    path: Path
    db: sqlite3.Connection
    keys: set[tuple[str, str]]
    stages: set[str]
    meta: dict[str, str]


def _load_section(name: str, path: Path, schema_version: int) -> _Section:
    rd = RunDir(path)
    if not path.is_dir():
        raise ConfigError(str(path), "--section-run", f"section {name}: no such run directory")
    if not rd.ledger.is_file():
        raise ConfigError(
            str(path), "--section-run", f"section {name}: not a run directory (no ledger.sqlite)"
        )
    db = _open_ro(rd.ledger)
    version = db.execute("PRAGMA user_version").fetchone()[0]
    if version > schema_version:
        db.close()
        raise ConfigError(
            str(rd.ledger), "", f"section {name}: ledger schema {version} is newer than this "
            f"benchsmith ({schema_version}); upgrade benchsmith"
        )
    keys = {(d, t) for d, t in db.execute("SELECT dataset, task_id FROM tasks")}
    keys |= {(d, t) for d, t in db.execute("SELECT DISTINCT dataset, task_id FROM units")}
    stages = {r[0] for r in db.execute("SELECT DISTINCT stage FROM units")}
    meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
    return _Section(name, path, db, keys, stages, meta)


def _owners(
    sections: list[_Section], prefer: Sequence[str]
) -> tuple[dict[tuple[str, str], str], list[dict[str, Any]]]:
    """(task key -> section that keeps it, duplicates). Raises on an unresolved duplicate."""
    where: dict[tuple[str, str], list[str]] = {}
    for s in sections:
        for k in s.keys:
            where.setdefault(k, []).append(s.name)
    rank = {n: i for i, n in enumerate(prefer)}
    owner: dict[tuple[str, str], str] = {}
    dups: list[dict[str, Any]] = []
    unresolved: list[tuple[tuple[str, str], list[str]]] = []
    for k in sorted(where):
        names = where[k]
        if len(names) == 1:
            owner[k] = names[0]
            continue
        ranked = sorted((rank[n], n) for n in names if n in rank)
        if not ranked:
            unresolved.append((k, names))
            continue
        owner[k] = ranked[0][1]
        dups.append({"dataset": k[0], "task_id": k[1], "sections": names, "kept": ranked[0][1]})
    if unresolved:
        (ds, tid), names = unresolved[0]
        more = f" (and {len(unresolved) - 1} more duplicate task(s))" if len(unresolved) > 1 else ""
        raise BenchsmithError(
            f"task {ds}/{tid} is in sections {' and '.join(names)}{more}; "
            f"choose the winner with --prefer {names[0]} (or --prefer {names[-1]})"
        )
    return owner, dups


def _sha_tree(root: Path) -> str | None:
    if not root.is_dir():
        return None
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(root)).encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()


def merge_sections(
    sections: Sequence[tuple[str, str | Path]],
    output_run_id: str,
    *,
    run_dir: str | Path | None = None,
    prefer: Sequence[str] = (),
) -> MergeReport:
    """Merge section runs into `<run_dir>/<output_run_id>/` (run_dir: default the folder of
    the first section run).

    A task (dataset, task id) found in several sections is an error unless one of them is
    named in `prefer` (earlier names win); the other sections' units and attempts for that
    task are left out, so their tokens and cost are not in the merged totals (reported as
    dropped). Merged totals equal the sum of what is kept from each section.
    """
    if not sections:
        raise ConfigError("command line", "--section-run", "give at least one NAME=RUN_DIR")
    if not _RUN_ID_RE.match(output_run_id):
        raise ConfigError(
            "command line", "--output-run-id",
            f"{output_run_id!r}: use letters, digits, '.', '-' or '_'",
        )
    names = [n for n, _ in sections]
    for n in names:
        if names.count(n) > 1:
            raise ConfigError("command line", "--section-run", f"section name {n!r} is used twice")
    paths = [Path(p).absolute() for _, p in sections]
    for i, p in enumerate(paths):
        if paths.index(p) != i:
            raise ConfigError(
                str(p), "--section-run", f"sections {names[paths.index(p)]} and {names[i]} are "
                "the same run directory"
            )
    for n in prefer:
        if n not in names:
            raise ConfigError(
                "command line", "--prefer", f"{n!r} is not a section; sections: {', '.join(names)}"
            )
    parent = Path(run_dir).absolute() if run_dir is not None else paths[0].parent
    final = parent / output_run_id
    if final.exists():
        raise ConfigError(str(final), "--output-run-id", "already exists; choose another run id")

    parent.mkdir(parents=True, exist_ok=True)
    tmp_root = Path(tempfile.mkdtemp(dir=parent, prefix=f".{output_run_id}.merging-"))
    opened: list[_Section] = []
    try:
        rd = RunDir(tmp_root)
        ledger = Ledger(rd.ledger)
        try:
            schema_version = ledger.db.execute("PRAGMA user_version").fetchone()[0]
            for n, p in zip(names, paths):
                opened.append(_load_section(n, p, schema_version))
            report = _merge_into(ledger, rd, opened, prefer, output_run_id, parent)
        finally:
            ledger.close()
            for s in opened:
                s.db.close()
        for leftover in ("ledger.sqlite-wal", "ledger.sqlite-shm"):
            (tmp_root / leftover).unlink(missing_ok=True)
        if final.exists():
            raise ConfigError(str(final), "--output-run-id", "already exists; pick another run id")
        tmp_root.rename(final)
    except BaseException:
        shutil.rmtree(tmp_root, ignore_errors=True)
        raise
    return MergeReport(
        final, report["sections"], len(report["duplicates"]),
        sum(s["dropped"]["spent_usd"] for s in report["sections"]),
        report["totals"], report["warnings"],
    )


def _insert_sql(table: str, cols: list[str]) -> str:
    return f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})"


class _Copier:
    """Copies section ledgers into the merged ledger, renumbering invocations and attempts."""

    def __init__(self, db: sqlite3.Connection, owner: dict[tuple[str, str], str]):
        self.db = db
        self.owner = owner
        self.dst_cols = {t: _cols(db, t) for t in ("tasks", "units", "invocations", "attempts")}
        self.next_inv = 1
        self.next_att = 1
        self.attempt_map: list[dict[str, Any]] = []

    def _source(
        self, s: _Section, table: str, order: str
    ) -> tuple[list[str], Iterator[dict[str, Any]]]:
        cols = [c for c in _cols(s.db, table) if c in self.dst_cols[table]]
        return cols, _rows(s.db, f"SELECT {', '.join(cols)} FROM {table} ORDER BY {order}")

    def copy(self, s: _Section) -> tuple[_Tally, _Tally, dict[int, int]]:
        """(kept, dropped, invocation id map) of one section."""
        kept, dropped = _Tally(), _Tally()
        db = self.db
        cols, rows = self._source(s, "tasks", "dataset, task_id")
        ins = _insert_sql("tasks", cols)
        for r in rows:
            tally = kept if self.owner[(r["dataset"], r["task_id"])] == s.name else dropped
            tally.tasks[r["dataset"]] = tally.tasks.get(r["dataset"], 0) + 1
            if tally is kept:
                db.execute(ins, [r[c] for c in cols])

        # Invocations: renumbered; the message names the section and the old id.
        inv_map: dict[int, int] = {}
        cols, rows = self._source(s, "invocations", "id")
        ins = _insert_sql("invocations", cols)
        for r in rows:
            old = r["id"]
            inv_map[old] = r["id"] = self.next_inv
            r["message"] = f"[section {s.name}, invocation {old}] {r.get('message') or ''}".rstrip()
            db.execute(ins, [r[c] for c in cols])
            self.next_inv += 1

        kept_units: set[str] = set()
        cols, rows = self._source(s, "units", "unit_id")
        ins = _insert_sql("units", cols)
        for r in rows:
            tally = kept if self.owner[(r["dataset"], r["task_id"])] == s.name else dropped
            tally.units[r["state"]] = tally.units.get(r["state"], 0) + 1
            if tally is not kept:
                continue
            try:
                db.execute(ins, [r[c] for c in cols])
            except sqlite3.IntegrityError:
                raise BenchsmithError(
                    f"section {s.name}: request {r['unit_id']} is already in an earlier "
                    "section; were the same tasks run twice?"
                ) from None
            kept_units.add(r["unit_id"])

        # Attempts: renumbered, invocation ids remapped; those of dropped tasks left out.
        cols, rows = self._source(s, "attempts", "id")
        ins = _insert_sql("attempts", cols)
        for r in rows:
            if r["unit_id"] not in kept_units:
                dropped.add_attempt(r)
                continue
            kept.add_attempt(r)
            old = r["id"]
            r["id"] = self.next_att
            if r["invocation"] not in inv_map:  # pragma: no cover - ledgers always have it
                raise BenchsmithError(
                    f"section {s.name}: attempt {old} names invocation {r['invocation']}, "
                    "which the ledger does not have"
                )
            r["invocation"] = inv_map[r["invocation"]]
            db.execute(ins, [r[c] for c in cols])
            self.attempt_map.append(
                {"section": s.name, "attempt_id": old, "merged_attempt_id": self.next_att}
            )
            self.next_att += 1
        return kept, dropped, inv_map


def _merge_into(
    ledger: Ledger, rd: RunDir, sections: list[_Section], prefer: Sequence[str],
    output_run_id: str, parent: Path,
) -> dict[str, Any]:
    warnings: list[str] = []
    recipes = {s.meta.get("recipe") for s in sections if s.meta.get("recipe")}
    if len(recipes) > 1:
        raise BenchsmithError(
            "sections use different recipes (" + ", ".join(
                f"{s.name}: {s.meta.get('recipe')}" for s in sections
            ) + "); merge only runs of one recipe"
        )
    owner, dups = _owners(sections, prefer)
    copier = _Copier(ledger.db, owner)
    section_info: list[dict[str, Any]] = []
    merged = _Tally()
    with ledger.tx():
        meta: dict[str, str] = {}
        for s in sections:
            for k, v in s.meta.items():
                meta.setdefault(k, v)
        meta["merged_from"] = json.dumps([{"name": s.name, "path": str(s.path)} for s in sections])
        for k, v in meta.items():
            ledger.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (k, v))
        for s in sections:
            kept, dropped, inv_map = copier.copy(s)
            pending = kept.units.get("pending", 0)
            if pending:
                warnings.append(
                    f"section {s.name} has {pending} pending request(s); they stay pending"
                )
            running = s.db.execute(
                "SELECT COUNT(*) FROM invocations WHERE status='running'"
            ).fetchone()[0]
            if running:
                warnings.append(
                    f"section {s.name} has an invocation marked running (still running or crashed)"
                )
            for ds, n in kept.tasks.items():
                merged.tasks[ds] = merged.tasks.get(ds, 0) + n
            for st, n in kept.units.items():
                merged.units[st] = merged.units.get(st, 0) + n
            section_info.append(
                {
                    "name": s.name,
                    "path": str(s.path),
                    "run_id": s.path.name,
                    **kept.as_dict(),
                    "dropped": dropped.as_dict(),
                    "invocations": {str(k): v for k, v in inv_map.items()},
                    "prompts_sha256": _sha_tree(s.path / "prompts"),
                    "config": f"config/sections/{s.name}.json",
                }
            )

    stages = sorted(set().union(*(s.stages for s in sections))) or ["plans"]
    write_outputs(ledger, rd, stages)

    # Prompts and config: from the first section; every section's config is kept.
    first = sections[0].path
    if (first / "prompts").is_dir():
        shutil.copytree(first / "prompts", rd.prompts, dirs_exist_ok=True)
    shas = {i["prompts_sha256"] for i in section_info}
    if len(shas) > 1:
        warnings.append(
            "sections used different prompt templates; prompts/ is the first section's "
            "(see prompts_sha256 in config/merge_manifest.json)"
        )
    first_cfg = RunDir(first).config_json
    if first_cfg.is_file():
        rd.config_json.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(first_cfg, rd.config_json)
    cfgs: dict[str, Any] = {}
    for s in sections:
        src = RunDir(s.path).config_json
        if src.is_file():
            dest = rd.root / "config" / "sections" / f"{s.name}.json"
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dest)
            try:
                cfgs[s.name] = _comparable_config(json.loads(src.read_text(encoding="utf-8")))
            except ValueError:
                pass
    if len({json.dumps(c, sort_keys=True) for c in cfgs.values()}) > 1:
        warnings.append(
            "section configs differ beyond their task lists (model, prompt or plans settings); "
            "see config/sections/"
        )
    atomic_write_jsonl(rd.root / "config" / ATTEMPT_MAP, copier.attempt_map)

    usage = ledger.usage_totals()
    settled, unsettled = ledger.spend()
    kept_usage = {k: sum(i["usage"][k] for i in section_info) for k in usage}
    kept_usd = sum(i["spent_usd"] for i in section_info)
    if kept_usage != usage or abs(kept_usd - settled - unsettled) > 1e-9 * max(1.0, kept_usd):
        raise BenchsmithError(  # pragma: no cover - a bug, never a user error
            f"merged totals {usage} / ${settled + unsettled} do not equal the sections' "
            f"{kept_usage} / ${kept_usd}; nothing was written"
        )
    totals = {**merged.as_dict(), "usage": usage, "spent_usd": settled + unsettled}
    report = {
        "output_run_id": output_run_id,
        "run_dir": str(parent / output_run_id),
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "prefer": list(prefer),
        "sections": section_info,
        "duplicates": dups,
        "totals": totals,
        "dropped_spent_usd": sum(i["dropped"]["spent_usd"] for i in section_info),
        "attempt_id_map": f"config/{ATTEMPT_MAP}",
        "warnings": warnings,
        "note": "config/run_config.json is the first section's config; every section's config "
        "is in config/sections/. Totals are what the kept tasks cost; duplicates left out "
        "are under sections[].dropped.",
    }
    atomic_write_json(rd.root / "config" / MERGE_MANIFEST, report)
    return report


def _comparable_config(cfg: dict[str, Any]) -> dict[str, Any]:
    """A section config without what legitimately differs between sections."""
    cfg = {k: v for k, v in cfg.items() if k not in ("datasets", "config_dir", "budget")}
    return cfg
