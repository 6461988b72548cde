"""`finetune check`: does a file follow OpenAI's fine-tuning chat format?

Rules, per line (`FineTuneChatRequestInput` in OpenAI's API spec):
- one JSON object, with no keys but `messages`, `tools`, `parallel_tool_calls` and the
  deprecated `functions`;
- `messages` is a non-empty list of objects whose `role` is system, user, assistant or tool;
- every message has non-empty content (a string, or a list of content parts), except an
  assistant message that carries `tool_calls` or `function_call` instead;
- `weight`, on assistant messages only, is 0 or 1;
- there is an assistant message, and the last message is one.
The first broken rule of a line is reported as `<file>:<line>: <reason>`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from benchsmith.errors import ConfigError

ROLES = ("system", "user", "assistant", "tool")
TOP_KEYS = frozenset({"messages", "tools", "parallel_tool_calls", "functions"})


@dataclass(frozen=True)
class CheckResult:
    file: str
    rows: int  # non-problem lines included; blank lines are rows (and problems)
    problems: tuple[str, ...]  # "<file>:<line>: <reason>"

    @property
    def ok(self) -> bool:
        return self.rows > 0 and not self.problems


def _has_content(content: Any) -> bool:
    if isinstance(content, str):
        return bool(content.strip())
    if isinstance(content, list) and content:
        return all(isinstance(part, dict) and (
            part.get("type") != "text" or str(part.get("text") or "").strip())
            for part in content)
    return False


def _message_problem(i: int, m: Any) -> str | None:
    if not isinstance(m, dict):
        return f"messages[{i}] is not an object"
    role = m.get("role")
    if role not in ROLES:
        return f"messages[{i}]: role {role!r} is not one of {', '.join(ROLES)}"
    calls = role == "assistant" and bool(m.get("tool_calls") or m.get("function_call"))
    if not calls and not _has_content(m.get("content")):
        return f"messages[{i}] ({role}): empty or missing content"
    if "weight" in m:
        if role != "assistant":
            return f"messages[{i}] ({role}): weight is allowed on assistant messages only"
        if m["weight"] not in (0, 1) or isinstance(m["weight"], bool):
            return f"messages[{i}]: weight must be 0 or 1, got {m['weight']!r}"
    return None


def line_problem(line: bytes) -> str | None:
    """Why one line breaks the format, or None when it follows it."""
    if not line.strip():
        return "empty line (each line must be one JSON object)"
    try:
        row = orjson.loads(line)
    except orjson.JSONDecodeError as e:
        return f"not valid JSON ({e})"
    if not isinstance(row, dict):
        return "not a JSON object"
    extra = sorted(set(row) - TOP_KEYS)
    if extra:
        return (f"unexpected key(s) {', '.join(extra)}: a line holds only "
                f"{', '.join(sorted(TOP_KEYS))}")
    messages = row.get("messages")
    if not isinstance(messages, list) or not messages:
        return "no `messages` list (or an empty one)"
    for i, m in enumerate(messages):
        problem = _message_problem(i, m)
        if problem:
            return problem
    if not any(m["role"] == "assistant" for m in messages):
        return "no assistant message: nothing to train on"
    if messages[-1]["role"] != "assistant":
        return f"the last message is {messages[-1]['role']}, not assistant"
    return None


def check_file(path: Path) -> CheckResult:
    if not path.is_file():
        what = "is a folder" if path.is_dir() else "file not found"
        raise ConfigError(str(path), "", f"{what}: give an OpenAI fine-tuning .jsonl")
    try:
        data = path.read_bytes()
    except OSError as e:
        raise ConfigError(str(path), "", f"cannot read: {e}") from None
    if data.startswith(b"\x1f\x8b"):
        raise ConfigError(str(path), "", "gzip-compressed: OpenAI takes a plain .jsonl; gunzip "
                          "it and check that")
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()  # the newline that ends the last line
    problems = [f"{path}:{n}: {p}" for n, line in enumerate(lines, 1)
                if (p := line_problem(line)) is not None]
    if not lines:
        problems.append(f"{path}: no lines: the file is empty")
    return CheckResult(str(path), len(lines), tuple(problems))
