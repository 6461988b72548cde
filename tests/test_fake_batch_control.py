"""The fake server's batch scripting knobs (HTTP error lines, given result lines, answer
functions, custom states, batch_plan), its listing and request log, and an aiohttp
client end to end.
"""

from __future__ import annotations

import asyncio
import collections
import json
import threading
import time
from typing import Any

import aiohttp
import pytest
from fake_batches_support import (
    Client,
    _drop_none,
    check_batch,
    check_output_line,
    jsonl,
    resp_line,
    response_text,
    spec_validator,
)
from fake_openai import BatchScript, FakeOpenAI, Reply


def test_http_error_lines(fake_openai: FakeOpenAI, client: Client) -> None:
    fake_openai.enqueue_batch(BatchScript(http_errors={
        "c1": 429,
        "c3": Reply.error(400, "Invalid prompt: flagged.", code="invalid_prompt"),
    }))
    final, _ = client.poll(client.submit([resp_line(i) for i in range(5)])["id"])
    assert final["status"] == "completed"
    assert final["request_counts"] == {"total": 5, "completed": 3, "failed": 2}
    out = client.lines(final["output_file_id"])
    errs = {e["custom_id"]: e for e in client.lines(final["error_file_id"])}
    assert [o["custom_id"] for o in out] == ["c0", "c2", "c4"]
    assert set(errs) == {"c1", "c3"}
    e1, e3 = errs["c1"], errs["c3"]
    assert e1["error"] is None and e1["response"]["status_code"] == 429
    assert e1["response"]["body"]["error"]["code"] == "rate_limit_exceeded"
    assert e3["response"]["status_code"] == 400
    assert e3["response"]["body"] == {"error": {"message": "Invalid prompt: flagged.", "type": "invalid_request_error",
                                                "param": None, "code": "invalid_prompt"}}
    assert final["usage"]["total_tokens"] == sum(o["response"]["body"]["usage"]["total_tokens"] for o in out)


def test_result_lines_written_as_given(fake_openai: FakeOpenAI, client: Client) -> None:
    vllm_err = {"custom_id": "c1", "response": None,
                "error": {"message": "boom", "type": "InternalServerError", "code": 500}}
    nameless = {"response": None, "error": {"message": "no id", "code": "server_error"}}
    fake_openai.enqueue_batch(BatchScript(result_lines={"c1": vllm_err, "c2": nameless,
                                                         "c3": "not json {"}))
    final, _ = client.poll(client.submit([resp_line(i) for i in range(5)])["id"])
    assert final["status"] == "completed"
    assert final["request_counts"] == {"total": 5, "completed": 2, "failed": 3}
    assert [o["custom_id"] for o in client.lines(final["output_file_id"])] == ["c0", "c4"]
    raw = client.content(final["error_file_id"]).splitlines()
    assert [json.loads(raw[0]), json.loads(raw[1]), raw[2]] == [vllm_err, nameless, b"not json {"]


def test_answer_function_and_drop(fake_openai: FakeOpenAI, client: Client) -> None:
    calls: list[str] = []

    def answer(custom_id: str, body: dict) -> Any:
        calls.append(custom_id)
        assert body["model"] == "gpt-test"
        if custom_id == "c0":
            return '{"plans": "not a list"}'  # schema-invalid JSON
        if custom_id == "c1":
            return {"plans": []}
        if custom_id == "c2":
            return Reply.incomplete('{"plans": [{"ti')
        if custom_id == "c3":
            return Reply.text("custom", usage={"input_tokens": 100, "output_tokens": 50, "reasoning_tokens": 5})
        if custom_id == "c4":
            raise RuntimeError("boom")
        if custom_id == "c5":
            return Reply.error(500, "upstream broke")
        return None  # default answer

    fake_openai.enqueue_batch(BatchScript(answer=answer, drop={"c6"}))
    lines = [resp_line(i) for i in range(8)]
    final, _ = client.poll(client.submit(lines)["id"])
    assert sorted(calls) == [f"c{i}" for i in range(8)]
    out = {o["custom_id"]: o["response"]["body"] for o in client.lines(final["output_file_id"])}
    errs = {e["custom_id"]: e for e in client.lines(final["error_file_id"])}
    assert set(out) == {"c0", "c1", "c2", "c3", "c7"} and set(errs) == {"c4", "c5"}  # c6 dropped
    assert response_text(out["c0"]) == '{"plans": "not a list"}'
    assert json.loads(response_text(out["c1"])) == {"plans": []}
    assert out["c2"]["status"] == "incomplete"
    assert out["c2"]["incomplete_details"] == {"reason": "max_output_tokens"}
    assert out["c3"]["usage"]["input_tokens"] == 100 and out["c3"]["usage"]["total_tokens"] == 150
    assert response_text(out["c7"]).startswith("Fake answer")
    assert errs["c4"]["response"]["status_code"] == 500
    assert "boom" in errs["c4"]["response"]["body"]["error"]["message"]
    assert isinstance(fake_openai.errors[0], RuntimeError)
    assert errs["c5"]["response"]["body"]["error"]["message"] == "upstream broke"
    # A dropped request still counts as completed: clients must join on custom_id.
    assert final["request_counts"] == {"total": 8, "completed": 6, "failed": 2}
    assert final["usage"]["total_tokens"] == sum(b["usage"]["total_tokens"] for b in out.values())


