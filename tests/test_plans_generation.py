"""Plan generation features: multi-model routing, diversity, prompt caching, SWE-bench gold.

Real data: HumanEval from the package and SWE-bench Verified rows from ../shared/data.
"""

from __future__ import annotations

import json
from pathlib import Path

from fake_openai import FakeOpenAI, Reply
from helpers import KEY_ENV, SECRET, make_cfg, read_json, read_jsonl, unit_states

from typer.testing import CliRunner

from benchsmith import api
from benchsmith.cli.app import app
from benchsmith.recipes.plans.stages import plan_schema

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
VERIFIED = SHARED / "swebench_verified" / "swebench_verified_test.jsonl.gz"
PRICE = {"input": 1.0, "cached_input": 0.1, "output": 4.0}


def _content(body: dict) -> str:
    msgs = body.get("input") or body.get("messages") or []
    return "\n".join(m["content"] for m in msgs if isinstance(m.get("content"), str))


def test_multi_model_routes_each_call_to_its_model(fake_openai, tmp_path, monkeypatch):
    monkeypatch.setenv(KEY_ENV, SECRET)
    cfg = make_cfg(
        tmp_path,
        fake_openai.base_url,
        {
            "multi-model": True,
            "model1": "model-a",
            "model2": {"name": "model-b", "max_output_tokens": 3000},
            "model3": "model-c",
            "budget": {"max_usd": 50},
            "prices": {m: PRICE for m in ("model-a", "model-b", "model-c")},
        },
        tasks=2,
    )
    summary = api.run(cfg, "mm")
    assert summary.stopped is None
    seen = {}
    for r in fake_openai.requests:
        call = int(_content(r.body).split("(Call ")[1].split(" of")[0])
        seen.setdefault(call, set()).add(r.body["model"])
    assert seen == {1: {"model-a"}, 2: {"model-b"}, 3: {"model-c"}}
    plans = read_jsonl(summary.run_dir / "datasets/humaneval/plans.jsonl")
    assert {(p["call_index"], p["model"]) for p in plans} == {
        (0, "model-a"), (1, "model-b"), (2, "model-c")
    }
    assert len(plans) == 2 * 12
    budgets = [r.body["max_output_tokens"] for r in fake_openai.requests if r.body["model"] == "model-b"]
    assert budgets and set(budgets) == {3000}


def test_multi_model_without_price_is_a_config_error(fake_openai, tmp_path, monkeypatch):
    from benchsmith.errors import ConfigError

    monkeypatch.setenv(KEY_ENV, SECRET)
    cfg = make_cfg(
        tmp_path, fake_openai.base_url,
        {"multi_model": True, "model1": "a", "model2": "b", "budget": {"max_usd": 1},
         "prices": {"a": PRICE}},
        tasks=1,
    )
    try:
        api.run(cfg, "x")
    except ConfigError as e:
        assert "prices.b" in str(e)
    else:
        raise AssertionError("a model without a price must be rejected when a budget is set")
    assert fake_openai.requests == []


def _plan(title: str, summary: str, steps: list[str]) -> dict:
    return {"title": title, "summary": summary, "steps": steps}


CALL1 = [
    _plan("Pairwise comparison", "Compare every pair of numbers and check the gap.",
          ["loop over i", "loop over j after i", "return True on a small gap"]),
    _plan("Sort then scan", "Sort a copy and compare neighbours only.",
          ["sort the numbers", "walk adjacent pairs", "compare each gap to the threshold"]),
    _plan("Bucket by threshold", "Hash each number into buckets of threshold width.",
          ["compute bucket ids", "check same and adjacent buckets", "insert as you go"]),
    _plan("Balanced tree neighbours", "Keep a sorted structure and query neighbours.",
          ["insert into a sorted list", "bisect for neighbours", "compare the closest two"]),
]


