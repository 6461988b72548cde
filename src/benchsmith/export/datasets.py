"""`export`: a run's datasets as files users load with `datasets`: JSONL, parquet, or a
`datasets.DatasetDict` saved with `save_to_disk`, each with a dataset card (README.md).

Tables: one per dataset of the run (its records, as `api.read_records` gives them), then the
recipe's own (`Recipe.export_tables`, e.g. a rollout's predictions). Table names are the
dataset names with `-` as `_` (a `datasets` split name allows no `-`).

Column types (parquet and hf), decided per field over every row of a table so each row has
the same types: all bool -> bool; all int -> int64; int and float -> float64; all str ->
string; lists of str / int / numbers -> list of that; every other shape (objects, nested or
mixed values) -> string holding the value's JSON. A field missing from a row is null. JSONL
rows are the records as they are.

Reads the ledger read-only (works on a live run: the export shows what is committed).
"""

from __future__ import annotations

import io
import os
import shutil
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from benchsmith.errors import BenchsmithError, ConfigError
from benchsmith.export.card import CARD, MARKER, card_text, run_summary
from benchsmith.export.jsonl import record_rows
from benchsmith.recipe_of import recipe_of_run
from benchsmith.store.io_errors import reading_ledger
from benchsmith.store.leak_rows import leaking_tasks
from benchsmith.store.rundir import atomic_write_bytes, atomic_write_jsonl, open_existing_run

FORMATS = ("jsonl", "parquet", "hf")
HF_INSTALL = "pip install 'benchsmith[hf]'"
_INT64 = (-(2**63), 2**63 - 1)


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # bool, int64, float64, string, list<string>, list<int64>, list<float64>, json


@dataclass(frozen=True)
class Table:
    name: str
    source: str  # "dataset <name>, stage <stage>" or "recipe <name>"
    rows: list[dict[str, Any]]
    columns: tuple[Column, ...]


@dataclass(frozen=True)
class ExportReport:
    out: Path
    format: str
    tables: tuple[tuple[str, int], ...]  # (name, rows)
    files: tuple[Path, ...]


def export_run(run_dir: str | Path, fmt: str, out: str | Path | None = None) -> ExportReport:
    """Write every table of the run at `run_dir` in `fmt` to `out` (default
    `<run_dir>/export/<fmt>/`), with its dataset card."""
    if fmt not in FORMATS:
        raise ConfigError("command line", "--format", f"must be one of {', '.join(FORMATS)}")
    if fmt == "hf":
        _require_datasets()
    rd, ledger = open_existing_run(run_dir)
    try:
        with reading_ledger(rd.ledger):
            recipe = recipe_of_run(rd.root)
            stage = recipe.primary_stage
            leaking = leaking_tasks(ledger.db)
            raw: list[tuple[str, str, list[dict[str, Any]]]] = [
                (ds, f"dataset {ds}, stage {stage}", list(record_rows(ledger, ds, stage, leaking)))
                for ds in ledger.datasets()
            ]
            if recipe.export_tables is not None:
                for name, rows in recipe.export_tables(ledger).items():
                    raw.append((name, f"recipe {recipe.name}", list(rows)))
            summary = run_summary(rd, ledger, recipe, stage)
    finally:
        ledger.close()
    tables = _tables(raw)
    if not any(t.rows for t in tables):
        raise ConfigError(str(rd.root), "", "the run has no records yet; nothing to export "
                          "(run or resume it first)")
    dest = Path(out) if out is not None else rd.root / "export" / fmt
    _check_dest(dest, rd.root)
    written = [t for t in tables if t.rows]  # a table without rows has no schema to write
    card = card_text(summary, fmt, tables)
    if fmt == "hf":
        files = _write_hf(dest, written, card)
    else:
        files = _write_files(dest, fmt, written, card)
    return ExportReport(dest, fmt, tuple((t.name, len(t.rows)) for t in written), tuple(files))


def _require_datasets() -> None:
    try:
        import datasets  # noqa: F401
    except ImportError:
        raise BenchsmithError(f"--format hf needs the datasets package: {HF_INSTALL}") from None


def _tables(raw: list[tuple[str, str, list[dict[str, Any]]]]) -> list[Table]:
    out: list[Table] = []
    seen: set[str] = set()
    for name, source, rows in raw:
        base = name.replace("-", "_")
        tname, k = base, 2
        while tname in seen:  # `a-b` and `a_b`, or a dataset named like a recipe table
            tname, k = f"{base}_{k}", k + 1
        seen.add(tname)
        out.append(Table(tname, source, rows, columns_of(rows)))
    return out


# --------------------------------------------------------------------------- column types