def test_custom_states_progress_and_stuck_batch(fake_openai: FakeOpenAI, client: Client) -> None:
    fake_openai.enqueue_batch(
        BatchScript(states=["validating", "validating", "in_progress", "in_progress", "in_progress",
                            "finalizing", "completed", "in_progress"]),
        BatchScript(states=["validating", "in_progress"]),  # never finishes
    )
    bid = client.submit([resp_line(i) for i in range(8)])["id"]
    walk = [(o["status"], o["request_counts"]["completed"]) for o in (client.get(bid) for _ in range(8))]
    assert walk == [("validating", 0), ("in_progress", 2), ("in_progress", 4), ("in_progress", 6),
                    ("finalizing", 8), ("completed", 8), ("completed", 8), ("completed", 8)]

    stuck = client.submit([resp_line(1)])["id"]
    assert {client.get(stuck)["status"] for _ in range(5)} == {"in_progress"}
    assert fake_openai.batches[stuck].states == ["validating", "in_progress"]
    with pytest.raises(ValueError):
        BatchScript(states=["validating", "done"])
    with pytest.raises(ValueError):
        BatchScript(states="completed")


def test_batch_plan_queue_precedence_and_errors(fake_openai: FakeOpenAI, client: Client) -> None:
    seen: list[tuple[str, int]] = []

    def plan(batch_id: str, input_lines: list[Any]) -> BatchScript | None:
        seen.append((batch_id, len(input_lines)))
        assert all(isinstance(ln, dict) for ln in input_lines)
        return BatchScript(expire_after=1) if len(input_lines) == 3 else None

    fake_openai.batch_plan = plan
    fake_openai.enqueue_batch(BatchScript(http_errors={"c0": 503}))
    assert fake_openai.pending_batches == 1
    first, _ = client.poll(client.submit([resp_line(i) for i in range(3)])["id"])  # the queued script wins
    assert first["status"] == "completed" and first["request_counts"]["failed"] == 1
    assert fake_openai.pending_batches == 0 and seen == []
    second, _ = client.poll(client.submit([resp_line(i) for i in range(3)])["id"])
    assert second["status"] == "expired"
    third, _ = client.poll(client.submit([resp_line(i) for i in range(2)])["id"])
    assert third["status"] == "completed"
    assert seen == [(second["id"], 3), (third["id"], 2)]

    fake_openai.batch_plan = lambda bid, lines: 1 / 0
    status, data = client.call("POST", "/batches", {"input_file_id": client.upload([resp_line(1)])["id"],
                                                    "endpoint": "/v1/responses", "completion_window": "24h"})
    assert status == 500 and json.loads(data)["error"]["type"] == "server_error"
    assert isinstance(fake_openai.errors[-1], ZeroDivisionError)
    with pytest.raises(TypeError):
        fake_openai.enqueue_batch("not a script")  # type: ignore[arg-type]


