"""The answer contract: tool calls and n choices go out in each wire format's shape and
come back, all of them, to the stage's `parse` (Responses, Chat, llama-cpp)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson
import pytest

from benchsmith.errors import ConfigError

import benchsmith.recipes.registry
from benchsmith import api
from benchsmith.engine.wire import build_body, parse_completion
from benchsmith.recipes import get_spec, register
from benchsmith.recipes.base import RequestSpec
from benchsmith.records import Completion
from benchsmith.store.ids import ID_PREFIX, canonical_json, unit_id
from fake_openai import FakeOpenAI, Reply
from helpers import KEY_ENV, SECRET, make_cfg

TOOL = {
    "name": "lookup",
    "description": "Look a symbol up in the repository.",
    "parameters": {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]},
}
FORMATS = {  # wire format -> config overrides
    "responses": {"openai": {"api": "responses"}},
    "chat": {"openai": {"api": "chat"}},
    "llama_cpp": {"openai": {"api": "chat", "structured_output": "llama_cpp"}},
}


def _toy_recipe(monkeypatch: pytest.MonkeyPatch, n: int, seen: list[Completion]) -> str:
    """A recipe registered here: the plans recipe, asking with a tool and `n` choices, and
    recording what parse gets. Returns its name."""
    plans = get_spec("plans")

    def build_recipe(options: Any, ctx: Any) -> Any:
        base = plans.build(options, ctx)
        first = base.stages[0]

        def build(task: Any, parent: Any) -> list[RequestSpec]:
            return [replace(s, tools=(TOOL,), tool_choice="auto", n=n) for s in first.build(task, parent)]

        def parse(spec: RequestSpec, comp: Completion) -> Any:
            seen.append(comp)
            return first.parse(spec, comp)

        return replace(base, name="plans_with_tools",
                       stages=(replace(first, build=build, parse=parse), *base.stages[1:]))

    spec = replace(plans, name="plans_with_tools", build=build_recipe, aliases=())
    monkeypatch.setattr("benchsmith.recipes.registry._registry",
                        {**benchsmith.recipes.registry._registry})  # undone after the test
    register(spec, replace=True)
    return spec.name


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_tool_calls_and_choices_reach_parse(
    fmt: str, tmp_path: Path, fake_openai: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_ENV, SECRET)
    n = 1 if fmt == "responses" else 3  # the Responses API has no `n`
    seen: list[Completion] = []
    name = _toy_recipe(monkeypatch, n, seen)

    def script(received: Any, index: int) -> Reply:
        text = fake_openai._default_text(received)  # a valid plans answer
        call = {"id": f"call_{index}", "name": "lookup", "arguments": {"q": f"sym{index}"}}
        if n == 1:
            return Reply.text(text, tool_calls=[call])
        return Reply.choices_of((text, [call]), "second sample", ("", [{**call, "id": "c2"}]))

    fake_openai.script = script
    cfg = make_cfg(tmp_path, fake_openai.base_url,
                   {**FORMATS[fmt], "recipe": name, "recipe_options": {"calls_per_task": 1}}, tasks=2)
    summary = api.run(cfg, "r1")
    assert summary.counts.get("ok") == 2, summary.counts

    # Sent in the format's own shape.
    for req in fake_openai.requests:
        body = req.body
        if fmt == "responses":
            assert body["tools"] == [{"type": "function", **TOOL}] and "n" not in body
        else:
            assert body["tools"] == [{"type": "function", "function": TOOL}] and body["n"] == 3
        assert body["tool_choice"] == "auto"
    # Back, every choice and tool call, to parse.
    assert len(seen) == 2
    for comp in seen:
        assert comp.finished and comp.text == comp.choices[0].text
        (call,) = comp.tool_calls
        assert call.name == "lookup" and orjson.loads(call.arguments)["q"].startswith("sym")
        assert len(comp.choices) == n
        if n == 3:
            assert comp.finish_reason == "tool_calls"
            assert [c.text for c in comp.choices[1:]] == ["second sample", ""]
            assert [len(c.tool_calls) for c in comp.choices] == [1, 0, 1]
            assert comp.choices[2].tool_calls[0].id == "c2"


def test_tool_calls_and_choices_reach_parse_in_batch_mode(
    tmp_path: Path, fake_openai: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Batch lines carry `n` and tools, and the judged answers keep every choice."""
    monkeypatch.setenv(KEY_ENV, SECRET)
    seen: list[Completion] = []
    name = _toy_recipe(monkeypatch, 2, seen)
    cfg = make_cfg(tmp_path, fake_openai.base_url,
                   {**FORMATS["chat"], "recipe": name, "recipe_options": {"calls_per_task": 1}}, tasks=2)
    api.run(cfg, "b1", mode="batch")
    lines = [ln for b in fake_openai.batches.values() for ln in b.lines]
    assert lines and all(ln["body"]["n"] == 2 and ln["body"]["tools"] for ln in lines)
    assert seen and all(len(c.choices) == 2 for c in seen)


