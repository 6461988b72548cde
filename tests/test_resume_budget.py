"""Crash-and-resume (SIGKILL of the CLI mid-run) and the hard budget cap."""

from __future__ import annotations

import signal
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from benchsmith import api
from fake_openai import FakeOpenAI, Reply
from helpers import (
    KEY_ENV,
    kill9_when,
    SECRET,
    assert_no_secret,
    assert_terminal_invariants,
    cfg_dict,
    cli_env,
    first_task_ids,
    ledger_rows,
    make_cfg,
    match_unit,
    nonempty_lines,
    popen_cli,
    read_jsonl,
    run_cli,
    unit_specs,
    unit_states,
    write_yaml,
)

MAX_OUT = 1000
PRICES = {"gpt-5-mini": {"input": 1.0, "output": 4.0}}


# --------------------------------------------------------------------------- crash & resume


@pytest.mark.parametrize("kill_after", [1, 11, 20])
def test_sigkill_then_resume(fake_openai: FakeOpenAI, tmp_path: Path, kill_after: int) -> None:
    n_tasks = 8
    ids = first_task_ids(n_tasks)
    fake_openai.latency = 0.05
    # Requests past the kill point hang, so the run cannot finish before it is killed.
    fake_openai.script = lambda r, i: Reply.hang(30) if i >= kill_after else None
    cfg = write_yaml(
        tmp_path / "run.yaml",
        cfg_dict(tmp_path, fake_openai.base_url, {"engine": {"concurrency": 4}}, tasks=n_tasks),
    )
    env = cli_env(**{KEY_ENV: SECRET})
    rd = tmp_path / "runs" / "K"

    proc = popen_cli(["run", "--config", str(cfg), "--run-id", "K", "--quiet"], env=env)
    kill9_when(proc, lambda: len(fake_openai.requests) >= kill_after, f"{kill_after} requests")
    assert proc.returncode == -signal.SIGKILL

    # The ledger right after the kill.
    ok_at_kill = {u for u, s in unit_states(rd).items() if s == "ok"}
    assert len(ok_at_kill) <= kill_after
    # At most 4 requests are in flight, so request N was only sent once N-4 units were done.
    assert len(ok_at_kill) >= kill_after - 4
    assert ledger_rows(rd, "SELECT status FROM invocations") == [("running",)]
    fake_openai.script = None
    cut = len(fake_openai.requests)
    res = run_cli(["run", "--config", str(cfg), "--run-id", "K", "--resume", "--quiet"], env=env)
    assert res.returncode == 0, res.stderr
    assert "Traceback" not in res.stdout + res.stderr

    # Every unit ok exactly once; nothing that was ok at the kill was ever sent again.
    assert set(unit_states(rd).values()) == {"ok"}
    assert_terminal_invariants(rd)
    specs = unit_specs(rd)
    assert len(specs) == 3 * n_tasks
    resent = [match_unit(r.body, specs) for r in fake_openai.requests[cut:]]
    assert None not in resent
    assert not set(resent) & ok_at_kill
    assert set(resent) == set(specs) - ok_at_kill
    assert len(resent) == len(set(resent))  # no faults injected: one request per unit

    plans = read_jsonl(rd / "datasets/humaneval/plans.jsonl")
    assert Counter(p["task_id"] for p in plans) == {t: 12 for t in ids}
    assert len({p["plan_id"] for p in plans}) == len(plans)

    invs = ledger_rows(rd, "SELECT status FROM invocations ORDER BY id")
    assert invs == [("interrupted",), ("completed",)]
    runs = read_jsonl(rd / "runs.jsonl")
    assert [r["status"] for r in runs] == ["interrupted", "completed"]
    assert_no_secret(rd, SECRET)


# --------------------------------------------------------------------------- budget


def _inflated_usage(server: FakeOpenAI) -> None:
    """Default (valid) answers that report max_output_tokens of output, so actual cost is
    close to the worst case and the budget binds after a handful of requests."""
    server.script = lambda r, i: Reply("text", usage={"output_tokens": MAX_OUT})


def _budget_cfg(tmp_path: Path, base_url: str, max_usd: float | None, *, tasks: int,
                concurrency: int = 1, calls: int = 3) -> Any:
    over: dict[str, Any] = {
        "prices": PRICES,
        "model": {"max_output_tokens": MAX_OUT},
        "engine": {"concurrency": concurrency},
        "recipe_options": {"calls_per_task": calls},
    }
    if max_usd is not None:
        over["budget"] = {"max_usd": max_usd}
    return cfg_dict(tmp_path, base_url, over, tasks=tasks)