def test_later_calls_see_accepted_plans_and_duplicates_are_regenerated(
    fake_openai, tmp_path, monkeypatch
):
    """Call 2 first repeats a plan of call 1: rejected as duplicate_of:<id>, then re-asked."""
    monkeypatch.setenv(KEY_ENV, SECRET)

    def script(rec, index):
        text = _content(rec.body)
        if "(Call 1 of" in text:
            return Reply.text({"plans": CALL1})
        if "(Call 2 of" in text and "failed validation" not in text:
            fresh = [
                _plan("Recursive halving", "Divide the list, solve halves, merge the borders.",
                      ["split in two", "recurse on each half", "check pairs across the cut"]),
                _plan("Numpy broadcasting", "Vectorise all pairwise differences at once.",
                      ["build an array", "subtract its transpose", "mask the diagonal"]),
                _plan("Early-exit generator", "Stream candidate pairs lazily, stop at first hit.",
                      ["yield index pairs", "test each gap", "short-circuit with any()"]),
            ]
            return Reply.text({"plans": [dict(CALL1[1]), *fresh]})  # plan 0 copies c0p1
        return None  # default answers: distinct per request

    fake_openai.script = script
    cfg = make_cfg(tmp_path, fake_openai.base_url, {"recipe_options": {"max_validation_retries": 2}}, tasks=1)
    summary = api.run(cfg, "div")
    rd = summary.run_dir
    assert summary.stopped is None
    bodies = [r.body for r in fake_openai.requests]
    call2 = [b for b in bodies if "(Call 2 of" in _content(b)]
    assert len(call2) == 2
    # Call 2 was shown call 1's accepted plans (ids, titles and gist).
    for b in call2:
        for j, p in enumerate(CALL1):
            assert f"HumanEval/0#c0p{j}: {p['title']}" in _content(b)
    # Its first answer was rejected as a duplicate of c0p1, then re-asked with that reason.
    failed = read_jsonl(rd / "failed_plans/datasets/humaneval/plans.jsonl")
    assert len(failed) == 1 and failed[0]["call_index"] == 1
    assert failed[0]["validation_error"].startswith("duplicate_of:HumanEval/0#c0p1")
    assert "duplicate_of:HumanEval/0#c0p1" in _content(call2[1])
    # The regenerated answer was accepted: 12 distinct plans, the copy is not among them twice.
    plans = read_jsonl(rd / "datasets/humaneval/plans.jsonl")
    assert len(plans) == 12 and len({p["plan_id"] for p in plans}) == 12
    assert sum(p["title"] == CALL1[1]["title"] for p in plans) == 1
    # Call 3 saw the 8 plans of calls 1 and 2.
    call3 = [b for b in bodies if "(Call 3 of" in _content(b)]
    assert len(call3) == 1 and _content(call3[0]).count("HumanEval/0#c") == 8
    assert read_json(rd / "manifests/humaneval_similarity_rejections.json") == {"HumanEval/0": 1}
    assert api.run_status(rd)["similarity_rejections"] == {"humaneval": 1}
    # `status` shows the line the plans recipe adds.
    res = CliRunner().invoke(app, ["status", str(rd)])
    assert res.exit_code == 0, res.output
    assert ("diversity: humaneval: 1 plan(s) rejected as too similar (per task: "
            "manifests/humaneval_similarity_rejections.json)") in res.output


def test_near_duplicate_within_one_answer_is_rejected(fake_openai, tmp_path, monkeypatch):
    monkeypatch.setenv(KEY_ENV, SECRET)
    near = dict(CALL1[0], title="Pairwise comparisons")  # one letter more
    fake_openai.enqueue(Reply.text({"plans": [CALL1[0], near, CALL1[2], CALL1[3]]}))
    cfg = make_cfg(tmp_path, fake_openai.base_url, {"recipe_options": {"calls_per_task": 1}}, tasks=1)
    summary = api.run(cfg, "near")
    failed = read_jsonl(summary.run_dir / "failed_plans/datasets/humaneval/plans.jsonl")
    assert [f["validation_error"].split(" ")[0] for f in failed] == ["duplicate_of:HumanEval/0#c0p0"]
    assert len(read_jsonl(summary.run_dir / "datasets/humaneval/plans.jsonl")) == 4


def test_call_after_an_invalid_call_still_runs(fake_openai, tmp_path, monkeypatch):
    monkeypatch.setenv(KEY_ENV, SECRET)

    def script(rec, index):
        if "(Call 1 of" in _content(rec.body):
            return Reply.text({"plans": []})  # always invalid
        return None

    fake_openai.script = script
    cfg = make_cfg(tmp_path, fake_openai.base_url, {"recipe_options": {"max_validation_retries": 1}}, tasks=1)
    summary = api.run(cfg, "inv")
    states = sorted(unit_states(summary.run_dir).values())
    assert states == ["invalid", "ok", "ok"]
    plans = read_jsonl(summary.run_dir / "datasets/humaneval/plans.jsonl")
    assert len(plans) == 8
    assert read_json(summary.run_dir / "manifests/humaneval_incomplete_task_ids.json") == ["HumanEval/0"]


