"""A corrupt ledger or a full disk: one line naming the file and the fix, never a traceback.

The full disk is real: the CLI runs with a file-size limit (RLIMIT_FSIZE, SIGXFSZ ignored),
so the OS refuses the write (EFBIG) exactly where a full disk would (ENOSPC).
"""

from __future__ import annotations

import os
import resource
import shutil
import signal
import stat
import subprocess
from pathlib import Path

import pytest

from benchsmith import api
from fake_openai import FakeOpenAI
from helpers import (
    BIN,
    KEY_ENV,
    SECRET,
    assert_terminal_invariants,
    cfg_dict,
    cli_env,
    ledger_rows,
    make_cfg,
    match_unit,
    nonempty_lines,
    run_cli,
    unit_specs,
    write_yaml,
)


def _one_line_error(res: subprocess.CompletedProcess[str], *, after_progress: bool = False) -> str:
    """The error line; nothing else on stderr (a run may first say what it will send)."""
    assert res.returncode != 0, (res.stdout, res.stderr)
    assert "Traceback" not in res.stderr + res.stdout, res.stderr
    lines = nonempty_lines(res.stderr)
    if after_progress:
        assert lines[:-1] == ["120 requests to send"], res.stderr
        lines = lines[-1:]
    assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr
    return lines[0]


FAST_BATCH = {"batch": {"poll_interval_s": 0.01, "max_poll_interval_s": 0.05}}


def _planned_run(
    tmp_path: Path, base_url: str, run_id: str = "R", tasks: int = 3
) -> tuple[Path, Path]:
    """(config file, run dir) of a run planned by dry-run (no request sent)."""
    data = cfg_dict(tmp_path, base_url, FAST_BATCH, tasks=tasks)
    cfg_path = write_yaml(tmp_path / "cfg.yaml", data)
    rep = api.dry_run(make_cfg(tmp_path, base_url, FAST_BATCH, tasks=tasks), run_id)
    return cfg_path, rep.run_dir


def _garbage(p: Path) -> None:
    p.write_bytes(os.urandom(5000))


def _half(p: Path) -> None:
    with p.open("r+b") as fh:
        fh.truncate(p.stat().st_size // 2)


def _empty(p: Path) -> None:
    p.write_bytes(b"")


@pytest.mark.parametrize("damage", [_garbage, _half, _empty], ids=["garbage", "half", "empty"])
def test_damaged_ledger_is_one_line_for_every_command(
    tmp_path: Path, fake_openai: FakeOpenAI, damage
) -> None:
    cfg_path, rd = _planned_run(tmp_path, fake_openai.base_url)
    ledger = rd / "ledger.sqlite"
    for side in ("-wal", "-shm"):
        Path(str(ledger) + side).unlink(missing_ok=True)
    damage(ledger)
    before = ledger.read_bytes()
    env = cli_env(**{KEY_ENV: SECRET})
    for args in (
        ["status", str(rd)],
        ["status", str(rd), "--json"],
        ["run", "--config", str(cfg_path), "--run-id", "R", "--resume"],
        ["dry-run", "--config", str(cfg_path), "--run-id", "R"],
        ["batch", "status", str(rd), "--no-refresh"],
        ["batch", "export", str(rd), "--out", str(tmp_path / "out.jsonl")],
        ["batch", "ingest", str(rd), str(cfg_path)],
        ["render-readable", "--run-dir", str(rd)],
    ):
        line = _one_line_error(run_cli(args, env=env))
        assert "ledger.sqlite is not a readable SQLite database" in line, (args, line)
        assert line.count("ledger.sqlite") == 1, line
        assert str(rd.name) in line and "restore it from a backup or start a new run" in line
    # Nothing was sent, and the damaged file was not "repaired" into an empty new ledger.
    assert fake_openai.requests == []
    assert ledger.read_bytes() == before
    # validate-run reports it as a failed check (its job is a report), without a traceback.
    res = run_cli(["validate-run", str(rd)], env=env)
    assert res.returncode == 1 and "Traceback" not in res.stderr + res.stdout
    assert "ledger.sqlite" in res.stdout


def _fsize_limit(limit: int):
    def pre() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a refused write is an error, not a kill
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return pre


def _run_limited(
    args: list[str], limit: int, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN), *args], env=env, capture_output=True, text=True, timeout=120,
        preexec_fn=_fsize_limit(limit),
    )