def _avg_worst_case(tmp_path: Path, base_url: str, tasks: int, calls: int = 3) -> float:
    from benchsmith.config import parse_config

    cfg = parse_config(_budget_cfg(tmp_path, base_url, None, tasks=tasks, calls=calls),
                       file="est.yaml", config_dir=str(tmp_path))
    rep = api.dry_run(cfg, f"estimate-{tasks}-{calls}")
    assert rep.estimate.priced and tasks <= rep.units_pending <= calls * tasks
    return rep.estimate.first_attempt_usd / rep.units_pending


def _spend(rd: Path) -> float:
    ((settled, unsettled),) = ledger_rows(
        rd,
        "SELECT COALESCE(SUM(cost_usd), 0), "
        "COALESCE(SUM(CASE WHEN status='sent' THEN reserved_usd ELSE 0 END), 0) FROM attempts",
    )
    return float(settled) + float(unsettled)


def _committed_never_exceeded(rd: Path, max_usd: float) -> None:
    """At every attempt start: settled cost of attempts ended before it plus the reservations
    of attempts started and not yet ended stays within the budget."""
    rows = ledger_rows(rd, "SELECT started_at, ended_at, reserved_usd, cost_usd FROM attempts")
    for t, *_ in rows:
        settled = sum(c or 0 for s, e, r, c in rows if e is not None and e <= t)
        open_ = sum(r for s, e, r, c in rows if s <= t and (e is None or e > t))
        assert settled + open_ <= max_usd + 1e-12, (t, settled, open_, max_usd)


def test_budget_stops_then_resume_completes(fake_openai: FakeOpenAI, tmp_path: Path,
                                            monkeypatch) -> None:
    monkeypatch.setenv(KEY_ENV, SECRET)
    n_tasks = 5
    avg = _avg_worst_case(tmp_path, fake_openai.base_url, n_tasks)
    assert avg > 0
    _inflated_usage(fake_openai)
    from benchsmith.config import parse_config

    def cfg(max_usd: float):
        return parse_config(_budget_cfg(tmp_path, fake_openai.base_url, max_usd, tasks=n_tasks),
                            file="b.yaml", config_dir=str(tmp_path))

    small = 5 * avg
    s1 = api.run(cfg(small), "B")
    rd = tmp_path / "runs" / "B"
    assert s1.stopped == "stopped_budget"
    assert "budget" in s1.message.lower()
    assert s1.counts.get("pending", 0) > 0 and s1.counts.get("ok", 0) >= 1
    assert "failed" not in s1.counts and "invalid" not in s1.counts
    assert _spend(rd) <= small + 1e-12
    assert s1.spent_usd == pytest.approx(_spend(rd))
    n_sent = len(fake_openai.requests)
    assert n_sent == ledger_rows(rd, "SELECT COUNT(*) FROM attempts")[0][0]
    assert n_sent < 3 * n_tasks
    st = api.run_status(rd)
    assert st["last_status"] == "stopped_budget" and st["units"]["pending"] > 0
    _committed_never_exceeded(rd, small)
    assert_terminal_invariants(rd, allow_pending=True)

    # Resuming with the same budget cannot spend past it either.
    s2 = api.run(cfg(small), "B", resume=True)
    assert s2.stopped == "stopped_budget"
    assert _spend(rd) <= small + 1e-12

    # A larger budget completes everything, total spend within the new budget.
    ok_before = {u for u, s in unit_states(rd).items() if s == "ok"}
    cut = len(fake_openai.requests)
    big = 25 * avg
    s3 = api.run(cfg(big), "B", resume=True)
    assert s3.stopped is None, s3.message
    assert s3.counts == {"ok": 3 * n_tasks}
    assert _spend(rd) <= big + 1e-12
    specs = unit_specs(rd)
    later = {match_unit(r.body, specs) for r in fake_openai.requests[cut:]}
    assert not later & ok_before
    assert_terminal_invariants(rd)
    plans = read_jsonl(rd / "datasets/humaneval/plans.jsonl")
    assert Counter(p["task_id"] for p in plans) == {t: 12 for t in first_task_ids(n_tasks)}
    assert [r["status"] for r in read_jsonl(rd / "runs.jsonl")] == [
        "stopped_budget", "stopped_budget", "completed"
    ]


