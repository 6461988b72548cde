"""SkyRL dataset rows and files (train.parquet, validation.parquet, optional JSONL).

A row (wire-formats.md 5.1):
    data_source  string
    prompt       list<struct<role, content>>
    env_class    string
    reward_spec  struct<method "rule", ground_truth: JSON string {tool_sequence, success},
                        rubric>
    extra_info   struct<task_metadata struct<...>, limits struct<max_servers, max_tools>,
                        complexity, max_turns, domain, assumptions list<string>, split, index>
The parquet schema is fixed (ROW_FIELDS): every row has the same column types, a missing
value is null. Columns a row brings beyond these (retrofit input rows may have some, at the
top level or in extra_info) keep the type pyarrow infers over all rows of both files.
ground_truth is a JSON string because SkyRL's envs `json.loads` structured ground truth.
"""

from __future__ import annotations

import copy
import io
import json
import random
from pathlib import Path
from typing import Any

from benchsmith.errors import BenchsmithError
from benchsmith.store.rundir import atomic_write_bytes, atomic_write_jsonl

# Field types: "string", "int", ["list", item], {"struct": {name: type}}.
MESSAGE = {"struct": {"role": "string", "content": "string"}}
TASK_METADATA = {"struct": {
    "mode": "string",            # synth | retrofit
    "model": "string",
    "reasoning_effort": "string",
    "timestamp": "string",       # ISO 8601, UTC
    "seed": "int",
    "reasoning_tokens": "int",   # null when the endpoint did not report them
    "run_id": "string",
    "request_id": "string",      # the raw answer in the run ledger / raw_llm/<run_id>.jsonl.gz
    "other": "string",           # any other meta keys, as a JSON object string (or null)
}}
LIMITS = {"struct": {"max_servers": "int", "max_tools": "int"}}
EXTRA_INFO = {"struct": {
    "task_metadata": TASK_METADATA, "limits": LIMITS, "complexity": "string",
    "max_turns": "int", "domain": "string", "assumptions": ["list", "string"],
    "split": "string", "index": "int",
}}
REWARD_SPEC = {"struct": {"method": "string", "ground_truth": "string", "rubric": "string"}}
ROW_FIELDS: dict[str, Any] = {
    "data_source": "string", "prompt": ["list", MESSAGE], "env_class": "string",
    "reward_spec": REWARD_SPEC, "extra_info": EXTRA_INFO,
}
SPLITS = ("train", "validation")


def ground_truth(sample: dict[str, Any]) -> str:
    """The reward_spec.ground_truth string: {tool_sequence: [{step, server, tool, params}],
    success: {must_call_tool: [server.tool, ...]}}."""
    return json.dumps({"tool_sequence": sample["tool_sequence"],
                       "success": sample.get("success") or {"must_call_tool": []}},
                      ensure_ascii=False)


def skyrl_row(sample: dict[str, Any], *, data_source: str, env_class: str, index: int,
              split: str, meta: dict[str, Any]) -> dict[str, Any]:
    """A normalized sample (normalize_sample, or a retrofit sample with its original `prompt`)
    as one SkyRL row. `meta` keys outside TASK_METADATA go to task_metadata.other."""
    known = TASK_METADATA["struct"]
    task_meta = {k: meta.get(k) for k in known if k != "other"}
    other = {k: v for k, v in meta.items() if k not in known}
    task_meta["other"] = json.dumps(other, sort_keys=True, default=str) if other else None
    prompt = copy.deepcopy(sample.get("prompt"))  # rows never share a list with the sample
    if prompt is None:
        system, user = sample.get("system_prompt"), sample.get("user_prompt", "")
        prompt = ([{"role": "system", "content": system}] if system else []) + [
            {"role": "user", "content": user}]
    limits = sample.get("limits") or {}
    return {
        "data_source": data_source,
        "prompt": prompt,
        "env_class": env_class,
        "reward_spec": {"method": "rule", "ground_truth": ground_truth(sample),
                        "rubric": sample.get("rubric")},
        "extra_info": {
            "task_metadata": task_meta,
            "limits": {"max_servers": limits.get("max_servers"),
                       "max_tools": limits.get("max_tools")},
            "complexity": sample.get("complexity"),
            "max_turns": sample.get("max_turns"),
            "domain": sample.get("domain"),
            "assumptions": list(sample.get("assumptions") or []),
            "split": split,
            "index": index,
        },
    }


