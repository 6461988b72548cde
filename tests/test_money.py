"""Honest money: a server that bills past the caps, batch prices in validate-run, and
SIGINT/SIGTERM that keep the answers already paid for.

The fake server's `force_output_tokens` reports that many output tokens whatever the
request's max_output_tokens, as providers do that bill reasoning past the cap.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from benchsmith import api, batch_ops
from benchsmith.config import parse_config
from benchsmith.validate.run_checks import check_run
from fake_openai import FakeOpenAI, Reply
from helpers import (
    BIN,
    KEY_ENV,
    SECRET,
    assert_terminal_invariants,
    cfg_dict,
    cli_env,
    deep_merge,
    ledger_rows,
    make_cfg,
    match_unit,
    nonempty_lines,
    popen_cli,
    read_jsonl,
    run_cli,
    unit_specs,
    unit_states,
    wait_for,
    write_yaml,
)
from batch_executor_support import FAST, MODEL, NO_DIV, PRICE
from test_batch_offline import answer, write_jsonl

MAX_OUT = 1000
PRICES = {MODEL: {"input": 1.0, "output": 4.0}}
OB = re.compile(
    r"the server billed \$([\d.]+) more than the requests' cost caps \(max_output_tokens\) "
    r"on (\d+) request\(s\); spent \$([\d.]+) of the \$([\d.]+) budget"
)


@pytest.fixture(autouse=True)
def _api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, SECRET)


def _money_cfg(tmp_path: Path, base_url: str, over: dict[str, Any], tasks: int) -> dict[str, Any]:
    base = {"prices": PRICES, "model": {"max_output_tokens": MAX_OUT}}
    return cfg_dict(tmp_path, base_url, deep_merge(base, over), tasks=tasks)


def _spend(rd: Path) -> float:
    ((settled, unsettled),) = ledger_rows(
        rd, "SELECT COALESCE(SUM(cost_usd), 0), "
            "COALESCE(SUM(CASE WHEN status='sent' THEN reserved_usd ELSE 0 END), 0) FROM attempts")
    return float(settled) + float(unsettled)


def _overbilled(rd: Path) -> tuple[float, int]:
    ((usd, n),) = ledger_rows(
        rd, "SELECT COALESCE(SUM(cost_usd - reserved_usd), 0), COUNT(*) FROM attempts "
            "WHERE cost_usd > reserved_usd")
    return float(usd), int(n)


def _continue_line(out: str) -> str:
    (line,) = [ln for ln in nonempty_lines(out) if "--resume" in ln]
    return line


def _problems(rd: Path, name: str = "costs") -> list[str]:
    return next(r for r in check_run(rd) if r.name == name).problems


# --------------------------------------------------------------------------- overbilling


def test_overbilling_server_stops_with_exit_2_and_is_reported(fake_openai: FakeOpenAI,
                                                               tmp_path: Path) -> None:
    fake_openai.force_output_tokens = 50_000
    cfg = write_yaml(tmp_path / "ob.yaml", _money_cfg(
        tmp_path, fake_openai.base_url,
        {"budget": {"max_usd": 0.05}, "engine": {"concurrency": 4}}, tasks=6))
    env = cli_env(**{KEY_ENV: SECRET})
    res = run_cli(["run", "--config", str(cfg), "--run-id", "OB", "--quiet"], env=env)
    out = res.stdout + res.stderr
    rd = tmp_path / "runs" / "OB"
    assert res.returncode == 2, out
    assert "Traceback" not in out

    # The stop says by how much the server went past the caps, and what was spent.
    (stop,) = [ln for ln in nonempty_lines(out) if ln.startswith("stopped:")]
    m = OB.search(stop)
    assert m, stop
    over, n, spent, cap = float(m[1]), int(m[2]), float(m[3]), float(m[4])
    led_over, led_n = _overbilled(rd)
    assert led_n == n > 0 and over == pytest.approx(led_over, abs=1e-4)
    assert spent == pytest.approx(_spend(rd), abs=1e-4) and cap == 0.05
    assert spent > cap  # the first wave was billed far past its reservations
    cont = _continue_line(out)
    assert f"--config {cfg}" in cont and "--run-id OB --resume" in cont

    # Dispatch stopped at the first overbilled answer: every request went out before it.
    rows = ledger_rows(rd, "SELECT started_at, ended_at, error FROM attempts")
    assert len(rows) == len(fake_openai.requests) <= 4
    first_end = min(e for _s, e, _err in rows)
    assert all(s <= first_end for s, _e, _err in rows)
    # ... and each overbilled attempt says so in the ledger and the call log.
    calls = read_jsonl(rd / "logs/batch_calls.jsonl")
    assert all((c["error"] or "").startswith("overbilled:") for c in calls)
    assert all(c["cost_usd"] > c["reserved_usd"] for c in calls)
    assert [r["status"] for r in read_jsonl(rd / "runs.jsonl")] == ["stopped_budget"]

    # status and validate-run call the spend past the budget a problem.
    st = run_cli(["status", str(rd)], env=env)
    assert st.returncode == 0, st.stderr
    problems = [ln for ln in nonempty_lines(st.stdout) if ln.startswith("problem:")]
    assert any("past its $0.0500 budget" in p for p in problems), st.stdout
    assert "of the $0.0500 budget" in st.stdout
    assert api.run_status(rd)["problems"]
    val = run_cli(["validate-run", str(rd)], env=env)
    assert val.returncode != 0, val.stdout
    costs = _problems(rd)
    assert any("past its $0.0500 budget" in p for p in costs), costs
    assert not [p for p in costs if "does not match" in p], costs

    # A resume with the same budget spends nothing more, and is no new overspend.
    n_sent = len(fake_openai.requests)
    res2 = run_cli(["run", "--config", str(cfg), "--run-id", "OB", "--resume", "--quiet"],
                   env=env)
    assert res2.returncode == 2, res2.stdout + res2.stderr
    assert len(fake_openai.requests) == n_sent
    assert len([p for p in _problems(rd) if "past its" in p]) == 1


def test_overbilling_scales_reservations_to_stay_within_budget(fake_openai: FakeOpenAI,
                                                               tmp_path: Path) -> None:
    """A server billing ~2.3x the caps: worst cases then count at the ratio seen, so dispatch
    stops before the spend can pass the budget (counted at the caps, 4 requests in flight
    would take it past)."""
    over = {"recipe_options": {"diversity": False, "calls_per_task": 12}, "engine": {"concurrency": 4}}
    est = api.dry_run(parse_config(_money_cfg(tmp_path, fake_openai.base_url, over, tasks=1),
                                   file="e.yaml", config_dir=str(tmp_path)), "EST").estimate
    worst = est.first_attempt_usd / est.units
    max_usd = 12 * worst
    fake_openai.force_output_tokens = 3 * MAX_OUT
    cfg = make_cfg(tmp_path, fake_openai.base_url,
                   deep_merge(_money_cfg(tmp_path, fake_openai.base_url, over, tasks=1),
                              {"budget": {"max_usd": max_usd}}), tasks=1)
    s = api.run(cfg, "SC")
    rd = tmp_path / "runs" / "SC"
    assert s.stopped == "stopped_budget", s.message
    assert OB.search(s.message), s.message
    assert s.counts.get("ok", 0) >= 3 and s.counts.get("pending", 0) > 0
    assert _spend(rd) <= max_usd + 1e-12
    ratios = [c / r for r, c in ledger_rows(rd, "SELECT reserved_usd, cost_usd FROM attempts")]
    assert min(ratios) > 2
    assert not _problems(rd)


def test_batch_overbilling_stops_before_the_next_file(tmp_path: Path) -> None:
    with FakeOpenAI(force_output_tokens=50_000) as server:
        cfg = make_cfg(tmp_path, server.base_url, deep_merge(FAST, {
            "prices": PRICES, "model": {"max_output_tokens": MAX_OUT},
            "budget": {"max_usd": 0.02}, "batch": {"max_requests_per_file": 2}}), tasks=3)
        s = api.run(cfg, "BOB", mode="batch")
        rd = tmp_path / "runs" / "BOB"
        assert s.stopped == "stopped_budget", s.message
        m = OB.search(s.message)
        assert m, s.message
        assert float(m[1]) == pytest.approx(_overbilled(rd)[0], abs=1e-4)
        # The files of the first round were sent; nothing after the overbilled results.
        assert len(server.batches) == len(ledger_rows(rd, "SELECT local_id FROM batches"))
        first_round = ledger_rows(rd, "SELECT MIN(reconciled_at) FROM batches")[0][0]
        assert all(c <= first_round for (c,) in ledger_rows(rd, "SELECT created_at FROM batches"))
        costs = _problems(rd)
        assert any("past its $0.0200 budget" in p for p in costs), costs
        assert not [p for p in costs if "does not match" in p], costs
        errors = [e for (e,) in ledger_rows(rd, "SELECT error FROM attempts WHERE status='ok'")]
        assert errors and all(e.startswith("overbilled:") for e in errors)


# --------------------------------------------------------------------------- batch prices


def test_validate_run_prices_batch_and_ingested_attempts(tmp_path: Path) -> None:
    with FakeOpenAI(cached_tokens=64) as server:
        over = deep_merge(FAST, {"prices": {MODEL: PRICE}})
        s = api.run(make_cfg(tmp_path, server.base_url, over, tasks=3), "BATCH", mode="batch")
        assert s.stopped is None and s.spent_usd > 0
        failed = {r.name: r.problems for r in check_run(s.run_dir) if not r.ok}
        assert failed == {}

        # the same requests answered offline and ingested
        cfg = make_cfg(tmp_path / "off", server.base_url, deep_merge(over, NO_DIV), tasks=2)
        rd = api.dry_run(cfg, "INGEST").run_dir
        out = tmp_path / "requests.jsonl"
        assert batch_ops.batch_export(rd, out) == 6
        rep = batch_ops.batch_ingest(rd, [write_jsonl(tmp_path / "results.jsonl",
                                                      answer(server, read_jsonl(out)))])
        assert rep.counts["ok"] == 6 and rep.problems == []
        assert set(unit_states(rd).values()) == {"ok"}
        failed = {r.name: r.problems for r in check_run(rd) if not r.ok}
        assert failed == {}

        # a wrong batch price in the snapshot is still caught
        snap = rd / "config/run_config.json"
        data = json.loads(snap.read_text())
        data["batch"]["price_multiplier"] = 1.0
        snap.write_text(json.dumps(data))
        costs = _problems(rd)
        assert costs and all("at the batch price (x1)" in p for p in costs[:6]), costs


def test_ingest_past_the_budget_is_reported(tmp_path: Path) -> None:
    with FakeOpenAI() as server:
        over = deep_merge(FAST, {**NO_DIV, "prices": {MODEL: PRICE}, "budget": {"max_usd": 1e-4}})
        rd = api.dry_run(make_cfg(tmp_path, server.base_url, over, tasks=1), "IB").run_dir
        out = tmp_path / "requests.jsonl"
        batch_ops.batch_export(rd, out)
        results = write_jsonl(tmp_path / "results.jsonl", answer(server, read_jsonl(out)))
        res = run_cli(["batch", "ingest", str(rd), str(results)], env=cli_env())
        assert res.returncode == 0, res.stderr
        assert any(ln.startswith("problem:") and "past its $0.0001 budget" in ln
                   for ln in nonempty_lines(res.stdout)), res.stdout
        assert "past its $0.0001 budget" in api.run_status(rd)["problems"][0]


# --------------------------------------------------------------------------- signals


def _signal_cfg(tmp_path: Path, server: FakeOpenAI, over: dict[str, Any] | None = None,
                tasks: int = 8) -> Path:
    base = deep_merge(NO_DIV, {"engine": {"concurrency": 10, "timeout_s": 60}})
    return write_yaml(tmp_path / "sig.yaml",
                      cfg_dict(tmp_path, server.base_url, deep_merge(base, over or {}), tasks=tasks))


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_lets_requests_in_flight_finish_and_resume_sends_none_again(
        fake_openai: FakeOpenAI, tmp_path: Path, sig: signal.Signals) -> None:
    fake_openai.latency = 1.5
    cfg = _signal_cfg(tmp_path, fake_openai)
    env = cli_env(**{KEY_ENV: SECRET})
    rd = tmp_path / "runs" / "S"
    proc = popen_cli(["run", "--config", str(cfg), "--run-id", "S", "--quiet"], env=env)
    try:
        wait_for(lambda: len(fake_openai.requests) >= 10 or proc.poll() is not None,
                 timeout=60, what="10 requests in flight")
        assert proc.poll() is None, proc.communicate()
        os.kill(proc.pid, sig)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    out = stdout + stderr
    assert proc.returncode == 130, out
    assert "Traceback" not in out
    cont = _continue_line(out)
    assert f"--config {cfg}" in cont and "--run-id S --resume" in cont

    # Every request sent was answered, and its answer recorded; nothing else was sent.
    specs = unit_specs(rd)
    sent = [match_unit(r.body, specs) for r in fake_openai.requests]
    assert len(sent) >= 10 and None not in sent and len(set(sent)) == len(sent)
    statuses = ledger_rows(rd, "SELECT unit_id, status FROM attempts")
    assert sorted(statuses) == sorted((u, "ok") for u in sent)
    assert {u for u, s in unit_states(rd).items() if s == "ok"} == set(sent)
    assert ledger_rows(rd, "SELECT status FROM invocations") == [("interrupted",)]
    assert f"interrupted by {sig.name}" in out

    # Resume sends only what was never answered.
    fake_openai.latency = 0.0
    cut = len(fake_openai.requests)
    res = run_cli([*shlex.split(cont.split("benchsmith ", 1)[1]), "--quiet"], env=env)
    assert res.returncode == 0, res.stdout + res.stderr
    later = [match_unit(r.body, specs) for r in fake_openai.requests[cut:]]
    assert not set(later) & set(sent)
    assert sorted(later) == sorted(set(specs) - set(sent))
    assert set(unit_states(rd).values()) == {"ok"}
    assert_terminal_invariants(rd)
    assert all(r.ok for r in check_run(rd)), [r for r in check_run(rd) if not r.ok]


def test_second_signal_or_grace_period_abandons_requests_in_flight(
        fake_openai: FakeOpenAI, tmp_path: Path) -> None:
    fake_openai.script = lambda r, i: Reply.hang(120)
    env = cli_env(**{KEY_ENV: SECRET})
    for run_id, over, signals in (
        ("TWICE", {}, [signal.SIGINT, signal.SIGINT]),
        ("GRACE", {"engine": {"shutdown_grace_s": 0.5}}, [signal.SIGTERM]),
    ):
        fake_openai.reset()
        fake_openai.script = lambda r, i: Reply.hang(120)
        cfg = _signal_cfg(tmp_path / run_id, fake_openai, deep_merge(over, {
            "engine": {"concurrency": 4}}), tasks=3)
        rd = tmp_path / run_id / "runs" / run_id
        proc = popen_cli(["run", "--config", str(cfg), "--run-id", run_id, "--quiet"], env=env)
        try:
            wait_for(lambda: len(fake_openai.requests) >= 4 or proc.poll() is not None,
                     timeout=60, what="4 requests in flight")
            assert proc.poll() is None, proc.communicate()
            for k, sig in enumerate(signals):
                if k:
                    time.sleep(0.5)  # the first is handled before the second arrives
                os.kill(proc.pid, sig)
            # Well before the default 30 s grace period, or the hung requests' timeout.
            stdout, stderr = proc.communicate(timeout=20)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        out = stdout + stderr
        assert proc.returncode == 130, out
        why = "on a second signal" if run_id == "TWICE" else "after the 0.5 s grace period"
        assert f"4 unit(s) in flight abandoned {why}" in out
        assert f"--run-id {run_id} --resume" in _continue_line(out)
        # Abandoned attempts are settled at their reservation; their units stay pending.
        assert {s for (s,) in ledger_rows(rd, "SELECT status FROM attempts")} == {"cancelled"}
        assert set(unit_states(rd).values()) == {"pending"}
        assert ledger_rows(rd, "SELECT status FROM invocations") == [("interrupted",)]
        assert next(r for r in check_run(rd) if r.name == "ledger").ok


def test_batch_mode_signal_leaves_batches_on_the_server(fake_openai: FakeOpenAI,
                                                        tmp_path: Path) -> None:
    fake_openai.batch_advance_on_get = False  # the batch stays in progress until told
    cfg = write_yaml(tmp_path / "b.yaml", cfg_dict(tmp_path, fake_openai.base_url,
                                                   deep_merge(FAST, NO_DIV), tasks=3))
    env = cli_env(**{KEY_ENV: SECRET})
    rd = tmp_path / "runs" / "BS"
    proc = popen_cli(["run", "--config", str(cfg), "--run-id", "BS", "--mode", "batch",
                      "--quiet"], env=env)
    try:
        wait_for(lambda: len(fake_openai.batches) == 1 or proc.poll() is not None,
                 timeout=60, what="a batch")
        wait_for(lambda: ledger_rows(rd, "SELECT batch_id FROM batches")[0][0] is not None,
                 timeout=60, what="the batch recorded")
        assert proc.poll() is None, proc.communicate()
        os.kill(proc.pid, signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    out = stdout + stderr
    assert proc.returncode == 130, out
    cont = _continue_line(out)
    assert f"--config {cfg} --mode batch --run-id BS --resume" in cont
    ((bid, reconciled),) = ledger_rows(rd, "SELECT batch_id, reconciled_at FROM batches")
    assert bid in fake_openai.batches and reconciled is None
    assert fake_openai.batches[bid].status not in ("cancelled", "cancelling")
    assert ledger_rows(rd, "SELECT status FROM invocations") == [("interrupted",)]
    assert {s for (s,) in ledger_rows(rd, "SELECT status FROM attempts")} == {"sent"}

    fake_openai.finish_batch(bid)
    res = run_cli(["run", "--config", str(cfg), "--run-id", "BS", "--mode", "batch", "--resume",
                   "--quiet"], env=env)
    assert res.returncode == 0, res.stdout + res.stderr
    assert len(fake_openai.batches) == 1  # re-attached, nothing sent twice
    assert set(unit_states(rd).values()) == {"ok"}


def test_auth_stop_hint_names_the_config_and_generated_run_id(fake_openai: FakeOpenAI,
                                                              tmp_path: Path) -> None:
    fake_openai.script = lambda r, i: Reply.error(401, "bad key", type="invalid_request_error")
    cfg = write_yaml(tmp_path / "my config.yaml", cfg_dict(tmp_path, fake_openai.base_url, {},
                                                          tasks=1))
    res = run_cli(["run", "--config", str(cfg), "--quiet"], env=cli_env(**{KEY_ENV: SECRET}))
    out = res.stdout + res.stderr
    assert res.returncode == 3, out
    (rd,) = (tmp_path / "runs").iterdir()
    cont = _continue_line(out)
    assert cont.endswith(f"benchsmith run --config '{cfg}' --run-id {rd.name} --resume"), cont


def test_halt_ends_waits_that_are_not_requests() -> None:
    """Backoff sleeps and rate-limit waits end as soon as a stop is signalled."""
    import asyncio

    from benchsmith.engine.ratelimit import RateLimiter
    from benchsmith.engine.shutdown import Halt

    async def main() -> None:
        halt, limiter = Halt(), RateLimiter(rpm=1, tpm=None)
        await limiter.acquire(1)  # the minute's only request
        waiting = asyncio.ensure_future(halt.until(limiter.acquire(1)))
        sleeping = asyncio.ensure_future(halt.pause(600))
        await asyncio.sleep(0.05)
        assert not waiting.done() and not sleeping.done()
        halt.set()
        assert await asyncio.wait_for(waiting, 10) is False
        assert await asyncio.wait_for(sleeping, 10) is False
        assert await halt.pause(600) is False  # once stopped, at once
        assert await halt.until(limiter.acquire(1)) is False
        assert not limiter.rpm._lock.locked()  # the cancelled waiter let go of the bucket

    asyncio.run(main())


def test_sigint_ignored_by_the_parent_stays_ignored(fake_openai: FakeOpenAI,
                                                   tmp_path: Path) -> None:
    """A run started with SIGINT ignored (`benchsmith run ... &` in a script, nohup-style
    wrappers) keeps ignoring it, as Python does: Ctrl-C in that terminal is meant for the
    foreground job. It used to stop the run. SIGTERM still stops it."""
    import subprocess

    fake_openai.latency = 0.5
    cfg = _signal_cfg(tmp_path, fake_openai)
    env = cli_env(**{KEY_ENV: SECRET})
    proc = subprocess.Popen(
        [str(BIN), "run", "--config", str(cfg), "--run-id", "I", "--quiet"], env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )
    try:
        wait_for(lambda: len(fake_openai.requests) >= 5 or proc.poll() is not None,
                 timeout=60, what="requests in flight")
        assert proc.poll() is None, proc.communicate()
        os.kill(proc.pid, signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, stdout + stderr
    assert "SIGINT" not in stdout + stderr
    rd = tmp_path / "runs" / "I"
    assert set(unit_states(rd).values()) == {"ok"}
    assert ledger_rows(rd, "SELECT status FROM invocations") == [("completed",)]