def _kind(v: Any) -> str:
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int64" if _INT64[0] <= v <= _INT64[1] else "json"
    if isinstance(v, float):
        return "float64"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        inner = {_kind(x) for x in v}
        if not inner:
            return "list<>"
        if inner == {"int64", "float64"}:
            return "list<float64>"
        if len(inner) == 1 and (k := inner.pop()) in ("string", "int64", "float64"):
            return f"list<{k}>"
    return "json"


def _merge(a: str, b: str) -> str:
    if a == b:
        return a
    if {a, b} == {"int64", "float64"}:
        return "float64"
    if a.startswith("list<") and b.startswith("list<"):
        if a == "list<>":
            return b
        if b == "list<>":
            return a
        if {a, b} == {"list<int64>", "list<float64>"}:
            return "list<float64>"
    return "json"


def columns_of(rows: Iterable[dict[str, Any]]) -> tuple[Column, ...]:
    """One type per field over every row (null values say nothing); order: first seen."""
    types: dict[str, str | None] = {}
    for r in rows:
        for k, v in r.items():
            t = types.get(k)
            if v is None:
                types.setdefault(k, None)
                continue
            kv = _kind(v)
            types[k] = kv if t is None else _merge(t, kv)
    cols = []
    for k, t in types.items():
        if t is None:
            t = "string"  # every value null
        elif t == "list<>":
            t = "list<string>"  # every list empty
        cols.append(Column(k, t))
    return tuple(cols)


def arrow_table(table: Table) -> Any:
    import pyarrow as pa

    types = {"bool": pa.bool_(), "int64": pa.int64(), "float64": pa.float64(),
             "string": pa.string(), "json": pa.string(), "list<string>": pa.list_(pa.string()),
             "list<int64>": pa.list_(pa.int64()), "list<float64>": pa.list_(pa.float64())}
    arrays, fields = [], []
    for c in table.columns:
        values = [r.get(c.name) for r in table.rows]
        if c.type == "json":
            values = [None if v is None else orjson.dumps(v).decode() for v in values]
        elif c.type in ("float64", "list<float64>"):
            values = [_floats(v) for v in values]
        fields.append(pa.field(c.name, types[c.type]))
        arrays.append(pa.array(values, type=types[c.type]))
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


def _floats(v: Any) -> Any:
    if isinstance(v, list):
        return [float(x) for x in v]
    return None if v is None else float(v)


# --------------------------------------------------------------------------- writing


def _check_dest(dest: Path, run_root: Path) -> None:
    """An existing folder is replaced only if a previous export made it (or it is empty)."""
    if dest.resolve() == run_root.resolve():
        raise ConfigError(str(dest), "--out", "must not be the run directory itself")
    if dest.exists() and not dest.is_dir():
        raise ConfigError(str(dest), "--out", "exists and is not a folder; choose another")
    if dest.is_dir() and any(dest.iterdir()):
        card = dest / CARD
        try:
            ours = card.is_file() and MARKER in card.read_text(encoding="utf-8", errors="replace")
        except OSError:
            ours = False
        if not ours:
            raise ConfigError(str(dest), "--out", "is a folder that holds other files (no "
                              f"benchsmith {CARD}); choose an empty or new folder")


def _write_files(dest: Path, fmt: str, tables: list[Table], card: str) -> list[Path]:
    import pyarrow.parquet as pq

    files = []
    for t in tables:
        path = dest / f"{t.name}.{fmt}"
        if fmt == "jsonl":
            atomic_write_jsonl(path, t.rows)
        else:
            buf = io.BytesIO()
            pq.write_table(arrow_table(t), buf)
            atomic_write_bytes(path, buf.getvalue())
        files.append(path)
    keep = {p.name for p in files} | {CARD}
    for p in dest.iterdir():  # tables a previous export had (a dataset replanned away)
        if p.is_file() and p.suffix == f".{fmt}" and p.name not in keep:
            p.unlink()
    atomic_write_bytes(dest / CARD, card.encode("utf-8"))
    return [*files, dest / CARD]


def _write_hf(dest: Path, tables: list[Table], card: str) -> list[Path]:
    """A DatasetDict, one split per table, built in a temp folder beside `dest`, then
    renamed into place (a previous export is moved aside first, then removed)."""
    import datasets

    datasets.disable_progress_bars()  # the command prints its own summary
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp"))
    old = None
    try:
        dd = datasets.DatasetDict({t.name: datasets.Dataset(arrow_table(t)) for t in tables})
        dd.save_to_disk(str(tmp))
        atomic_write_bytes(tmp / CARD, card.encode("utf-8"))
        if dest.exists():
            old = dest.with_name(f".{dest.name}.{os.getpid()}.old")
            os.replace(dest, old)
        os.replace(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None and not dest.exists():
            os.replace(old, dest)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return [dest / "dataset_dict.json", dest / CARD]
