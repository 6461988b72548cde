"""`finetune build`: checked entries -> filters -> pairs -> grouped split -> one train and
one val file per format, plus `dataset_stats.json`, every file written atomically.

Layout: with one format, `<out>/train.jsonl` and `<out>/val.jsonl`; with several, one
sub-folder per format (`<out>/chatml/train.jsonl`, `<out>/dpo/val.jsonl`, ...).
`dataset_stats.json` is always `<out>/dataset_stats.json`. With `parquet`, a `.parquet`
copy of each file sits next to it. Rows are ordered by instance id, then pair type and
attempt (trainers shuffle).

A build first removes the files an earlier build listed in its `dataset_stats.json` (and
their parquet copies), then that file itself, and writes `dataset_stats.json` last: a folder
never mixes two builds' files, and one without `dataset_stats.json` holds an unfinished build.
"""

from __future__ import annotations

import importlib.util
import io
import json
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from benchsmith.errors import BenchsmithError, ConfigError
from benchsmith.finetune.filters import FilterOptions, apply_filters
from benchsmith.finetune.formats import FORMATS, ROW, takes
from benchsmith.finetune.pairs import PAIR_TYPES, Pair, make_pairs
from benchsmith.finetune.prompts import PromptBounds
from benchsmith.finetune.split import split_instances
from benchsmith.finetune.trajectories import Loaded
from benchsmith.store.rundir import atomic_write_bytes, atomic_write_json, atomic_write_jsonl

STATS_NAME = "dataset_stats.json"
PARQUET_HINT = "--parquet needs pyarrow: pip install 'benchsmith[parquet]'"

Progress = Callable[[int, int, str], None]  # (done, total, what is being done)


@dataclass(frozen=True)
class BuildOptions:
    formats: tuple[str, ...]
    val_fraction: float = 0.1
    seed: int = 42
    reflection: bool = True
    filters: FilterOptions = field(default_factory=FilterOptions)
    bounds: PromptBounds = field(default_factory=PromptBounds)
    parquet: bool = False


@dataclass(frozen=True)
class BuildReport:
    out_dir: Path
    stats: dict[str, Any]
    files: tuple[Path, ...]  # every file written, dataset_stats.json last


def check_options(o: BuildOptions) -> None:
    """A one-line error for an option no build could use."""
    if not o.formats:
        raise ConfigError("--format", "", f"give at least one of {', '.join(FORMATS)}")
    for f in o.formats:
        if f not in FORMATS:
            raise ConfigError("--format", "", f"unknown format {f!r}: use one of "
                              f"{', '.join(FORMATS)}")
    if not 0 <= o.val_fraction < 1:
        raise ConfigError("--val-fraction", "", f"{o.val_fraction} is outside [0, 1): give "
                          "the share of instances for val, e.g. 0.1")
    checks = {"--min-problem-words": o.filters.min_problem_words,
              "--max-patch-chars": o.filters.max_patch_chars,
              **{f"--{k.replace('_', '-')}": v for k, v in asdict(o.bounds).items()}}
    for flag, value in checks.items():
        least = 0 if flag == "--min-problem-words" else 1
        if value < least:
            raise ConfigError(flag, "", f"{value} is too small: give a number >= {least}")
    if o.parquet and importlib.util.find_spec("pyarrow") is None:
        raise BenchsmithError(PARQUET_HINT)
    if o.parquet:
        try:  # installed but broken (a missing shared library): refuse before writing
            import pyarrow.parquet  # noqa: F401
        except ImportError as e:
            why = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise BenchsmithError(f"--parquet: pyarrow is installed but does not load ({why}); "
                                  "reinstall it: pip install --force-reinstall "
                                  "'benchsmith[parquet]'") from None


def format_dir(out_dir: Path, fmt: str, formats: tuple[str, ...]) -> Path:
    return out_dir if len(formats) == 1 else out_dir / fmt


