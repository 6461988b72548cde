"""`benchsmith validate-run`: a real run against the fake server validates; each deliberate
corruption of one artifact (on a fresh copy of the run) fails the check it should, and the
command exits 1.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner

from benchsmith import api
from benchsmith.cli.app import app
from benchsmith.config import parse_config
from benchsmith.errors import ConfigError
from benchsmith.export.jsonl import write_outputs
from benchsmith.store.ledger import Ledger
from benchsmith.store.rundir import RunDir
from benchsmith.validate.run_checks import CheckResult, check_run
from fake_openai import FakeOpenAI, Reply
from helpers import cli_env, first_task_ids, humaneval_problems, run_cli

KEY_ENV = "BENCHSMITH_VALIDATE_TEST_KEY"
SECRET = "sk-validate-S3CRET-4b1d9e0c77aa"
MODEL = "gpt-5-mini"
PRICE = {"input": 0.25, "cached_input": 0.025, "output": 2.0}
N_TASKS = 3
PLANS = "datasets/humaneval/plans.jsonl"
# The checks of a plans run: the shared ones, with the plans recipe's own after "ledger".
CHECKS = ("ledger", "plans_per_task", "schema", "unique_ids", "matches_ledger", "manifests",
          "gold_leaks", "costs", "one_plan", "files_parse", "no_secret")


def _config(tmp: Path, base_url: str, datasets: tuple[str, ...] = ("humaneval",)) -> Any:
    data = {
        "run_dir": str(tmp),
        "datasets": {ds: {"source": "humaneval", "max_tasks": N_TASKS} for ds in datasets},
        "model": {"name": MODEL},
        "openai": {"base_url": base_url, "api_key_env": KEY_ENV},
        "engine": {"concurrency": 4, "max_retries": 2, "timeout_s": 10, "backoff_base_s": 0.01},
        "prices": {MODEL: PRICE},
    }
    return parse_config(data, file=str(tmp / "test.yaml"), config_dir=str(tmp))


@pytest.fixture(scope="module")
def base_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One finished run (all tasks complete), shared read-only by the tests of this module."""
    tmp = tmp_path_factory.mktemp("validate_base")
    with pytest.MonkeyPatch.context() as mp, FakeOpenAI() as server:
        mp.setenv(KEY_ENV, SECRET)
        summary = api.run(_config(tmp, server.base_url), run_id="R")
    assert summary.stopped is None, summary.message
    assert summary.counts == {"ok": 3 * N_TASKS}
    yield summary.run_dir


@pytest.fixture(autouse=True)
def _key_set(monkeypatch: pytest.MonkeyPatch) -> None:
    # The secret scan only looks for the key when its variable is set, as during a run.
    monkeypatch.setenv(KEY_ENV, SECRET)


@pytest.fixture
def run_copy(base_run: Path, tmp_path: Path) -> Path:
    dest = tmp_path / "R"
    shutil.copytree(base_run, dest)
    return dest


# ------------------------------------------------------------------------------ helpers


def _cli(*args: str) -> Any:
    return CliRunner().invoke(app, ["validate-run", *args])


def _results(run_dir: Path) -> dict[str, CheckResult]:
    res = check_run(run_dir)
    assert [r.name for r in res] == list(CHECKS)
    for r in res:
        assert r.ok == (not r.problems), r
    return {r.name: r for r in res}


def _failed(run_dir: Path) -> set[str]:
    return {name for name, r in _results(run_dir).items() if not r.ok}


def _assert_fails(
    run_dir: Path, check: str, *, only: bool = False, mentions: str = ""
) -> CheckResult:
    """`check` fails (with a problem mentioning `mentions`), and the CLI says so and exits 1."""
    results = _results(run_dir)
    r = results[check]
    assert not r.ok, f"{check} should fail; results: {results}"
    if mentions:
        assert any(mentions in p for p in r.problems), r.problems
    if only:
        assert _failed(run_dir) == {check}, {n: x.problems for n, x in results.items() if not x.ok}
    res = _cli(str(run_dir), "--json")
    assert res.exit_code == 1, res.output
    out = json.loads(res.stdout)
    assert out["ok"] is False
    assert {c["name"]: c["ok"] for c in out["checks"]}[check] is False
    table = _cli(str(run_dir))
    assert table.exit_code == 1
    row = next(ln for ln in table.stdout.splitlines() if f" {check} " in ln)
    assert "FAIL" in row
    return r


def _lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines()


def _write_lines(path: Path, lines: list[bytes]) -> None:
    path.write_bytes(b"".join(ln + b"\n" for ln in lines))


