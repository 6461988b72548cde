"""Normalization of a synthesized sample before it becomes a SkyRL row.

Rules, applied in this order (each deterministic):
- prompt: the sample's `prompt` messages, or built from `system_prompt` (if not blank) and
  `user_prompt`; only `system` and `user` roles (ValueError naming the message otherwise);
  contents trimmed; a blank system message dropped; at least one user message, none blank.
- text fields trimmed (domain, rubric, assumptions; blank assumptions dropped); parameter
  values are left as they are (a file's content may need its whitespace).
- steps ordered by their `step` number (stable: equal numbers keep their order), then a
  step that repeats the previous one exactly (same server, tool and params) is dropped,
  and the rest renumbered 1..n.
- `success.must_call_tool` trimmed, duplicates dropped (first kept).
- `limits` keys missing or null taken from default_limits; `complexity` and `max_turns`
  defaulted when missing or null.
Retrofitted rows keep their prompt byte for byte: do not pass them through this.
"""

from __future__ import annotations

import copy
from typing import Any

ROLES = ("system", "user")


def normalize_sample(sample: dict[str, Any], *, default_max_turns: int,
                     default_limits: dict[str, int],
                     default_complexity: str = "moderate") -> dict[str, Any]:
    """A normalized copy of `sample` (the input is not changed)."""
    out = copy.deepcopy(sample)
    out["prompt"] = _prompt(out)
    out.pop("system_prompt", None)
    out.pop("user_prompt", None)
    for key in ("domain", "rubric"):
        if isinstance(out.get(key), str):
            out[key] = out[key].strip()
    if isinstance(out.get("assumptions"), list):
        out["assumptions"] = [a.strip() for a in out["assumptions"]
                              if isinstance(a, str) and a.strip()]
    out["tool_sequence"] = _steps(out.get("tool_sequence") or [])
    success = out.get("success") if isinstance(out.get("success"), dict) else {}
    must = success.get("must_call_tool") or []
    success["must_call_tool"] = list(dict.fromkeys(m.strip() for m in must if isinstance(m, str)))
    out["success"] = success
    limits = out.get("limits") if isinstance(out.get("limits"), dict) else {}
    out["limits"] = {**default_limits, **{k: v for k, v in limits.items() if v is not None}}
    if out.get("complexity") is None:
        out["complexity"] = default_complexity
    if out.get("max_turns") is None:
        out["max_turns"] = default_max_turns
    return out


def _prompt(sample: dict[str, Any]) -> list[dict[str, str]]:
    if sample.get("prompt") is not None:
        messages = sample["prompt"]
        if not isinstance(messages, list):
            raise ValueError("prompt must be a list of {role, content} messages")
    else:
        messages = [{"role": "system", "content": sample.get("system_prompt") or ""},
                    {"role": "user", "content": sample.get("user_prompt") or ""}]
    out = []
    for i, m in enumerate(messages):
        role = m.get("role") if isinstance(m, dict) else None
        if role not in ROLES:
            raise ValueError(f"prompt[{i}].role is {role!r}; only system and user are allowed")
        content = m.get("content")
        if not isinstance(content, str):
            raise ValueError(f"prompt[{i}].content must be a string")
        if role == "system" and not content.strip():
            continue
        out.append({"role": role, "content": content.strip()})
    users = [m["content"] for m in out if m["role"] == "user"]
    if not users or not all(users):
        raise ValueError("prompt needs a user message, and no user message may be blank")
    return out


def _steps(steps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    def number(item: tuple[int, dict[str, Any]]) -> tuple[int, int]:
        n = item[1].get("step")
        return (n if isinstance(n, int) and not isinstance(n, bool) else item[0] + 1, item[0])

    ordered = [s for _, s in sorted(enumerate(steps), key=number)]
    kept: list[dict[str, Any]] = []
    for s in ordered:
        call = (s.get("server"), s.get("tool"), s.get("params"))
        if kept and call == (kept[-1]["server"], kept[-1]["tool"], kept[-1]["params"]):
            continue
        kept.append({"step": len(kept) + 1, "server": call[0], "tool": call[1],
                     "params": call[2]})
    return kept