def _earlier_files(out_dir: Path) -> list[Path]:
    """The data files the build recorded in `out_dir/dataset_stats.json` wrote (none when
    there is no such file or it is not a build's)."""
    try:
        old = json.loads((out_dir / STATS_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    fmts = old.get("formats") if isinstance(old, dict) else None
    if not isinstance(fmts, dict):
        return []
    names = tuple(f for f in fmts if f in FORMATS)
    return [format_dir(out_dir, f, names) / f"{side}{ext}" for f in names
            for side in ("train", "val") for ext in (".jsonl", ".parquet")]


def _remove_earlier_build(out_dir: Path) -> None:
    """Remove an earlier build's files, `dataset_stats.json` last; its emptied format
    folders too."""
    files = _earlier_files(out_dir)
    for path in [*files, out_dir / STATS_NAME]:
        path.unlink(missing_ok=True)
    for folder in {p.parent for p in files} - {out_dir}:
        try:
            folder.rmdir()
        except OSError:
            pass  # not empty: holds files of the user's


def _parquet_bytes(rows: list[dict[str, Any]]) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    buf = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows), buf)
    return buf.getvalue()


def _write_format(fmt: str, pairs: tuple[Pair, ...], val_ids: frozenset[str], folder: Path,
                  parquet: bool) -> tuple[dict[str, Any], list[Path]]:
    make = ROW[fmt]
    sides: dict[str, list[dict[str, Any]]] = {"train": [], "val": []}
    for p in pairs:
        if takes(fmt, p):
            sides["val" if p.instance_id in val_ids else "train"].append(make(p))
    written, info = [], {}
    for side, rows in sides.items():
        path = folder / f"{side}.jsonl"
        atomic_write_jsonl(path, rows)
        written.append(path)
        info[side] = len(rows)
        info[f"{side}_file"] = str(path)
        if parquet:
            pq_path = path.with_suffix(".parquet")
            atomic_write_bytes(pq_path, _parquet_bytes(rows))
            written.append(pq_path)
    return info, written


def _side_counts(pairs: tuple[Pair, ...], ids: frozenset[str]) -> dict[str, int]:
    c = Counter(p.pair_type for p in pairs if p.instance_id in ids)
    return {t: c[t] for t in PAIR_TYPES}


def build(loaded: Loaded, options: BuildOptions, out_dir: Path,
          on_progress: Progress | None = None) -> BuildReport:
    """Write the dataset of `loaded` into `out_dir` (see the module docstring)."""
    check_options(options)
    total = 2 + len(options.formats)

    def step(done: int, what: str) -> None:
        if on_progress is not None:
            on_progress(done, total, what)

    entries = loaded.entries
    step(0, "filters")
    kept = apply_filters(entries, options.filters)
    step(1, "pairs")
    ps = make_pairs(kept.kept, options.bounds, options.reflection)
    split = split_instances({p.instance_id for p in ps.pairs}, options.val_fraction,
                            options.seed)
    _remove_earlier_build(out_dir)
    files: list[Path] = []
    per_format: dict[str, Any] = {}
    for i, fmt in enumerate(options.formats):
        step(2 + i, fmt)
        folder = format_dir(out_dir, fmt, options.formats)
        per_format[fmt], written = _write_format(fmt, ps.pairs, split.val, folder,
                                                 options.parquet)
        files.extend(written)
    resolved = [e for e in kept.kept if e.resolved]
    stats = {
        "entries": len(entries),
        "bad_lines_skipped": len(loaded.bad_lines),
        "sources": dict(sorted(Counter(e.source for e in entries).items())),
        "files": list(loaded.files),
        "instances": len({e.instance_id for e in entries}),
        "categorized": sum(e.category_inferred for e in entries),
        "filtered": len(entries) - len(kept.kept),
        "filter_reasons": kept.reasons,
        "after_filters": len(kept.kept),
        "resolved": len(resolved),
        "failed": len(kept.kept) - len(resolved),
        "instances_resolved": len({e.instance_id for e in resolved}),
        "category_counts": kept.categories,
        "pairs": ps.counts,
        "duplicate_positives_skipped": ps.duplicate_positives,
        "same_patch_skipped": ps.same_patch,
        "split": {"seed": options.seed, "val_fraction": options.val_fraction,
                  "train_instances": len(split.train), "val_instances": len(split.val),
                  "train_pairs": _side_counts(ps.pairs, split.train),
                  "val_pairs": _side_counts(ps.pairs, split.val)},
        "formats": per_format,
        "options": {"reflection": options.reflection, **asdict(options.filters),
                    **asdict(options.bounds), "parquet": options.parquet},
    }
    stats_path = out_dir / STATS_NAME
    atomic_write_json(stats_path, stats)
    files.append(stats_path)
    step(total, "done")
    return BuildReport(out_dir, stats, tuple(files))