def split_rows(rows: list[Any], val_fraction: float,
               seed: int) -> tuple[list[Any], list[Any]]:
    """(train, validation): round(n * val_fraction) rows drawn with random.Random(seed) go to
    validation (at most n - 1, and at least 1 when the fraction is above 0 and n >= 2); both
    keep the input order. A row with an `extra_info` mapping gets its `split` and `index`
    (0.. within its split, as SkyRL's example builders number them) set on a copy."""
    if not 0 <= val_fraction < 1:
        raise ValueError(f"val_fraction {val_fraction} must be in [0, 1)")
    n = len(rows)
    k = min(int(n * val_fraction + 0.5), max(n - 1, 0))  # train is never empty
    if val_fraction > 0 and n >= 2:
        k = max(k, 1)
    chosen = set(random.Random(seed).sample(range(n), k))
    train = [r for i, r in enumerate(rows) if i not in chosen]
    val = [r for i, r in enumerate(rows) if i in chosen]
    return _numbered(train, "train"), _numbered(val, "validation")


def _numbered(rows: list[Any], split: str) -> list[Any]:
    out = []
    for i, r in enumerate(rows):
        if isinstance(r, dict) and isinstance(r.get("extra_info"), dict):
            r = {**r, "extra_info": {**r["extra_info"], "split": split, "index": i}}
        out.append(r)
    return out


def write_dataset(train: list[dict[str, Any]], val: list[dict[str, Any]], out_dir: Path, *,
                  jsonl: bool) -> list[Path]:
    """Write train.parquet and validation.parquet (+ .jsonl), each atomically, with one
    schema for both; returns the paths written. A row that does not fit the schema is a
    one-line error naming the split, the row and the field, and nothing is written."""
    pa, pq = _pyarrow()
    schema = dataset_schema(train + val)
    tables = []
    for split, rows in zip(SPLITS, (train, val)):
        for i, row in enumerate(rows):
            why = _misfit(row, {"struct": _fields(schema)}, "")
            if why is not None:
                raise BenchsmithError(f"{split} row {i}: {why}")
        tables.append(pa.Table.from_pylist(rows, schema=schema))
    paths: list[Path] = []
    for split, rows, table in zip(SPLITS, (train, val), tables):
        buf = io.BytesIO()
        pq.write_table(table, buf)
        atomic_write_bytes(out_dir / f"{split}.parquet", buf.getvalue())
        paths.append(out_dir / f"{split}.parquet")
        if jsonl:
            atomic_write_jsonl(out_dir / f"{split}.jsonl", rows)
            paths.append(out_dir / f"{split}.jsonl")
    return paths


def dataset_schema(rows: list[dict[str, Any]]) -> Any:
    """ROW_FIELDS as a pyarrow schema, plus any extra columns (top level or in extra_info)
    with the type pyarrow infers from all their values."""
    pa, _ = _pyarrow()
    fields = dict(ROW_FIELDS)
    extra_info = dict(EXTRA_INFO["struct"])
    for row in rows:
        for k in row:
            fields.setdefault(k, None)
        info = row.get("extra_info")
        if isinstance(info, dict):
            for k in info:
                extra_info.setdefault(k, None)

    def resolve(t: Any, values: Any, name: str) -> Any:
        if t is not None:
            return t
        try:
            return {"arrow": pa.array(list(values)).type}
        except (pa.ArrowInvalid, pa.ArrowTypeError) as e:
            raise BenchsmithError(f"column {name}: its values do not share one type ({e}); "
                                  "make them the same type in every row") from None

    infos = [r["extra_info"] for r in rows if isinstance(r.get("extra_info"), dict)]
    extra_info = {k: resolve(t, (i.get(k) for i in infos), f"extra_info.{k}")
                  for k, t in extra_info.items()}
    fields = {k: resolve(t, (r.get(k) for r in rows), k) for k, t in fields.items()}
    fields["extra_info"] = {"struct": extra_info}
    return pa.schema([(k, _arrow(pa, t)) for k, t in fields.items()])


