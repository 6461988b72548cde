"""The edit_predict recipe: one stage, `predict`, asking for the rest of a pull request's
edits given the edits so far (an infbench row), and extracting the patch from the answer.

The prompt is rendered from the row's parts (sources/editbench/prompt.render_prompt). When
it does not fit the model's context window (estimated as the engine does, so the engine
never skips a prompt trimmed to fit), code-context files are dropped from the end, one whole
file at a time; the dropped paths go in the request's meta and the record. A prompt that
does not fit even without files is left to the engine (`prompt_too_long`).
"""

from __future__ import annotations

from typing import Any

import orjson

from benchsmith.engine.context import DEFAULT_MAX_CONTEXT_TOKENS, estimated_tokens
from benchsmith.engine.wire import build_body
from benchsmith.errors import ConfigError
from benchsmith.recipes.base import Parsed, Recipe, RequestSpec, Stage
from benchsmith.recipes.edit_predict.options import EditPredictOptions
from benchsmith.recipes.edit_predict.outputs import (
    check_predictions, prediction_rows, status, write_outputs,
)
from benchsmith.recipes.edit_predict.patches import extract_patch, files_in_prompt
from benchsmith.records import Task
from benchsmith.sources.editbench.prompt import render_prompt
from benchsmith.sources.infbench import row_problem

STAGE = "predict"
# Bytes a request body may take beyond the chat body measured here (the Responses wrapping,
# a prompt cache key): the estimate errs long, never short.
_BODY_SLACK = 256


def request_tokens(model: str, messages: list[dict[str, str]], params: dict[str, Any],
                   n: int) -> int:
    """The engine's estimate (engine/context.py) of a request: body bytes at 4 a token,
    message framing, and the output reserve."""
    body = build_body(api="chat", structured="openai", model=model, messages=messages,
                      schema=None, schema_name="answer", params=params, n=n)
    size = len(orjson.dumps(body)) + _BODY_SLACK
    return estimated_tokens(size, len(messages)) + int(params.get("max_output_tokens") or 0)


def _parts(task: Task) -> tuple[str, list[list[str]], list[dict[str, Any]]]:
    c = task.context
    bad = row_problem({**c, "instance_id": task.id, "prompt": task.primary})
    if bad is not None:
        raise ConfigError(f"datasets.{task.dataset}: {task.id}", bad[0], f"{bad[1]}: not an "
                          "infbench row; rebuild the file with `benchsmith infbench build`")
    requirement = c.get("requirement") or ""
    pre_edits = c.get("pre_edits") or []
    files = c.get("context_files") or []
    return str(requirement), list(pre_edits), list(files)


def fit_prompt(task: Task, model: str, params: dict[str, Any], n: int, limit: int
               ) -> tuple[str, list[str], list[str]]:
    """(prompt, kept paths, dropped paths): the task's prompt with context files dropped from
    the end until the request fits `limit` tokens (or no file is left)."""
    requirement, pre_edits, files = _parts(task)
    if "context_files" not in task.context and "requirement" not in task.context:
        return task.primary, [], []  # a row without its parts: its prompt as it is
    keep = len(files)
    while True:
        prompt = render_prompt(requirement, pre_edits, files[:keep])
        msgs = [{"role": "user", "content": prompt}]
        if keep == 0 or request_tokens(model, msgs, params, n) <= limit:
            break
        keep -= 1
    paths = [str(f.get("path", "")) for f in files]
    return prompt, paths[:keep], paths[keep:]


def edit_predict_recipe(o: EditPredictOptions, ctx: Any, version: str) -> Recipe:
    skip = {ds: set(ids) for ds, ids in o.skip.items()}

    def select(tasks: list[Task]) -> list[Task]:
        return [t for t in tasks if t.id not in skip.get(t.dataset, ())]

    def build(task: Task, parent: Any) -> list[RequestSpec]:
        model = ctx.model
        params = dict(model.params)
        if o.max_output_tokens is not None:
            params["max_output_tokens"] = o.max_output_tokens
        limits = [x for x in (o.context_limit, model.context_tokens) if x]
        limit = min(limits) if limits else DEFAULT_MAX_CONTEXT_TOKENS
        prompt, kept, dropped = fit_prompt(task, model.name, params, o.n, limit)
        meta = {"files": kept, "dropped_files": dropped,
                "context_kind": task.context.get("context_kind")}
        return [RequestSpec(
            dataset=task.dataset, task_id=task.id, stage=STAGE, sample_index=0,
            model=model.name, messages=({"role": "user", "content": prompt},),
            params=params, meta=meta, n=o.n)]

    def parse(spec: RequestSpec, comp: Any) -> Parsed:
        files = files_in_prompt(str(spec.messages[0]["content"]), spec.meta.get("files") or [])
        records, issues = [], []
        for i, choice in enumerate(comp.choices or (comp,)):
            text = choice.text or ""
            got = extract_patch(text, files)
            if o.require_patch and not got.patch:
                issues.extend(got.issues or ("no patch in the answer",))
                continue
            records.append({
                "instance_id": spec.task_id, "choice": i, "model_patch": got.patch,
                "full_output": text, "patch_source": got.source,
                "patch_issues": list(got.issues),
                "dropped_files": list(spec.meta.get("dropped_files") or []),
                "context_kind": spec.meta.get("context_kind"),
            })
        if issues:
            return Parsed(issues=tuple(dict.fromkeys(issues)))
        return Parsed(records=tuple(records))

    return Recipe(
        name="edit_predict",
        version=version,
        stages=(Stage(STAGE, build, parse, max_validation_retries=o.max_validation_retries,
                      record_key=("choice",), record_label="instance_id"),),
        outputs=("predictions.jsonl",),
        write_outputs=write_outputs,
        status=status,
        run_checks=(check_predictions,),
        select=select,
        export_tables=lambda ledger: {"predictions": prediction_rows(ledger)},
    )
