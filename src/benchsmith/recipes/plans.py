"""The plans recipe: K calls per task, each asking for P implementation plans as strict JSON.

Inputs: a Task. Outputs: plan records {plan_id, title, summary, steps, ...}.
"""

from __future__ import annotations

import json
from typing import Any

from benchsmith.config import RunConfig
from benchsmith.recipes.base import Parsed, Recipe, RequestSpec, Stage
from benchsmith.recipes.prompt import load_template, render, task_text
from benchsmith.records import Task
from benchsmith.validate.plans import check_plans
from benchsmith.validate.schema import validate_instance

TEMPLATE_NAME = "plan_prompt_template.txt"
RECIPE_VERSION = "1"


def plan_schema(plans_per_call: int, min_steps: int = 2) -> dict[str, Any]:
    """Strict-mode JSON Schema: every object closed, every property required."""
    plan = {
        "type": "object",
        "additionalProperties": False,
        "required": ["title", "summary", "steps"],
        "properties": {
            "title": {"type": "string", "description": "Short name of the approach."},
            "summary": {"type": "string", "description": "One paragraph: the idea and why."},
            "steps": {
                "type": "array",
                "description": "Concrete, ordered implementation steps.",
                "minItems": min_steps,
                "items": {"type": "string"},
            },
        },
    }
    return {
        "type": "object",
        "additionalProperties": False,
        "required": ["plans"],
        "properties": {
            "plans": {
                "type": "array",
                "minItems": plans_per_call,
                "maxItems": plans_per_call,
                "items": plan,
            }
        },
    }


def plans_recipe(cfg: RunConfig) -> Recipe:
    pc = cfg.plans
    tpl_path = cfg.resolve(pc.prompt_template) if pc.prompt_template else None
    template = load_template(tpl_path, TEMPLATE_NAME)
    schema = plan_schema(pc.plans_per_call, pc.min_steps)
    params, _dropped = cfg.model.request_params()

    def build(task: Task, parent: dict[str, Any] | None) -> list[RequestSpec]:
        body = render(
            template,
            {
                "PLANS_PER_CALL": pc.plans_per_call,
                "MIN_STEPS": pc.min_steps,
                "TASK_TEXT": task_text(task),
            },
        )
        specs = []
        for call in range(pc.calls_per_task):
            # The call note comes last so every call of a task shares the cacheable prefix.
            note = f"\n(Call {call + 1} of {pc.calls_per_task}.)"
            specs.append(
                RequestSpec(
                    dataset=task.dataset,
                    task_id=task.id,
                    stage="plans",
                    sample_index=call,
                    model=cfg.model.name,
                    messages=({"role": "user", "content": body + note},),
                    schema=schema,
                    schema_name="implementation_plans",
                    params=params,
                )
            )
        return specs

    def parse(spec: RequestSpec, raw: str) -> Parsed:
        try:
            data = json.loads(raw)
        except (json.JSONDecodeError, TypeError) as e:
            return Parsed(issues=(f"answer is not valid JSON: {e}",))
        issues = validate_instance(data, schema)
        if not issues:
            issues = check_plans(data["plans"], pc.plans_per_call, pc.min_steps)
        if issues:
            return Parsed(issues=tuple(issues))
        records = tuple(
            {
                "plan_id": f"{spec.task_id}#c{spec.sample_index}p{j}",
                "call_index": spec.sample_index,
                "plan_index": j,
                "title": p["title"].strip(),
                "summary": p["summary"].strip(),
                "steps": [s.strip() for s in p["steps"]],
            }
            for j, p in enumerate(data["plans"])
        )
        return Parsed(records=records)

    return Recipe(
        name="plans",
        version=RECIPE_VERSION,
        stages=(Stage("plans", build, parse, max_validation_retries=pc.max_validation_retries),),
        template_name=TEMPLATE_NAME,
        template_text=template,
    )