def test_prompt_cache_fields_sent_and_cached_tokens_priced(tmp_path, monkeypatch):
    monkeypatch.setenv(KEY_ENV, SECRET)
    with FakeOpenAI(cached_tokens=200) as server:
        cfg = make_cfg(
            tmp_path, server.base_url,
            {
                "openai": {
                    "prompt_cache_enabled": True,
                    "prompt_cache_key_prefix": "hx",
                    "prompt_cache_retention": "24h",
                },
                "prices": {"gpt-5-mini": PRICE},
            },
            tasks=2,
        )
        summary = api.run(cfg, "cache")
        bodies = [r.body for r in server.requests]
    keys_by_task: dict[str, set[str]] = {}
    for b in bodies:
        assert b["prompt_cache_retention"] == "24h"
        assert b["prompt_cache_key"].startswith("hx-") and len(b["prompt_cache_key"]) <= 64
        tid = "HumanEval/0" if "def has_close_elements" in _content(b) else "other"
        keys_by_task.setdefault(tid, set()).add(b["prompt_cache_key"])
    # one stable key per task, different across tasks
    assert all(len(v) == 1 for v in keys_by_task.values()) and len(keys_by_task) == 2
    assert len(set().union(*keys_by_task.values())) == 2
    # the shared prefix (instructions + task text) comes before what differs per call
    for b in bodies:
        text = _content(b)
        assert text.index("[PRIMARY_TASK]") < text.index("(Call ")
    calls = read_jsonl(summary.run_dir / "logs/batch_calls.jsonl")
    for c in calls:
        u = c["usage"]
        assert c["cached_input_tokens"] == 200
        expected = ((u["input_tokens"] - 200) * 1.0 + 200 * 0.1 + u["output_tokens"] * 4.0) / 1e6
        assert abs(c["cost_usd"] - expected) < 1e-12


def test_prompt_cache_off_by_default(fake_openai, tmp_path, monkeypatch):
    monkeypatch.setenv(KEY_ENV, SECRET)
    api.run(make_cfg(tmp_path, fake_openai.base_url, tasks=1), "nocache")
    assert fake_openai.requests
    assert all("prompt_cache_key" not in r.body for r in fake_openai.requests)


def test_swebench_verified_plans_never_see_gold(fake_openai, tmp_path, monkeypatch):
    monkeypatch.setenv(KEY_ENV, SECRET)
    cfg = make_cfg(
        tmp_path, fake_openai.base_url,
        {"datasets": {"swebench_verified": {"path": str(VERIFIED), "max_tasks": 3}},
         "recipe_options": {"calls_per_task": 1}},
    )
    # `datasets` from the helper also holds humaneval; keep only SWE-bench here.
    cfg = cfg.model_copy(update={"datasets": {"swebench_verified": cfg.datasets["swebench_verified"]}})
    summary = api.run(cfg, "swe")
    rd = summary.run_dir
    tasks = read_jsonl(rd / "datasets/swebench_verified/tasks.jsonl")
    assert [t["task_id"] for t in tasks] == sorted(t["task_id"] for t in tasks)
    ids = (SHARED / "swebench_verified" / "instance_ids.txt").read_text().split()[:3]
    assert [t["task_id"] for t in tasks] == ids
    raw = b"".join(r.raw for r in fake_openai.requests)
    text = "\n".join(_content(r.body) for r in fake_openai.requests)
    for t in tasks:
        assert t["primary"][:200] in text  # the problem statement is in the prompt
        for gold in ("patch", "test_patch"):
            g = t["extras"][gold]
            assert g and g not in text
            # a distinctive line of the diff is absent too (not just the whole string)
            line = max(g.splitlines(), key=len)
            assert line not in text and json.dumps(line)[1:-1].encode() not in raw
    assert read_json(rd / "manifests/swebench_verified_first100_instance_ids.json") == ids
    assert len(read_jsonl(rd / "datasets/swebench_verified/plans.jsonl")) == 3 * 4


def test_plan_schema_is_strict_mode():
    from benchsmith.recipes.schema import strict_mode_problems

    assert strict_mode_problems(plan_schema(4, 2)) == []


def test_compiled_validator_agrees_with_the_reference_walk():
    import random

    from benchsmith.recipes.schema import compile_validator, validate_instance

    schema = plan_schema(4, 2)
    check = compile_validator(schema)
    rng = random.Random(7)
    good = {"plans": [{"title": f"t{i}", "summary": "s", "steps": ["a", "b"]} for i in range(4)]}
    samples = [good, {}, [], {"plans": []}, {"plans": "x"}, {"plans": [1, 2, 3, 4]}]
    for _ in range(300):
        d = json.loads(json.dumps(good))
        p = rng.choice(d["plans"])
        op = rng.randrange(6)
        if op == 0:
            del p["steps"]
        elif op == 1:
            p["extra"] = 1
        elif op == 2:
            p["steps"] = ["only one"]
        elif op == 3:
            p["title"] = None
        elif op == 4:
            d["plans"].append(dict(p))
        else:
            d["other"] = True
        samples.append(d)
    for s in samples:
        assert check(s) == validate_instance(s, schema)
    assert check(good) == []
