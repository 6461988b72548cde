"""One writer per run (issue 8, item 2) and interrupted invocations (item 6).

Writers (run, dry-run, batch export/ingest/cancel, render-readable) take an exclusive flock on
`runs/R/.lock`; a second writer exits at once naming the holder; a killed holder never
blocks; readers (status, validate-run, batch status) work during a run and say it is live.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from benchsmith import api
from benchsmith.errors import BenchsmithError
from benchsmith.store.lock import LOCK_NAME, RunInUse, live_holder, run_lock
from fake_openai import FakeOpenAI
from helpers import (
    KEY_ENV,
    kill9_when,
    SECRET,
    cfg_dict,
    cli_env,
    ledger_rows,
    make_cfg,
    match_unit,
    popen_cli,
    run_cli,
    unit_specs,
    unit_states,
    wait_for,
    write_yaml,
)

N_TASKS = 3


class Gate:
    """Answers to model requests wait until the gate opens: a run under test stays live for
    as long as the test needs, without any timing assumption."""

    def __init__(self, server: FakeOpenAI) -> None:
        self.open = threading.Event()
        server.latency = 0.02

        def script(_r: Any, _i: int) -> Any:
            async def held() -> None:
                while not self.open.is_set():
                    await asyncio.sleep(0.005)
                return None  # the default (valid) answer

            return held()

        server.script = script


def _bodies_sent_twice(server: FakeOpenAI) -> bool:
    c = Counter(orjson.dumps(r.body, option=orjson.OPT_SORT_KEYS) for r in server.requests)
    return any(n > 1 for n in c.values())


@pytest.fixture
def env() -> dict[str, str]:
    return cli_env(**{KEY_ENV: SECRET})


def _cfg(tmp_path: Path, server: FakeOpenAI) -> Path:
    return write_yaml(
        tmp_path / "run.yaml",
        cfg_dict(tmp_path, server.base_url, {"engine": {"concurrency": 4}}, tasks=N_TASKS),
    )


def _run_args(cfg: Path, run_id: str, *extra: str) -> list[str]:
    return ["run", "--config", str(cfg), "--run-id", run_id, "--quiet", *extra]


@pytest.fixture
def live_run(fake_openai: FakeOpenAI, tmp_path: Path, env: dict[str, str]) -> Iterator[Any]:
    """A `benchsmith run` subprocess holding runs/R, its requests held at the gate."""
    gate = Gate(fake_openai)
    cfg = _cfg(tmp_path, fake_openai)
    proc = popen_cli(_run_args(cfg, "R"), env=env)
    try:
        wait_for(lambda: len(fake_openai.requests) > 0 or proc.poll() is not None,
                 timeout=60, what="the run's first request")
        assert proc.poll() is None, proc.communicate()
        yield proc, gate, cfg, tmp_path / "runs" / "R"
    finally:
        gate.open.set()
        if proc.poll() is None:
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(20)


def _assert_refused(res: subprocess.CompletedProcess[str], rd: Path, pid: int) -> None:
    assert res.returncode == 1, (res.returncode, res.stdout, res.stderr)
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("error: ")
    assert f"{rd}: run is in use by pid {pid} (benchsmith run, started " in lines[0]
    assert lines[0].endswith("; wait for it or stop it")
    assert "Traceback" not in res.stdout + res.stderr


# --------------------------------------------------------------------------- two writers


def test_two_concurrent_resumes_send_each_unit_once(
    fake_openai: FakeOpenAI, tmp_path: Path, env: dict[str, str]
) -> None:
    """Two `run --resume` at once: one exits at once naming the other; each unit sent once.
    The gate holds every answer until one process has exited (or a unit went out twice), so
    the two always overlap."""
    cfg = _cfg(tmp_path, fake_openai)
    rd = tmp_path / "runs" / "R"
    res = run_cli(["dry-run", "--config", str(cfg), "--run-id", "R"], env=env)
    assert res.returncode == 0, res.stderr
    pending = len(unit_states(rd))
    assert pending == N_TASKS  # first stage planned, nothing sent

    gate = Gate(fake_openai)
    procs = [popen_cli(_run_args(cfg, "R", "--resume"), env=env) for _ in range(2)]
    try:
        wait_for(lambda: any(p.poll() is not None for p in procs) or _bodies_sent_twice(fake_openai),
                 timeout=120, what="one run to exit")
        gate.open.set()
        outs = [p.communicate(timeout=120) for p in procs]
    finally:
        gate.open.set()
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait(20)
    codes = [p.returncode for p in procs]
    assert sorted(codes) == [0, 1], (codes, outs)
    loser = codes.index(1)
    winner = 1 - loser
    _assert_refused(
        subprocess.CompletedProcess([], 1, outs[loser][0], outs[loser][1]), rd, procs[winner].pid
    )

    assert set(unit_states(rd).values()) == {"ok"}
    specs = unit_specs(rd)
    sent = Counter(match_unit(r.body, specs) for r in fake_openai.requests)
    assert None not in sent
    assert set(sent) == set(specs) and set(sent.values()) == {1}, sent
    # Only the winner recorded an invocation.
    assert ledger_rows(rd, "SELECT status FROM invocations") == [("completed",)]


# --------------------------------------------------------------------------- kill -9


def test_kill9_leaves_an_interrupted_invocation_that_does_not_block(
    fake_openai: FakeOpenAI, tmp_path: Path, env: dict[str, str]
) -> None:
    gate = Gate(fake_openai)
    cfg = _cfg(tmp_path, fake_openai)
    rd = tmp_path / "runs" / "K"
    proc = popen_cli(_run_args(cfg, "K"), env=env)
    kill9_when(proc, lambda: len(fake_openai.requests) > 0, "the run's first request")
    assert proc.returncode == -signal.SIGKILL
    assert ledger_rows(rd, "SELECT status FROM invocations") == [("running",)]

    res = run_cli(["status", str(rd), "--json"], env=env)
    assert res.returncode == 0, res.stderr
    st = json.loads(res.stdout)
    assert st["last_status"] == "interrupted" and st["live"] is None
    res = run_cli(["status", str(rd)], env=env)
    assert "last: interrupted)" in res.stdout and "live:" not in res.stdout
    # The dead holder's info is still in the lock file; the flock died with it.
    assert json.loads((rd / LOCK_NAME).read_text())["pid"] == proc.pid
    # Another writer that took the lock after the run started (render-readable, dry-run,
    # batch export: none records an invocation) does not bring the killed one back to life.
    p = _holder_process(rd)
    try:
        st = json.loads(run_cli(["status", str(rd), "--json"], env=env).stdout)
        assert st["live"]["pid"] == p.pid and st["last_status"] == "interrupted", st
    finally:
        p.kill()
        p.wait(20)

    gate.open.set()
    res = run_cli(_run_args(cfg, "K", "--resume"), env=env)
    assert res.returncode == 0, res.stderr
    assert set(unit_states(rd).values()) == {"ok"}
    assert ledger_rows(rd, "SELECT status FROM invocations ORDER BY id") == [
        ("interrupted",), ("completed",)
    ]
    st = json.loads(run_cli(["status", str(rd), "--json"], env=env).stdout)
    assert st["last_status"] == "completed" and st["live"] is None
    res = run_cli(["validate-run", str(rd)], env=env)
    assert res.returncode == 0, res.stdout


# --------------------------------------------------------------------------- readers and writers


def test_readers_see_a_live_run_and_writers_are_refused(
    live_run: Any, env: dict[str, str], tmp_path: Path
) -> None:
    proc, gate, cfg, rd = live_run
    before = ledger_rows(rd, "SELECT unit_id, state FROM units ORDER BY unit_id")

    res = run_cli(["status", str(rd)], env=env)
    assert res.returncode == 0, res.stderr
    assert "last: running)" in res.stdout
    assert f"live:      run in progress (pid {proc.pid}, benchsmith run, started " in res.stdout
    st = json.loads(run_cli(["status", str(rd), "--json"], env=env).stdout)
    assert st["last_status"] == "running"
    assert st["live"]["pid"] == proc.pid and st["live"]["command"] == "benchsmith run"

    res = run_cli(["validate-run", str(rd), "--json"], env=env)
    assert "Traceback" not in res.stderr
    assert json.loads(res.stdout)["live"]["pid"] == proc.pid
    res = run_cli(["validate-run", str(rd)], env=env)
    assert f"live:      run in progress (pid {proc.pid}, benchsmith run, started " in res.stdout

    for args in (["batch", "status", str(rd), "--no-refresh"], ["batch", "status", str(rd)]):
        res = run_cli(args, env=env)
        assert res.returncode == 0, res.stderr
        assert "no batches in this run" in res.stdout
        assert f"live:      run in progress (pid {proc.pid}, benchsmith run" in res.stderr
    # Cancelling asks the provider only; the live run records it (see test_batch_executor).
    res = run_cli(["batch", "cancel", str(rd)], env=env)
    assert res.returncode == 0, res.stderr
    assert f"live:      run in progress (pid {proc.pid}, benchsmith run" in res.stderr

    results = tmp_path / "results.jsonl"
    results.write_text("")
    writers = [
        ["dry-run", "--config", str(cfg), "--run-id", "R"],
        ["run", "--config", str(cfg), "--run-id", "R", "--resume", "--quiet"],
        ["batch", "export", str(rd), "--out", str(tmp_path / "req.jsonl")],
        ["batch", "ingest", str(rd), str(results)],
        ["render-readable", "--run-dir", str(rd)],
        ["render-readable", "--run-dir", str(rd), "--output-dir", str(rd / "review")],
    ]
    for args in writers:
        _assert_refused(run_cli(args, env=env), rd, proc.pid)
    assert not (tmp_path / "req.jsonl").exists() and not (rd / "review").exists()
    assert ledger_rows(rd, "SELECT unit_id, state FROM units ORDER BY unit_id") == before
    # Rendering elsewhere only reads the ledger: allowed.
    res = run_cli(["render-readable", "--run-dir", str(rd), "--output-dir",
                   str(tmp_path / "review")], env=env)
    assert res.returncode == 0, res.stderr

    gate.open.set()
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert (rd / "readable" / "index.md").is_file()  # rendered by the run, under its own lock
    assert "could not render" not in err
    st = json.loads(run_cli(["status", str(rd), "--json"], env=env).stdout)
    assert st["live"] is None and st["last_status"] == "completed"
    res = run_cli(["batch", "export", str(rd), "--out", str(tmp_path / "req.jsonl")], env=env)
    assert res.returncode == 0, res.stderr


# --------------------------------------------------------------------------- the lock itself

_HOLD = """
import sys, time
from benchsmith.store.lock import run_lock
with run_lock(sys.argv[1], "run"):
    print("locked", flush=True)
    time.sleep(600)
