"""A run's plan is pinned: a resume or dry-run whose plan-shaping settings changed is refused
before anything is written; `--replan` records the new settings as the run's next plan,
supersedes the pending requests, keeps the completed ones; exports hold one plan."""

from __future__ import annotations

import sqlite3
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest

from benchsmith import api
from benchsmith.config import RunConfig, parse_config
from benchsmith.errors import ConfigError
from benchsmith.validate.run_checks import check_run
from fake_openai import FakeOpenAI, Reply
from helpers import (
    KEY_ENV,
    SECRET,
    assert_terminal_invariants,
    cfg_dict,
    cli_env,
    deep_merge,
    files_under,
    first_task_ids,
    ledger_rows,
    read_json,
    read_jsonl,
    run_cli,
    unit_specs,
    unit_states,
    write_yaml,
)

MAX_OUT = 4000
PRICE = {"input": 1.0, "output": 4.0}
PRICES = {"gpt-5-mini": PRICE, "gpt-4.1-mini": PRICE}
CALLS, PER_CALL, TASKS = 3, 4, 2


def _data(tmp_path: Path, base_url: str, over: dict[str, Any] | None = None, *,
          max_usd: float | None = None) -> dict[str, Any]:
    """The issue's run: 2 HumanEval tasks, 3 independent calls each (diversity off)."""
    base: dict[str, Any] = {
        "prices": PRICES,
        "model": {"max_output_tokens": MAX_OUT},
        "engine": {"concurrency": 1},
        "recipe_options": {"calls_per_task": CALLS, "plans_per_call": PER_CALL, "diversity": False},
    }
    if max_usd is not None:
        base["budget"] = {"max_usd": max_usd}
    return cfg_dict(tmp_path, base_url, deep_merge(base, over or {}), tasks=TASKS)


def _cfg(tmp_path: Path, base_url: str, over: dict[str, Any] | None = None, *,
         max_usd: float | None = None) -> RunConfig:
    return parse_config(_data(tmp_path, base_url, over, max_usd=max_usd),
                        file=str(tmp_path / "run.yaml"), config_dir=str(tmp_path))


def _inflated(server: FakeOpenAI) -> None:
    """Valid answers billed at max_output_tokens: the budget binds after one request."""
    server.script = lambda r, i: Reply("text", usage={"output_tokens": MAX_OUT})


def _stopped_run(tmp_path: Path, server: FakeOpenAI, run_id: str = "R") -> Path:
    """A run stopped on budget with 1 ok unit and 5 pending (the issue's starting point)."""
    est = api.dry_run(_cfg(tmp_path, server.base_url), f"estimate-{run_id}").estimate
    one = est.first_attempt_usd / est.units
    _inflated(server)
    s = api.run(_cfg(tmp_path, server.base_url, max_usd=1.5 * one), run_id)
    assert s.stopped == "stopped_budget", s.message
    assert s.counts == {"ok": 1, "pending": CALLS * TASKS - 1}
    server.script = None
    return tmp_path / "runs" / run_id


def _snapshot(rd: Path) -> dict[str, bytes]:
    return {str(p.relative_to(rd)): p.read_bytes() for p in files_under(rd)
            if not p.name.startswith("ledger.sqlite")}


def _units(rd: Path) -> list[tuple[Any, ...]]:
    return ledger_rows(rd, "SELECT unit_id, state, reason, result_json FROM units ORDER BY 1")


def _plan_of(rd: Path) -> dict[str, int]:
    return dict(ledger_rows(rd, "SELECT unit_id, plan FROM units"))


def _refused(fn: Any, *args: Any, **kw: Any) -> str:
    with pytest.raises(ConfigError) as ei:
        fn(*args, **kw)
    msg = str(ei.value)
    assert "\n" not in msg
    assert "--run-id" in msg and "--replan" in msg, msg
    return msg


BIG = 100.0  # a budget that lets everything finish


# --------------------------------------------------------------------------- the case


