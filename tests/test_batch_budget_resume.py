"""The batch executor (`run --mode batch`): the budget stop at the batch price, and
resuming after kill -9 while polling or between upload and create, and the CLI
batch-status / cancel commands.
"""

from __future__ import annotations

import json
import re
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from batch_executor_support import (
    MODEL,
    NO_DIV,
    _cli_cfg,
    _kill,
    _no_traceback,
    batches_in_order,
    ledger_batches,
    run_batch,
    statuses,
    uploads,
)
from fake_openai import BatchScript, FakeOpenAI, Reply
from helpers import (
    KEY_ENV,
    SECRET,
    assert_no_secret,
    assert_terminal_invariants,
    attempts_by_unit,
    cli_env,
    ledger_rows,
    nonempty_lines,
    popen_cli,
    read_jsonl,
    run_cli,
    unit_specs,
    unit_states,
    wait_for,
)


@pytest.fixture(autouse=True)
def _api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, SECRET)


# --------------------------------------------------------------------------- budget


def test_budget_stops_at_batch_price_then_resume(tmp_path: Path) -> None:
    max_out = 1000
    prices = {MODEL: {"input": 1.0, "output": 4.0}}
    over = {**NO_DIV, "model": {"max_output_tokens": max_out}, "prices": prices}
    with FakeOpenAI() as server:
        # Answers that report the whole output cap, so spend tracks the worst case closely.
        full = {"output_tokens": max_out}
        inflate = BatchScript(answer=lambda cid, body: Reply("text", usage=full))
        server.batch_plan = lambda bid, lines: inflate

        # The online worst case of each request, for comparison.
        server.script = lambda r, i: Reply("text", usage={"output_tokens": max_out})
        run_batch(tmp_path / "online", server, over, tasks=3, mode="online")
        online_reserve = {uid: atts[0]["reserved_usd"]
                          for uid, atts in attempts_by_unit(tmp_path / "online/runs/R").items()}
        server.reset()
        server.batch_plan = lambda bid, lines: inflate

        max_usd = 0.01
        summary, rd = run_batch(tmp_path, server, {**over, "budget": {"max_usd": max_usd}}, tasks=3)
        assert summary.stopped == "stopped_budget", summary
        states = unit_states(rd)
        ok = {u for u, s in states.items() if s == "ok"}
        assert ok and set(states.values()) == {"ok", "pending"}
        assert_terminal_invariants(rd, allow_pending=True)
        settled, unsettled = ledger_rows(
            rd, "SELECT COALESCE(SUM(cost_usd),0), COALESCE(SUM(CASE WHEN status='sent' "
                "THEN reserved_usd ELSE 0 END),0) FROM attempts")[0]
        assert unsettled == 0
        assert 0 < settled + unsettled <= max_usd
        assert summary.spent_usd <= max_usd
        # nothing past the budget was submitted
        assert set(server.custom_id_counts()) == ok
        # each worst case was reserved at the batch price (half the online one; the batch
        # line is the body plus a small wrapper)
        by_unit = attempts_by_unit(rd)
        for uid in ok:
            ratio = by_unit[uid][0]["reserved_usd"] / online_reserve[uid]
            assert 0.5 <= ratio < 0.53, ratio
        # each submitted file fit in what was left when it was prepared
        spent_before = 0.0
        for b in ledger_batches(rd):
            assert spent_before + b["reserved_usd"] <= max_usd + 1e-12
            spent_before += ledger_rows(
                rd, "SELECT COALESCE(SUM(a.cost_usd),0) FROM attempts a JOIN batch_items i "
                    "ON i.attempt_id=a.id WHERE i.local_id=?", (b["local_id"],))[0][0]
        # The stop names the request that did not fit (its worst case at the batch price) and
        # what was left for it; the first must exceed the second.
        m = re.search(r"could cost up to \$([\d.]+) at the batch price and only \$([\d.]+) of "
                      r"\$([\d.]+) is left", summary.message)
        assert m, summary.message
        cost, left, cap = map(float, m.groups())
        assert cap == max_usd
        pending = [u for u, s in states.items() if s == "pending"]
        assert any(0.48 <= cost / online_reserve[u] <= 0.55 for u in pending), cost

        summary2, _ = run_batch(tmp_path, server, {**over, "budget": {"max_usd": 1.0}}, tasks=3,
                                resume=True)
        assert summary2.stopped is None and summary2.counts == {"ok": 9}
        assert_terminal_invariants(rd)
        assert server.custom_id_counts() == Counter({u: 1 for u in states})
        assert summary2.spent_usd <= 1.0
        runs = read_jsonl(rd / "runs.jsonl")
        assert [r["status"] for r in runs] == ["stopped_budget", "completed"]

        # Last (see the stop message above): the stop message must be consistent.
        assert cost > left, summary.message




