"""Agentless-style two-stage rollouts over SWE-bench instances.

Stage `localize` (per sample): the problem statement and the repository tree at base_commit;
the answer lists the files to change. Paths not in the repository are dropped, with a reason.
Stage `repair` (bug fixer) or `testgen` (test writer) is built from each finished `localize`
sample: the localized files' text, bounded by a token budget (files beyond it are dropped
and recorded), asking for SEARCH/REPLACE edits (-> a unified diff, `model_patch`) or for a
standalone reproduction script (-> compiled with `compile()`).

Inputs: SWE-bench tasks (context: repo, base_commit). Outputs: per sample, the localized
files and the patch or test script.
"""

from __future__ import annotations

import re
from typing import Any

from benchsmith.recipes.base import Parsed, Recipe, RequestSpec, RunCheck, Stage
from benchsmith.recipes.agentless.options import AgentlessOptions
from benchsmith.recipes.context import RecipeContext
from benchsmith.recipes.prompt import builtin_template, render
from benchsmith.records import Completion, Task

# The placeholders each built-in template holds (README "How a run works").
PLACEHOLDERS = {
    "agentless_localize.txt": ("PROBLEM", "STRUCTURE", "MAX_FILES"),
    "agentless_repair.txt": ("PROBLEM", "FILES"),
    "agentless_testgen.txt": ("PROBLEM", "FILES"),
}
CHARS_PER_TOKEN = 4
_FENCE = re.compile(r"```[^\n]*\n(.*?)```", re.S)


def _template(name: str) -> str:
    return builtin_template("benchsmith.recipes.agentless", name)


def parse_file_list(raw: str, known: set[str], max_files: int) -> tuple[list[str], list[str]]:
    """(files in the repository, dropped paths) from a localize answer."""
    blocks = _FENCE.findall(raw)
    text = "\n".join(blocks) if blocks else raw
    kept: list[str] = []
    dropped: list[str] = []
    for line in text.splitlines():
        path = line.strip().strip("`").strip()
        if not path or " " in path or not path.endswith(".py"):
            continue
        path = path.removeprefix("./")
        if path in kept or path in dropped:
            continue
        (kept if path in known else dropped).append(path)
    return kept[:max_files], dropped + kept[max_files:]


def bound_files(
    paths: list[str], texts: dict[str, str | None], max_tokens: int
) -> tuple[dict[str, str], list[str]]:
    """Files that fit the token budget, in order; the rest are dropped (recorded by caller)."""
    budget = max_tokens * CHARS_PER_TOKEN
    kept: dict[str, str] = {}
    dropped: list[str] = []
    used = 0
    for p in paths:
        t = texts.get(p)
        if t is None or used + len(t) > budget:
            dropped.append(p)
            continue
        kept[p] = t
        used += len(t)
    return kept, dropped


def _files_block(files: dict[str, str]) -> str:
    return "\n".join(f"### {p}\n{t.rstrip()}\n" for p, t in files.items())