def test_changed_max_output_tokens_is_refused_then_replanned(
    fake_openai: FakeOpenAI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_ENV, SECRET)
    rd = _stopped_run(tmp_path, fake_openai)
    (old_ok,) = [u for u in _units(rd) if u[1] == "ok"]
    before_units, before_files = _units(rd), _snapshot(rd)
    sent = len(fake_openai.requests)
    changed = {"model": {"max_output_tokens": 3000}}

    # Today this planned 6 new units next to the old ones and ended with 12 ok units.
    msg = _refused(api.run, _cfg(tmp_path, fake_openai.base_url, changed, max_usd=BIG), "R",
                   resume=True)
    assert "model.max_output_tokens: 4000 -> 3000" in msg
    assert _units(rd) == before_units  # nothing planned
    assert _snapshot(rd) == before_files  # nothing written (run_config.json included)
    assert len(fake_openai.requests) == sent  # nothing sent
    assert read_json(rd / "config/run_config.json")["model"]["max_output_tokens"] == MAX_OUT

    s = api.run(_cfg(tmp_path, fake_openai.base_url, changed, max_usd=BIG), "R", resume=True,
                replan=True)
    assert s.stopped is None, s.message
    units = {u[0]: u for u in _units(rd)}
    assert units[old_ok[0]] == old_ok  # the completed answer is kept as it was
    superseded = [u for u in units.values() if u[1] == "skipped"]
    assert len(superseded) == CALLS * TASKS - 1
    assert all(u[2].startswith("superseded") for u in superseded)
    plan_of = _plan_of(rd)
    new = [u for u in units.values() if plan_of[u[0]] == 2]
    assert len(new) == CALLS * TASKS and {u[1] for u in new} == {"ok"}
    assert len(units) == 2 * CALLS * TASKS  # 6 of the old plan, 6 of the new one
    # Only the new plan's requests were sent: 6, each once.
    assert len(fake_openai.requests) == sent + CALLS * TASKS
    assert_terminal_invariants(rd)

    plans = read_jsonl(rd / "datasets/humaneval/plans.jsonl")
    assert len(plans) == TASKS * CALLS * PER_CALL
    assert Counter(p["task_id"] for p in plans) == {t: CALLS * PER_CALL
                                                   for t in first_task_ids(TASKS)}
    assert len({p["plan_id"] for p in plans}) == len(plans)
    specs = unit_specs(rd)
    assert {specs[p["request_id"]]["params"]["max_output_tokens"] for p in plans} == {3000}
    assert {p["request_id"] for p in plans} == {u[0] for u in new}

    manifest = read_json(rd / "config/plan.json")
    assert manifest["plan"] == 2 and len(manifest["history"]) == 2
    assert manifest["fields"]["model.max_output_tokens"] == 3000
    assert read_json(rd / "config/run_config.json")["model"]["max_output_tokens"] == 3000
    st = api.run_status(rd)
    assert st["units"]["skipped"] == CALLS * TASKS - 1
    assert st["failure_reasons"] == {"superseded": CALLS * TASKS - 1}
    assert st["datasets"]["humaneval"] == {"tasks": TASKS, "complete": TASKS}
    bad = [r for r in check_run(rd) if not r.ok]
    assert not bad, bad


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"recipe_options": {"plans_per_call": 2}}, "plans.plans_per_call: 4 -> 2"),
        ({"model": {"name": "gpt-4.1-mini"}}, "model.name: gpt-5-mini -> gpt-4.1-mini"),
        ({"datasets": {"humaneval": {"max_tasks": 3}}}, "datasets.humaneval.max_tasks: 2 -> 3"),
        ({"recipe_options": {"diversity": True}}, "plans.diversity: false -> true"),
    ],
)
def test_plan_shaping_change_is_refused(
    fake_openai: FakeOpenAI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    change: dict[str, Any], named: str,
) -> None:
    monkeypatch.setenv(KEY_ENV, SECRET)
    rd = _stopped_run(tmp_path, fake_openai)
    before_units, before_files = _units(rd), _snapshot(rd)
    msg = _refused(api.run, _cfg(tmp_path, fake_openai.base_url, change, max_usd=BIG), "R",
                   resume=True)
    assert named in msg
    assert "requests." not in msg  # the setting explains it; no digest noise
    assert _units(rd) == before_units and _snapshot(rd) == before_files