def _edit_jsonl(path: Path, index: int, edit: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    lines = _lines(path)
    row = orjson.loads(lines[index])
    edit(row)
    lines[index] = orjson.dumps(row)
    _write_lines(path, lines)
    return row


# ------------------------------------------------------------------------------ the good run


def test_finished_run_validates(base_run: Path) -> None:
    before = sorted(p.relative_to(base_run) for p in base_run.rglob("*"))
    results = _results(base_run)
    assert all(r.ok for r in results.values()), {n: r.problems for n, r in results.items()}
    assert "scanned" in results["no_secret"].detail  # the key variable is set: it was scanned

    res = _cli(str(base_run))
    assert res.exit_code == 0, res.output
    for name in CHECKS:
        row = next(ln for ln in res.stdout.splitlines() if f" {name} " in ln)
        assert " ok " in row and "FAIL" not in row

    res = _cli(str(base_run), "--json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["ok"] is True
    assert [c["name"] for c in out["checks"]] == list(CHECKS)
    assert all(c["ok"] and c["problems"] == [] and c["detail"] for c in out["checks"])

    # Validation leaves the run directory exactly as it was (no -wal/-shm, no migration).
    assert sorted(p.relative_to(base_run) for p in base_run.rglob("*")) == before


def test_partial_run_with_a_failed_request_validates(
    fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    ids = first_task_ids(N_TASKS)
    victim = ids[1]
    entry = humaneval_problems()[victim]["entry_point"].encode()

    def script(received: Any, _index: int) -> Reply | None:
        # The second call of one task gets a 400: that request fails, its task is incomplete.
        if entry in received.raw and b"(Call 2 of 3.)" in received.raw:
            return Reply.error(400, "Invalid 'input': scripted rejection")
        return None

    fake_openai.script = script
    summary = api.run(_config(tmp_path, fake_openai.base_url), run_id="P")
    rd = summary.run_dir
    assert summary.counts.get("failed") == 1, summary.counts

    results = _results(rd)
    assert all(r.ok for r in results.values()), {n: r.problems for n, r in results.items()}
    res = _cli(str(rd))
    assert res.exit_code == 0, res.output

    manifests = rd / "manifests"
    assert json.loads((manifests / "humaneval_incomplete_task_ids.json").read_text()) == [victim]
    assert json.loads((manifests / "humaneval_complete_task_ids.json").read_text()) == [
        t for t in ids if t != victim
    ]
    # The incomplete task keeps the plans of its accepted calls: the chain went on past the
    # failed second call, so calls 1 and 3 (4 plans each) were accepted.
    plans = [orjson.loads(ln) for ln in _lines(rd / PLANS)]
    assert sorted({p["call_index"] for p in plans if p["task_id"] == victim}) == [0, 2]
    assert sum(p["task_id"] == victim for p in plans) == 8


@pytest.mark.parametrize("ended", ["interrupted", "crashed"])  # crashed: older ledgers
def test_unsettled_attempt_allowed_only_after_a_crash(run_copy: Path, ended: str) -> None:
    """A crash leaves an attempt 'sent' (its unit pending): fine if its invocation was
    interrupted, a problem if the invocation ended normally."""
    led = Ledger(run_copy / "ledger.sqlite")
    try:
        uid = led.db.execute("SELECT unit_id FROM units ORDER BY unit_id LIMIT 1").fetchone()[0]
        with led.tx() as db:
            db.execute(
                "UPDATE units SET state='pending', reason=NULL, result_json=NULL WHERE unit_id=?",
                (uid,),
            )
            db.execute(
                "UPDATE attempts SET status='sent', ended_at=NULL, http_status=NULL, "
                "latency_s=NULL, "
                "input_tokens=0, cached_input_tokens=0, output_tokens=0, reasoning_tokens=0, "
                "cost_usd=NULL, raw_output=NULL WHERE unit_id=?",
                (uid,),
            )
            db.execute("UPDATE invocations SET status=?, ended_at=NULL", (ended,))
        write_outputs(led, RunDir(run_copy), ["plans"])
    finally:
        led.close()
    results = _results(run_copy)
    assert all(r.ok for r in results.values()), {n: r.problems for n, r in results.items()}

    led = Ledger(run_copy / "ledger.sqlite")
    try:
        led.db.execute("UPDATE invocations SET status='completed'")
        write_outputs(led, RunDir(run_copy), ["plans"])
    finally:
        led.close()
    _assert_fails(run_copy, "ledger", only=True, mentions="left 'sent'")


def test_complete_task_missing_a_chained_call(run_copy: Path) -> None:
    """Calls of a task form a chain; if the last call was never planned (stopped between a
    call being accepted and the next one being recorded), the exporter sees only ok units
    and lists the task as complete: the plan count per complete task catches it."""
    led = Ledger(run_copy / "ledger.sqlite")
    try:
        uid, tid = led.db.execute(
            "SELECT unit_id, task_id FROM units WHERE sample_index=2 ORDER BY task_id LIMIT 1"
        ).fetchone()
        with led.tx() as db:
            db.execute("DELETE FROM attempts WHERE unit_id=?", (uid,))
            db.execute("DELETE FROM units WHERE unit_id=?", (uid,))
        write_outputs(led, RunDir(run_copy), ["plans"])
    finally:
        led.close()
    assert tid in json.loads((run_copy / "manifests/humaneval_complete_task_ids.json").read_text())
    _assert_fails(run_copy, "plans_per_task", only=True, mentions=f"{tid}: 8 plans")


# ------------------------------------------------------------------------------ corruptions


def test_deleted_plan_line(run_copy: Path) -> None:
    path = run_copy / PLANS
    lines = _lines(path)
    gone = orjson.loads(lines.pop(5))
    _write_lines(path, lines)
    _assert_fails(run_copy, "matches_ledger", mentions=gone["plan_id"])
    _assert_fails(run_copy, "plans_per_task", mentions=gone["task_id"])


def test_duplicated_plan_line(run_copy: Path) -> None:
    path = run_copy / PLANS
    lines = _lines(path)
    dup = orjson.loads(lines[3])
    lines.append(lines[3])
    _write_lines(path, lines)
    _assert_fails(run_copy, "unique_ids", mentions=f"{dup['plan_id']!r} appears 2 times in dataset")
    _assert_fails(run_copy, "matches_ledger", mentions="repeated")


def test_plan_ids_unique_per_dataset(fake_openai: FakeOpenAI, tmp_path: Path) -> None:
    """Two datasets of the same tasks share task ids, hence plan ids: that validates. A plan id
    twice within one dataset, or a (request_id, plan_index) twice anywhere, does not."""
    summary = api.run(
        _config(tmp_path, fake_openai.base_url, ("humaneval", "humaneval_b")), run_id="D"
    )
    rd = summary.run_dir
    assert summary.counts == {"ok": 2 * 3 * N_TASKS}, summary.counts
    first = [orjson.loads(ln) for ln in _lines(rd / PLANS)]
    other = rd / "datasets/humaneval_b/plans.jsonl"
    second = [orjson.loads(ln) for ln in _lines(other)]
    assert {p["plan_id"] for p in first} == {p["plan_id"] for p in second}
    assert not {p["request_id"] for p in first} & {p["request_id"] for p in second}
    results = _results(rd)
    assert all(r.ok for r in results.values()), {n: r.problems for n, r in results.items()}

    # The same (request_id, plan_index) in two datasets is a duplicate.
    src = first[0]
    _edit_jsonl(
        other,
        next(i for i, p in enumerate(second) if p["plan_index"] == src["plan_index"]),
        lambda r: r.update(request_id=src["request_id"]),
    )
    _assert_fails(rd, "unique_ids", mentions=f"request_id {src['request_id']}")


def test_edited_plan_title(run_copy: Path) -> None:
    row = _edit_jsonl(run_copy / PLANS, 7, lambda r: r.update(title=r["title"] + " (improved)"))
    r = _assert_fails(run_copy, "matches_ledger", only=True, mentions=row["plan_id"])
    assert any("title" in p and "edited" in p for p in r.problems)


def test_broken_json_line(run_copy: Path) -> None:
    path = run_copy / PLANS
    lines = _lines(path)
    lines[2] = lines[2][: len(lines[2]) // 2]
    _write_lines(path, lines)
    _assert_fails(run_copy, "files_parse", mentions=f"{PLANS}:3")


def test_changed_cost_in_call_log(run_copy: Path) -> None:
    path = run_copy / "logs/batch_calls.jsonl"
    row = _edit_jsonl(path, 1, lambda r: r.update(cost_usd=r["cost_usd"] * 1.5))
    r = _assert_fails(run_copy, "costs", only=True, mentions="logs/batch_calls.jsonl:2")
    joined = "\n".join(r.problems)
    assert "ledger has" in joined and "recomputed" in joined and "sum to" in joined
    assert row["cost_usd"] > 0


def test_cost_matching_ledger_but_not_prices(run_copy: Path) -> None:
    """Recomputation from usage and the price table catches a price change after the run."""
    path = run_copy / "config/run_config.json"
    cfg = json.loads(path.read_text())
    cfg["prices"][MODEL]["output"] = PRICE["output"] * 2
    path.write_text(json.dumps(cfg, indent=2))
    _assert_fails(run_copy, "costs", only=True, mentions="recomputed")


def test_cached_tokens_above_input(run_copy: Path) -> None:
    def edit(r: dict[str, Any]) -> None:
        r["usage"]["cached_input_tokens"] = r["usage"]["input_tokens"] + 1
        r["cached_input_tokens"] = r["usage"]["cached_input_tokens"]

    _edit_jsonl(run_copy / "logs/batch_calls.jsonl", 0, edit)
    _assert_fails(run_copy, "costs", mentions="cached_input_tokens")


def test_task_removed_from_manifest(run_copy: Path) -> None:
    path = run_copy / "manifests/humaneval_complete_task_ids.json"
    ids = json.loads(path.read_text())
    removed = ids.pop(0)
    path.write_text(json.dumps(ids))
    _assert_fails(run_copy, "manifests", only=True, mentions=removed)


def test_plan_with_too_few_steps(run_copy: Path) -> None:
    row = _edit_jsonl(run_copy / PLANS, 0, lambda r: r.update(steps=r["steps"][:1]))
    r = _assert_fails(run_copy, "schema", mentions=f"{PLANS}:1")
    assert any("at least 2" in p for p in r.problems), r.problems
    assert len(row["steps"]) == 1


def test_api_key_planted_in_a_file(run_copy: Path) -> None:
    tpl = run_copy / "prompts/plan_prompt_template.txt"
    tpl.write_text(tpl.read_text() + f"\n# debug: key {SECRET}\n")
    r = _assert_fails(run_copy, "no_secret", only=True, mentions="prompts/plan_prompt_template.txt")
    assert not any(SECRET in p for p in r.problems)  # the report never repeats the key
    res = _cli(str(run_copy), "--json")
    assert SECRET not in res.output


def test_api_key_planted_in_the_ledger(run_copy: Path) -> None:
    db = sqlite3.connect(run_copy / "ledger.sqlite")
    db.execute("UPDATE attempts SET error=? WHERE id=1", (f"Authorization: Bearer {SECRET}",))
    db.commit()
    db.close()
    _assert_fails(run_copy, "no_secret", only=True, mentions="ledger.sqlite")


def test_one_of_several_keys_planted(run_copy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    second = "sk-second-KEY-91c2f0e5d4"
    monkeypatch.setenv(KEY_ENV, f"{SECRET}, {second}")
    (run_copy / "logs/notes.txt").write_text(f"used {second}\n")
    r = _assert_fails(run_copy, "no_secret", only=True, mentions="logs/notes.txt")
    assert any("key 2 of 2" in p for p in r.problems), r.problems


def test_key_variable_must_be_a_name(run_copy: Path) -> None:
    path = run_copy / "config/run_config.json"
    cfg = json.loads(path.read_text())
    cfg["openai"]["api_key_env"] = "sk-live-0123456789abcdef"
    path.write_text(json.dumps(cfg, indent=2))
    _assert_fails(run_copy, "no_secret", only=True, mentions="api_key_env")


def test_temp_file_left_behind(run_copy: Path) -> None:
    (run_copy / "datasets/humaneval/.plans.jsonl.x1y2.tmp").write_bytes(b'{"half": ')
    _assert_fails(run_copy, "files_parse", only=True, mentions=".plans.jsonl.x1y2.tmp")


def test_missing_file_names_its_path(run_copy: Path) -> None:
    (run_copy / "logs/batch_calls.jsonl").unlink()
    _assert_fails(run_copy, "files_parse", mentions="missing logs/batch_calls.jsonl")
    _assert_fails(run_copy, "costs", mentions="missing logs/batch_calls.jsonl")


def test_not_a_run_directory(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not a run directory"):
        check_run(tmp_path)
    res = run_cli(["validate-run", str(tmp_path)], env=cli_env())
    assert res.returncode == 1
    assert res.stdout == ""
    err = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(err) == 1 and "not a run directory" in err[0] and str(tmp_path) in err[0], res.stderr
    assert "Traceback" not in res.stderr


def test_garbage_ledger_is_reported_not_raised(run_copy: Path) -> None:
    (run_copy / "ledger.sqlite").write_bytes(b"this is not a database" * 100)
    r = _assert_fails(run_copy, "ledger")
    assert "ledger.sqlite" in r.problems[0]


def test_recipe_of_the_config_must_be_the_ledgers(run_copy: Path) -> None:
    """The checks come from the run's recipe; a config naming another recipe than the ledger
    recorded fails the `recipe` check (and the checks that need the recipe), in one line."""
    path = run_copy / "config/run_config.json"
    cfg = json.loads(path.read_text())
    cfg["recipe"] = "agentless_testgen"
    path.write_text(json.dumps(cfg, indent=2))
    res = check_run(run_copy)
    failed = {r.name: r.problems for r in res if not r.ok}
    assert failed["recipe"] == [
        "config/run_config.json names recipe 'agentless_testgen', the ledger recorded 'plans'"
    ]
    assert set(failed) == {"recipe", "matches_ledger"}, failed
    out = _cli(str(run_copy), "--json")
    assert out.exit_code == 1 and "Traceback" not in out.output