def test_budget_stop_cli_exit_code(fake_openai: FakeOpenAI, tmp_path: Path) -> None:
    n_tasks = 4
    avg = _avg_worst_case(tmp_path, fake_openai.base_url, n_tasks)
    _inflated_usage(fake_openai)
    max_usd = 3 * avg
    cfg = write_yaml(tmp_path / "b.yaml",
                     _budget_cfg(tmp_path, fake_openai.base_url, max_usd, tasks=n_tasks))
    env = cli_env(**{KEY_ENV: SECRET})
    res = run_cli(["run", "--config", str(cfg), "--run-id", "CB", "--quiet"], env=env)
    out = res.stdout + res.stderr
    assert res.returncode == 2, out
    assert "Traceback" not in out
    stop = [ln for ln in nonempty_lines(out) if ln.startswith("stopped:")]
    assert len(stop) == 1 and "budget" in stop[0]
    cont = [ln for ln in nonempty_lines(out) if "--resume" in ln]
    assert cont and "--run-id CB" in cont[0]
    rd = tmp_path / "runs" / "CB"
    assert 0 < len(fake_openai.requests) < 3 * n_tasks
    assert _spend(rd) <= max_usd + 1e-12

    # continue as told, with a larger budget
    bigger = write_yaml(tmp_path / "b2.yaml",
                        _budget_cfg(tmp_path, fake_openai.base_url, 30 * avg, tasks=n_tasks))
    res = run_cli(["run", "--config", str(bigger), "--run-id", "CB", "--resume", "--quiet"], env=env)
    assert res.returncode == 0, res.stdout + res.stderr
    assert set(unit_states(rd).values()) == {"ok"}
    assert _spend(rd) <= 30 * avg + 1e-12


def test_budget_with_high_concurrency(fake_openai: FakeOpenAI, tmp_path: Path,
                                      monkeypatch) -> None:
    monkeypatch.setenv(KEY_ENV, SECRET)
    n_tasks = 20
    avg = _avg_worst_case(tmp_path, fake_openai.base_url, n_tasks)
    _inflated_usage(fake_openai)
    fake_openai.latency = 0.02
    max_usd = 10 * avg
    cfg = make_cfg(tmp_path, fake_openai.base_url,
                   {k: v for k, v in _budget_cfg(tmp_path, fake_openai.base_url, max_usd,
                                                 tasks=n_tasks, concurrency=50).items()
                    if k in ("prices", "model", "engine", "budget")},
                   tasks=n_tasks)
    s = api.run(cfg, "HC")
    rd = tmp_path / "runs" / "HC"
    assert s.stopped == "stopped_budget"
    assert 0 < len(fake_openai.requests) < 3 * n_tasks
    assert _spend(rd) <= max_usd + 1e-12
    _committed_never_exceeded(rd, max_usd)
    assert_terminal_invariants(rd, allow_pending=True)
    assert s.counts.get("pending", 0) > 0


def test_budget_requires_price(fake_openai: FakeOpenAI, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv(KEY_ENV, SECRET)
    cfg = make_cfg(tmp_path, fake_openai.base_url, {"budget": {"max_usd": 1.0}}, tasks=1)
    from benchsmith.errors import ConfigError

    with pytest.raises(ConfigError) as ei:
        api.run(cfg, "NP")
    assert "gpt-5-mini" in str(ei.value) and "price" in str(ei.value)
    assert len(fake_openai.requests) == 0


def test_budget_stop_mid_reask_resumes_with_feedback(fake_openai: FakeOpenAI, tmp_path: Path,
                                                     monkeypatch) -> None:
    """A unit stopped by the budget between an invalid answer and its re-ask continues, on
    resume, with the re-ask (previous answer + issues), not the original prompt."""
    import json

    from benchsmith.config import parse_config

    monkeypatch.setenv(KEY_ENV, SECRET)
    wc = _avg_worst_case(tmp_path, fake_openai.base_url, 1, calls=1)
    bad = json.dumps({"plans": [{"title": "Only", "summary": "one plan", "steps": ["a", "b"]}]})
    fake_openai.enqueue(Reply.text(bad, usage={"output_tokens": MAX_OUT}))

    def cfg(max_usd: float):
        return parse_config(
            _budget_cfg(tmp_path, fake_openai.base_url, max_usd, tasks=1, calls=1),
            file="m.yaml", config_dir=str(tmp_path),
        )

    s1 = api.run(cfg(1.5 * wc), "M")
    rd = tmp_path / "runs" / "M"
    assert s1.stopped == "stopped_budget", s1.message
    assert len(fake_openai.requests) == 1
    assert _spend(rd) <= 1.5 * wc + 1e-12
    (uid, state), = unit_states(rd).items()
    assert state == "pending"
    ((issues_json,),) = ledger_rows(rd, "SELECT issues_json FROM attempts")
    issues = json.loads(issues_json)
    assert issues

    s2 = api.run(cfg(50 * wc), "M", resume=True)
    assert s2.stopped is None and s2.counts == {"ok": 1}
    r0, r1 = fake_openai.requests
    from helpers import request_messages

    m0, m1 = request_messages(r0.body), request_messages(r1.body)
    assert m1[: len(m0)] == m0 and len(m1) == len(m0) + 2
    assert m1[-2] == {"role": "assistant", "content": bad}
    assert all(i in m1[-1]["content"] for i in issues)
    assert [n for (n,) in ledger_rows(rd, "SELECT n FROM attempts ORDER BY id")] == [1, 2]