def test_responses_refuses_n_above_one() -> None:
    with pytest.raises(ConfigError, match="use `api: chat`"):
        build_body(api="responses", structured="strict", model="m", messages=[], schema=None,
                   schema_name="a", params={}, n=2)


def test_tool_choice_by_name_in_each_format() -> None:
    kw: dict[str, Any] = dict(model="m", messages=[], schema=None, schema_name="a", params={},
                              tools=[TOOL], tool_choice={"name": "lookup"})
    assert build_body(api="responses", structured="strict", **kw)["tool_choice"] == {
        "type": "function", "name": "lookup"}
    for structured in ("strict", "llama_cpp"):
        assert build_body(api="chat", structured=structured, **kw)["tool_choice"] == {
            "type": "function", "function": {"name": "lookup"}}


def test_cut_off_second_choice_makes_the_answer_unfinished() -> None:
    body = {"choices": [
        {"message": {"content": "a"}, "finish_reason": "stop"},
        {"message": {"content": "b"}, "finish_reason": "length"},
    ]}
    comp = parse_completion("chat", body)
    assert not comp.finished and "length" in comp.detail and len(comp.choices) == 2


def _spec(**kw: Any) -> dict[str, Any]:
    return RequestSpec("ds", "t1", "plans", 0, "m", ({"role": "user", "content": "hi"},),
                       **kw).to_dict()


def test_unit_ids_of_specs_without_tools_or_n_are_unchanged() -> None:
    d = _spec()
    assert not {"tools", "tool_choice", "n"} & set(d)
    # The fingerprint as it was before tools and n existed.
    old = {k: d.get(k) for k in ("dataset", "task_id", "stage", "sample_index", "parent_id",
                                 "model", "messages", "schema", "params")}
    import hashlib

    old_id = ID_PREFIX + hashlib.sha256(canonical_json(
        {"recipe": "r", "recipe_version": "1", **old})).hexdigest()[:40]
    assert unit_id("r", "1", d) == old_id
    ids = {unit_id("r", "1", s) for s in (d, _spec(tools=(TOOL,)), _spec(tool_choice="auto"),
                                          _spec(n=2))}
    assert len(ids) == 4
    assert RequestSpec.from_dict(_spec(tools=(TOOL,), tool_choice="auto", n=2)).to_dict() == _spec(
        tools=(TOOL,), tool_choice="auto", n=2)


def test_fast_spec_constructor_matches_from_dict() -> None:
    """`from_stored` (ingest's hot path) builds what `from_dict` builds."""
    d = {"dataset": "he", "task_id": "t/1", "stage": "plans", "sample_index": 2, "model": "m",
         "messages": [{"role": "user", "content": "hi"}], "schema": {"type": "object"},
         "schema_name": "plans", "params": {"max_output_tokens": 9}, "parent_id": "r1_p",
         "meta": {"k": 1}, "tools": [{"name": "f"}], "tool_choice": "auto", "n": 3}
    for src in (d, {k: d[k] for k in ("dataset", "task_id", "stage", "sample_index", "model",
                                      "messages")}):
        fast, slow = RequestSpec.from_stored(src), RequestSpec.from_dict(src)
        assert type(fast) is RequestSpec and fast == slow
        assert list(vars(fast).items()) == list(vars(slow).items())
    assert "__post_init__" not in vars(RequestSpec)  # from_stored skips __init__
