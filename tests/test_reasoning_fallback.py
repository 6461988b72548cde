"""The engine's reasoning-parameter fallback (engine/param_fallback.py): an endpoint that
answers 400 naming the reasoning parameter gets the request again once without it, the
model's later requests leave it out (also when the run is resumed, and in the next batch
file), and one warning says so. Driven through benchsmith.api against FakeOpenAI, whose
`reject_params` answers as OpenAI (Responses) and Azure (Chat) do."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from batch_executor_support import FAST
from benchsmith import api
from benchsmith.batch_ops import batch_ingest, export_requests
from benchsmith.engine.param_fallback import rejected_param
from benchsmith.validate.run_checks import check_run
from fake_openai import FakeOpenAI, Reply
from helpers import KEY_ENV, SECRET, attempts_by_unit, deep_merge, ledger_rows, make_cfg
from helpers import read_jsonl, unit_states

MODEL = {"model": {"name": "gpt-5-mini", "reasoning_effort": "high"}}
ONE_AT_A_TIME = {"engine": {"concurrency": 1, "max_retries": 1},
                 "recipe_options": {"calls_per_task": 1}}
RESPONSES_REFUSAL = "Unsupported parameter: 'reasoning.effort' is not supported with this model."


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, SECRET)


def _cfg(tmp_path: Path, server: FakeOpenAI, *more: dict[str, Any], tasks: int = 3) -> Any:
    over: dict[str, Any] = deep_merge(MODEL, ONE_AT_A_TIME)
    for m in more:
        over = deep_merge(over, m)
    return make_cfg(tmp_path, server.base_url, over, tasks=tasks)


def _warnings(said: list[str]) -> list[str]:
    return [m for m in said if "refused the reasoning effort" in m]


def _ok_run(rd: Path) -> None:
    assert set(unit_states(rd).values()) == {"ok"}
    results = check_run(rd)
    assert all(r.ok for r in results), [(r.name, r.problems) for r in results if not r.ok]


# --------------------------------------------------------------------------- which 400s


@pytest.mark.parametrize("message", [
    RESPONSES_REFUSAL,
    "Unrecognized request argument supplied: reasoning_effort",
    "Unsupported value: 'reasoning_effort' does not support 'high' with this model.",
    "[{'type': 'extra_forbidden', 'loc': ('body', 'reasoning'), 'msg': 'Extra inputs are not "
    "permitted', 'input': {'effort': 'high'}}]",
    "Unknown parameter: 'reasoning'.",
])
def test_a_refused_reasoning_parameter_is_recognised(message: str) -> None:
    assert rejected_param(400, message) == "reasoning_effort"


@pytest.mark.parametrize(("status", "message"), [
    (400, "Invalid schema for response_format 'answer': 'reasoning_steps' is not permitted"),
    (400, "This model's maximum context length is 128000 tokens."),
    (400, "Missing required parameter: 'input'."),
    (404, RESPONSES_REFUSAL),
    (500, "Unsupported parameter: 'reasoning.effort'"),
])
def test_other_errors_are_not_a_refusal(status: int, message: str) -> None:
    assert rejected_param(status, message) is None


# --------------------------------------------------------------------------- online


@pytest.mark.parametrize(("wire", "refused", "param"), [
    ("responses", "reasoning", "reasoning.effort"), ("chat", "reasoning_effort", None)])
def test_online_request_is_sent_again_without_the_refused_parameter(
    tmp_path: Path, fake_openai: FakeOpenAI, wire: str, refused: str, param: str | None
) -> None:
    fake_openai.reject_params = (refused,)
    said: list[str] = []
    cfg = _cfg(tmp_path, fake_openai, {"openai": {"api": wire}})
    summary = api.run(cfg, "R", echo=said.append)
    assert summary.status == "completed"
    rd = tmp_path / "runs" / "R"
    _ok_run(rd)
    # One at a time: the first request is refused and sent again without the parameter;
    # every later one leaves it out up front.
    bodies = fake_openai.bodies()
    assert [refused in b for b in bodies] == [True, False, False, False]
    assert all(b["model"] == "gpt-5-mini" for b in bodies)
    first = ledger_rows(rd, "SELECT status, http_status, error FROM attempts ORDER BY id")
    assert first[0][:2] == ("http_error", 400) and first[0][2].startswith("HTTP 400: ")
    assert [r[0] for r in first[1:]] == ["ok"] * 3
    (warning,) = _warnings(said)
    assert "model gpt-5-mini" in warning and "for the rest of the run" in warning
    # What the server said, as it said it (the Chat refusal names the argument).
    assert (RESPONSES_REFUSAL if param else "reasoning_effort") in warning


def test_concurrent_refusals_warn_once_and_each_unit_is_refused_at_most_once(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    fake_openai.reject_params = ("reasoning",)
    said: list[str] = []
    cfg = _cfg(tmp_path, fake_openai, {"engine": {"concurrency": 4}}, tasks=6)
    assert api.run(cfg, "R", echo=said.append).status == "completed"
    rd = tmp_path / "runs" / "R"
    _ok_run(rd)
    assert len(_warnings(said)) == 1
    for uid, atts in attempts_by_unit(rd).items():
        statuses = [a["status"] for a in atts]
        assert statuses in (["ok"], ["http_error", "ok"]), (uid, statuses)
    refused = sum("reasoning" in b for b in fake_openai.bodies())
    assert 1 <= refused <= 4  # at most the first wave in flight
    assert len(fake_openai.requests) == 6 + refused


def test_a_second_refusal_without_the_parameter_fails_the_unit(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    """A server that names the parameter even when it was not sent: the unit fails with its
    message after one fallback, and later units fail at once (no loop, no retry budget)."""
    fake_openai.script = lambda _r, _i: Reply.error(400, RESPONSES_REFUSAL)
    summary = api.run(_cfg(tmp_path, fake_openai, tasks=2), "R")
    assert summary.status == "completed_with_failures"
    rd = tmp_path / "runs" / "R"
    assert set(unit_states(rd).values()) == {"failed"}
    counts = sorted(len(a) for a in attempts_by_unit(rd).values())
    assert counts == [1, 2]
    reasons = {r for (r,) in ledger_rows(rd, "SELECT reason FROM units")}
    assert reasons == {f"HTTP 400: {RESPONSES_REFUSAL}"}


def test_a_resumed_run_leaves_the_refused_parameter_out_from_the_start(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    """The refusals are read back from the ledger: a unit re-opened on resume is sent without
    the parameter at once, and the warning is repeated once for the new invocation."""
    fake_openai.reject_params = ("reasoning",)
    fake_openai.script = lambda r, _i: Reply.error(503, "busy") if "reasoning" not in (
        r.body or {}) and len(fake_openai.requests) <= 3 else None
    said: list[str] = []
    summary = api.run(_cfg(tmp_path, fake_openai, tasks=1), "R", echo=said.append)
    # refused, then 503 twice (max_retries 1): failed
    assert summary.status == "completed_with_failures"
    assert len(fake_openai.requests) == 3
    fake_openai.reset()
    fake_openai.reject_params = ("reasoning",)
    said.clear()
    summary = api.run(_cfg(tmp_path, fake_openai, tasks=1), "R", resume=True,
                      retry_failed=True, echo=said.append)
    assert summary.status == "completed"
    assert ["reasoning" in b for b in fake_openai.bodies()] == [False]
    assert len(_warnings(said)) == 1
    _ok_run(tmp_path / "runs" / "R")


# --------------------------------------------------------------------------- batch


def test_batch_lines_refused_go_again_in_the_next_file_without_it(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    fake_openai.reject_params = ("reasoning",)
    said: list[str] = []
    cfg = _cfg(tmp_path, fake_openai, FAST)
    summary = api.run(cfg, "R", mode="batch", echo=said.append)
    assert summary.status == "completed"
    rd = tmp_path / "runs" / "R"
    _ok_run(rd)
    files = [b.lines for b in fake_openai.batches.values()]
    assert [len(f) for f in files] == [3, 3]
    assert all("reasoning" in ln["body"] for ln in files[0])
    assert not any("reasoning" in ln["body"] for ln in files[1])
    assert len(_warnings(said)) == 1
    for atts in attempts_by_unit(rd).values():
        assert [(a["status"], a["http_status"]) for a in atts] == [
            ("http_error", 400), ("ok", 200)]


def test_exported_requests_leave_out_what_an_ingested_line_refused(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    """`batch export` / `batch ingest` (a runner elsewhere): after refusal lines are
    ingested, the next export has the same requests without the parameter."""
    cfg = _cfg(tmp_path, fake_openai)
    api.dry_run(cfg, "R")
    rd = tmp_path / "runs" / "R"
    out = tmp_path / "requests.jsonl"
    assert export_requests(rd, out).written == 3
    lines = read_jsonl(out)
    assert all(ln["body"]["reasoning"] == {"effort": "high"} for ln in lines)
    results = tmp_path / "results.jsonl"
    results.write_text("".join(json.dumps({
        "id": f"batch_req_{i}", "custom_id": ln["custom_id"], "error": None,
        "response": {"status_code": 400, "request_id": f"req_{i}", "body": {"error": {
            "message": RESPONSES_REFUSAL, "type": "invalid_request_error",
            "param": "reasoning.effort", "code": "unsupported_parameter"}}},
    }) + "\n" for i, ln in enumerate(lines)))
    batch_ingest(rd, [results])
    assert set(unit_states(rd).values()) == {"pending"}
    assert export_requests(rd, out).written == 3
    again = read_jsonl(out)
    assert sorted(ln["custom_id"] for ln in again) == sorted(ln["custom_id"] for ln in lines)
    assert not any("reasoning" in ln["body"] for ln in again)