def test_kill9_while_polling_then_resume_reattaches(fake_openai: FakeOpenAI,
                                                    tmp_path: Path) -> None:
    server = fake_openai
    server.batch_advance_on_get = False  # polls do not move the batch: the run keeps polling
    server.enqueue_batch(BatchScript(
        states=["validating", "in_progress", "in_progress", "finalizing", "completed"]))
    cfg = _cli_cfg(tmp_path, server)
    env = cli_env(**{KEY_ENV: SECRET})
    rd = tmp_path / "runs" / "K"
    proc = popen_cli(["run", "--config", str(cfg), "--run-id", "K", "--mode", "batch", "--quiet"],
                     env=env)
    try:
        wait_for(lambda: any(b.polls >= 3 for b in server.batches.values())
                 or proc.poll() is not None, timeout=60, what="a batch polled 3 times")
        _kill(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(20)
    (batch,) = batches_in_order(server)
    (row,) = ledger_batches(rd)
    assert row["batch_id"] == batch.id and row["reconciled_at"] is None
    assert set(unit_states(rd).values()) == {"pending"}
    assert {s for (s,) in ledger_rows(rd, "SELECT status FROM attempts")} == {"sent"}

    server.batch_advance_on_get = True
    cut = len(server.requests)
    res = run_cli(["run", "--config", str(cfg), "--run-id", "K", "--mode", "batch", "--resume",
                   "--quiet"], env=env)
    assert res.returncode == 0, res.stderr
    _no_traceback(res)

    after = server.requests[cut:]
    # re-attached: no new upload, no new batch; the existing batch id was polled
    assert not [r for r in after if r.method == "POST" and r.path in ("/v1/files", "/v1/batches")]
    assert [r for r in after if r.method == "GET" and r.path == f"/v1/batches/{batch.id}"]
    assert len(server.batches) == 1 and len(uploads(server)) == 1
    assert server.custom_id_counts() == Counter({u: 1 for u in unit_specs(rd)})
    assert set(unit_states(rd).values()) == {"ok"}
    assert_terminal_invariants(rd)
    (row,) = ledger_batches(rd)
    assert row["batch_id"] == batch.id and row["status"] == "completed"
    assert ledger_rows(rd, "SELECT status FROM invocations ORDER BY id") == [("interrupted",),
                                                                              ("completed",)]
    # the interrupted invocation's attempts were settled by the resumed run (one per unit)
    assert Counter(s for (s,) in ledger_rows(rd, "SELECT status FROM attempts")) == {"ok": 9}
    assert_no_secret(rd, SECRET)


@pytest.mark.parametrize("created", [True, False], ids=["created-remotely", "never-created"])
def test_kill9_between_upload_and_create(fake_openai: FakeOpenAI, tmp_path: Path,
                                         created: bool) -> None:
    server = fake_openai
    entered, release = threading.Event(), threading.Event()

    def slow_create(bid: str, lines: list[Any]) -> BatchScript | None:
        entered.set()
        release.wait(30)
        if not created:
            raise RuntimeError("create lost (simulated)")
        return None

    server.batch_plan = slow_create
    cfg = _cli_cfg(tmp_path, server)
    env = cli_env(**{KEY_ENV: SECRET})
    rd = tmp_path / "runs" / "K"
    proc = popen_cli(["run", "--config", str(cfg), "--run-id", "K", "--mode", "batch", "--quiet"],
                     env=env)
    try:
        wait_for(lambda: entered.is_set() or proc.poll() is not None, timeout=60,
                 what="the create call")
        _kill(proc)
    finally:
        release.set()
        if proc.poll() is None:
            proc.kill()
            proc.wait(20)
    if created:
        wait_for(lambda: len(server.batches) == 1, what="the batch")
    else:
        wait_for(lambda: len(server.errors) == 1, what="the lost create")
        assert not server.batches
    (row,) = ledger_batches(rd)
    assert row["batch_id"] is None and row["input_file_id"] is not None
    (upload,) = uploads(server)
    assert row["input_file_id"] == upload.id

    server.batch_plan = None
    cut = len(server.requests)
    res = run_cli(["run", "--config", str(cfg), "--run-id", "K", "--mode", "batch", "--resume",
                   "--quiet"], env=env)
    assert res.returncode == 0, res.stderr
    _no_traceback(res)
    after = server.requests[cut:]
    assert not [r for r in after if r.method == "POST" and r.path == "/v1/files"]  # no re-upload
    # the provider's batch list was searched for the local id before anything was created
    assert [r for r in after if r.method == "GET" and r.path == "/v1/batches"]
    creates = [r for r in after if r.method == "POST" and r.path == "/v1/batches"]
    assert len(creates) == (0 if created else 1)
    (batch,) = batches_in_order(server)
    assert batch.input_file_id == upload.id
    assert batch.metadata == {"benchsmith_local_id": row["local_id"]}
    (row2,) = ledger_batches(rd)
    assert row2["batch_id"] == batch.id and row2["local_id"] == row["local_id"]
    assert server.custom_id_counts() == Counter({u: 1 for u in unit_specs(rd)})
    assert set(unit_states(rd).values()) == {"ok"}
    assert_terminal_invariants(rd)


def test_cli_batch_status_cancel_then_resume(fake_openai: FakeOpenAI, tmp_path: Path) -> None:
    server = fake_openai
    server.batch_advance_on_get = False
    server.enqueue_batch(BatchScript(
        states=["validating", "in_progress", "finalizing", "completed"], cancel=4))
    cfg = _cli_cfg(tmp_path, server)
    env = cli_env(**{KEY_ENV: SECRET})
    rd = tmp_path / "runs" / "K"

    res = run_cli(["batch", "status", str(rd)], env=env)  # no run yet
    assert res.returncode == 1 and nonempty_lines(res.stderr)[0].startswith("error:")
    assert len(nonempty_lines(res.stderr)) == 1
    _no_traceback(res)

    proc = popen_cli(["run", "--config", str(cfg), "--run-id", "K", "--mode", "batch", "--quiet"],
                     env=env)
    try:
        wait_for(lambda: any(b.polls >= 2 for b in server.batches.values())
                 or proc.poll() is not None, timeout=60, what="a polled batch")
        _kill(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(20)
    (batch,) = batches_in_order(server)
    (row,) = ledger_batches(rd)
    server.advance_batch(batch.id)  # now in_progress
    # requests carried by a live batch are not exported for an offline runner
    res = run_cli(["batch", "export", str(rd), "--out", str(tmp_path / "x.jsonl")], env=env)
    assert res.returncode == 0, res.stderr
    assert read_jsonl(tmp_path / "x.jsonl") == []
    assert batch.status == "in_progress"

    res = run_cli(["batch", "status", str(rd), "--no-refresh"], env=env)
    assert res.returncode == 0, res.stderr
    (line,) = nonempty_lines(res.stdout)
    assert row["local_id"] in line and batch.id in line and "validating" in line

    polls = batch.polls
    res = run_cli(["batch", "status", str(rd)], env=env)
    assert res.returncode == 0, res.stderr
    (line,) = nonempty_lines(res.stdout)
    assert batch.id in line and "in_progress" in line and "reconciled" not in line
    assert batch.polls == polls + 1

    res = run_cli(["batch", "status", str(rd), "--json", "--no-refresh"], env=env)
    assert res.returncode == 0
    (obj,) = json.loads(res.stdout)
    assert obj["batch_id"] == batch.id and obj["status"] == "in_progress"
    assert obj["request_counts"]["total"] == 9

    res = run_cli(["batch", "cancel", str(rd)], env=env)
    assert res.returncode == 0, res.stderr
    _no_traceback(res)
    assert nonempty_lines(res.stdout) == [batch.id]
    assert "cancel requested for 1 batch(es)" in res.stderr
    assert batch.cancel_requested and batch.status == "cancelling"

    server.batch_advance_on_get = True
    res = run_cli(["batch", "status", str(rd)], env=env)
    assert res.returncode == 0
    assert "cancelled" in res.stdout
    res = run_cli(["batch", "cancel", str(rd)], env=env)  # nothing left to cancel
    assert res.returncode == 0 and nonempty_lines(res.stdout) == []
    assert "cancel requested for 0 batch(es)" in res.stderr

    # the resumed run reconciles the 4 finished requests and resubmits the other 5
    res = run_cli(["run", "--config", str(cfg), "--run-id", "K", "--mode", "batch", "--resume",
                   "--quiet"], env=env)
    assert res.returncode == 0, res.stderr
    first, *later = batches_in_order(server)
    assert first.id == batch.id and first.status == "cancelled"
    done = {o["custom_id"] for o in first.outputs}
    rest = {e["custom_id"] for e in first.error_lines}
    assert len(done) == 4 and len(rest) == 5
    assert sorted(c for b in later for c in b.custom_ids) == sorted(rest)
    assert set(unit_states(rd).values()) == {"ok"}
    assert_terminal_invariants(rd)
    by_unit = attempts_by_unit(rd)
    assert all(statuses(by_unit[u]) == ["ok"] for u in done)
    assert all(statuses(by_unit[u]) == ["batch_cancelled", "ok"] for u in rest)
    res = run_cli(["batch", "status", str(rd), "--no-refresh"], env=env)
    lines = nonempty_lines(res.stdout)
    assert len(lines) == 1 + len(later) and all("reconciled" in ln for ln in lines)
