"""Batch result lines in every error shape, and request lines over the per-file cap.

Each shape is what some runner writes for a failed request (OpenAI error files, vLLM
run-batch old and new, runners that only name the error). It must be treated as the online
executor treats the status it stands for (5xx / 429 retried within engine.max_retries,
other 4xx fail), both by the batch executor (the line scripted into the fake server's
error file) and by offline `batch ingest` (the line in a results file).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import pytest

from benchsmith import api, batch_ops
from fake_openai import BatchScript, FakeOpenAI
from helpers import (
    KEY_ENV,
    SECRET,
    assert_terminal_invariants,
    attempts_by_unit,
    cli_env,
    ledger_rows,
    make_cfg,
    nonempty_lines,
    read_jsonl,
    run_cli,
    unit_states,
)
from batch_executor_support import NO_DIV, batches_in_order, input_lines, run_batch, statuses
from test_batch_offline import cli_config, dry_run_cli, export_cli, ingest_cli, write_jsonl

ENV = cli_env()
MSG = "The server had an error while processing your request."


@pytest.fixture(autouse=True)
def _api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, SECRET)


def _err(error: Any, response: Any = None) -> Callable[[str], dict[str, Any]]:
    return lambda cid: {"id": f"batch_req_{cid[-6:]}", "custom_id": cid, "response": response,
                        "error": error}


def _resp(status: Any, body: Any) -> dict[str, Any]:
    return {"status_code": status, "request_id": "req_x", "body": body}


# name: (result line for a custom_id, expectation)
#   ("retry", attempt status, http_status): the unit stays pending and is sent again
#   ("fail", http_status, text in the reason): the unit fails at once
SHAPES: dict[str, tuple[Callable[[str], dict[str, Any]], tuple[Any, ...]]] = {
    # the line: the status only as an integer error.code
    "error_code_int": (_err({"message": MSG, "type": "InternalServerError", "code": 500}),
                       ("retry", "http_error", 500)),
    "error_code_numeric_string": (_err({"message": MSG, "type": "error", "code": "503"}),
                                  ("retry", "http_error", 503)),
    # newer vLLM: an ErrorResponse whose ErrorInfo sits under "error"
    "vllm_nested_error": (_err({"error": {"message": MSG, "type": "InternalServerError",
                                          "param": None, "code": 500}}),
                          ("retry", "http_error", 500)),
    "rate_limit_code": (_err({"code": "rate_limit_exceeded", "message": "Rate limit reached"}),
                        ("retry", "http_error", 429)),
    "rate_limit_type": (_err({"type": "RateLimitError", "message": "Too many requests"}),
                        ("retry", "http_error", 429)),
    "server_error_code": (_err({"code": "server_error", "message": MSG}),
                          ("retry", "http_error", 500)),
    "expired_as_type": (_err({"type": "batch_expired", "message": "window expired"}),
                        ("retry", "batch_expired", None)),
    "error_string_only": (_err("CUDA error: an illegal memory access was encountered"),
                          ("retry", "batch_error", None)),
    "nothing_at_all": (_err(None), ("retry", "batch_error", None)),
    "body_error_500": (_err(None, _resp(500, {"error": {"message": MSG, "type": "server_error",
                                                        "param": None, "code": None}})),
                       ("retry", "http_error", 500)),
    "status_code_string": (_err(None, _resp("502", {"error": {"message": "Bad gateway"}})),
                           ("retry", "http_error", 502)),
    "200_without_body": (_err(None, _resp(200, None)), ("retry", "malformed", 200)),
    "invalid_request": (_err({"code": "invalid_request_error",
                              "message": "Invalid 'input': string too long."}),
                        ("fail", 400, "string too long")),
    "vllm_string_400": (_err("Request must not be sent in stream mode", _resp(400, None)),
                        ("fail", 400, "stream mode")),
}


# --------------------------------------------------------------------------- batch executor


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_executor_error_shape(tmp_path: Path, shape: str) -> None:
    make_line, expect = SHAPES[shape]
    target: list[str] = []

    def plan(bid: str, lines: list[Any]) -> BatchScript | None:
        if target:
            return None  # later batches: every line answered
        target.append(sorted(ln["custom_id"] for ln in lines)[0])
        return BatchScript(result_lines={target[0]: make_line(target[0])})

    with FakeOpenAI() as server:
        server.batch_plan = plan
        summary, rd = run_batch(tmp_path, server, {**NO_DIV, "engine": {"max_retries": 2}},
                                tasks=1)
        assert summary.stopped is None, summary.message
        uid = target[0]
        atts = attempts_by_unit(rd)[uid]
        reason = dict(ledger_rows(rd, "SELECT unit_id, reason FROM units"))[uid]
        if expect[0] == "retry":
            _, status, http = expect
            assert summary.counts == {"ok": 3}
            assert statuses(atts) == [status, "ok"]
            assert atts[0]["http_status"] == http and atts[0]["cost_usd"] == 0
            assert server.custom_id_counts()[uid] == 2
            first, second = batches_in_order(server)
            assert [ln["custom_id"] for ln in input_lines(server, second)] == [uid]
        else:
            _, http, text = expect
            assert summary.counts == {"ok": 2, "failed": 1}
            assert statuses(atts) == ["http_error"] and atts[0]["http_status"] == http
            assert f"HTTP {http}" in reason and text in reason
            assert server.custom_id_counts()[uid] == 1
        assert_terminal_invariants(rd)


def test_executor_retryable_shape_fails_after_max_retries(tmp_path: Path) -> None:
    make_line = SHAPES["error_code_int"][0]
    with FakeOpenAI() as server:
        server.batch_plan = lambda bid, lines: BatchScript(
            result_lines={ln["custom_id"]: make_line(ln["custom_id"]) for ln in lines})
        summary, rd = run_batch(tmp_path, server, {**NO_DIV, "engine": {"max_retries": 1}},
                                tasks=1)
        assert summary.counts == {"failed": 3}
        for uid, reason in ledger_rows(rd, "SELECT unit_id, reason FROM units"):
            assert statuses(attempts_by_unit(rd)[uid]) == ["http_error", "http_error"]
            assert reason == f"HTTP 500: {MSG} after 2 tries"
        assert len(batches_in_order(server)) == 2


@pytest.mark.parametrize("bad", ["no_custom_id", "not_json", "not_an_object"])
def test_executor_unusable_line_requeues_its_request(tmp_path: Path, bad: str) -> None:
    lines = {
        "no_custom_id": {"id": "batch_req_1", "response": None,
                         "error": {"code": "server_error", "message": MSG}},
        "not_json": b'{"custom_id": "r1_trunc',
        "not_an_object": b'["r1_x", 500]',
    }
    target: list[str] = []

    def plan(bid: str, batch_lines: list[Any]) -> BatchScript | None:
        if target:
            return None
        target.append(batch_lines[0]["custom_id"])
        return BatchScript(result_lines={target[0]: lines[bad]})

    with FakeOpenAI() as server:
        server.batch_plan = plan
        summary, rd = run_batch(tmp_path, server, NO_DIV, tasks=1)  # no traceback
        assert summary.stopped is None and summary.counts == {"ok": 3}
        atts = attempts_by_unit(rd)[target[0]]
        assert statuses(atts) == ["missing", "ok"]
        why = {"no_custom_id": f"without a custom_id was skipped: server_error: {MSG}",
               "not_json": "line 1: not JSON", "not_an_object": "line 1: not a JSON object"}[bad]
        assert why in atts[0]["error"] and "\n" not in atts[0]["error"]
        assert server.custom_id_counts()[target[0]] == 2
        assert_terminal_invariants(rd)


# --------------------------------------------------------------------------- offline ingest


def _planned(tmp_path: Path, server_url: str, overrides: dict | None = None,
             tasks: int = 1) -> tuple[Path, list[dict[str, Any]]]:
    cfg = make_cfg(tmp_path, server_url, {**NO_DIV, **(overrides or {})}, tasks=tasks)
    rd = api.dry_run(cfg, "R").run_dir
    out = tmp_path / "req.jsonl"
    batch_ops.batch_export(rd, out)
    return rd, read_jsonl(out)


def _export_ids(rd: Path, out: Path) -> list[str]:
    batch_ops.batch_export(rd, out)
    return [ln["custom_id"] for ln in read_jsonl(out)]


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_ingest_error_shape(tmp_path: Path, shape: str) -> None:
    make_line, expect = SHAPES[shape]
    rd, lines = _planned(tmp_path, "http://127.0.0.1:9/v1")
    uid = lines[0]["custom_id"]
    results = write_jsonl(tmp_path / "err.jsonl", [make_line(uid)])
    rep = batch_ops.batch_ingest(rd, [results])
    (att,) = attempts_by_unit(rd)[uid]
    if expect[0] == "retry":
        _, status, http = expect
        assert (rep.counts["requeued"], rep.counts["failed"]) == (1, 0)
        assert unit_states(rd)[uid] == "pending"
        assert (att["status"], att["http_status"], att["cost_usd"]) == (status, http, 0)
        assert uid in _export_ids(rd, tmp_path / "again.jsonl")  # sent again
    else:
        _, http, text = expect
        assert (rep.counts["requeued"], rep.counts["failed"]) == (0, 1)
        assert unit_states(rd)[uid] == "failed"
        assert (att["status"], att["http_status"]) == ("http_error", http)
        reason = dict(ledger_rows(rd, "SELECT unit_id, reason FROM units"))[uid]
        assert f"HTTP {http}" in reason and text in reason
        assert uid not in _export_ids(rd, tmp_path / "again.jsonl")


def test_ingest_500_line_stays_pending_and_is_exported_again(tmp_path: Path) -> None:
    """The issue's line, through the CLI: pending, exported again unchanged, and failed only
    once engine.max_retries is used up."""
    with FakeOpenAI() as server:
        cfg = cli_config(tmp_path, server, {**NO_DIV, "engine": {"max_retries": 1}}, tasks=1)
        rd = dry_run_cli(cfg)
        lines = export_cli(rd, tmp_path / "req1.jsonl")
        target = lines[0]
        uid = target["custom_id"]
        line = {"id": "batch_req_1", "custom_id": uid, "response": None,
                "error": {"message": MSG, "type": "InternalServerError", "code": 500}}
        rep = ingest_cli(rd, write_jsonl(tmp_path / "err1.jsonl", [line]))
        assert (rep["lines"], rep["requeued"], rep["failed"]) == (1, 1, 0)
        assert unit_states(rd)[uid] == "pending"

        again = export_cli(rd, tmp_path / "req2.jsonl")
        assert target in again and len(again) == len(lines)

        rep = ingest_cli(rd, write_jsonl(tmp_path / "err2.jsonl", [dict(line, id="batch_req_2")]))
        assert (rep["requeued"], rep["failed"]) == (0, 1)
        reason = dict(ledger_rows(rd, "SELECT unit_id, reason FROM units"))[uid]
        assert reason == f"HTTP 500: {MSG} after 2 tries"
        assert target not in export_cli(rd, tmp_path / "req3.jsonl")


def test_ingest_line_without_custom_id_is_counted_with_a_reason(tmp_path: Path) -> None:
    with FakeOpenAI() as server:
        rd = dry_run_cli(cli_config(tmp_path, server, NO_DIV, tasks=1))
        lines = export_cli(rd, tmp_path / "req.jsonl")
        rows = [
            {"id": "batch_req_1", "response": None, "error": {"code": "server_error",
                                                              "message": MSG}},
            {"id": "batch_req_2", "custom_id": None, "response": None, "error": "boom"},
            {"id": "batch_req_3", "custom_id": lines[0]["custom_id"], "response": None,
             "error": {"code": 500, "message": MSG}},
        ]
        results = write_jsonl(tmp_path / "res.jsonl", rows)
        rep = ingest_cli(rd, results)
        assert (rep["lines"], rep["no_custom_id"], rep["unknown"], rep["requeued"]) == (3, 2, 0, 1)
        assert rep["unknown_ids"] == []
        skipped = "a result line without a custom_id was skipped"
        assert rep["notes"] == [f"{skipped}: server_error: {MSG}", f"{skipped}: boom"]

        res = run_cli(["batch", "ingest", str(rd), str(results)], env=ENV)  # text report
        assert res.returncode == 0 and "Traceback" not in res.stdout + res.stderr
        assert "already_ingested: 3" in res.stdout
        assert set(unit_states(rd).values()) == {"pending"}


def test_ingest_non_json_line_names_file_and_line(tmp_path: Path) -> None:
    with FakeOpenAI() as server:
        rd = dry_run_cli(cli_config(tmp_path, server, NO_DIV, tasks=1))
        lines = export_cli(rd, tmp_path / "req.jsonl")
        good = {"id": "batch_req_1", "custom_id": lines[0]["custom_id"], "response": None,
                "error": {"code": 500, "message": MSG}}
        bad = tmp_path / "bad.jsonl"
        bad.write_text(json.dumps(good) + "\n\n" + '{"custom_id": "r1_x", oops\n', "utf-8")
        res = run_cli(["batch", "ingest", str(rd), str(bad)], env=ENV)
        assert res.returncode == 1 and "Traceback" not in res.stdout + res.stderr
        (err,) = nonempty_lines(res.stderr)
        assert err.startswith(f"error: {bad}: line 3: a line is not valid JSON")
        assert set(unit_states(rd).values()) == {"pending"}
        assert not attempts_by_unit(rd)  # nothing applied


# --------------------------------------------------------------------------- oversize lines


def _line_sizes(lines: list[dict[str, Any]]) -> dict[str, int]:
    """Bytes of each exported request line (as written: compact JSON plus newline)."""
    from orjson import dumps

    return {ln["custom_id"]: len(dumps(ln)) + 1 for ln in lines}


def test_executor_fails_request_line_over_the_file_cap(tmp_path: Path) -> None:
    with FakeOpenAI() as server:
        _, probe = _planned(tmp_path / "probe", server.base_url, tasks=3)
        sizes = _line_sizes(probe)
        cap = max(sizes.values()) - 1
        big = {u for u, n in sizes.items() if n > cap}
        assert cap >= 1000 and big and len(big) < len(sizes)

        over = {**NO_DIV, "batch": {"max_bytes_per_file": cap}}
        summary, rd = run_batch(tmp_path, server, over, tasks=3)
        assert summary.stopped is None
        assert summary.counts == {"ok": len(sizes) - len(big), "failed": len(big)}
        reasons = dict(ledger_rows(rd, "SELECT unit_id, reason FROM units"))
        for u in big:
            assert unit_states(rd)[u] == "failed"
            assert reasons[u] == (f"request line of {sizes[u]} bytes exceeds the per-file cap "
                                  f"of {cap} bytes")
            assert u not in attempts_by_unit(rd)  # never sent, nothing reserved
        sent = server.custom_id_counts()
        assert not big & set(sent) and set(sent) == set(sizes) - big
        assert all(server.files[b.input_file_id].bytes <= cap for b in batches_in_order(server))
        assert_terminal_invariants(rd)


def test_executor_chain_goes_on_after_oversize_failures(tmp_path: Path) -> None:
    """With diversity on, call 2 of a task is planned after call 1 ends; when every line is
    over the cap each call fails unsent, and the run ends (nothing is uploaded)."""
    with FakeOpenAI() as server:
        summary, rd = run_batch(tmp_path, server, {"batch": {"max_bytes_per_file": 1000}},
                                tasks=1)
        assert summary.stopped is None and summary.counts == {"failed": 3}
        assert not server.files and not server.custom_id_counts()
        reasons = [r for (r,) in ledger_rows(rd, "SELECT reason FROM units")]
        assert all(r.endswith("exceeds the per-file cap of 1000 bytes") for r in reasons)


def test_export_fails_request_line_over_the_file_cap(tmp_path: Path) -> None:
    with FakeOpenAI() as server:
        probe_rd = dry_run_cli(cli_config(tmp_path / "probe", server, NO_DIV, tasks=3))
        sizes = _line_sizes(export_cli(probe_rd, tmp_path / "probe.jsonl"))
        cap = max(sizes.values()) - 1
        big = {u for u, n in sizes.items() if n > cap}
        assert cap >= 1000 and big and len(big) < len(sizes)

        cfg = cli_config(tmp_path, server, {**NO_DIV, "batch": {"max_bytes_per_file": cap}},
                         tasks=3)
        rd = dry_run_cli(cfg)
        out = tmp_path / "req.jsonl"
        res = run_cli(["batch", "export", str(rd), "--out", str(out)], env=ENV)
        assert res.returncode == 0 and "Traceback" not in res.stderr
        written = read_jsonl(out)
        assert {ln["custom_id"] for ln in written} == set(sizes) - big
        assert max(len(raw) + 1 for raw in out.read_bytes().splitlines()) <= cap
        err = nonempty_lines(res.stderr)
        assert err[0] == f"wrote {len(written)} pending request(s) to {out}"
        assert sorted(err[1:]) == sorted(
            f"warning: unit {u} failed, not written: request line of {sizes[u]} bytes exceeds "
            f"the per-file cap of {cap} bytes" for u in big)
        states = unit_states(rd)
        assert {states[u] for u in big} == {"failed"}
        assert {states[u] for u in set(sizes) - big} == {"pending"}
        assert export_cli(rd, tmp_path / "again.jsonl") == written  # not exported again


# --------------------------------------------------------------------------- ingest paths agree


def test_ingest_with_helper_process_agrees_with_in_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Answers are judged ahead in blocks, by a helper process on big inputs: every shape must
    come out the same whether the helper judged its block or this process did."""
    from benchsmith.ingest import helper, orchestrate
    from test_batch_offline import answer

    with FakeOpenAI() as server:
        cfg = {**NO_DIV, "engine": {"max_retries": 3}}
        rd_a, lines = _planned(tmp_path / "a", server.base_url, cfg, tasks=10)
        rd_b, lines_b = _planned(tmp_path / "b", server.base_url, cfg, tasks=10)
        assert lines == lines_b
        names = sorted(SHAPES)
        rows: list[dict[str, Any]] = []
        for i, ln in enumerate(lines):
            if i % 3 == 2:
                rows.append(SHAPES[names[(i // 3) % len(names)]][0](ln["custom_id"]))
                continue
            (ok,) = answer(server, [ln])
            if i % 3 == 1:  # the status as a numeric string: still an answer
                ok["response"]["status_code"] = "200"
            rows.append(ok)
        rows.insert(9, {"id": "batch_req_x", "response": None, "error": "no id"})
        rows.append(rows[0])  # an answer twice (other line bytes: not seen before)
        rows[-1] = dict(rows[-1], id="batch_req_again")
        results = write_jsonl(tmp_path / "results.jsonl", rows)

        monkeypatch.setattr(orchestrate, "INGEST_BLOCK", 4)  # many small blocks
        rep_b = batch_ops.batch_ingest(rd_b, [results])  # small input: no helper

        monkeypatch.setattr(helper, "HELPER_MIN_BYTES", 0)
        readable, take = helper.Helper._readable, helper.Helper.take
        judged: list[int] = []
        # wait for the helper to be ready instead of going on without it
        monkeypatch.setattr(helper.Helper, "_readable",
                            lambda self, timeout: readable(self, max(timeout, 60.0)))

        def counting_take(self: Any, k: int, hashes: list[str]) -> Any:
            got = take(self, k, hashes)
            if got is not None:
                judged.append(k)
            return got

        monkeypatch.setattr(helper.Helper, "take", counting_take)
        rep_a = batch_ops.batch_ingest(rd_a, [results])
        assert len(judged) >= 3, judged  # the helper judged blocks

    assert rep_a == rep_b
    assert rep_a.counts["ok"] == 20 and rep_a.counts["no_custom_id"] == 1
    assert rep_a.counts["already_done"] == 1

    def outcome(rd: Path) -> Any:
        return (ledger_rows(rd, "SELECT unit_id, state, reason, result_json FROM units "
                                "ORDER BY unit_id"),
                ledger_rows(rd, "SELECT unit_id, n, status, http_status, cost_usd, error, "
                                "issues_json, raw_output FROM attempts ORDER BY id"))

    assert outcome(rd_a) == outcome(rd_b)
    by_unit = attempts_by_unit(rd_a)
    for i, ln in enumerate(lines):
        (att,) = by_unit[ln["custom_id"]]
        if i % 3 != 2:
            assert att["status"] == "ok"
            continue
        expect = SHAPES[names[(i // 3) % len(names)]][1]
        if expect[0] == "retry":
            assert (att["status"], att["http_status"]) == expect[1:]
        else:
            assert (att["status"], att["http_status"]) == ("http_error", expect[1])


def test_exhausted_quota_line_stops_the_executor_and_stays_pending_on_ingest(
    tmp_path: Path,
) -> None:
    """`insufficient_quota` (429) is what stops an online run: the executor stops (exit 3
    path) with the message; an ingest leaves the unit pending, as nothing can be stopped."""
    quota = _err({"code": "insufficient_quota", "message": "You exceeded your current quota."})
    with FakeOpenAI() as server:
        server.batch_plan = lambda bid, lines: BatchScript(
            result_lines={lines[0]["custom_id"]: quota(lines[0]["custom_id"])})
        summary, rd = run_batch(tmp_path / "x", server, NO_DIV, tasks=1)
        assert summary.stopped == "stopped_auth" and "quota" in summary.message
        assert "pending" in unit_states(rd).values()

    rd, lines = _planned(tmp_path / "y", "http://127.0.0.1:9/v1")
    uid = lines[0]["custom_id"]
    rep = batch_ops.batch_ingest(rd, [write_jsonl(tmp_path / "q.jsonl", [quota(uid)])])
    assert (rep.counts["requeued"], rep.counts["failed"]) == (1, 0)
    assert unit_states(rd)[uid] == "pending"
    assert [(a["status"], a["http_status"]) for a in attempts_by_unit(rd)[uid]] == [
        ("http_error", 429)]
