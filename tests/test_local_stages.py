"""Model-free stages (`Stage.local`): answered where they are, recorded like any unit, never
sent and never paid — online, in batch mode and through export/ingest alike.

The recipe here (registered from this module): `pick` (model-free, first stage) keeps the
tasks with an even number and filters the others out (invalid, with the reason); `ask` asks
the model about each kept task; `pair` (model-free) turns each answer into a training pair.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict
from typer.testing import CliRunner

import benchsmith.recipes.registry as registry
from batch_executor_support import FAST, online_answer
from benchsmith import api
from benchsmith.cli.app import app
from benchsmith.recipes.base import NO_MODEL, Parsed, Recipe, RequestSpec, Stage
from benchsmith.recipes.registry import RecipeSpec
from benchsmith.validate.run_checks import check_run
from fake_openai import BatchScript, FakeOpenAI
from helpers import (
    KEY_ENV,
    SECRET,
    assert_terminal_invariants,
    cfg_dict,
    deep_merge,
    first_task_ids,
    ledger_rows,
    make_cfg,
    read_jsonl,
    request_messages,
    write_yaml,
)

TASKS = 6
CFG = {"recipe": "steps"}
IDS = first_task_ids(TASKS)  # sorted as text: HumanEval/0, /1, /10, /100, ...
KEPT = [t for t in IDS if int(t.split("/")[1]) % 2 == 0]
DROPPED = [t for t in IDS if t not in KEPT]


class StepsOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def build(_o: StepsOptions, ctx: Any) -> Recipe:
    def build_pick(task: Any, parent: Any) -> list[RequestSpec]:
        return [RequestSpec(dataset=task.dataset, task_id=task.id, stage="pick", sample_index=0,
                            model=NO_MODEL, messages=(), meta={"n": int(task.id.split("/")[-1])})]

    def pick(spec: RequestSpec) -> Parsed:
        n = spec.meta["n"]
        if n % 2:
            return Parsed(issues=(f"filtered: task {n} is odd",))
        return Parsed(records=({"n": n},))

    def build_ask(task: Any, parent: Any) -> list[RequestSpec]:
        m = ctx.model
        return [RequestSpec(dataset=task.dataset, task_id=task.id, stage="ask", sample_index=0,
                            model=m.name, params=dict(m.params),
                            messages=({"role": "user", "content": f"Explain task {task.id}."},))]

    def parse_ask(spec: RequestSpec, comp: Any) -> Parsed:
        text = (comp.text or "").strip()
        return Parsed(records=({"answer": text},)) if text else Parsed(issues=("empty answer",))

    def build_pair(task: Any, parent: Any) -> list[RequestSpec]:
        (rec,) = parent["records"]
        return [RequestSpec(dataset=task.dataset, task_id=task.id, stage="pair", sample_index=0,
                            model=NO_MODEL, messages=(),
                            meta={"prompt": task.primary, "answer": rec["answer"]})]

    def pair(spec: RequestSpec) -> Parsed:
        if spec.meta["answer"] == "raise":
            raise RuntimeError("a broken step")
        return Parsed(records=({"messages": [
            {"role": "user", "content": spec.meta["prompt"]},
            {"role": "assistant", "content": spec.meta["answer"]}]},))

    def never(_spec: RequestSpec, _comp: Any) -> Parsed:
        raise AssertionError("a model-free stage is never parsed")

    return Recipe(name="steps", version="1", stages=(
        Stage("pick", build_pick, never, local=pick),
        Stage("ask", build_ask, parse_ask, needs="pick"),
        Stage("pair", build_pair, never, needs="ask", local=pair),
    ))


SPEC = RecipeSpec("steps", "1", StepsOptions, build, summary="Pick, ask, pair.")


@pytest.fixture
def steps(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, SECRET)
    registry.names()
    monkeypatch.setattr(registry, "_registry", {**registry._registry})
    registry.register(SPEC)


def sent_stages(server: FakeOpenAI) -> list[str]:
    return [str(request_messages(r.body)[0]["content"]) for r in server.requests]


def check_steps_run(rd: Path, asked: int) -> None:
    """The local units are recorded (one free attempt each), only `ask` reached a model,
    the pairs are exported, and validate-run passes."""
    assert_terminal_invariants(rd)
    rows = ledger_rows(rd, "SELECT stage, task_id, state, reason FROM units ORDER BY stage, task_id")
    assert [(s, t, st) for s, t, st, _ in rows] == sorted(
        [("ask", t, "ok") for t in KEPT] + [("pair", t, "ok") for t in KEPT]
        + [("pick", t, "ok" if t in KEPT else "invalid") for t in IDS])
    assert sorted(r for s, t, st, r in rows if st == "invalid") == sorted(
        f"filtered: task {t.split('/')[1]} is odd" for t in DROPPED)
    local = ledger_rows(rd, "SELECT a.model, a.cost_usd, a.reserved_usd, a.input_tokens, "
                            "a.http_status FROM attempts a JOIN units u USING (unit_id) "
                            "WHERE u.stage IN ('pick', 'pair')")
    assert len(local) == TASKS + len(KEPT) and set(local) == {(NO_MODEL, 0.0, 0.0, 0, None)}
    assert asked == len(KEPT)
    pairs = read_jsonl(rd / "datasets/humaneval/pair.jsonl")
    assert [p["task_id"] for p in pairs] == KEPT
    assert all(p["messages"][1]["role"] == "assistant" and p["messages"][1]["content"]
               for p in pairs)
    filtered = read_jsonl(rd / "failed_plans/datasets/humaneval/pick.jsonl")
    assert sorted(r["task_id"] for r in filtered) == DROPPED
    assert list(api.read_records(rd)) == pairs
    results = check_run(rd)
    assert all(r.ok for r in results), [(r.name, r.problems) for r in results if not r.ok]


def test_local_stages_online(steps: None, tmp_path: Path, fake_openai: FakeOpenAI) -> None:
    cfg = make_cfg(tmp_path, fake_openai.base_url, CFG, tasks=TASKS)
    est = api.dry_run(cfg, "D").estimate
    assert est.units == 0 and est.upper_bound_usd == 0.0  # nothing of the first stage is paid
    summary = api.run(cfg, "R")
    assert summary.counts == {"ok": 3 * len(KEPT), "invalid": len(DROPPED)}
    assert summary.spent_usd == 0.0
    assert all(t.startswith("Explain task") for t in sent_stages(fake_openai))
    check_steps_run(tmp_path / "runs" / "R", len(fake_openai.requests))


def test_local_stages_in_batch_mode(steps: None, tmp_path: Path, fake_openai: FakeOpenAI) -> None:
    fake_openai.batch_plan = lambda _bid, _lines: BatchScript()
    cfg = make_cfg(tmp_path, fake_openai.base_url, deep_merge(FAST, CFG), tasks=TASKS)
    summary = api.run(cfg, "R", mode="batch")
    assert summary.counts == {"ok": 3 * len(KEPT), "invalid": len(DROPPED)}
    lines = [ln for b in fake_openai.batches.values() for ln in b.lines]
    assert all("Explain task" in json.dumps(ln) for ln in lines)
    check_steps_run(tmp_path / "runs" / "R", len(lines))


def test_local_stages_through_export_and_ingest(
    steps: None, tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    config = write_yaml(tmp_path / "run.yaml", cfg_dict(tmp_path, fake_openai.base_url, CFG,
                                                         tasks=TASKS))
    runner = CliRunner()
    res = runner.invoke(app, ["dry-run", "--config", str(config), "--run-id", "R"])
    assert res.exit_code == 0, res.output
    rd = tmp_path / "runs" / "R"
    out, results = tmp_path / "requests.jsonl", tmp_path / "results.jsonl"
    res = runner.invoke(app, ["batch", "export", str(rd), "--out", str(out)])
    assert res.exit_code == 0, res.output
    lines = read_jsonl(out)
    assert len(lines) == len(KEPT) and all("Explain task" in json.dumps(ln) for ln in lines)
    results.write_text("".join(json.dumps({
        "id": f"batch_req_{i}", "custom_id": ln["custom_id"], "error": None,
        "response": {"status_code": 200, "request_id": f"req_{i}",
                     "body": online_answer(fake_openai, ln["url"], ln["body"])},
    }) + "\n" for i, ln in enumerate(lines)))
    res = runner.invoke(app, ["batch", "ingest", str(rd), str(results)])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["batch", "export", str(rd), "--out", str(out)])
    assert res.exit_code == 0 and read_jsonl(out) == [], res.output  # the pairs are done
    check_steps_run(rd, len(lines))


def test_a_raising_local_step_makes_its_unit_invalid(
    steps: None, tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    fake_openai.script = lambda _r, _i: __import__("fake_openai").Reply.text("raise")
    cfg = make_cfg(tmp_path, fake_openai.base_url, CFG, tasks=TASKS)
    summary = api.run(cfg, "R")
    assert summary.counts == {"ok": 2 * len(KEPT), "invalid": len(DROPPED) + len(KEPT)}
    assert summary.status == "completed_with_failures"
    reasons = ledger_rows(tmp_path / "runs/R", "SELECT reason FROM units WHERE stage='pair'")
    assert reasons == [("local step pair raised RuntimeError: a broken step",)] * len(KEPT)


def test_a_local_step_that_returns_garbage_makes_its_unit_invalid(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    """Not a Parsed, records that are not JSON objects, a lone string of issues: the unit is
    invalid with the reason (or its one issue), the run goes on."""
    answers: dict[int, Any] = {
        0: None, 1: Parsed(records=("x",)), 10: Parsed(records=({"a": {1, 2}},)),
        100: Parsed(issues="too short"), 101: Parsed(records=({"fine": 1},)),
    }

    def build_garbage(o: StepsOptions, ctx: Any) -> Recipe:
        steps_recipe = build(o, ctx)
        pick = steps_recipe.stage("pick")
        odd = Stage("pick", pick.build, pick.parse, local=lambda s: answers[s.meta["n"]])
        return Recipe(name="garbage", version="1", stages=(odd,))

    monkeypatch.setenv(KEY_ENV, SECRET)
    registry.names()
    monkeypatch.setattr(registry, "_registry", {**registry._registry})
    registry.register(RecipeSpec("garbage", "1", StepsOptions, build_garbage))
    cfg = make_cfg(tmp_path, fake_openai.base_url, {"recipe": "garbage"}, tasks=len(answers))
    summary = api.run(cfg, "R")
    assert summary.counts == {"ok": 1, "invalid": 4}
    reasons = dict(ledger_rows(tmp_path / "runs/R", "SELECT task_id, reason FROM units"))
    assert reasons == {
        "HumanEval/0": "local step pick returned NoneType, not Parsed",
        "HumanEval/1": "local step pick returned a record that is not a JSON object: 'x'",
        "HumanEval/10": "local step pick returned a record that is not JSON: "
                        "Type is not JSON serializable: set",
        "HumanEval/100": "too short",
        "HumanEval/101": None,
    }
