"""`skyrl validate`: the problems of a SkyRL tool-use dataset file, parquet or JSON lines.

Per row: the columns data_source (string), prompt (a list of {role, content}, roles system,
user, assistant or tool, at least one user message), env_class (string or null) and
reward_spec (method rule or reward_model; ground_truth a JSON string holding a non-empty
tool_sequence of {server, tool, params} and success.must_call_tool); extra_info, when
present, a mapping whose limits/max_turns/index are whole numbers. In a JSONL file a
column keeps one type in every row (parquet guarantees it). With an inventory every plan
is checked as a generated one is (skyrl.plan.check_plan).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchsmith.skyrl.inventory import Inventory
from benchsmith.skyrl.plan import check_plan

REQUIRED = ("data_source", "prompt", "env_class", "reward_spec")
ROLES = ("system", "user", "assistant", "tool")
METHODS = ("rule", "reward_model")
MAX_REPORTED = 50


@dataclass(frozen=True)
class FileReport:
    path: Path
    rows: int
    problems: list[str] = field(default_factory=list)


def check_file(path: Path, inv: Inventory | None = None) -> FileReport:
    rows, problems = _read(path)
    types: dict[str, tuple[str, str]] = {}  # column -> (type name, first row label)
    for label, row in rows:
        problems.extend(f"{label}: {p}" for p in row_problems(row, inv))
        if isinstance(row, dict):
            for col, value in row.items():
                if value is None:
                    continue
                t = type(value).__name__
                first = types.setdefault(col, (t, label))
                if first[0] != t:
                    problems.append(f"{label}: column {col} is a {t} here but a {first[0]} in "
                                    f"{first[1]}; parquet needs one type per column")
    if not rows and not problems:
        problems.append("no rows")
    if len(problems) > MAX_REPORTED:
        problems = problems[:MAX_REPORTED] + [f"... and {len(problems) - MAX_REPORTED} more"]
    return FileReport(path, len(rows), [f"{path}: {p}" for p in problems])


def _read(path: Path) -> tuple[list[tuple[str, Any]], list[str]]:
    """(label, row) pairs and file-level problems."""
    if not path.is_file():
        return [], ["file not found"]
    if path.suffix == ".parquet":
        try:
            import pyarrow.parquet as pq

            table = pq.read_table(path)
        except ImportError:
            return [], ["reading parquet needs pyarrow: pip install 'benchsmith[parquet]'"]
        except Exception as e:  # pyarrow raises many types for a damaged file
            return [], [f"cannot read parquet: {str(e).splitlines()[0] if str(e) else e!r}"]
        return [(f"row {i}", r) for i, r in enumerate(table.to_pylist())], []
    if path.suffix not in (".jsonl", ".json"):
        return [], ["not a SkyRL dataset file: expected .parquet, .jsonl or .json"]
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        return [], [f"cannot read: {e}"]
    if text.lstrip().startswith("["):  # a .json array of rows
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            return [], [f"not valid JSON: {e.msg} at line {e.lineno}"]
        return [(f"row {i}", r) for i, r in enumerate(data)], []
    rows, problems = [], []
    if text.startswith("\ufeff"):  # rows are checked all the same
        problems.append("line 1: the file starts with a UTF-8 byte order mark, which JSON "
                        "readers may refuse; save it as UTF-8 without one")
        text = text[1:]
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            rows.append((f"line {n}", json.loads(line)))
        except json.JSONDecodeError as e:
            problems.append(f"line {n}: not valid JSON: {e.msg}")
    return rows, problems


def row_problems(row: Any, inv: Inventory | None = None) -> list[str]:
    if not isinstance(row, dict):
        return ["a row must be a JSON object"]
    missing = [c for c in REQUIRED if c not in row]
    if missing:
        return [f"missing column(s) {', '.join(missing)}"]
    problems: list[str] = []
    if not isinstance(row["data_source"], str) or not row["data_source"]:
        problems.append("data_source must be a non-empty string")
    problems.extend(_prompt_problems(row["prompt"]))
    if row["env_class"] is not None and not isinstance(row["env_class"], str):
        problems.append("env_class must be a string (or null for the config's env_class)")
    info = row.get("extra_info")
    if info is not None and not isinstance(info, dict):
        problems.append("extra_info must be a mapping")
        info = None
    problems.extend(_extra_info_problems(info or {}))
    spec = row["reward_spec"]
    if not isinstance(spec, dict):
        return problems + ["reward_spec must be a mapping {method, ground_truth, rubric}"]
    if spec.get("method") not in METHODS:
        problems.append(f"reward_spec.method is {spec.get('method')!r}; expected rule or "
                        "reward_model")
    if spec.get("rubric") is not None and not isinstance(spec["rubric"], str):
        problems.append("reward_spec.rubric must be a string")
    truth, why = _ground_truth(spec.get("ground_truth"))
    if truth is None:
        return problems + [f"reward_spec.ground_truth {why}"]
    if inv is not None:
        limits = (info or {}).get("limits")
        sample = {**truth, "limits": limits if isinstance(limits, dict) else None}
        problems.extend(f"reward_spec.ground_truth: {p}" for p in check_plan(inv, sample))
    return problems


def _prompt_problems(prompt: Any) -> list[str]:
    if not isinstance(prompt, list) or not prompt:
        return ["prompt must be a non-empty list of {role, content} messages"]
    problems = []
    for i, m in enumerate(prompt):
        if not isinstance(m, dict):
            problems.append(f"prompt[{i}] must be a {{role, content}} mapping")
            continue
        if m.get("role") not in ROLES:
            problems.append(f"prompt[{i}].role is {m.get('role')!r}; expected one of "
                            f"{', '.join(ROLES)}")
        if not isinstance(m.get("content"), str):
            problems.append(f"prompt[{i}].content must be a string")
    if not any(isinstance(m, dict) and m.get("role") == "user" for m in prompt):
        problems.append("prompt has no user message")
    return problems


def _extra_info_problems(info: dict[str, Any]) -> list[str]:
    problems = []
    limits = info.get("limits")
    if limits is not None:
        if not isinstance(limits, dict):
            problems.append("extra_info.limits must be a mapping {max_servers, max_tools}")
        else:
            problems.extend(f"extra_info.limits.{k} must be a whole number"
                            for k, v in limits.items() if v is not None and not _whole(v))
    problems.extend(f"extra_info.{k} must be a whole number" for k in ("max_turns", "index")
                    if info.get(k) is not None and not _whole(info[k]))
    for k in ("split", "complexity"):
        if info.get(k) is not None and not isinstance(info[k], str):
            problems.append(f"extra_info.{k} must be a string")
    return problems


def _whole(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _ground_truth(value: Any) -> tuple[dict[str, Any] | None, str]:
    """The parsed ground truth, or None and why it is not a tool plan."""
    if not isinstance(value, str):
        return None, (f"must be a JSON string (SkyRL envs json.loads it), got "
                      f"{type(value).__name__}")
    try:
        truth = json.loads(value)
    except json.JSONDecodeError as e:
        return None, f"is not valid JSON: {e.msg}"
    steps = truth.get("tool_sequence") if isinstance(truth, dict) else None
    if not isinstance(steps, list) or not steps:
        return None, "has no tool_sequence (a non-empty list of {step, server, tool, params})"
    for i, st in enumerate(steps):
        if (not isinstance(st, dict) or not isinstance(st.get("server"), str)
                or not isinstance(st.get("tool"), str) or not isinstance(st.get("params"), dict)):
            return None, (f"tool_sequence[{i}] must be {{step, server, tool, params}} with "
                          "params a mapping")
    success = truth.get("success")
    must = success.get("must_call_tool") if isinstance(success, dict) else None
    if not isinstance(must, list) or not all(isinstance(m, str) for m in must):
        return None, "needs success.must_call_tool: a list of server.tool names"
    return truth, ""
