"""The plans recipe: K calls per task, each asking for P implementation plans as strict JSON.

Inputs: a Task. Outputs: plan records {plan_id, call_index, plan_index, title, summary, steps}.

With `plans.diversity` (the default) the calls of a task form a chain: call k+1 is built once
call k is accepted, shows the plans accepted so far, and asks for different approaches; a plan
too similar to an accepted one is rejected as `duplicate_of:<plan id>` and re-asked.
Without it, all calls of a task are sent at once.
"""

from __future__ import annotations

import hashlib
import json

import orjson
from typing import Any

from benchsmith.recipes.base import Parsed, Recipe, RequestSpec, RunCheck, Stage
from benchsmith.recipes.prompt import (
    PLAN_PLACEHOLDERS,
    PLAN_TEMPLATE_NAME,
    load_template,
    render,
    task_text,
)
from benchsmith.recipes.context import RecipeContext
from benchsmith.recipes.plans.options import PlansOptions
from benchsmith.records import Completion, Task
from benchsmith.recipes.plans.diversity import duplicate_issues, plan_text
from benchsmith.recipes.plans.rules import check_plans, plan_schema  # noqa: F401 - re-exported
from benchsmith.recipes.schema import compile_validator

TEMPLATE_NAME = PLAN_TEMPLATE_NAME
PLACEHOLDERS = PLAN_PLACEHOLDERS
GIST_CHARS = 200


_PLAN_KEYS = {"title", "summary", "steps"}


def _well_formed(data: Any, n: int) -> bool:
    """The common case, checked fast; anything else gets the full schema walk and its messages."""
    if not isinstance(data, dict) or data.keys() != {"plans"}:
        return False
    plans = data["plans"]
    if not isinstance(plans, list) or len(plans) != n:
        return False
    for p in plans:
        if not isinstance(p, dict) or p.keys() != _PLAN_KEYS:
            return False
        if not (isinstance(p["title"], str) and isinstance(p["summary"], str)):
            return False
        steps = p["steps"]
        if not isinstance(steps, list) or not all(isinstance(x, str) for x in steps):
            return False
    return True


def _accepted(data: Any, n: int, min_steps: int, pid: str, call: int) -> list[dict[str, Any]] | None:
    """The records of the common answer, checked and built in one pass: well formed
    (`_well_formed`) and passing the plan rules (`check_plans` finds nothing). None for
    anything else, which then takes the full path (schema walk, rule messages)."""
    if type(data) is not dict or data.keys() != {"plans"}:
        return None
    plans = data["plans"]
    if type(plans) is not list or len(plans) != n:
        return None
    records = []
    titles = set()
    for j, p in enumerate(plans):
        if type(p) is not dict or p.keys() != _PLAN_KEYS:
            return None
        title, summary, steps = p["title"], p["summary"], p["steps"]
        if type(title) is not str or type(summary) is not str or type(steps) is not list:
            return None
        k = len(steps)
        if k < min_steps:
            return None
        try:
            normed = {" ".join(s.lower().split()) for s in steps}  # validate.plans.norm
        except AttributeError:  # a step that is not a string (JSON: only str has .lower)
            return None
        if len(normed) != k or "" in normed:
            return None
        summary = summary.strip()
        if not summary:
            return None
        t = " ".join(title.lower().split())
        if not t or t in titles:
            return None
        titles.add(t)
        records.append({
            "plan_id": f"{pid}{j}",
            "call_index": call,
            "plan_index": j,
            "title": title.strip(),
            "summary": summary,
            "steps": [s.strip() for s in steps],
        })
    return records


def cache_key(prefix: str, task: Task, template: str) -> str:
    """Stable per task and template, so every call of a task can share the cached prefix."""
    tpl = hashlib.sha256(template.encode()).hexdigest()[:10]
    tid = hashlib.sha256(f"{task.dataset}\0{task.id}".encode()).hexdigest()[:16]
    return f"{prefix}-{tpl}-{tid}"[:64]


def _prior_block(prior: list[dict[str, Any]]) -> str:
    lines = [
        "",
        "Plans already accepted for this task (yours must take different approaches; "
        "do not repeat or rephrase them):",
    ]
    for p in prior:
        lines.append(f"- {p['plan_id']}: {p['title']} -- {p['gist']}")
    return "\n".join(lines)


