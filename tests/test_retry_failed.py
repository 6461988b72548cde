"""A run that ends with failed or invalid units says so (exit 4, `completed_with_failures`), and
`run --resume --retry-failed / --retry-invalid` sends those units again: a new attempt on the
same unit, the earlier attempts kept, fresh retry counters, and no chain call planned twice."""

from __future__ import annotations

import re
import socket
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from benchsmith import api
from benchsmith.errors import ConfigError
from fake_openai import BatchScript, FakeOpenAI, Received, Reply
from helpers import (
    KEY_ENV,
    SECRET,
    assert_terminal_invariants,
    cfg_dict,
    cli_env,
    ledger_rows,
    make_cfg,
    read_jsonl,
    request_messages,
    run_cli,
    write_yaml,
)

FAST = {"engine": {"max_retries": 1, "backoff_base_s": 0.01, "backoff_max_s": 0.02}}
FLAT = {"recipe_options": {"diversity": False, "calls_per_task": 2, "max_validation_retries": 1}}


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, SECRET)


def _closed_port_url() -> str:
    """A base URL on 127.0.0.1 where nothing listens (connection refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


def _call_index(r: Received) -> int:
    """The plans call a request is for (0-based), from its prompt."""
    m = re.search(r"\(Call (\d+) of \d+\.\)", request_messages(r.body)[0]["content"])
    assert m, request_messages(r.body)
    return int(m.group(1)) - 1


def _units(rd: Path) -> list[tuple[str, str, int, str, str | None]]:
    return ledger_rows(rd, "SELECT unit_id, task_id, sample_index, state, parent_id FROM units")


def _attempt_statuses(rd: Path) -> Counter[str]:
    return Counter(s for (s,) in ledger_rows(rd, "SELECT status FROM attempts"))


def _cli(args: list[str]) -> Any:
    return run_cli([*args, "--quiet"], env=cli_env(**{KEY_ENV: SECRET}))


def _invocations(rd: Path) -> list[str]:
    return [s for (s,) in ledger_rows(rd, "SELECT status FROM invocations ORDER BY id")]


# ------------------------------------------------------------------ unreachable server (CLI)


def test_unreachable_server_exits_4_then_retry_failed(fake_openai: FakeOpenAI, tmp_path: Path) -> None:
    """Every request fails (wrong base_url): exit 4 with the counts and the retry command.
    Resumed with the URL fixed: nothing is sent without --retry-failed (still exit 4); with
    it, every unit gets a new attempt and the chain (plans.diversity) is planned again."""
    cfg_path = tmp_path / "run.yaml"
    write_yaml(cfg_path, cfg_dict(tmp_path, _closed_port_url(), FAST, tasks=2))
    rd = tmp_path / "runs" / "R"

    res = _cli(["run", "--config", str(cfg_path), "--run-id", "R"])
    assert res.returncode == 4, res.stderr
    # 2 tasks x 3 chained calls: each call failed, the chain went on past it.
    assert Counter(s for *_, s, _p in _units(rd)) == {"failed": 6}
    assert f"finished with failures: 6 failed; retry them with: benchsmith run --config {cfg_path} " \
           "--run-id R --resume --retry-failed" in res.stderr
    assert _invocations(rd) == ["completed_with_failures"]
    st = api.run_status(rd)
    assert st["last_status"] == "completed_with_failures" and st["units"]["failed"] == 6
    failed_attempts = _attempt_statuses(rd)["connection_error"]
    assert failed_attempts == 6 * 2  # 1 + max_retries each

    # Fix the URL. Without --retry-failed: nothing to send, and the run still has failures.
    write_yaml(cfg_path, cfg_dict(tmp_path, fake_openai.base_url, FAST, tasks=2))
    res = _cli(["run", "--config", str(cfg_path), "--run-id", "R", "--resume"])
    assert res.returncode == 4, res.stderr
    assert "finished with failures: 6 failed" in res.stderr
    assert fake_openai.requests == []

    res = _cli(["run", "--config", str(cfg_path), "--run-id", "R", "--resume", "--retry-failed"])
    assert res.returncode == 0, res.stderr
    assert _invocations(rd) == ["completed_with_failures"] * 2 + ["completed"]
    units = _units(rd)
    # The first call of each chain was re-opened; the later calls, planned after a failure
    # (without its plans), were set aside and planned again after the retried call.
    ok = [u for u in units if u[3] == "ok"]
    assert Counter(s for *_, s, _p in units) == {"ok": 6, "skipped": 4}
    assert sorted((t, i) for _u, t, i, _s, _p in ok) == sorted(
        (t, i) for t in {u[1] for u in units} for i in range(3)
    )
    # Three requests per task, each call shown the plans accepted before it.
    assert len(fake_openai.requests) == 6
    for r in fake_openai.requests:
        k = _call_index(r)
        assert request_messages(r.body)[0]["content"].count("#c") == 4 * k
    # The failed attempts are all still there, next to the new ones.
    statuses = _attempt_statuses(rd)
    assert statuses["connection_error"] == failed_attempts and statuses["ok"] == 6
    plans = read_jsonl(rd / "datasets" / "humaneval" / "plans.jsonl")
    assert len(plans) == 2 * 3 * 4 and len({p["plan_id"] for p in plans}) == len(plans)
    assert_terminal_invariants(rd)
    check = run_cli(["validate-run", str(rd)], env=cli_env())
    assert check.returncode == 0, check.stdout + check.stderr


# ------------------------------------------------------------------ invalid answers (CLI)


def test_invalid_answers_exit_4_then_retry_invalid(fake_openai: FakeOpenAI, tmp_path: Path) -> None:
    """Schema-invalid answers until validation retries run out: exit 4. With --retry-invalid
    each unit gets a fresh set of validation retries: asked first without the old feedback,
    re-asked once, accepted."""
    fake_openai.script = lambda r, i: Reply.text("{}")
    cfg_path = write_yaml(tmp_path / "run.yaml", cfg_dict(tmp_path, fake_openai.base_url,
                                                          {**FAST, **FLAT}, tasks=2))
    rd = tmp_path / "runs" / "V"
    res = _cli(["run", "--config", str(cfg_path), "--run-id", "V"])
    assert res.returncode == 4, res.stderr
    assert "finished with failures: 4 invalid; retry them with:" in res.stderr
    assert res.stderr.rstrip().endswith("--run-id V --resume --retry-invalid")
    assert Counter(s for *_, s, _p in _units(rd)) == {"invalid": 4}
    assert _attempt_statuses(rd) == {"invalid": 8}  # 1 + max_validation_retries each

    # --retry-failed alone re-opens nothing here.
    cut = len(fake_openai.requests)
    res = _cli(["run", "--config", str(cfg_path), "--run-id", "V", "--resume", "--retry-failed"])
    assert res.returncode == 4 and len(fake_openai.requests) == cut

    # Now: the first answer to each request is invalid again, the re-ask is accepted.
    seen: Counter[str] = Counter()

    def script(r: Received, _i: int) -> Reply | None:
        key = request_messages(r.body)[0]["content"]
        seen[key] += 1
        return Reply.text("{}") if seen[key] == 1 else None

    fake_openai.script = script
    res = _cli(["run", "--config", str(cfg_path), "--run-id", "V", "--resume", "--retry-invalid"])
    assert res.returncode == 0, res.stderr
    assert Counter(s for *_, s, _p in _units(rd)) == {"ok": 4}
    assert _attempt_statuses(rd) == {"invalid": 8 + 4, "ok": 4}
    # A fresh start: the first request after the re-open carries no feedback from old answers.
    sent = fake_openai.requests[cut:]
    assert sorted(len(request_messages(r.body)) for r in sent) == [1] * 4 + [3] * 4
    nums = ledger_rows(rd, "SELECT unit_id, GROUP_CONCAT(n) FROM attempts GROUP BY unit_id ORDER BY id")
    assert all(ns.split(",") == ["1", "2", "3", "4"] for _u, ns in nums)  # numbered on
    check = run_cli(["validate-run", str(rd)], env=cli_env())
    assert check.returncode == 0, check.stdout + check.stderr


# ------------------------------------------------------------------ chains (API)


def test_retry_keeps_a_chain_that_went_on(fake_openai: FakeOpenAI, tmp_path: Path) -> None:
    """Call 1 failed and calls 2-3 were answered: re-opening call 1 sets nothing aside and plans
    no second call 2 when it succeeds."""
    fake_openai.script = lambda r, i: Reply.error(400, "bad request") if _call_index(r) == 0 else None
    cfg = make_cfg(tmp_path, fake_openai.base_url, FAST, tasks=1)
    s = api.run(cfg, run_id="C")
    assert s.status == "completed_with_failures" and s.stopped is None
    assert s.message == "finished with failures: 1 failed" and s.counts == {"failed": 1, "ok": 2}
    fake_openai.script = None
    cut = len(fake_openai.requests)
    s = api.run(cfg, run_id="C", resume=True, retry_failed=True)
    assert s.status == "completed" and s.counts == {"ok": 3}, s
    assert [_call_index(r) for r in fake_openai.requests[cut:]] == [0]
    rd = tmp_path / "runs" / "C"
    assert sorted(i for _u, _t, i, _s, _p in _units(rd)) == [0, 1, 2]
    # A later resume plans nothing either.
    s = api.run(cfg, run_id="C", resume=True)
    assert s.counts == {"ok": 3} and len(fake_openai.requests) == cut + 1


def test_retried_call_that_fails_again_brings_back_the_chain(
    fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    """Every call failed; re-opened, call 1 fails again: the chain goes on as before the
    re-open. Call 2 (set aside) comes back and is sent, shown no plans; call 3 is planned
    after its answer, shown its plans, and the old call 3 stays set aside."""
    fake_openai.script = lambda r, i: Reply.error(400, "bad request")
    cfg = make_cfg(tmp_path, fake_openai.base_url, FAST, tasks=1)
    assert api.run(cfg, run_id="F").counts == {"failed": 3}
    fake_openai.script = lambda r, i: Reply.error(400, "bad request") if _call_index(r) == 0 else None
    cut = len(fake_openai.requests)
    s = api.run(cfg, run_id="F", resume=True, retry_failed=True)
    assert s.counts == {"failed": 1, "ok": 2, "skipped": 1}, s
    assert s.status == "completed_with_failures"
    sent = fake_openai.requests[cut:]
    assert [_call_index(r) for r in sent] == [0, 1, 2]
    assert [request_messages(r.body)[0]["content"].count("#c") for r in sent] == [0, 0, 4]
    rd = tmp_path / "runs" / "F"
    assert sorted((i, st) for _u, _t, i, st, _p in _units(rd)) == [
        (0, "failed"), (1, "ok"), (2, "ok"), (2, "skipped")]
    resets = ledger_rows(rd, "SELECT prev_state, new_state FROM unit_resets ORDER BY id")
    assert resets == [("failed", "pending"), ("failed", "skipped"), ("failed", "skipped"),
                      ("skipped", "pending")]
    assert_terminal_invariants(rd)
    # A later resume plans nothing more.
    cut = len(fake_openai.requests)
    assert api.run(cfg, run_id="F", resume=True).counts == s.counts
    assert len(fake_openai.requests) == cut


def test_auth_stop_keeps_precedence_and_pending_chain_call_is_set_aside(
    fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    """Call 1 failed, then call 2 hit a 401: the run stopped on auth (not 'with failures').
    Re-opening call 1 sets aside call 2 (pending, nothing planned after it), and no later
    resume plans anything after the call set aside."""
    fake_openai.script = lambda r, i: Reply.error(400 if _call_index(r) == 0 else 401, "no")
    cfg = make_cfg(tmp_path, fake_openai.base_url, FAST, tasks=1)
    s = api.run(cfg, run_id="A")
    assert s.stopped == "stopped_auth" and s.status == "stopped_auth"
    assert s.counts == {"failed": 1, "pending": 1}
    fake_openai.script = None
    cut = len(fake_openai.requests)
    s = api.run(cfg, run_id="A", resume=True, retry_failed=True)
    assert s.status == "completed" and s.counts == {"ok": 3, "skipped": 1}, s
    assert [_call_index(r) for r in fake_openai.requests[cut:]] == [0, 1, 2]
    cut = len(fake_openai.requests)
    assert api.run(cfg, run_id="A", resume=True).counts == s.counts
    assert len(fake_openai.requests) == cut


def test_retry_flags_need_resume(tmp_path: Path) -> None:
    cfg = make_cfg(tmp_path, "http://127.0.0.1:9/v1")
    with pytest.raises(ConfigError, match="--retry-failed.*only applies with --resume"):
        api.run(cfg, run_id="N", retry_failed=True)
    assert not (tmp_path / "runs" / "N").exists()


# ------------------------------------------------------------------ batch mode


def test_batch_mode_retry_failed(fake_openai: FakeOpenAI, tmp_path: Path) -> None:
    """The batch executor sends re-opened units too, with fresh transient-error counters
    (chained plans; every line a 500 until retries run out; after the re-open, each unit's
    first line a 500 again, then answered)."""
    first_lines: Counter[str] = Counter()
    phase = {"retry": False}

    def plan(_bid: str, lines: list[Any]) -> BatchScript:
        errs = {}
        for ln in lines:
            cid = ln["custom_id"]
            if phase["retry"]:
                first_lines[cid] += 1
            if not phase["retry"] or first_lines[cid] == 1:
                errs[cid] = 500
        return BatchScript(http_errors=errs)

    fake_openai.batch_plan = plan
    over = {**FAST, "batch": {"poll_interval_s": 0.01, "max_poll_interval_s": 0.02}}
    cfg = make_cfg(tmp_path, fake_openai.base_url, over, tasks=2)
    s = api.run(cfg, run_id="B", mode="batch")
    assert s.status == "completed_with_failures" and s.counts == {"failed": 6}, s
    rd = tmp_path / "runs" / "B"
    assert _attempt_statuses(rd) == {"http_error": 12}  # 1 + max_retries each
    phase["retry"] = True
    s = api.run(cfg, run_id="B", resume=True, mode="batch", retry_failed=True)
    assert s.status == "completed" and s.counts == {"ok": 6, "skipped": 4}, s
    ok = [(t, i) for _u, t, i, st, _p in _units(rd) if st == "ok"]
    assert len(set(ok)) == 6
    plans = read_jsonl(rd / "datasets" / "humaneval" / "plans.jsonl")
    assert len({p["plan_id"] for p in plans}) == len(plans) == 24
    assert _attempt_statuses(rd) == {"http_error": 12 + 6, "ok": 6}


# ------------------------------------------------------------------ after a replan


def test_replanned_run_neither_reports_nor_retries_the_old_plans_failures(
    fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    """Every request of plan 1 failed (wrong base_url); the run was replanned (another
    max_output_tokens) and plan 2 was answered in full. Plan 1's failed units are not the
    run's output any more: the run is `completed` (exit 0), and --retry-failed does not send
    them again with the old settings (they would be paid for and never exported)."""
    flat = {**FAST, "recipe_options": {"diversity": False, "calls_per_task": 2}}
    cfg_path = tmp_path / "run.yaml"
    write_yaml(cfg_path, cfg_dict(tmp_path, _closed_port_url(), flat, tasks=2))
    assert _cli(["run", "--config", str(cfg_path), "--run-id", "P"]).returncode == 4
    rd = tmp_path / "runs" / "P"

    new = {**flat, "model": {"max_output_tokens": 3000}}
    write_yaml(cfg_path, cfg_dict(tmp_path, fake_openai.base_url, new, tasks=2))
    res = _cli(["run", "--config", str(cfg_path), "--run-id", "P", "--resume", "--replan"])
    assert res.returncode == 0, res.stderr
    assert "finished with failures" not in res.stderr
    assert len(fake_openai.requests) == 4
    assert _invocations(rd)[-1] == "completed"

    res = _cli(["run", "--config", str(cfg_path), "--run-id", "P", "--resume", "--retry-failed"])
    assert res.returncode == 0, res.stderr
    assert "nothing to retry" in res.stderr
    assert len(fake_openai.requests) == 4
    assert ledger_rows(rd, "SELECT plan, state, COUNT(*) FROM units GROUP BY 1, 2") == [
        (1, "failed", 4), (2, "ok", 4)]
    check = run_cli(["validate-run", str(rd)], env=cli_env())
    assert check.returncode == 0, check.stdout + check.stderr