"""


def _holder_process(root: Path) -> subprocess.Popen[str]:
    p = subprocess.Popen([sys.executable, "-c", _HOLD, str(root)], stdout=subprocess.PIPE,
                         text=True, env=os.environ.copy())
    assert p.stdout is not None and p.stdout.readline() == "locked\n"
    return p


def test_lock_reentrant_in_process_exclusive_across_and_dies_with_holder(tmp_path: Path) -> None:
    root = tmp_path / "R"
    root.mkdir()
    assert live_holder(root) is None and not (root / LOCK_NAME).exists()  # probing creates nothing
    with run_lock(root, "run") as me:
        with run_lock(root, "render-readable") as inner:  # nested api calls
            assert inner == me and me.pid == os.getpid()
        assert live_holder(root) == me  # still held after the inner exit
        refused: list[BaseException] = []

        def other_thread() -> None:
            try:
                with run_lock(root, "run"):
                    pass
            except RunInUse as e:
                refused.append(e)

        t = threading.Thread(target=other_thread)
        t.start()
        t.join()
        assert len(refused) == 1 and f"pid {os.getpid()}" in str(refused[0])
    assert live_holder(root) is None
    assert (root / LOCK_NAME).read_bytes() == b""  # no stale holder info once released

    p = _holder_process(root)
    try:
        h = live_holder(root)
        assert h is not None and h.pid == p.pid
        with pytest.raises(RunInUse, match=rf"run is in use by pid {p.pid} \("):
            with run_lock(root, "run"):
                pass
        os.kill(p.pid, signal.SIGKILL)
        p.wait(20)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(20)
    assert live_holder(root) is None
    with run_lock(root, "run") as me:
        assert me.pid == os.getpid()


def test_api_writers_refused_while_another_process_holds_the_run(
    fake_openai: FakeOpenAI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from benchsmith.batch_ops import batch_export
    from benchsmith.sections import merge_sections

    monkeypatch.setenv(KEY_ENV, SECRET)
    cfg = make_cfg(tmp_path, fake_openai.base_url, tasks=1)
    rd = api.run(cfg, "S1").run_dir
    p = _holder_process(rd)
    try:
        for call in (
            lambda: api.run(cfg, "S1", resume=True),
            lambda: api.dry_run(cfg, "S1"),
            lambda: batch_export(rd, tmp_path / "out.jsonl"),
        ):
            with pytest.raises(RunInUse, match=f"pid {p.pid}"):
                call()
        with pytest.raises(BenchsmithError, match=f"section s1: .*in use by pid {p.pid}"):
            merge_sections([("s1", rd)], "merged")
        assert api.run_status(rd)["live"]["pid"] == p.pid
    finally:
        p.kill()
        p.wait(20)
    assert api.run_status(rd)["live"] is None
    assert merge_sections([("s1", rd)], "merged").run_dir.is_dir()


def test_a_run_being_created_is_in_use_not_damaged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two dry-runs race to create the same new run: the first is paused while it creates
    the ledger (the file exists, still empty). The second must not take the half-made ledger
    for a damaged one ("restore it from a backup"), nor migrate it a second time: the run is
    in use. Once the first is done, the second plans it normally."""
    import benchsmith.store.ledger as ledger_mod

    monkeypatch.setenv(KEY_ENV, SECRET)
    cfg = make_cfg(tmp_path, "http://127.0.0.1:9/v1", tasks=1)
    made, go_on = threading.Event(), threading.Event()
    real_connect = ledger_mod.connect_ledger

    def slow_connect(path: Path) -> Any:
        db = real_connect(path)  # the file exists now, still empty
        if threading.current_thread().name == "first":
            made.set()
            go_on.wait(30)
        return db

    monkeypatch.setattr(ledger_mod, "connect_ledger", slow_connect)
    errors: list[BaseException] = []

    def first() -> None:
        try:
            api.dry_run(cfg, "NEW")
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    t = threading.Thread(target=first, name="first")
    t.start()
    try:
        assert made.wait(30)
        with pytest.raises(RunInUse, match="run is in use"):
            api.dry_run(cfg, "NEW")
        with pytest.raises(RunInUse, match="run is in use"):
            api.run(cfg, "NEW")
    finally:
        go_on.set()
        t.join(60)
    assert errors == []
    rep = api.dry_run(cfg, "NEW")
    assert rep.units_pending > 0
