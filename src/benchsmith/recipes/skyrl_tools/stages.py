"""The skyrl_tools recipe's one stage: `synth` (a task and its tool plan per task slot) or
`retrofit` (a tool plan per input row's prompt).

synth: the tasks are the slots of a `generated` dataset. `select` gives each its domain and
complexity from `skyrl.allocate` over the run's slots (exact counts, order shuffled by the
seed), so the split is part of the task (and of the plan's fingerprint). An answer is parsed
and checked against the inventory (skyrl.plan), the run's limits and the slot's complexity,
normalized (skyrl.normalize) and compared with the prompts accepted so far (dedupe.py); any
problem is fed back in a re-ask.

retrofit: the tasks are the rows of the prepared tasks file (rows.py). With `skip_existing`
a row that has a plan asks nothing (the outputs copy it); every other row asks for a plan for
its prompt. The prompt itself is never touched.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from benchsmith.errors import ConfigError
from benchsmith.recipes.base import Parsed, Recipe, RequestSpec, Stage
from benchsmith.recipes.skyrl_tools.dedupe import Accepted, user_text
from benchsmith.recipes.skyrl_tools.options import SkyrlToolsOptions
from benchsmith.recipes.skyrl_tools.prompts import (
    inventory_text,
    retrofit_messages,
    synth_messages,
)
from benchsmith.recipes.skyrl_tools.rows import has_plan, prompt_messages
from benchsmith.records import Task
from benchsmith.skyrl.allocate import allocate
from benchsmith.skyrl.inventory import example_inventory_path, load_inventory
from benchsmith.skyrl.normalize import normalize_sample
from benchsmith.skyrl.plan import answer_schema, check_plan, parse_answer

SYNTH, RETROFIT = "synth", "retrofit"
# The placeholder prompt a retrofit plan is normalized with (only its plan is kept).
_NO_PROMPT = "(retrofit)"


def load_options_inventory(o: SkyrlToolsOptions, ctx: Any) -> Any:
    return load_inventory(ctx.resolve(o.inventory) if o.inventory else example_inventory_path())


def assign(tasks: list[Task], o: SkyrlToolsOptions) -> list[Task]:
    """synth: the slots with their domain and complexity (one allocation per dataset)."""
    if not tasks:
        return tasks
    if any("slot" not in t.context or "seed" not in t.context for t in tasks):
        raise ConfigError(f"datasets.{tasks[0].dataset}", "source", "skyrl_tools synth asks "
                          "for new tasks: use `source: generated` with `count: N`")
    domains = allocate(len(tasks), o.domains, o.seed)
    # Another stream of the same seed, so domain and complexity are not drawn in step.
    levels = allocate(len(tasks), o.complexities, o.seed + 1)
    return [dataclasses.replace(t, context={**t.context, "domain": d, "complexity": c})
            for t, d, c in zip(tasks, domains, levels)]


def skyrl_tools_recipe(o: SkyrlToolsOptions, ctx: Any, version: str) -> Recipe:
    from benchsmith.recipes.skyrl_tools.outputs import outputs_of

    inv = load_options_inventory(o, ctx)
    tools = inventory_text(inv)
    accepted = Accepted(o.near_duplicate)
    limits = {"max_servers": o.server_cap, "max_tools": o.max_tools}
    with_task = o.mode == SYNTH
    schema = answer_schema(inv, with_task=with_task)

    def spec(task: Task, messages: tuple[dict[str, str], ...], meta: dict[str, Any]
             ) -> RequestSpec:
        model = ctx.model
        return RequestSpec(
            dataset=task.dataset, task_id=task.id, stage=o.mode, sample_index=0,
            model=model.name, messages=messages, schema=schema,
            schema_name="skyrl_task" if with_task else "skyrl_plan",
            params=dict(model.params), meta=meta)

    def build_synth(task: Task, parent: Any) -> list[RequestSpec]:
        c = task.context
        msgs = synth_messages(o, inv, tools, slot=task.id, domain=c["domain"],
                              complexity=c["complexity"], seed=c["seed"])
        return [spec(task, msgs, {"slot": c["slot"], "seed": c["seed"], "domain": c["domain"],
                                  "complexity": c["complexity"]})]

    def build_retrofit(task: Task, parent: Any) -> list[RequestSpec]:
        row = task.context["row"]
        if o.skip_existing and has_plan(row):
            return []  # copied to the output as it is
        msgs = retrofit_messages(o, prompt_messages(row.get("prompt")) or [], tools)
        return [spec(task, msgs, {"line": task.context.get("line")})]

    def checked(text: str) -> tuple[dict[str, Any] | None, list[str]]:
        """The answer normalized, and every problem: the inventory's, the run's limits'."""
        sample, problems = parse_answer(text, inv, with_task=with_task)
        if sample is None:
            return None, list(problems)
        problems = [*problems, *check_plan(inv, sample, max_tools=o.max_tools,
                                           max_servers=o.server_cap)]
        if not with_task:
            sample = {**sample, "user_prompt": _NO_PROMPT, "system_prompt": None}
        try:
            norm = normalize_sample(sample, default_max_turns=o.max_turns,
                                    default_limits=limits)
        except ValueError as e:
            return None, [*problems, str(e)]
        n = len(norm["tool_sequence"])
        if n > o.max_turns:
            problems.append(f"the plan has {n} steps; at most {o.max_turns} fit the agent's "
                            "turns: merge or drop steps")
        return norm, list(dict.fromkeys(problems))

    def parse_synth(spec: RequestSpec, comp: Any) -> Parsed:
        norm, problems = checked(comp.text)
        want = spec.meta["complexity"]
        if norm is not None and norm.get("complexity") != want:
            problems.append(f"complexity is {norm.get('complexity')!r} but this task was "
                            f"asked to be {want!r}: write a {want} task")
        if norm is None or problems:
            return Parsed(issues=tuple(problems))
        text = user_text(norm["prompt"])
        near = accepted.near(spec.task_id, text)
        if near is not None:
            return Parsed(issues=(
                f"near duplicate: the user_prompt is {near[1]:.0%} similar to one already "
                f"accepted in this run ({near[0]}); write a different task",))
        accepted.add(spec.task_id, text)
        norm["domain"] = spec.meta["domain"]  # the allocated label, as the counts promise
        return Parsed(records=({"slot": spec.meta["slot"], "sample": norm},))

    def parse_retrofit(spec: RequestSpec, comp: Any) -> Parsed:
        norm, problems = checked(comp.text)
        if norm is None or problems:
            return Parsed(issues=tuple(problems))
        for key in ("prompt", "user_prompt", "system_prompt", "complexity"):
            norm.pop(key, None)  # the row keeps its own prompt (and complexity, if any)
        return Parsed(records=({"line": spec.meta["line"], "sample": norm},))

    if with_task:
        stage = Stage(SYNTH, build_synth, parse_synth,
                      max_validation_retries=o.max_validation_retries, record_label="slot")
    else:
        stage = Stage(RETROFIT, build_retrofit, parse_retrofit,
                      max_validation_retries=o.max_validation_retries, record_label="line")
    write, status, check, outputs = outputs_of(o, ctx, inv)
    return Recipe(
        name="skyrl_tools",
        version=version,
        stages=(stage,),
        outputs=outputs,
        write_outputs=write,
        status=status,
        run_checks=(check,),
        select=(lambda tasks: assign(tasks, o)) if with_task else None,
    )