def test_create_rejections_and_unknown_ids(fake_openai: FakeOpenAI, client: Client) -> None:
    fid = client.upload([resp_line(1)])["id"]
    base = {"input_file_id": fid, "endpoint": "/v1/responses", "completion_window": "24h"}

    def rejected(body: dict, param: str | None) -> None:
        status, data = client.call("POST", "/batches", body)
        assert status == 400, data
        err = json.loads(data)["error"]
        assert set(err) == {"message", "type", "param", "code"} and err["param"] == param

    rejected({**base, "completion_window": "1h"}, "completion_window")
    rejected({**base, "endpoint": "/v1/nope"}, "endpoint")
    rejected({**base, "endpoint": "/v1/embeddings"}, "endpoint")  # valid upstream, not faked
    rejected({**base, "input_file_id": "file-missing"}, "input_file_id")
    rejected({**base, "input_file_id": client.upload([resp_line(1)], purpose="user_data")["id"]}, "input_file_id")
    rejected({k: v for k, v in base.items() if k != "endpoint"}, "endpoint")
    rejected({**base, "metadata": {"k": 1}}, "metadata")
    rejected({**base, "metadata": {f"k{i}": "v" for i in range(17)}}, "metadata")
    status, _ = client.call("POST", "/batches", raw=b"{broken")
    assert status == 400
    assert fake_openai.batches == {}

    for method, path in (("GET", "/batches/batch_nope"), ("POST", "/batches/batch_nope/cancel")):
        status, data = client.call(method, path)
        assert status == 404 and "error" in json.loads(data)
    for method, path in (("DELETE", "/batches"), ("POST", "/batches/x"), ("GET", "/batches/x/cancel")):
        status, _ = client.call(method, path)
        assert status == 405
    # Online endpoints are untouched by the batch API.
    assert client.json("POST", "/responses", resp_line(1)["body"])["object"] == "response"


def test_listing_pages_newest_first_without_advancing(fake_openai: FakeOpenAI, client: Client) -> None:
    fid = client.upload([resp_line(1)])["id"]
    ids = [client.create(fid)["id"] for _ in range(5)]
    page = client.json("GET", "/batches?limit=2")
    spec_validator("ListBatchesResponse").validate({**_drop_none(page), "data": [_drop_none(b) for b in page["data"]]})
    assert page["object"] == "list" and page["has_more"] is True
    assert [b["id"] for b in page["data"]] == [ids[4], ids[3]]
    assert page["first_id"] == ids[4] and page["last_id"] == ids[3]
    page2 = client.json("GET", f"/batches?limit=2&after={page['last_id']}")
    assert [b["id"] for b in page2["data"]] == [ids[2], ids[1]] and page2["has_more"] is True
    page3 = client.json("GET", f"/batches?limit=2&after={page2['last_id']}")
    assert [b["id"] for b in page3["data"]] == [ids[0]] and page3["has_more"] is False
    default = client.json("GET", "/batches")
    assert len(default["data"]) == 5 and default["has_more"] is False
    for b in default["data"]:
        check_batch(b)
        assert b["status"] == "validating"  # listing does not advance
    for bad in ("0", "101", "x"):
        status, _ = client.call("GET", f"/batches?limit={bad}")
        assert status == 400
    empty = client.json("GET", "/batches?after=batch_unknown")
    assert empty["data"] == [] and empty["first_id"] is None and empty["has_more"] is False
    list_reqs = [r for r in fake_openai.requests if r.path == "/v1/batches" and r.method == "GET"]
    assert list_reqs[1].query == "limit=2&after=" + page["last_id"]


def test_request_log_files_and_cross_batch_custom_ids(fake_openai: FakeOpenAI, client: Client) -> None:
    a, _ = client.poll(client.submit([resp_line(i) for i in range(3)])["id"])
    b, _ = client.poll(client.submit([resp_line(i) for i in range(2, 5)])["id"])
    counts = fake_openai.custom_id_counts()
    assert counts["c2"] == 2 and counts["c0"] == 1 and sum(counts.values()) == 6
    assert [len(s.lines) for s in fake_openai.batches.values()] == [3, 3]
    assert list(fake_openai.batches) == [a["id"], b["id"]]

    reqs = fake_openai.requests
    assert [(r.method, r.path) for r in reqs[:2]] == [("POST", "/v1/files"), ("POST", "/v1/batches")]
    assert reqs[0].body is None and b"custom_id" in reqs[0].raw  # multipart body kept raw
    assert reqs[1].body["input_file_id"] == a["input_file_id"]
    assert reqs[0].headers["authorization"] == "Bearer sk-test"
    assert sum(1 for r in reqs if r.method == "GET" and r.path == f"/v1/batches/{a['id']}") == 3

    files = fake_openai.files
    purposes = collections.Counter(f.purpose for f in files.values())
    assert purposes == {"batch": 2, "batch_output": 2}
    assert files[a["output_file_id"]].filename.endswith(".jsonl")

    fake_openai.enqueue_batch(BatchScript())
    fake_openai.batch_plan = lambda bid, lines: None
    fake_openai.reset()
    assert fake_openai.files == {} and fake_openai.batches == {}
    assert fake_openai.pending_batches == 0 and fake_openai.batch_plan is None and fake_openai.requests == []


