"""Commands that only read a run open it one way (`store.rundir.open_existing_run`): the
ledger is neither migrated nor written, and a folder that is not a run or a damaged ledger is
the same one line from every command that opens runs."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from benchsmith import api
from fake_openai import FakeOpenAI
from helpers import KEY_ENV, SECRET, cli_env, make_cfg, nonempty_lines, run_cli

LEDGER = "ledger.sqlite"


def _finished_run(tmp_path: Path, fake: FakeOpenAI) -> Path:
    s = api.run(make_cfg(tmp_path, fake.base_url, tasks=2), "R")
    assert s.status == "completed", s
    return s.run_dir


def _snapshot(rd: Path) -> dict[str, tuple[bytes, int] | None]:
    """Bytes and mtime of the ledger and its WAL; which side files there are (readers take
    read marks in the -shm index; that is all they may change)."""
    out: dict[str, tuple[bytes, int] | None] = {}
    for p in sorted(rd.iterdir()):
        if p.name.startswith(LEDGER):
            shm = p.name.endswith("-shm")
            out[p.name] = None if shm else (p.read_bytes(), p.stat().st_mtime_ns)
    return out


def _read_commands(rd: Path, tmp_path: Path) -> list[list[str]]:
    return [
        ["status", str(rd)],
        ["status", str(rd), "--json"],
        ["validate-run", str(rd), "--json"],
        ["batch", "status", str(rd), "--no-refresh"],
        ["batch", "status", str(rd)],  # nothing to refresh: reads only
        ["batch", "cancel", str(rd)],  # nothing to cancel: reads only
        ["render-readable", "--run-dir", str(rd), "--output-dir", str(tmp_path / "review")],
    ]


def test_read_only_commands_leave_the_ledger_as_found(
    tmp_path: Path, fake_openai: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_ENV, SECRET)
    rd = _finished_run(tmp_path, fake_openai)
    before = _snapshot(rd)
    assert list(before) == [LEDGER]  # the run closed its ledger
    for args in _read_commands(rd, tmp_path):
        res = run_cli(args, env=cli_env(**{KEY_ENV: SECRET}))
        assert res.returncode == 0, (args, res.stderr, res.stdout)
        assert _snapshot(rd) == before, args  # not even an empty -wal/-shm is left
    assert len(list(api.read_records(rd))) > 0
    assert _snapshot(rd) == before


def test_reading_a_run_whose_writer_died_does_not_fold_its_wal_into_the_ledger(
    tmp_path: Path, fake_openai: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A writer killed after a commit leaves it in the WAL. Readers see it; closing a reader
    must not checkpoint it into the ledger (that is the next writer's job)."""
    monkeypatch.setenv(KEY_ENV, SECRET)
    rd = _finished_run(tmp_path, fake_openai)
    died = (
        "import os, sqlite3, sys\n"
        "db = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
        "db.execute(\"UPDATE units SET state='failed', reason='died: x' WHERE rowid=1\")\n"
        "os._exit(0)\n"
    )
    subprocess.run([sys.executable, "-c", died, str(rd / LEDGER)], check=True)
    before = _snapshot(rd)
    wal = before[f"{LEDGER}-wal"]
    assert wal is not None and wal[0]  # the commit is in the WAL only
    st = json.loads(run_cli(["status", str(rd), "--json"]).stdout)
    assert st["units"]["failed"] == 1 and st["failure_reasons"] == {"died": 1}
    for args in _read_commands(rd, tmp_path):
        run_cli(args, env=cli_env(**{KEY_ENV: SECRET}))
        assert _snapshot(rd) == before, args


def test_ledger_of_an_older_benchsmith_is_named_not_upgraded_by_a_reader(
    tmp_path: Path, fake_openai: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_ENV, SECRET)
    rd = _finished_run(tmp_path, fake_openai)
    db = sqlite3.connect(rd / LEDGER)
    db.executescript("DROP TABLE plans; ALTER TABLE units DROP COLUMN plan; "
                     "ALTER TABLE tasks DROP COLUMN plan; PRAGMA user_version=3;")
    db.close()
    before = _snapshot(rd)
    res = run_cli(["status", str(rd)])
    lines = nonempty_lines(res.stderr)
    assert res.returncode == 1 and len(lines) == 1, res.stderr
    assert "older benchsmith (schema version 3" in lines[0] and "dry-run" in lines[0], lines
    assert _snapshot(rd) == before


# ------------------------------------------------------------------ the same error everywhere


def _opening_commands(target: Path, tmp_path: Path) -> list[list[str]]:
    return [
        ["status", str(target)],
        ["status", str(target), "--json"],
        ["validate-run", str(target)],
        ["batch", "status", str(target)],
        ["batch", "status", str(target), "--no-refresh"],
        ["batch", "cancel", str(target)],
        ["batch", "export", str(target), "--out", str(tmp_path / "out.jsonl")],
        ["batch", "ingest", str(target), str(tmp_path / "results.jsonl")],
        ["render-readable", "--run-dir", str(target)],
        ["merge-sections", "--section-run", f"s1={target}", "--output-run-id", "M",
         "--run-dir", str(tmp_path / "merged")],
    ]


def _error_line(res: subprocess.CompletedProcess[str]) -> str:
    assert res.returncode != 0 and "Traceback" not in res.stderr + res.stdout, res.stderr
    lines = nonempty_lines(res.stderr)
    assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr
    return lines[0].removeprefix("error: ")


def test_a_folder_that_is_not_a_run_is_one_line_from_every_command(tmp_path: Path) -> None:
    target = tmp_path / "notes"
    target.mkdir()
    (target / "readme.txt").write_text("not a run\n")
    (tmp_path / "results.jsonl").write_text("")
    for args in _opening_commands(target, tmp_path):
        assert _error_line(run_cli(args)) == f"{target}: not a run directory (no {LEDGER})", args
    assert sorted(p.name for p in target.iterdir()) == ["readme.txt"]  # nothing written


def test_a_damaged_ledger_is_the_same_line_from_every_command(
    tmp_path: Path, fake_openai: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_ENV, SECRET)
    rd = _finished_run(tmp_path, fake_openai)
    (rd / LEDGER).write_bytes(os.urandom(8192))
    (tmp_path / "results.jsonl").write_text("")
    before = _snapshot(rd)
    want = (f"{rd / LEDGER} is not a readable SQLite database (file is not a database); "
            "restore it from a backup or start a new run")
    for args in _opening_commands(rd, tmp_path):
        res = run_cli(args, env=cli_env(**{KEY_ENV: SECRET}))
        if args[0] == "validate-run":  # a report: its ledger check fails with that line
            assert res.returncode == 1 and "Traceback" not in res.stderr, res.stderr
            continue
        assert _error_line(res) == want, args
    out = json.loads(run_cli(["validate-run", str(rd), "--json"]).stdout)
    assert {c["name"]: c["problems"] for c in out["checks"]}["ledger"] == [want]
    assert _snapshot(rd) == before
    assert not (tmp_path / "merged" / "M").exists()