def plans_recipe(pc: PlansOptions, ctx: RecipeContext, version: str) -> Recipe:
    tpl_path = ctx.resolve(pc.prompt_template) if pc.prompt_template else None
    template = load_template(tpl_path, TEMPLATE_NAME, PLACEHOLDERS)
    schema = plan_schema(pc.plans_per_call, pc.min_steps)
    validate = compile_validator(schema)
    cache = ctx.prompt_cache

    def prefix(task: Task) -> str:
        return render(
            template,
            {"PLANS_PER_CALL": pc.plans_per_call, "MIN_STEPS": pc.min_steps, "TASK_TEXT": task_text(task)},
        )

    def spec_for(task: Task, call: int, prior: list[dict[str, Any]]) -> RequestSpec:
        model = ctx.model_for(call)
        params = dict(model.params)
        if cache is not None:
            params["prompt_cache_key"] = cache_key(cache.key_prefix, task, template)
            if cache.retention:
                params["prompt_cache_retention"] = cache.retention
        # Shared prefix first (instructions, task text); what differs per call comes last.
        content = prefix(task) + f"\n(Call {call + 1} of {pc.calls_per_task}.)"
        if prior:
            content += _prior_block(prior)
        return RequestSpec(
            dataset=task.dataset,
            task_id=task.id,
            stage="plans",
            sample_index=call,
            model=model.name,
            messages=({"role": "user", "content": content},),
            schema=schema,
            schema_name="implementation_plans",
            params=params,
            meta={"prior": prior} if pc.diversity else {},
        )

    def build(task: Task, parent: dict[str, Any] | None) -> list[RequestSpec]:
        if not pc.diversity:
            if parent is not None:
                return []
            return [spec_for(task, call, []) for call in range(pc.calls_per_task)]
        if parent is None:
            return [spec_for(task, 0, [])]
        pspec: RequestSpec = parent["spec"]
        nxt = pspec.sample_index + 1
        if nxt >= pc.calls_per_task:
            return []
        prior = list(pspec.meta.get("prior", [])) + [
            {
                "plan_id": r["plan_id"],
                "title": r["title"],
                "gist": r["summary"][:GIST_CHARS],
                "text": plan_text(r),
            }
            for r in parent["records"]
        ]
        return [spec_for(task, nxt, prior)]

    def parse(spec: RequestSpec, comp: Completion) -> Parsed:
        raw = comp.text
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError:
            try:  # tolerate raw newlines inside strings (grammar-constrained local models)
                data = json.loads(raw, strict=False)
            except (json.JSONDecodeError, TypeError) as e:
                return Parsed(issues=(f"answer is not valid JSON: {e}",))
        call = spec.sample_index
        pid = f"{spec.task_id}#c{call}p"
        records = _accepted(data, pc.plans_per_call, pc.min_steps, pid, call)
        if records is None:
            issues = [] if _well_formed(data, pc.plans_per_call) else validate(data)
            if not issues:
                issues = check_plans(data["plans"], pc.plans_per_call, pc.min_steps)
            if issues:
                return Parsed(issues=tuple(issues))
            records = [
                {
                    "plan_id": f"{pid}{j}",
                    "call_index": call,
                    "plan_index": j,
                    "title": p["title"].strip(),
                    "summary": p["summary"].strip(),
                    "steps": [s.strip() for s in p["steps"]],
                }
                for j, p in enumerate(data["plans"])
            ]
        issues = []
        if pc.diversity:
            issues = duplicate_issues(records, spec.meta.get("prior", []), pc.similarity_threshold)
        if issues:
            return Parsed(issues=tuple(issues))
        return Parsed(records=tuple(records))

    # A chained stage needs itself: each accepted call plans the next one.
    stage = Stage(
        "plans", build, parse, needs="plans" if pc.diversity else None,
        max_validation_retries=pc.max_validation_retries,
        chain_length=pc.calls_per_task if pc.diversity else 1,
        # each accepted plan adds a line: id, title, gist (bounded by GIST_CHARS)
        chain_growth_bytes=pc.plans_per_call * (GIST_CHARS * 4 + 400),
        record_key=("plan_index",), record_label="plan_id",
    )
    return Recipe(
        name="plans",
        version=version,
        stages=(stage,),
        templates=((TEMPLATE_NAME, template),),
        run_checks=_run_checks(pc),
        write_outputs=_write_similarity,
        readable=_render,
        status=_status,
        report_sections=lambda ledger: _report(ledger, pc.calls_per_task * pc.plans_per_call),
    )


# The recipe's output hooks; their modules are imported when a hook runs.
def _write_similarity(ledger: Any, rd: Any) -> None:
    from benchsmith.recipes.plans.outputs import write_similarity

    write_similarity(ledger, rd)


def _render(ledger: Any, rd: Any, output_dir: Any, include_task_text: bool, layout: str) -> Any:
    from benchsmith.recipes.plans.readable import render_plans

    return render_plans(ledger, rd, output_dir, include_task_text, layout)


def _status(ledger: Any) -> Any:
    from benchsmith.recipes.plans.outputs import status

    return status(ledger)


def _report(ledger: Any, expected: int) -> Any:
    from benchsmith.recipes.plans.report import report_sections

    return report_sections(ledger, expected)


def _run_checks(pc: PlansOptions) -> tuple[RunCheck, ...]:
    from benchsmith.recipes.plans.checks import check_plans_per_task, check_schema, check_unique

    return (RunCheck("plans_per_task", lambda run: check_plans_per_task(run, pc)),
            RunCheck("schema", lambda run: check_schema(run, pc)),
            RunCheck("unique_ids", check_unique))