def test_advance_without_polling(fake_openai: FakeOpenAI, client: Client) -> None:
    fake_openai.batch_advance_on_get = False
    bid = client.submit([resp_line(i) for i in range(2)])["id"]
    assert client.get(bid)["status"] == "validating"
    assert client.get(bid)["status"] == "validating"
    assert fake_openai.advance_batch(bid) == "in_progress"
    assert client.get(bid)["status"] == "in_progress"
    assert fake_openai.finish_batch(bid) == "completed"
    assert fake_openai.finish_batch(bid) == "completed"
    final = client.get(bid)
    assert final["status"] == "completed" and len(client.lines(final["output_file_id"])) == 2
    with pytest.raises(KeyError):
        fake_openai.advance_batch("batch_nope")


def test_large_batch_is_fast(fake_openai: FakeOpenAI, client: Client) -> None:
    lines = [resp_line(i) for i in range(5000)]
    t0 = time.monotonic()
    final, _ = client.poll(client.submit(lines)["id"])
    out = client.content(final["output_file_id"]).splitlines()
    assert len(out) == 5000 and final["request_counts"]["completed"] == 5000
    assert time.monotonic() - t0 < 20


# --------------------------------------------------------------------------- aiohttp + threads


def test_aiohttp_client_end_to_end_and_concurrency(fake_openai: FakeOpenAI) -> None:
    base = fake_openai.base_url

    async def one(session: aiohttp.ClientSession, k: int) -> tuple[str, list[dict]]:
        form = aiohttp.FormData()
        form.add_field("purpose", "batch")
        form.add_field("file", jsonl([resp_line(f"b{k}-{i}") for i in range(4)]),
                       filename=f"batch {k}.jsonl", content_type="application/jsonl")
        async with session.post(f"{base}/files", data=form) as r:
            assert r.status == 200, await r.text()
            fobj = await r.json()
        assert fobj["filename"] == f"batch {k}.jsonl"
        body = {"input_file_id": fobj["id"], "endpoint": "/v1/responses", "completion_window": "24h"}
        async with session.post(f"{base}/batches", json=body) as r:
            batch = await r.json()
        while batch["status"] not in ("completed", "failed", "expired", "cancelled"):
            async with session.get(f"{base}/batches/{batch['id']}") as r:
                batch = await r.json()
        async with session.get(f"{base}/files/{batch['output_file_id']}/content") as r:
            raw = await r.read()
        return batch["status"], [json.loads(x) for x in raw.splitlines()]

    async def run() -> list[tuple[str, list[dict]]]:
        async with aiohttp.ClientSession() as session:
            return await asyncio.gather(*(one(session, k) for k in range(20)))

    # Meanwhile another thread pokes the server-side state.
    stop = threading.Event()
    peeks: list[int] = []

    def peek() -> None:
        while not stop.is_set():
            peeks.append(sum(len(b.lines) for b in fake_openai.batches.values()))
            fake_openai.custom_id_counts()
            time.sleep(0.001)

    t = threading.Thread(target=peek)
    t.start()
    try:
        results = asyncio.run(run())
    finally:
        stop.set()
        t.join(5)
    assert [status for status, _ in results] == ["completed"] * 20
    for k, (_, lines) in enumerate(results):
        for line in lines:
            check_output_line(line)
        assert [ln["custom_id"] for ln in lines] == [f"b{k}-{i}" for i in range(4)]
    assert len(fake_openai.batches) == 20 and peeks
    assert max(fake_openai.custom_id_counts().values()) == 1
