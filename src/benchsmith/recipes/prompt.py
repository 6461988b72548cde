"""Prompt text: the task block and template rendering."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

from benchsmith.errors import ConfigError
from benchsmith.records import Task


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


def load_template(path: Path | None, builtin: str) -> str:
    if path is None:
        return resources.files("benchsmith.prompts").joinpath(builtin).read_text(encoding="utf-8")
    if not path.is_file():
        raise ConfigError(str(path), "plans.prompt_template", "template file not found")
    text = path.read_text(encoding="utf-8")
    if "{{TASK_TEXT}}" not in text:
        raise ConfigError(
            str(path), "plans.prompt_template", "template must contain the {{TASK_TEXT}} placeholder"
        )
    return text


def render(template: str, values: dict[str, Any]) -> str:
    """Replace {{NAME}} placeholders; braces in task text (code) are left alone."""
    out = template
    for k, v in values.items():
        out = out.replace("{{" + k + "}}", str(v))
    return out
