"""`status` and `validate-run` on a run as it goes (issue 13, CLI conventions): calls in flight
(online requests awaiting their answer, requests in batches not yet reconciled) are told from
finished ones and from the unsettled calls of a process that is gone; on a live run
`validate-run` runs the checks that hold meanwhile and reports the others skipped, not failed.

Each run is a real `benchsmith run` subprocess against the fake server; the gate (online) or
a batch that never finishes keeps it live for as long as the test needs."""

from __future__ import annotations

import json
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fake_openai import BatchScript, FakeOpenAI
from helpers import (
    KEY_ENV,
    kill9_when,
    SECRET,
    cfg_dict,
    cli_env,
    ledger_rows,
    popen_cli,
    run_cli,
    wait_for,
    write_yaml,
)
from test_run_lock import N_TASKS, Gate, _run_args

from benchsmith.validate.run_checks import GENERIC_CHECKS, LIVE_CHECKS


@pytest.fixture
def env() -> dict[str, str]:
    return cli_env(**{KEY_ENV: SECRET})


def _cfg(tmp_path: Path, server: FakeOpenAI, overrides: dict[str, Any]) -> Path:
    return write_yaml(tmp_path / "run.yaml",
                      cfg_dict(tmp_path, server.base_url, overrides, tasks=N_TASKS))


@pytest.fixture
def live_online(fake_openai: FakeOpenAI, tmp_path: Path,
                env: dict[str, str]) -> Iterator[tuple[subprocess.Popen[str], Gate, Path]]:
    """A `benchsmith run` subprocess holding runs/R, its requests held at the gate."""
    gate = Gate(fake_openai)
    cfg = _cfg(tmp_path, fake_openai, {"engine": {"concurrency": 4}})
    proc = popen_cli(_run_args(cfg, "R"), env=env)
    try:
        yield proc, gate, tmp_path / "runs" / "R"
    finally:
        gate.open.set()
        if proc.poll() is None:
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(20)


def _status(rd: Path, env: dict[str, str]) -> tuple[dict[str, Any], str]:
    res = run_cli(["status", str(rd), "--json"], env=env)
    assert res.returncode == 0, res.stderr
    text = run_cli(["status", str(rd)], env=env)
    assert text.returncode == 0, text.stderr
    return json.loads(res.stdout), text.stdout


def _validate(rd: Path, env: dict[str, str]) -> tuple[int, dict[str, Any], str]:
    res = run_cli(["validate-run", str(rd), "--json"], env=env)
    assert "Traceback" not in res.stderr, res.stderr
    text = run_cli(["validate-run", str(rd)], env=env)
    assert text.returncode == res.returncode, (text.stdout, res.stdout)
    return res.returncode, json.loads(res.stdout), text.stdout


def test_a_live_online_run_has_calls_in_flight_and_skips_the_checks_of_its_files(
        live_online: Any, fake_openai: FakeOpenAI, env: dict[str, str]) -> None:
    proc, gate, rd = live_online
    # Every first-stage request is out (recorded before it is sent), held at the gate.
    wait_for(lambda: proc.poll() is not None or len(fake_openai.requests) >= N_TASKS,
             timeout=60, what="every request")
    assert proc.poll() is None, proc.communicate()
    st, text = _status(rd, env)
    assert st["live"]["pid"] == proc.pid
    assert st["calls"] == {"in_flight": N_TASKS, "in_flight_online": N_TASKS,
                           "in_flight_batch": 0, "open_batches": {}, "unsettled": 0,
                           "finished": 0}
    assert st["pending_units"] == {"awaiting_answer": N_TASKS, "not_sent": 0}
    assert f"calls:     {N_TASKS} in flight ({N_TASKS} online), 0 finished\n" in text
    assert (f"left:      {N_TASKS} request(s) pending: {N_TASKS} awaiting an answer, "
            "0 not sent yet") in text

    code, out, table = _validate(rd, env)
    assert code == 0, table
    assert out["ok"] is True and out["live"]["pid"] == proc.pid
    by_name = {c["name"]: c for c in out["checks"]}
    assert by_name["ledger"]["ok"] and not by_name["ledger"]["skipped"]
    assert by_name["no_secret"]["ok"] and not by_name["no_secret"]["skipped"]
    # The plans recipe's own checks and the shared ones that read its files: skipped.
    skipped = set(out["skipped"])
    assert skipped == {n for n in by_name if n not in LIVE_CHECKS}
    assert set(GENERIC_CHECKS) - set(LIVE_CHECKS) <= skipped
    assert {"plans_per_task", "schema", "unique_ids"} <= skipped
    for name in skipped:
        assert by_name[name]["detail"].startswith("skipped: run is live"), by_name[name]
    assert "FAIL" not in table
    assert f"live:      run in progress (pid {proc.pid}, benchsmith run" in table
    assert "skipped while the run is live; run validate-run again once it has ended" in table

    gate.open.set()
    _out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    st, text = _status(rd, env)
    assert st["live"] is None
    assert st["calls"]["in_flight"] == 0 and st["calls"]["unsettled"] == 0
    assert st["calls"]["finished"] == st["usage"]["api_calls"] >= N_TASKS
    assert st["pending_units"] == {"awaiting_answer": 0, "not_sent": 0}
    assert f"calls:     0 in flight, {st['calls']['finished']} finished\n" in text
    code, out, table = _validate(rd, env)
    assert code == 0 and out["ok"] and out["skipped"] == [] and out["live"] is None, table
    assert "ok: all " in table


