"""Retrofit input rows (SkyRL format, at least `prompt`): their prompt, whether they hold a
plan already, and the prepared tasks file a run reads them from.

A row has a plan when `reward_spec.ground_truth` (a JSON string or an object) holds a
non-empty `tool_sequence` (or is itself a non-empty list of steps). `prompt` is a list of
{role, content} messages, or a string (one user message); either way it is kept byte for
byte: retrofit never rewrites a prompt.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from benchsmith.errors import ConfigError
from benchsmith.skyrl.check import ROLES as PROMPT_ROLES  # what `skyrl validate` accepts

# The prepared file's fields (source jsonl): fields {id: task_id, primary: prompt_text,
# context: [row, line]}.
ID_FIELD, PRIMARY_FIELD = "task_id", "prompt_text"
CONTEXT_FIELDS = ("row", "line")


def prompt_messages(prompt: Any) -> list[dict[str, Any]] | None:
    """The row's prompt as messages (a string is one user message), or None if it is
    neither a string nor a list of {role, content} mappings with string content."""
    if isinstance(prompt, str):
        return [{"role": "user", "content": prompt}]
    if not isinstance(prompt, list) or not prompt:
        return None
    for m in prompt:
        if not (isinstance(m, dict) and set(m) == {"role", "content"}
                and isinstance(m["role"], str) and isinstance(m["content"], str)):
            return None
    return prompt


def ground_truth_of(row: dict[str, Any]) -> Any:
    spec = row.get("reward_spec")
    gt = spec.get("ground_truth") if isinstance(spec, dict) else None
    if isinstance(gt, str):
        try:
            return json.loads(gt)
        except json.JSONDecodeError:
            return None
    return gt


def has_plan(row: dict[str, Any]) -> bool:
    gt = ground_truth_of(row)
    steps = gt.get("tool_sequence") if isinstance(gt, dict) else gt
    return isinstance(steps, list) and bool(steps)


def prepared_rows(rows: Iterable[tuple[int, dict[str, Any]]], where: str,
                  limit: int | None = None) -> list[dict[str, Any]]:
    """The tasks file of a retrofit run: one line per input row (up to `limit`), numbered by
    its line; a row without a usable prompt is a one-line error naming it."""
    out: list[dict[str, Any]] = []
    for line, row in rows:
        if limit is not None and len(out) >= limit:
            break
        messages = prompt_messages(row.get("prompt"))
        if messages is None:
            raise ConfigError(where, f"line {line}", "`prompt` must be a list of messages "
                              "{role, content} (strings, no other keys), or one string")
        odd = [m["role"] for m in messages if m["role"] not in PROMPT_ROLES]
        if odd:
            raise ConfigError(where, f"line {line}", f"`prompt` has role {odd[0]!r}; a SkyRL "
                              f"prompt's roles are {', '.join(PROMPT_ROLES)}")
        if not any(m["role"] == "user" for m in messages):
            raise ConfigError(where, f"line {line}", "`prompt` has no user message; add the "
                              "user's request as {role: user, content: ...}")
        text = "\n\n".join(m["content"] for m in messages if m["role"] == "user")
        out.append({ID_FIELD: f"row-{line:07d}", PRIMARY_FIELD: text, "row": row,
                    "line": line})
    from benchsmith.skyrl.dataset import input_columns_problem

    bad = input_columns_problem([r["row"] for r in out])
    if bad is not None:
        i, why = bad
        if i is None:
            raise ConfigError(where, "--input", why)
        raise ConfigError(where, f"line {out[i]['line']}", f"{why} (a SkyRL column has one "
                          "type in every row)")
    if not out:
        if limit == 0:
            raise ConfigError("command line", "--limit", "0 leaves no rows to retrofit; give "
                              "at least 1 (or leave it out for every row)")
        raise ConfigError(where, "--input", "no rows to retrofit")
    return out


def copied_row(row: dict[str, Any], data_source: str, env_class: str) -> dict[str, Any]:
    """A row that keeps its plan, as written to the output: as it came, but for what the
    dataset's fixed column types need: a string prompt becomes its one user message, a
    ground_truth object its JSON string, and reward_spec keeps method, ground_truth and a
    string rubric. A row without data_source / env_class gets the run's (as an asked row)."""
    out = dict(row)
    out["data_source"] = row.get("data_source") or data_source
    out["env_class"] = row.get("env_class") or env_class
    out["prompt"] = prompt_messages(row.get("prompt"))
    spec = row["reward_spec"]
    gt = spec["ground_truth"]
    rubric = spec.get("rubric")
    out["reward_spec"] = {
        "method": str(spec.get("method") or "rule"),
        "ground_truth": gt if isinstance(gt, str) else json.dumps(gt, ensure_ascii=False),
        "rubric": rubric if isinstance(rubric, str) else None,
    }
    return out