def agentless_recipe(rc: AgentlessOptions, ctx: RecipeContext, kind: str, version: str) -> Recipe:
    """kind: 'bugfix' or 'testgen'."""
    from benchsmith.sources.repo_structure import structure_for
    from benchsmith.recipes.agentless.edits import apply_edits, parse_edits, unified_diff
    from benchsmith.recipes.agentless.testscript import extract_script

    loc_tpl = _template("agentless_localize.txt")
    second_name = "agentless_repair.txt" if kind == "bugfix" else "agentless_testgen.txt"
    second_tpl = _template(second_name)
    model = ctx.model
    params = dict(model.params)
    extra: dict[str, Any] = {}
    if rc.enable_thinking is not None:
        extra["chat_template_kwargs"] = {"enable_thinking": rc.enable_thinking}
    if rc.thinking_budget is not None:
        extra["thinking_budget"] = rc.thinking_budget
    params = {**params, **extra}
    structures: dict[str, Any] = {}

    def structure(task: Task) -> Any:
        if task.id not in structures:
            structures[task.id] = structure_for(
                {"instance_id": task.id, "repo": task.context.get("repo"),
                 "base_commit": task.context.get("base_commit")},
                structure_dir=ctx.resolve(rc.structure_dir) if rc.structure_dir else None,
                repos_dir=ctx.resolve(rc.repos_dir) if rc.repos_dir else None,
                cache_dir=ctx.resolve(rc.cache_dir) if rc.cache_dir else None,
            )
        return structures[task.id]

    def problem(task: Task) -> str:
        text = task.primary
        return text.replace("\r\n", "\n").replace("\r", "\n") if rc.convert_crlf else text

    def build_localize(task: Task, parent: dict[str, Any] | None) -> list[RequestSpec]:
        st = structure(task)
        content = render(loc_tpl, {
            "PROBLEM": problem(task), "STRUCTURE": st.tree_text(exclude_tests=True), "MAX_FILES": rc.max_files,
        })
        return [
            RequestSpec(
                dataset=task.dataset, task_id=task.id, stage="localize", sample_index=k,
                model=model.name, messages=({"role": "user", "content": content},),
                params=params,
            )
            for k in range(rc.passk)
        ]

    def parse_localize(spec: RequestSpec, comp: Completion) -> Parsed:
        raw = comp.text
        known = set(spec.meta.get("known_files") or [])
        files, dropped = parse_file_list(raw, known, rc.max_files)
        if not files:
            why = f"; not in the repository: {', '.join(dropped[:5])}" if dropped else ""
            return Parsed(issues=(f"no file of the repository was named{why}",))
        return Parsed(records=({"localized_files": files, "dropped_files": dropped,
                                "raw_answer": raw},))

    def build_second(task: Task, parent: dict[str, Any] | None) -> list[RequestSpec]:
        if parent is None or not parent["records"]:
            return []
        rec = parent["records"][0]
        st = structure(task)
        files, over = bound_files(rec["localized_files"],
                                  {p: st.file_text(p) for p in rec["localized_files"]},
                                  rc.max_context_tokens)
        if not files:
            return []
        content = render(second_tpl, {"PROBLEM": problem(task), "FILES": _files_block(files)})
        pspec: RequestSpec = parent["spec"]
        return [RequestSpec(
            dataset=task.dataset, task_id=task.id, stage=kind if kind == "testgen" else "repair",
            sample_index=pspec.sample_index, model=model.name,
            messages=({"role": "user", "content": content},), params=params,
            meta={"files": files, "over_budget_files": over,
                  "localized_files": rec["localized_files"],
                  "dropped_files": rec.get("dropped_files", []),
                  "localize_answer": rec.get("raw_answer", "")},
        )]

    def parse_repair(spec: RequestSpec, comp: Completion) -> Parsed:
        raw = comp.text
        files: dict[str, str] = spec.meta["files"]
        pr = parse_edits(raw)
        if not pr.edits:
            return Parsed(issues=tuple(pr.issues) or ("no SEARCH/REPLACE edit found",))
        ar = apply_edits(files, pr.edits)
        issues = list(pr.issues) + list(ar.issues)
        if issues:
            return Parsed(issues=tuple(issues))
        patch = unified_diff({p: files[p] for p in ar.new_files}, ar.new_files)
        return Parsed(records=({"model_patch": patch, "edited_files": sorted(ar.new_files),
                                "edits": len(pr.edits), "raw_answer": raw},))

    def parse_testgen(spec: RequestSpec, comp: Completion) -> Parsed:
        raw = comp.text
        sr = extract_script(raw)  # its issues include the compile check
        issues = list(sr.issues)
        if issues or sr.script is None:
            return Parsed(issues=tuple(issues) or ("no test script found",))
        return Parsed(records=({"test_script": sr.script, "script_source": sr.source,
                                "raw_answer": raw},))

    retries = rc.max_validation_retries
    localize = Stage("localize", _with_known_files(build_localize, structure), parse_localize,
                     max_validation_retries=retries)
    second = Stage(
        "repair" if kind == "bugfix" else "testgen", build_second,
        parse_repair if kind == "bugfix" else parse_testgen,
        needs="localize", max_validation_retries=retries,
    )
    return Recipe(
        name=f"agentless_{kind}", version=version, stages=(localize, second),
        templates=(("agentless_localize.txt", loc_tpl), (second_name, second_tpl)),
        run_checks=_run_checks(second.name, rc.model_name_or_path or model.name),
        outputs=("output.jsonl", "failures.jsonl", *(("preds.jsonl",) if kind == "bugfix" else ())),
        write_outputs=_writer(second.name, rc.model_name_or_path or model.name),
        select=_task_range(rc.start, rc.end),
        export_tables=(_predictions(second.name, rc.model_name_or_path or model.name)
                       if kind == "bugfix" else None),
        report_sections=_report(second.name),
    )


def _report(second_stage: str) -> Any:
    """`benchsmith report`'s section: each instance's sample outcomes."""

    def sections(ledger: Any) -> list[Any]:
        from benchsmith.recipes.agentless.report import report_sections

        return report_sections(ledger, second_stage)

    return sections


def _predictions(second_stage: str, model_name_or_path: str) -> Any:
    """`export`'s predictions table: the rows of preds.jsonl, from the ledger."""

    def tables(ledger: Any) -> dict[str, list[dict[str, Any]]]:
        from benchsmith.recipes.agentless.outputs import jsonl_files, sample_rows

        rows = sample_rows(ledger, second_stage)
        return {"predictions": jsonl_files(rows, second_stage, model_name_or_path)["preds.jsonl"]}

    return tables


def _task_range(start: int | None, end: int | None) -> Any:
    """rollout start/end: a range of each dataset's sorted instance ids."""
    if start is None and end is None:
        return None
    return lambda tasks: tasks[start or 0 : end]


def _writer(second_stage: str, model_name_or_path: str) -> Any:
    """The rollout files (output.jsonl, failures.jsonl, preds.jsonl, samples/) of a run."""

    def write(ledger: Any, rd: Any) -> None:
        from benchsmith.recipes.agentless.outputs import write_rollout_outputs

        write_rollout_outputs(ledger, rd, second_stage, model_name_or_path)

    return write


def _run_checks(second_stage: str, model_name_or_path: str) -> tuple[RunCheck, ...]:
    from benchsmith.recipes.agentless.checks import check_rollout_outputs, check_samples

    return (
        RunCheck("rollout_outputs",
                 lambda run: check_rollout_outputs(run, second_stage, model_name_or_path)),
        RunCheck("samples", lambda run: check_samples(run, second_stage)),
    )


def _with_known_files(build: Any, structure: Any) -> Any:
    """Stage 1 specs carry the repository's Python files, so parsing needs no repository."""

    def wrapped(task: Task, parent: dict[str, Any] | None) -> list[RequestSpec]:
        known = structure(task).python_files()
        return [
            RequestSpec(**{**s.__dict__, "meta": {**s.meta, "known_files": known}})
            for s in build(task, parent)
        ]

    return wrapped