def test_calls_of_a_killed_run_are_unsettled_not_in_flight(
        fake_openai: FakeOpenAI, tmp_path: Path, env: dict[str, str]) -> None:
    Gate(fake_openai)  # never opened: the run is killed with its requests out
    cfg = _cfg(tmp_path, fake_openai, {"engine": {"concurrency": 4}})
    rd = tmp_path / "runs" / "K"
    proc = popen_cli(_run_args(cfg, "K"), env=env)
    kill9_when(proc, lambda: len(fake_openai.requests) >= N_TASKS, "the run's requests")
    st, text = _status(rd, env)
    assert st["live"] is None and st["last_status"] == "interrupted"
    sent = ledger_rows(rd, "SELECT COUNT(*) FROM attempts WHERE status='sent'")[0][0]
    assert sent == N_TASKS
    assert st["calls"]["in_flight"] == 0 and st["calls"]["unsettled"] == sent
    assert st["pending_units"]["awaiting_answer"] == N_TASKS
    assert (f"calls:     0 in flight, 0 finished, {sent} unsettled (sent by an invocation that "
            "ended without their answer") in text
    # Not live: every check runs (the files of a killed run are missing: those fail).
    code, out, _table = _validate(rd, env)
    assert out["live"] is None and out["skipped"] == []
    assert {c["name"]: c["ok"] for c in out["checks"]}["ledger"] is True


def test_requests_in_a_batch_stay_in_flight_while_it_runs_and_after_the_run_stops(
        fake_openai: FakeOpenAI, tmp_path: Path, env: dict[str, str]) -> None:
    fake_openai.enqueue_batch(BatchScript(states=["validating", "in_progress"]))  # never ends
    fast = {"batch": {"poll_interval_s": 0.01, "max_poll_interval_s": 0.05}}
    cfg = _cfg(tmp_path, fake_openai, fast)
    rd = tmp_path / "runs" / "B"
    proc = popen_cli(_run_args(cfg, "B", "--mode", "batch"), env=env)
    try:
        # The ledger has its tables once the batch is created; then wait for a poll.
        wait_for(lambda: proc.poll() is not None or bool(fake_openai.batches), timeout=60,
                 what="the batch created")
        wait_for(lambda: proc.poll() is not None or ledger_rows(
            rd, "SELECT COUNT(*) FROM batches WHERE status='in_progress'")[0][0] == 1,
            timeout=60, what="the batch in progress")
        assert proc.poll() is None, proc.communicate()
        st, text = _status(rd, env)
        assert st["live"]["pid"] == proc.pid
        assert st["calls"]["in_flight"] == st["calls"]["in_flight_batch"] == N_TASKS
        assert st["calls"]["in_flight_online"] == 0
        assert st["calls"]["open_batches"] == {"in_progress": 1}
        assert f"calls:     {N_TASKS} in flight ({N_TASKS} in 1 batch(es): in_progress 1)" in text
        code, out, _table = _validate(rd, env)
        assert code == 0 and out["ok"] and out["skipped"], out

        proc.send_signal(signal.SIGINT)  # polling stops; the batch stays on the server
        proc.communicate(timeout=60)
        assert proc.returncode == 130
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(20)
    st, text = _status(rd, env)
    assert st["live"] is None
    assert st["calls"]["in_flight_batch"] == N_TASKS and st["calls"]["unsettled"] == 0
    assert f"{N_TASKS} in 1 batch(es): in_progress 1" in text
