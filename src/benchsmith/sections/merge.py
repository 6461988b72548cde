"""merge-sections: build one new run from the ledgers of approved section runs.

`merge_sections` builds a new run directory from the ledgers of approved section runs: tasks,
units (states, results), invocations and attempts are copied into a fresh `ledger.sqlite`
(invocation and attempt ids renumbered), and every derived file is regenerated from it with
`write_outputs`, so the merged run has the same layout as any run and totals that add up.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchsmith.errors import BenchsmithError, ConfigError
from benchsmith.export.jsonl import write_outputs
from benchsmith.sections.copier import Copier, Section, Tally, load_section
from benchsmith.sections.names import NAME_RE, check_run_id
from benchsmith.store.ledger import Ledger
from benchsmith.store.rundir import RunDir, atomic_write_json, atomic_write_jsonl

MERGE_MANIFEST = "merge_manifest.json"
ATTEMPT_MAP = "merge_attempt_ids.jsonl"


@dataclass(frozen=True)
class MergeReport:
    """What `merge_sections` wrote."""

    run_dir: Path
    sections: list[dict[str, Any]]
    duplicates: int
    dropped_usd: float
    totals: dict[str, Any]
    warnings: list[str]

    @property
    def manifest_path(self) -> Path:
        """config/merge_manifest.json of the merged run."""
        return RunDir(self.run_dir).config_json.parent / MERGE_MANIFEST


def parse_section_arg(text: str) -> tuple[str, Path]:
    """`name=path` -> (name, path)."""
    name, sep, path = text.partition("=")
    name = name.strip()
    if not sep or not name or not path.strip():
        raise ConfigError(
            "command line", "--section-run", f"{text!r}: expected NAME=RUN_DIR, e.g. s1=runs/R1"
        )
    if not NAME_RE.match(name):
        raise ConfigError(
            "command line", "--section-run",
            f"{text!r}: section name {name!r} must be letters, digits, - or _",
        )
    return name, Path(path.strip())


def _owners(
    sections: list[Section], prefer: Sequence[str]
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
    check_run_id(output_run_id, "--output-run-id")
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
    opened: list[Section] = []
    try:
        rd = RunDir(tmp_root)
        ledger = Ledger(rd.ledger)
        try:
            for n, p in zip(names, paths):
                opened.append(load_section(n, p))
            report = _merge_into(ledger, rd, opened, prefer, output_run_id, parent)
        finally:
            ledger.close()
            for s in opened:
                s.db.close()
        for suffix in ("-wal", "-shm"):
            rd.ledger.with_name(rd.ledger.name + suffix).unlink(missing_ok=True)
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


def _write_files(ledger: Ledger, rd: RunDir, sections: list[Section], warnings: list[str]) -> None:
    """The merged run's files, as its recipe (the first section's) writes them; without a
    recipe, the shared files of the sections' stages."""
    from benchsmith.export.run_files import write_run_files
    from benchsmith.recipe_of import recipe_of_run

    first = sections[0].path
    try:
        recipe = recipe_of_run(first, RunDir(first).config_json)
    except ConfigError as e:
        warnings.append(f"only the shared files were written: {e}")
        write_outputs(ledger, rd, sorted(set().union(*(s.stages for s in sections))))
        return
    write_run_files(ledger, rd, recipe)


def _merge_into(
    ledger: Ledger, rd: RunDir, sections: list[Section], prefer: Sequence[str],
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
    copier = Copier(ledger.db, owner)
    section_info: list[dict[str, Any]] = []
    merged = Tally()
    with ledger.tx():
        meta: dict[str, str] = {}
        for s in sections:
            for k, v in s.meta.items():
                meta.setdefault(k, v)
        meta["merged_from"] = json.dumps([{"name": s.name, "path": str(s.path)} for s in sections])
        for k, v in meta.items():
            ledger.set_meta(k, v)
        for s in sections:
            kept, dropped, inv_map = copier.copy(s)
            pending = kept.units.get("pending", 0)
            if pending:
                warnings.append(
                    f"section {s.name} has {pending} pending request(s); they stay pending"
                )
            if s.old_units:
                warnings.append(
                    f"section {s.name} was replanned: {len(s.old_units)} request(s) of its "
                    "superseded plans left out (their cost is under sections[].dropped)"
                )
            if s.running_invocations():
                warnings.append(
                    f"section {s.name} has an interrupted invocation (marked running, no "
                    "process holds the run)"
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
                    "prompts_sha256": _sha_tree(RunDir(s.path).prompts),
                    "config": f"config/sections/{s.name}.json",
                }
            )

    _write_files(ledger, rd, sections, warnings)
    warnings += _copy_prompts_and_configs(rd, sections, section_info)
    config_dir = rd.config_json.parent
    atomic_write_jsonl(config_dir / ATTEMPT_MAP, copier.attempt_map)

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
    atomic_write_json(config_dir / MERGE_MANIFEST, report)
    return report


def _copy_prompts_and_configs(
    rd: RunDir, sections: list[Section], section_info: list[dict[str, Any]]
) -> list[str]:
    """prompts/ and config/run_config.json from the first section, every section's config in
    config/sections/; warnings where the sections' prompts or configs differ."""
    warnings: list[str] = []
    first = RunDir(sections[0].path)
    if first.prompts.is_dir():
        shutil.copytree(first.prompts, rd.prompts, dirs_exist_ok=True)
    shas = {i["prompts_sha256"] for i in section_info}
    if len(shas) > 1:
        warnings.append(
            "sections used different prompt templates; prompts/ is the first section's "
            "(see prompts_sha256 in config/merge_manifest.json)"
        )
    first_cfg = first.config_json
    if first_cfg.is_file():
        rd.config_json.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(first_cfg, rd.config_json)
    cfgs: dict[str, Any] = {}
    for s in sections:
        src = RunDir(s.path).config_json
        if src.is_file():
            dest = rd.config_json.parent / "sections" / f"{s.name}.json"
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
    return warnings


def _comparable_config(cfg: dict[str, Any]) -> dict[str, Any]:
    """A section config without what legitimately differs between sections."""
    cfg = {k: v for k, v in cfg.items() if k not in ("datasets", "config_dir", "budget")}
    return cfg
