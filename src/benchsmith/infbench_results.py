"""Results files of prediction runs: `{results_dir}/{model}/T={t}/n={n}/{dataset_stem}.jsonl`,
one line per instance (instance_id, model_name, prompt, full_output, model_patch, cost,
response_time, status, error, plus patch_source and dropped_files).

A results file is only ever appended to: the ids it holds are not asked again, so a file a
user already has (from the original tool, with other fields, or cut short by a crash) is
continued. A line that is not a JSON object with an `instance_id` is kept as it is and its
instance asked again; a last line without its newline gets one before new lines follow.

Which units get a line: `ok` (answered), `invalid` (no patch after the re-asks, with
require_patch) and `skipped` (the prompt does not fit even without code files). Failed units
(HTTP errors after the retries) get none, so the next run asks them again.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson

from benchsmith.errors import ConfigError

FINAL_STATES = ("ok", "invalid", "skipped")
STAGE = "predict"


def number(x: float) -> str:
    """0.0 -> "0", 0.7 -> "0.7": folder names as the original tool writes them."""
    return str(int(x)) if float(x).is_integer() else repr(float(x))


def results_folder(results_dir: Path, model: str, temperature: float, n: int) -> Path:
    if any(part in ("", ".", "..") for part in model.split("/")):
        raise ConfigError("--model", repr(model), "is not usable as a folder name (no empty, "
                          "'.' or '..' parts)")
    return results_dir / model / f"T={number(temperature)}" / f"n={n}"


def read_results(path: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """(result rows, notes on lines that are not results) of a results file; [] if absent."""
    rows, notes = read_numbered(path)
    return [r for _n, r in rows], notes


def read_numbered(path: Path) -> tuple[list[tuple[int, dict[str, Any]]], list[str]]:
    """`read_results` with each row's line number."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return [], []
    except IsADirectoryError:
        raise ConfigError(str(path), "", "is a folder where a results file belongs: move it "
                          "away or choose another --results-dir") from None
    except OSError as e:
        raise ConfigError(str(path), "", f"cannot read: {e.strerror}") from None
    rows, notes = [], []
    lines = data.split(b"\n")
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = orjson.loads(line)
        except orjson.JSONDecodeError:
            row = None
        if isinstance(row, dict) and isinstance(row.get("instance_id"), str):
            rows.append((i, row))
        elif i == len(lines):
            notes.append(f"{path}:{i}: last line cut short (a crash?); kept as it is, its "
                         "instance is asked again")
        else:
            notes.append(f"{path}:{i}: not a result line (a JSON object with instance_id); "
                         "kept as it is")
    return rows, notes


def done_ids(path: Path) -> tuple[set[str], list[str]]:
    rows, notes = read_results(path)
    return {r["instance_id"] for r in rows}, notes


def append_lines(path: Path, rows: Iterable[dict[str, Any]]) -> int:
    """Append `rows` to `path` (created if absent), after a newline if its last line lacks
    one; existing bytes are never rewritten. Returns how many rows were written."""
    data = b"".join(orjson.dumps(r) + b"\n" for r in rows)
    if not data:
        return 0
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "ab") as fh:
        if fh.tell() > 0:
            with open(path, "rb") as rd:
                rd.seek(-1, os.SEEK_END)
                if rd.read(1) != b"\n":
                    data = b"\n" + data
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    return data.count(b"\n") - data.startswith(b"\n")


def _choices(records: list[dict[str, Any]], key: str, n: int) -> Any:
    values = [r.get(key) for r in records]
    if n == 1:
        return values[0] if values else ""
    return values


def result_lines(ledger: Any, dataset: str, model_name: str, n: int) -> list[dict[str, Any]]:
    """The results lines of one dataset of a prediction run (units in FINAL_STATES)."""
    units = [u for u in ledger.units(dataset=dataset, stage=STAGE, current_plan=True)
             if u.state in FINAL_STATES]
    attempts: dict[str, list[dict[str, Any]]] = {}
    for a in ledger.attempts(dataset=dataset, stage=STAGE, current_plan=True):
        attempts.setdefault(a["unit_id"], []).append(a)
    out = []
    for u in units:
        atts = attempts.get(u.unit_id, [])
        answered = [a for a in atts if a.get("raw_output") is not None]
        last = answered[-1] if answered else None
        recs = list(u.result or []) if u.state == "ok" else []
        meta = u.spec.get("meta") or {}
        full = (_choices(recs, "full_output", n) if recs
                else (last["raw_output"] if last else ("" if n == 1 else [])))
        out.append({
            "instance_id": u.task_id,
            "model_name": model_name,
            "prompt": u.spec["messages"][0]["content"],
            "full_output": full,
            "model_patch": _choices(recs, "model_patch", n) if recs else ("" if n == 1 else []),
            "cost": round(sum(a.get("cost_usd") or 0.0 for a in atts), 8),
            "response_time": last.get("latency_s") if last else None,
            "status": u.state,
            "error": u.reason if u.state != "ok" else None,
            "patch_source": _choices(recs, "patch_source", n) if recs else "none",
            "dropped_files": list(meta.get("dropped_files") or []),
        })
    return out