@pytest.mark.parametrize("mode", ["online", "batch"])
def test_disk_full_during_a_run_stops_cleanly_and_resume_finishes(
    tmp_path: Path, fake_openai: FakeOpenAI, mode: str
) -> None:
    cfg_path, rd = _planned_run(tmp_path, fake_openai.base_url, tasks=40)
    planned = (rd / "ledger.sqlite").stat().st_size
    env = cli_env(**{KEY_ENV: SECRET})
    cmd = ["run", "--config", str(cfg_path), "--run-id", "R", "--resume", "--quiet"]
    if mode == "batch":
        cmd += ["--mode", "batch"]
    # Room for the planned ledger and a little more: the disk fills up part-way through
    # (in batch mode, after the first batch of 40 is reconciled).
    res = _run_limited(cmd, planned + (300_000 if mode == "online" else 600_000), env)
    line = _one_line_error(res, after_progress=True)
    assert str(rd) in line and "free disk space, then resume with" in line, line
    again = "run --mode batch" if mode == "batch" else "run"
    assert f"`benchsmith {again} --config {cfg_path} --run-id R --resume`" in line, line
    sent_first = len(fake_openai.requests)
    batches_first = len(fake_openai.batches)
    assert sent_first > 0  # it did fail mid-run, not before
    ok_first = {u for u, s in ledger_rows(rd, "SELECT unit_id, state FROM units") if s == "ok"}
    assert 0 < len(ok_first) < 120

    # Space is back: the same command finishes the run; nothing recorded ok is sent again.
    res = run_cli(cmd, env=env, timeout=120)
    assert res.returncode == 0, res.stderr
    assert_terminal_invariants(rd)
    assert {s for _, s in ledger_rows(rd, "SELECT unit_id, state FROM units")} == {"ok"}
    if mode == "online":
        specs = unit_specs(rd)
        resent = {match_unit(r.body, specs) for r in fake_openai.requests[sent_first:]}
    else:
        later = list(fake_openai.batches.values())[batches_first:]
        resent = {line["custom_id"] for b in later for line in b.lines}
    assert resent and not resent & ok_first
    res = run_cli(["validate-run", str(rd)], env=env)
    assert res.returncode == 0, res.stdout


def test_disk_full_writing_a_run_file(tmp_path: Path, fake_openai: FakeOpenAI) -> None:
    """An OSError (not SQLite) from a full disk: one line naming the file."""
    tpl = tmp_path / "tpl.txt"
    tpl.write_text("{{TASK_TEXT}}\n" + "Think hard. " * 30_000, encoding="utf-8")  # ~360 KB
    data = cfg_dict(tmp_path, fake_openai.base_url, {"recipe_options": {"prompt_template": str(tpl)}})
    cfg_path = write_yaml(tmp_path / "cfg.yaml", data)
    res = _run_limited(["dry-run", "--config", str(cfg_path), "--run-id", "F"], 200_000, cli_env())
    line = _one_line_error(res)
    target = tmp_path / "runs" / "F" / "prompts" / "plan_prompt_template.txt"
    assert f"cannot write {target}" in line and "free disk space" in line, line
    assert not any(p.name.endswith(".tmp") for p in (target.parent).iterdir())


def test_read_only_commands_name_a_missing_run(tmp_path: Path) -> None:
    """`status` on a file or an empty folder: one line, not a traceback (guard)."""
    f = tmp_path / "file.txt"
    f.write_text("x")
    for target in (f, tmp_path):
        line = _one_line_error(run_cli(["status", str(target)]))
        assert "not a run directory" in line and str(target) in line


