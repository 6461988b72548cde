"""Read raw rows from a local file (.jsonl, .jsonl.gz, .parquet) or a Hugging Face dataset."""

from __future__ import annotations

import gzip
import importlib.util
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from benchsmith.errors import BenchsmithError, ConfigError


def iter_file(path: Path, field: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield (line number, row) from a .jsonl, .jsonl.gz or .parquet file."""
    if not path.is_file():
        raise ConfigError(str(path), f"{field}.path", "file not found")
    if path.suffix == ".parquet":
        yield from _iter_parquet(path, field)
        return
    opener = gzip.open if path.name.endswith(".gz") else open
    try:
        with opener(path, "rt", encoding="utf-8-sig") as fh:  # a BOM is skipped
            for n, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as e:
                    raise ConfigError(str(path), f"line {n}", f"not valid JSON: {e.msg}") from None
                if not isinstance(row, dict):
                    raise ConfigError(str(path), f"line {n}", "each line must be a JSON object")
                yield n, row
    except (OSError, EOFError, UnicodeDecodeError) as e:
        raise ConfigError(str(path), f"{field}.path", f"cannot read: {e}") from None


def _iter_parquet(path: Path, field: str) -> Iterator[tuple[int, dict[str, Any]]]:
    if importlib.util.find_spec("pyarrow") is None:
        raise ConfigError(str(path), f"{field}.path", "reading parquet needs pyarrow: pip install pyarrow")
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as e:  # pyarrow raises many types for a bad file
        raise ConfigError(str(path), f"{field}.path", f"cannot read parquet: {e}") from None
    for n, row in enumerate(table.to_pylist(), 1):
        yield n, row


def iter_hf(name: str, split: str, field: str) -> Iterator[tuple[int, dict[str, Any]]]:
    if importlib.util.find_spec("datasets") is None:
        raise ConfigError(
            "config", f"{field}.hf_name", "needs the datasets library: pip install datasets "
            "(or download the data and set `path`)"
        )
    import datasets

    try:
        ds = datasets.load_dataset(name, split=split)
    except Exception as e:  # network, auth, unknown name
        raise BenchsmithError(f"{field}.hf_name: cannot load {name!r} split {split!r}: {e}") from None
    for n, row in enumerate(ds, 1):
        yield n, dict(row)
