"""Prompt text: the task block and template rendering."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from importlib import resources
from pathlib import Path
from typing import Any

from benchsmith.errors import ConfigError
from benchsmith.records import Task
from benchsmith.userfiles import read_user_text


def task_text(task: Task) -> str:
    """The primary field under [PRIMARY_TASK]; other fields under [CONTEXT_FIELDS]."""
    parts = ["[PRIMARY_TASK]", task.primary.rstrip(), ""]
    ctx = {k: v for k, v in task.context.items() if k != task.primary_field}
    if ctx:
        parts.append("[CONTEXT_FIELDS]")
        for k, v in ctx.items():
            val = v if isinstance(v, str) else json.dumps(v, ensure_ascii=False)
            parts.append(f"{k}: {val}")
    return "\n".join(parts).rstrip() + "\n"


# What a plans template may hold (README "How a run works"); every call renders all of them.
PLAN_PLACEHOLDERS = ("PLANS_PER_CALL", "MIN_STEPS", "TASK_TEXT")
PLAN_TEMPLATE_NAME = "plan_prompt_template.txt"

# `{{NAME}}`-like markers: a word in double braces, spaces and any case allowed, so that a
# typo such as `{{ task_text }}` is caught rather than sent as is.
_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


def placeholders(template: str) -> list[str]:
    """The placeholder markers of a template, as written (inside the braces), in order."""
    return list(dict.fromkeys(m.group(0)[2:-2] for m in _PLACEHOLDER.finditer(template)))


def unknown_placeholders(template: str, known: Iterable[str]) -> list[str]:
    """Markers that `render` would not replace (only exact `{{NAME}}` of a known name is)."""
    ok = set(known)
    return [p for p in placeholders(template) if p not in ok]


def builtin_template(package: str, name: str) -> str:
    """A template shipped inside a recipe's folder (package)."""
    return resources.files(package).joinpath(name).read_text(encoding="utf-8")


def load_template(
    path: Path | None, builtin: str, known: Iterable[str] = PLAN_PLACEHOLDERS,
    field: str = "recipe_options.prompt_template", package: str = "benchsmith.recipes.plans",
) -> str:
    """The template text: the built-in `package`/`builtin`, or a user file, which must be
    UTF-8, hold {{TASK_TEXT}} and only `known` placeholders (an unknown one would reach the
    model as is)."""
    if path is None:
        return builtin_template(package, builtin)
    if not path.is_file():
        raise ConfigError(str(path), field, "template file not found")
    text = read_user_text(path, field)
    known = tuple(known)
    bad = unknown_placeholders(text, known)
    if bad:
        shown = ", ".join("{{" + b + "}}" for b in bad)
        raise ConfigError(
            str(path), field,
            f"unknown placeholder {shown}; known: {', '.join('{{' + k + '}}' for k in known)}",
        )
    if "{{TASK_TEXT}}" not in text:
        raise ConfigError(str(path), field, "template must contain the {{TASK_TEXT}} placeholder")
    return text


def render(template: str, values: dict[str, Any]) -> str:
    """Replace {{NAME}} placeholders; braces in task text (code) are left alone."""
    out = template
    for k, v in values.items():
        out = out.replace("{{" + k + "}}", str(v))
    return out