def test_free_knobs_change_on_resume(fake_openai: FakeOpenAI, tmp_path: Path,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """A new endpoint URL, concurrency, budget, retries, timeouts, prices and key variable
    are how requests are sent, not what is asked: the run continues its plan."""
    monkeypatch.setenv(KEY_ENV, SECRET)
    monkeypatch.setenv("OTHER_KEY_VAR", SECRET)
    rd = _stopped_run(tmp_path, fake_openai)
    ok_before = {u for u, s in unit_states(rd).items() if s == "ok"}
    other = FakeOpenAI().start()
    try:
        free = {
            "openai": {"base_url": other.base_url, "api_key_env": "OTHER_KEY_VAR"},
            "engine": {"concurrency": 7, "max_retries": 5, "timeout_s": 30, "rpm": 10_000},
            "prices": {"gpt-5-mini": {"input": 2.0, "output": 8.0}},
            "batch": {"poll_interval_s": 1.0},
        }
        s = api.run(_cfg(tmp_path, other.base_url, free, max_usd=BIG), "R", resume=True)
        assert s.stopped is None, s.message
        assert s.counts == {"ok": CALLS * TASKS}
        assert len(other.requests) == CALLS * TASKS - 1  # only the pending ones
    finally:
        other.stop()
    assert ok_before < set(unit_states(rd))
    assert ledger_rows(rd, "SELECT COUNT(*) FROM plans") == [(1,)]
    assert read_json(rd / "config/run_config.json")["engine"]["concurrency"] == 7


def test_dry_run_on_finished_run_with_more_tasks_is_refused(
    fake_openai: FakeOpenAI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_ENV, SECRET)
    s = api.run(_cfg(tmp_path, fake_openai.base_url), "F")
    assert s.counts == {"ok": CALLS * TASKS}
    rd = tmp_path / "runs" / "F"
    before_units, before_files = _units(rd), _snapshot(rd)
    more = {"datasets": {"humaneval": {"max_tasks": 4}}}
    # Today the dry-run silently added the pending work of 2 more tasks to the finished run.
    msg = _refused(api.dry_run, _cfg(tmp_path, fake_openai.base_url, more), "F")
    assert "datasets.humaneval.max_tasks: 2 -> 4" in msg
    assert _units(rd) == before_units and _snapshot(rd) == before_files
    # The same settings dry-run fine: nothing to send.
    assert api.dry_run(_cfg(tmp_path, fake_openai.base_url), "F").units_pending == 0

    # Replanned with more tasks: the finished requests are the new plan's too (not resent).
    rep = api.dry_run(_cfg(tmp_path, fake_openai.base_url, more), "F", replan=True)
    assert rep.units_pending == CALLS * 2 and rep.tasks == {"humaneval": 4}
    s = api.run(_cfg(tmp_path, fake_openai.base_url, more), "F", resume=True)
    assert s.counts == {"ok": CALLS * 4}
    assert len(fake_openai.requests) == CALLS * 4
    plans = read_jsonl(rd / "datasets/humaneval/plans.jsonl")
    assert Counter(p["task_id"] for p in plans) == {t: CALLS * PER_CALL for t in first_task_ids(4)}
    assert not [r for r in check_run(rd) if not r.ok]


def test_fewer_tasks_replanned_exports_only_the_current_plan(
    fake_openai: FakeOpenAI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_ENV, SECRET)
    rd = tmp_path / "runs" / "L"
    api.run(_cfg(tmp_path, fake_openai.base_url), "L")
    one = {"datasets": {"humaneval": {"max_tasks": 1}}}
    s = api.run(_cfg(tmp_path, fake_openai.base_url, one), "L", resume=True, replan=True)
    assert s.counts == {"ok": CALLS * TASKS}  # completed answers are never dropped
    first = first_task_ids(1)
    assert [t["task_id"] for t in read_jsonl(rd / "datasets/humaneval/tasks.jsonl")] == first
    assert read_json(rd / "manifests/humaneval_task_ids.json") == first
    plans = read_jsonl(rd / "datasets/humaneval/plans.jsonl")
    assert {p["task_id"] for p in plans} == set(first) and len(plans) == CALLS * PER_CALL
    records = list(api.read_records(rd, "humaneval"))
    assert [r["task_id"] for r in records] == [p["task_id"] for p in plans]
    assert not [r for r in check_run(rd) if not r.ok]


def test_replan_back_reopens_superseded_requests(
    fake_openai: FakeOpenAI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Plan 1 -> plan 2 -> the settings of plan 1 again: the requests plan 2 superseded were
    never answered, so plan 3 asks them again (and keeps the one answered)."""
    monkeypatch.setenv(KEY_ENV, SECRET)
    rd = _stopped_run(tmp_path, fake_openai)
    plan1 = {u[0] for u in _units(rd)}
    (old_ok,) = [u[0] for u in _units(rd) if u[1] == "ok"]
    api.dry_run(_cfg(tmp_path, fake_openai.base_url, {"model": {"max_output_tokens": 3000}}),
                "R", replan=True)
    assert {u[0] for u in _units(rd) if u[1] == "skipped"} == plan1 - {old_ok}
    sent = len(fake_openai.requests)
    s = api.run(_cfg(tmp_path, fake_openai.base_url, max_usd=BIG), "R", resume=True, replan=True)
    assert s.stopped is None
    units = {u[0]: u for u in _units(rd)}
    plan_of = _plan_of(rd)
    assert {uid for uid in units if plan_of[uid] == 3} == plan1
    assert all(units[uid][1] == "ok" for uid in plan1)
    assert len(fake_openai.requests) == sent + len(plan1) - 1  # the answered one is not resent
    assert {u[1] for uid, u in units.items() if plan_of[uid] == 2} == {"skipped"}
    plans = read_jsonl(rd / "datasets/humaneval/plans.jsonl")
    assert {p["request_id"] for p in plans} == plan1


def test_replan_with_same_settings_changes_nothing(
    fake_openai: FakeOpenAI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_ENV, SECRET)
    rd = _stopped_run(tmp_path, fake_openai)
    before = _units(rd)
    said: list[str] = []
    api.dry_run(_cfg(tmp_path, fake_openai.base_url), "R", said.append, replan=True)
    assert _units(rd) == before
    assert any("nothing to replan" in m for m in said)
    assert ledger_rows(rd, "SELECT COUNT(*) FROM plans") == [(1,)]


def test_replan_waits_for_batches_in_flight(
    fake_openai: FakeOpenAI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A request in an unreconciled Batch API job would be paid for and its answer dropped as
    superseded: the replan waits until the jobs are reconciled."""
    from benchsmith.store.batches import add_batch
    from helpers import ledger_of

    monkeypatch.setenv(KEY_ENV, SECRET)
    rd = _stopped_run(tmp_path, fake_openai)
    pending = [u[0] for u in _units(rd) if u[1] == "pending"]
    with ledger_of(rd) as led, led.tx():
        inv = led.start_invocation("batch", None)
        aid = led.begin_attempt(pending[0], inv, 1, "gpt-5-mini", 0.01, "k")
        add_batch(led, local_id="b1", invocation=inv, model="gpt-5-mini", endpoint="/v1/responses",
                  n_requests=1, n_bytes=100, reserved_usd=0.01, items=[(pending[0], aid)])
    before = _units(rd)
    changed = _cfg(tmp_path, fake_openai.base_url, {"model": {"max_output_tokens": 3000}})
    with pytest.raises(ConfigError, match="1 request.* Batch API jobs not reconciled"):
        api.dry_run(changed, "R", replan=True)
    assert _units(rd) == before
    assert ledger_rows(rd, "SELECT COUNT(*) FROM plans") == [(1,)]
    with ledger_of(rd) as led:
        led.db.execute("UPDATE batches SET reconciled_at=1, status='cancelled'")
    api.dry_run(changed, "R", replan=True)
    assert ledger_rows(rd, "SELECT COUNT(*) FROM plans") == [(2,)]


# --------------------------------------------------------------------------- older runs


def _make_legacy(rd: Path) -> None:
    """The ledger as a benchsmith before plan pinning left it (schema version 3)."""
    db = sqlite3.connect(rd / "ledger.sqlite")
    try:
        db.executescript(
            "DROP TABLE plans; ALTER TABLE units DROP COLUMN plan; "
            "ALTER TABLE tasks DROP COLUMN plan; PRAGMA user_version=3;"
        )
    finally:
        db.close()
    (rd / "config/plan.json").unlink()


def test_run_made_before_pinning_is_accepted_and_pinned(
    fake_openai: FakeOpenAI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_ENV, SECRET)
    rd = _stopped_run(tmp_path, fake_openai)
    _make_legacy(rd)
    # No fingerprint to compare with: the run continues and its settings are pinned now.
    s = api.run(_cfg(tmp_path, fake_openai.base_url, {"engine": {"concurrency": 2}},
                     max_usd=BIG), "R", resume=True)
    assert s.counts == {"ok": CALLS * TASKS}
    assert ledger_rows(rd, "SELECT COUNT(*) FROM units WHERE plan=1") == [(CALLS * TASKS,)]
    assert read_json(rd / "config/plan.json")["plan"] == 1
    assert len(read_jsonl(rd / "datasets/humaneval/plans.jsonl")) == TASKS * CALLS * PER_CALL
    msg = _refused(api.dry_run, _cfg(tmp_path, fake_openai.base_url, {"recipe_options": {"min_steps": 3}}),
                   "R")
    assert "plans.min_steps: 2 -> 3" in msg


# --------------------------------------------------------------------------- validate-run


def test_validate_run_flags_a_file_mixing_plans(
    fake_openai: FakeOpenAI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_ENV, SECRET)
    rd = _stopped_run(tmp_path, fake_openai)
    old_rows = (rd / "datasets/humaneval/plans.jsonl").read_bytes()
    assert old_rows
    api.run(_cfg(tmp_path, fake_openai.base_url, {"model": {"max_output_tokens": 3000}},
                 max_usd=BIG), "R", resume=True, replan=True)
    res = {r.name: r for r in check_run(rd)}
    assert res["one_plan"].ok, res["one_plan"]
    path = rd / "datasets/humaneval/plans.jsonl"
    path.write_bytes(path.read_bytes() + old_rows)  # records of plan 1 next to plan 2's
    res = {r.name: r for r in check_run(rd)}
    assert not res["one_plan"].ok
    assert "plans.jsonl" in res["one_plan"].detail and "2 plans" in res["one_plan"].detail
    path.write_bytes(old_rows)  # only records of a superseded plan
    res = {r.name: r for r in check_run(rd)}
    assert not res["one_plan"].ok and "not of the current plan 2" in res["one_plan"].detail


# --------------------------------------------------------------------------- CLI


def test_cli_refuses_then_replans(fake_openai: FakeOpenAI, tmp_path: Path) -> None:
    env = cli_env(**{KEY_ENV: SECRET})
    cfg1 = write_yaml(tmp_path / "a.yaml", _data(tmp_path, fake_openai.base_url))
    res = run_cli(["run", "--config", str(cfg1), "--run-id", "C", "--quiet"], env=env)
    assert res.returncode == 0, res.stderr
    cfg2 = write_yaml(tmp_path / "b.yaml",
                      _data(tmp_path, fake_openai.base_url, {"recipe_options": {"calls_per_task": 2}}))
    for cmd in (["run", "--resume"], ["dry-run"]):
        res = run_cli([*cmd, "--config", str(cfg2), "--run-id", "C"], env=env)
        out = res.stdout + res.stderr
        assert res.returncode == 1, out
        assert "Traceback" not in out
        lines = [ln for ln in out.splitlines() if ln.strip()]
        assert len(lines) == 1 and "plans.calls_per_task: 3 -> 2" in lines[0], out
    res = run_cli(["dry-run", "--config", str(cfg2), "--run-id", "C", "--replan", "--json"],
                  env=env)
    assert res.returncode == 0, res.stderr
    # "Call k of 2" is another prompt than "Call k of 3": every request is new.
    assert orjson.loads(res.stdout)["requests"] == TASKS * 2
    assert "replanned: plan 2 replaces plan 1" in res.stderr
    res = run_cli(["run", "--config", str(cfg2), "--run-id", "C", "--resume", "--quiet"], env=env)
    assert res.returncode == 0, res.stderr
    rd = tmp_path / "runs" / "C"
    plans = read_jsonl(rd / "datasets/humaneval/plans.jsonl")
    assert {p["call_index"] for p in plans} == {0, 1} and len(plans) == TASKS * 2 * PER_CALL


def test_replan_to_another_dataset_drops_its_exports(
    fake_openai: FakeOpenAI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_ENV, SECRET)
    he = {"source": "humaneval", "max_tasks": 1}
    a = _data(tmp_path, fake_openai.base_url)
    a["datasets"] = {"first": he}
    api.run(parse_config(a, file="a.yaml", config_dir=str(tmp_path)), "D")
    rd = tmp_path / "runs" / "D"
    assert (rd / "datasets/first/plans.jsonl").is_file()
    b = {**a, "datasets": {"second": he}}
    msg = _refused(api.run, parse_config(b, file="b.yaml", config_dir=str(tmp_path)), "D",
                   resume=True)
    assert "datasets.second.source: (unset) -> humaneval" in msg
    api.run(parse_config(b, file="b.yaml", config_dir=str(tmp_path)), "D", resume=True,
            replan=True)
    assert not (rd / "datasets/first").exists()
    assert not (rd / "failed_plans/datasets/first").exists()
    assert not list((rd / "manifests").glob("first_*"))
    assert len(read_jsonl(rd / "datasets/second/plans.jsonl")) == CALLS * PER_CALL
    assert not [r for r in check_run(rd) if not r.ok]


def test_merging_a_replanned_section_keeps_its_current_plan_only(
    fake_openai: FakeOpenAI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A section run answered in full, then replanned (another max_output_tokens) and
    answered again: its export holds plan 2. The merged run must hold the same records, not
    both plans (duplicate plan ids, twice the plans per task); plan 1's requests and their
    cost are reported as left out."""
    from benchsmith.sections import merge_sections

    monkeypatch.setenv(KEY_ENV, SECRET)
    rd = tmp_path / "runs" / "S1"
    api.run(_cfg(tmp_path, fake_openai.base_url), "S1")
    api.run(_cfg(tmp_path, fake_openai.base_url, {"model": {"max_output_tokens": 3000}}), "S1",
            resume=True, replan=True)
    section_plans = read_jsonl(rd / "datasets/humaneval/plans.jsonl")
    assert len(section_plans) == CALLS * PER_CALL * TASKS
    m = merge_sections([("s1", rd)], "M")
    merged = read_jsonl(m.run_dir / "datasets/humaneval/plans.jsonl")
    assert sorted(p["request_id"] for p in merged) == sorted(p["request_id"] for p in section_plans)
    assert m.totals["units"] == {"ok": CALLS * TASKS}
    (info,) = m.sections
    assert info["dropped"]["units"] == {"ok": CALLS * TASKS}
    assert info["dropped"]["usage"]["api_calls"] == CALLS * TASKS
    assert any("superseded" in w for w in m.warnings), m.warnings
    assert not [r for r in check_run(m.run_dir) if not r.ok]