def test_unrelated_oserror_is_one_line(tmp_path: Path, fake_openai: FakeOpenAI) -> None:
    """`batch export --out` onto a folder: the OS error, its path and a fix on one line."""
    _cfg, rd = _planned_run(tmp_path, fake_openai.base_url)
    out = tmp_path / "outdir"
    out.mkdir()
    line = _one_line_error(run_cli(["batch", "export", str(rd), "--out", str(out)]))
    assert str(out.name) in line and "folder" in line, line
    shutil.rmtree(out)


def test_ledger_from_a_newer_benchsmith_is_refused_not_used(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    """A ledger whose schema version is past what this code knows was written by a newer
    benchsmith: reading it would misreport and writing it could break it for that version.
    Every command says so in one line; the file keeps its version and nothing is sent."""
    import sqlite3

    cfg_path, rd = _planned_run(tmp_path, fake_openai.base_url)
    db = sqlite3.connect(rd / "ledger.sqlite")
    db.execute("PRAGMA user_version=99")
    db.commit()
    db.close()
    env = cli_env(**{KEY_ENV: SECRET})
    for args in (
        ["status", str(rd)],
        ["run", "--config", str(cfg_path), "--run-id", "R", "--resume"],
        ["dry-run", "--config", str(cfg_path), "--run-id", "R"],
        ["batch", "export", str(rd), "--out", str(tmp_path / "out.jsonl")],
    ):
        line = _one_line_error(run_cli(args, env=env))
        assert "newer benchsmith" in line and "schema version 99" in line, (args, line)
    assert fake_openai.requests == []
    db = sqlite3.connect(rd / "ledger.sqlite")
    assert db.execute("PRAGMA user_version").fetchone()[0] == 99
    assert db.execute("SELECT COUNT(*) FROM attempts").fetchone()[0] == 0


def test_disk_full_resume_hint_is_a_command_that_runs(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    """The hint is pasted into a shell: a config path with a space or a quote must come out
    as one word (it was printed bare: `--config my runs/it's.yaml`)."""
    import shlex

    cfg_path, rd = _planned_run(tmp_path, fake_openai.base_url, tasks=40)
    odd = tmp_path / "my runs" / "it's.yaml"
    odd.parent.mkdir()
    shutil.copy(cfg_path, odd)
    planned = (rd / "ledger.sqlite").stat().st_size
    env = cli_env(**{KEY_ENV: SECRET})
    cmd = ["run", "--config", str(odd), "--run-id", "R", "--resume", "--quiet"]
    line = _one_line_error(_run_limited(cmd, planned + 300_000, env), after_progress=True)
    hint = line.split("then resume with `", 1)[1].rsplit("`", 1)[0]
    words = shlex.split(hint)
    assert words[0] == "benchsmith" and words[words.index("--config") + 1] == str(odd), hint
    assert words[words.index("--run-id") + 1] == "R" and "--resume" in words, hint
    # ... and it is the command that continues the run.
    res = run_cli([*words[1:], "--quiet"], env=env, timeout=120)
    assert res.returncode == 0, res.stderr
    assert {s for _, s in ledger_rows(rd, "SELECT unit_id, state FROM units")} == {"ok"}


def test_atomic_writes_get_the_mode_a_plain_open_gives(tmp_path: Path) -> None:
    """Datasets are meant to be shared: not mkstemp's owner-only 0600."""
    from benchsmith.store.rundir import atomic_write_json

    old = os.umask(0o022)
    try:
        atomic_write_json(tmp_path / "a.json", {"x": 1})
        with open(tmp_path / "b.json", "w"):
            pass
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.json").stat().st_mode) == 0o644
    assert (stat.S_IMODE((tmp_path / "a.json").stat().st_mode)
            == stat.S_IMODE((tmp_path / "b.json").stat().st_mode))
