"""The batch executor (`run --mode batch`) on real HumanEval tasks against the fake
Files + Batches API of tests/fakeserver/.

Expectations come from the HumanEval data, the config each test sets, the price table and
what the fake server actually received and answered (its input files, its result lines and
its default answerer, which is deterministic per request body). Request lines and bodies
are checked against the OpenAI OpenAPI spec in /work/shared/data, read at test time.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from batch_executor_support import (
    CHAT,
    MODEL,
    NO_DIV,
    PRICE,
    RESPONSES,
    batches_in_order,
    check_request_line,
    input_lines,
    ledger_batches,
    local_ids,
    response_text,
    run_batch,
    settled_cost,
    uploads,
)
from fake_batches_support import spec_validator  # OpenAPI 3.0 -> JSON Schema 2020-12 (nullable)
from fake_openai import FakeOpenAI
from helpers import (
    KEY_ENV,
    SECRET,
    assert_no_secret,
    assert_terminal_invariants,
    attempts_by_unit,
    first_task_ids,
    ledger_rows,
    read_jsonl,
    request_messages,
    unit_specs,
)


@pytest.fixture(autouse=True)
def _api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, SECRET)


# --------------------------------------------------------------------------- happy paths


def test_happy_path_responses_diversity_chain(tmp_path: Path) -> None:
    n_tasks = 4
    ids = first_task_ids(n_tasks)
    with FakeOpenAI(cached_tokens=64) as server:
        summary, rd = run_batch(tmp_path, server, {"prices": {MODEL: PRICE}}, tasks=n_tasks)

        assert summary.stopped is None, summary.message
        assert summary.counts == {"ok": 3 * n_tasks}
        assert_terminal_invariants(rd)
        specs = unit_specs(rd)
        assert len(specs) == 3 * n_tasks

        # plans.jsonl: 12 plans per task, every call slot filled, plan ids name their task
        plans = read_jsonl(rd / "datasets/humaneval/plans.jsonl")
        assert Counter(p["task_id"] for p in plans) == {t: 12 for t in ids}
        assert len({p["plan_id"] for p in plans}) == len(plans)
        for p in plans:
            assert p["plan_id"].startswith(p["task_id"] + "#")
            assert specs[p["request_id"]]["task_id"] == p["task_id"]
            assert p["model"] == MODEL
        for t in ids:
            slots = {(p["call_index"], p["plan_index"]) for p in plans if p["task_id"] == t}
            assert slots == {(c, j) for c in range(3) for j in range(4)}

        # diversity on: call k+1 is only planned once call k is done -> one batch per round
        batches = batches_in_order(server)
        assert len(batches) == 3
        for rnd, b in enumerate(batches):
            assert b.status == "completed" and b.endpoint == RESPONSES
            lines = input_lines(server, b)
            assert len(lines) == n_tasks
            assert sorted(specs[ln["custom_id"]]["task_id"] for ln in lines) == ids
            assert {specs[ln["custom_id"]]["sample_index"] for ln in lines} == {rnd}
            for ln in lines:
                check_request_line(ln, RESPONSES, set(specs))
                body = ln["body"]
                assert body["model"] == MODEL
                fmt = body["text"]["format"]
                assert fmt["type"] == "json_schema" and fmt["strict"] is True
                assert request_messages(body)[: len(specs[ln["custom_id"]]["messages"])] == (
                    specs[ln["custom_id"]]["messages"]
                )
            if rnd:  # later calls are shown the plans already accepted for the task
                assert all("already accepted" in request_messages(ln["body"])[0]["content"]
                           for ln in lines)
        assert server.custom_id_counts() == Counter({uid: 1 for uid in specs})
        assert len(uploads(server)) == 3

        # the ledger's batch rows mirror the provider's batches
        rows = ledger_batches(rd)
        assert [r["batch_id"] for r in rows] == [b.id for b in batches]
        for r, b in zip(rows, batches):
            assert r["status"] == "completed" and r["reconciled_at"] is not None
            assert r["endpoint"] == RESPONSES and r["model"] == MODEL
            assert r["input_file_id"] == b.input_file_id
            assert r["n_requests"] == b.n
            assert b.metadata == {"benchsmith_local_id": r["local_id"]}
            assert b.completion_window == "24h"

        # cost settled at the batch price: 0.5 x the online price of the reported usage
        by_unit = attempts_by_unit(rd)
        answered = {o["custom_id"]: o["response"]["body"] for b in batches for o in b.outputs}
        assert set(answered) == set(specs)
        total = 0.0
        for uid, atts in by_unit.items():
            (a,) = atts
            body = answered[uid]
            u = body["usage"]
            assert a["status"] == "ok" and a["http_status"] == 200
            assert (a["input_tokens"], a["cached_input_tokens"], a["output_tokens"]) == (
                u["input_tokens"], u["input_tokens_details"]["cached_tokens"], u["output_tokens"]
            )
            assert a["cached_input_tokens"] == 64
            assert a["cost_usd"] == pytest.approx(settled_cost(u, PRICE, 0.5), rel=1e-9)
            assert a["cost_usd"] == pytest.approx(settled_cost(u, PRICE, 1.0) / 2, rel=1e-9)
            assert a["reserved_usd"] >= a["cost_usd"] > 0
            # the answer recorded is the one the server gave for this custom_id
            assert a["raw_output"] == response_text(body)
            total += a["cost_usd"]
        assert summary.spent_usd == pytest.approx(total, rel=1e-9)

        # logs/batch_calls.jsonl: one line per attempt
        calls = read_jsonl(rd / "logs/batch_calls.jsonl")
        all_atts = [a for atts in by_unit.values() for a in atts]
        assert sorted(c["id"] for c in calls) == sorted(a["id"] for a in all_atts)
        lid = local_ids(rd)
        owner = {o["custom_id"]: lid[b.id] for b in batches for o in b.outputs}
        for c in calls:
            assert c["status"] == "ok" and c["http_status"] == 200
            assert c["key"] == f"batch:{owner[c['request_id']]}"
            assert c["cost_usd"] == pytest.approx(
                next(a["cost_usd"] for a in all_atts if a["id"] == c["id"]))

        # every Files/Batches call carried the key; it is written nowhere
        batch_calls = [r for r in server.requests
                       if r.path.startswith(("/v1/files", "/v1/batches"))]
        assert batch_calls and all(r.headers["Authorization"] == f"Bearer {SECRET}"
                                   for r in batch_calls)
        assert not [r for r in server.requests if r.path in (RESPONSES, CHAT)]  # nothing online
        assert_no_secret(rd, SECRET)
        runs = read_jsonl(rd / "runs.jsonl")
        assert [(r["mode"], r["status"]) for r in runs] == [("batch", "completed")]


def test_chat_api_one_round(tmp_path: Path) -> None:
    n_tasks = 3
    with FakeOpenAI() as server:
        summary, rd = run_batch(
            tmp_path, server, {**NO_DIV, "openai": {"api": "chat"}, "prices": {MODEL: PRICE}},
            tasks=n_tasks,
        )
        assert summary.stopped is None, summary.message
        assert summary.counts == {"ok": 3 * n_tasks}
        assert_terminal_invariants(rd)
        specs = unit_specs(rd)
        (batch,) = batches_in_order(server)  # diversity off: every call in one round
        assert batch.endpoint == CHAT
        lines = input_lines(server, batch)
        assert sorted(ln["custom_id"] for ln in lines) == sorted(specs)
        for ln in lines:
            check_request_line(ln, CHAT, set(specs))
            body = ln["body"]
            assert body["messages"] == specs[ln["custom_id"]]["messages"]
            rf = body["response_format"]
            assert rf["type"] == "json_schema" and rf["json_schema"]["strict"] is True
            assert body["max_completion_tokens"] == 4000
        by_unit = attempts_by_unit(rd)
        for out in batch.outputs:
            (a,) = by_unit[out["custom_id"]]
            body = out["response"]["body"]
            assert a["raw_output"] == response_text(body)
            assert a["input_tokens"] == body["usage"]["prompt_tokens"] > 0
            assert a["cost_usd"] == pytest.approx(settled_cost(body["usage"], PRICE, 0.5), rel=1e-9)
        assert len(read_jsonl(rd / "logs/batch_calls.jsonl")) == 3 * n_tasks
        plans = read_jsonl(rd / "datasets/humaneval/plans.jsonl")
        assert Counter(p["task_id"] for p in plans) == {t: 12 for t in first_task_ids(n_tasks)}


def test_spec_validation_is_not_trivial() -> None:
    """The spec validators used above do reject wrong lines and bodies."""
    import jsonschema

    bad = [
        ("BatchRequestInput", {"custom_id": 7, "method": "POST", "url": RESPONSES, "body": {}}),
        ("BatchRequestInput", {"custom_id": "a", "method": "GET", "url": RESPONSES, "body": {}}),
        ("CreateResponse", {"model": MODEL, "input": 5}),
        ("CreateChatCompletionRequest", {"model": MODEL}),
        ("CreateChatCompletionRequest", {"model": MODEL, "messages": "hi"}),
    ]
    for name, obj in bad:
        with pytest.raises(jsonschema.ValidationError):
            spec_validator(name).validate(obj)


# --------------------------------------------------------------------------- file limits


def test_max_requests_per_file_splits(tmp_path: Path) -> None:
    n_tasks = 4
    with FakeOpenAI() as server:
        summary, rd = run_batch(
            tmp_path, server, {**NO_DIV, "batch": {"max_requests_per_file": 5}}, tasks=n_tasks
        )
        assert summary.stopped is None and summary.counts == {"ok": 12}
        assert_terminal_invariants(rd)
        sizes = sorted(len(input_lines(server, b)) for b in batches_in_order(server))
        assert sizes == [2, 5, 5]
        assert server.custom_id_counts() == Counter({uid: 1 for uid in unit_specs(rd)})
        assert sorted(r["n_requests"] for r in ledger_batches(rd)) == [2, 5, 5]


def test_one_model_per_file(tmp_path: Path) -> None:
    n_tasks = 2
    models = ["fake-alpha", "fake-beta", "fake-gamma"]
    over = {**NO_DIV, "multi_model": True, "model1": models[0], "model2": models[1],
            "model3": models[2]}
    with FakeOpenAI() as server:
        summary, rd = run_batch(tmp_path, server, over, tasks=n_tasks)
        assert summary.stopped is None and summary.counts == {"ok": 3 * n_tasks}
        assert_terminal_invariants(rd)
        specs = unit_specs(rd)
        batches = batches_in_order(server)
        assert len(batches) == 3  # one batch job per model
        seen = []
        for b in batches:
            lines = input_lines(server, b)
            names = {ln["body"]["model"] for ln in lines}
            assert len(names) == 1 and b.model in names
            assert len(lines) == n_tasks
            assert all(specs[ln["custom_id"]]["model"] == b.model for ln in lines)
            seen.append(b.model)
        assert sorted(seen) == models
        assert {r["batch_id"]: r["model"] for r in ledger_batches(rd)} == {b.id: b.model
                                                                             for b in batches}
        plans = read_jsonl(rd / "datasets/humaneval/plans.jsonl")
        assert {(p["call_index"], p["model"]) for p in plans} == set(enumerate(models))


def test_max_bytes_per_file_splits(tmp_path: Path) -> None:
    n_tasks = 3
    with FakeOpenAI() as server:
        # Learn the real line sizes from an unlimited run first.
        run_batch(tmp_path / "probe", server, NO_DIV, tasks=n_tasks)
        (probe,) = batches_in_order(server)
        sizes = [len(raw) + 1 for raw in server.files[probe.input_file_id].content.split(b"\n")
                 if raw.strip()]
        limit = max(1000, 2 * max(sizes) + 10)  # room for two lines, never three
        assert 3 * min(sizes) > limit
        server.reset()

        summary, rd = run_batch(tmp_path, server,
                                {**NO_DIV, "batch": {"max_bytes_per_file": limit}}, tasks=n_tasks)
        assert summary.stopped is None and summary.counts == {"ok": 3 * n_tasks}
        assert_terminal_invariants(rd)
        batches = batches_in_order(server)
        file_sizes = [server.files[b.input_file_id].bytes for b in batches]
        assert all(s <= limit for s in file_sizes), (file_sizes, limit)
        assert len(batches) == 5  # 9 lines, two per file
        assert sum(len(input_lines(server, b)) for b in batches) == 3 * n_tasks
        ledger_sizes = [n for (n,) in ledger_rows(rd, "SELECT bytes FROM batches")]
        assert sorted(ledger_sizes) == sorted(file_sizes)
        assert server.custom_id_counts() == Counter({uid: 1 for uid in unit_specs(rd)})