def input_columns_problem(rows: list[dict[str, Any]]) -> tuple[int | None, str] | None:
    """Whether retrofit input rows can become output rows, checked before anything is sent:
    (row index or None for a whole column, why) or None. data_source / env_class must be
    strings, extra_info a mapping, and the columns the rows bring beyond the SkyRL ones (at
    the top level or in extra_info) one type each."""
    reduced = []
    for i, row in enumerate(rows):
        for col in ("data_source", "env_class"):
            if row.get(col) is not None and not isinstance(row[col], str):
                return i, f"{col}: expected a string, got {type(row[col]).__name__}"
        info = row.get("extra_info")
        if info is not None and not isinstance(info, dict):
            return i, f"extra_info: expected a mapping, got {type(info).__name__}"
        extra = {k: v for k, v in row.items() if k not in ROW_FIELDS}
        extra["extra_info"] = {k: v for k, v in (info or {}).items()
                               if k not in EXTRA_INFO["struct"]}
        reduced.append(extra)
    try:
        schema = dataset_schema(reduced)
    except BenchsmithError as e:
        return None, str(e)
    fields = {"struct": _fields(schema)}
    for i, row in enumerate(reduced):
        why = _misfit(row, fields, "")
        if why is not None:
            return i, why
    return None


def _arrow(pa: Any, t: Any) -> Any:
    if t == "string":
        return pa.string()
    if t == "int":
        return pa.int64()
    if isinstance(t, list):
        return pa.list_(_arrow(pa, t[1]))
    if "arrow" in t:
        return t["arrow"]
    return pa.struct([(k, _arrow(pa, v)) for k, v in t["struct"].items()])


def _fields(schema: Any) -> dict[str, Any]:
    """A pyarrow schema back as field types, so rows are checked field by field."""
    import pyarrow as pa

    def back(t: Any) -> Any:
        if pa.types.is_string(t):
            return "string"
        if pa.types.is_int64(t):
            return "int"
        if pa.types.is_list(t):
            return ["list", back(t.value_type)]
        if pa.types.is_struct(t):
            return {"struct": {f.name: back(f.type) for f in t}}
        return {"arrow": t}

    return {f.name: back(f.type) for f in schema}


def _misfit(value: Any, t: Any, path: str) -> str | None:
    """Why `value` does not fit field type `t`, or None. Checked before pyarrow converts,
    which would silently drop unknown keys and truncate 1.5 to 1."""
    if value is None or (isinstance(t, dict) and "arrow" in t):
        return None
    if t == "string":
        ok, want = isinstance(value, str), "a string"
    elif t == "int":
        ok, want = isinstance(value, int) and not isinstance(value, bool), "a whole number"
    elif isinstance(t, list):
        ok, want = isinstance(value, list), "a list"
    else:
        ok, want = isinstance(value, dict), "a mapping"
    if not ok:
        return (f"{path}: expected {want}, got {type(value).__name__} "
                f"{json.dumps(value, default=str)[:60]}")
    if isinstance(t, list):
        for i, v in enumerate(value):
            if (why := _misfit(v, t[1], f"{path}[{i}]")) is not None:
                return why
    elif isinstance(t, dict):
        for k, v in value.items():
            sub = f"{path}.{k}" if path else k
            if k not in t["struct"]:
                return f"{sub}: not a field of the SkyRL row ({', '.join(t['struct'])})"
            if (why := _misfit(v, t["struct"][k], sub)) is not None:
                return why
    return None


def validate_file(path: Path, inv: Any = None) -> list[str]:
    """Problems of a SkyRL dataset file (.parquet, .jsonl or .json) against the row format,
    and with an Inventory, of every plan against it (see skyrl.check)."""
    from benchsmith.skyrl.check import check_file

    return check_file(path, inv).problems


def _pyarrow() -> tuple[Any, Any]:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise BenchsmithError("writing parquet needs pyarrow: pip install "
                              "'benchsmith[parquet]'") from None
    return pa, pq
