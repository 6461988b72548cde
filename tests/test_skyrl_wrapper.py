"""scripts/generate_llm_dataset.sh: bash 3.2-compatible syntax (checked with `bash --posix
-n` and for the constructs 3.2 lacks), its usage text and exit codes, the key check, and a
real run of `benchsmith skyrl synth` through it against the fake server."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from fake_openai import FakeOpenAI, Reply
from skyrl_runs_support import dataset, synth_script, write_inventory

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "generate_llm_dataset.sh"
SRC = Path(__file__).resolve().parents[1] / "src"
BASH = shutil.which("bash") or "/bin/bash"
# What bash 3.2 does not have: associative arrays, case conversion, mapfile/readarray,
# `&>>`, `|&`, `;&` / `;;&` case fall-through.
NOT_IN_BASH_32 = [r"declare\s+-A", r"local\s+-A", r"\$\{[^}]*(,,|\^\^)", r"\bmapfile\b",
                  r"\breadarray\b", r"&>>", r"\|&", r";;&", r";&"]


def env(**extra: str) -> dict[str, str]:
    """A clean environment: benchsmith from this checkout (on PATH through the venv's
    script, PYTHONPATH to src), no API key unless given."""
    out = {"PATH": f"{Path(sys.executable).parent}{os.pathsep}/usr/bin{os.pathsep}/bin",
           "PYTHONPATH": str(SRC), "HOME": os.environ.get("HOME", "/tmp"), "COLUMNS": "200",
           "NO_COLOR": "1"}
    out.update(extra)
    return out


def wrapper(*args: str, cwd: Path, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([BASH, str(SCRIPT), *args], env=env(**extra), cwd=cwd,
                          capture_output=True, text=True, timeout=120)


def test_syntax_is_posix_bash_and_uses_nothing_bash_32_lacks() -> None:
    res = subprocess.run([BASH, "--posix", "-n", str(SCRIPT)], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    text = SCRIPT.read_text()
    code = "\n".join(ln for ln in text.splitlines() if not ln.lstrip().startswith("#"))
    for pattern in NOT_IN_BASH_32:
        assert not re.search(pattern, code), pattern
    assert text.startswith("#!/usr/bin/env bash\n") and "\nset -eu\n" in text
    assert os.access(SCRIPT, os.X_OK)


@pytest.mark.parametrize("args", [(), ("a", "b"), ("",)])
def test_a_missing_argument_prints_usage_and_exits_2(tmp_path: Path, args: tuple[str, ...]
                                                     ) -> None:
    res = wrapper(*args, cwd=tmp_path)
    assert res.returncode == 2
    assert res.stderr.startswith("usage: generate_llm_dataset.sh OUTPUT_DIR\n")
    for var in ("N_SAMPLES", "OPENAI_MODEL", "OPENAI_BACKEND", "OPENAI_BASE_URL", "DOMAINS",
                "COMPLEXITIES", "MAX_TURNS", "MAX_TOOLS", "DRY_RUN", "VERBOSE"):
        assert f"\n  {var} " in res.stderr
    assert not res.stdout and not list(tmp_path.iterdir())


def test_help_prints_usage_on_stdout(tmp_path: Path) -> None:
    res = wrapper("--help", cwd=tmp_path)
    assert res.returncode == 0 and res.stdout.startswith("usage: ")


@pytest.mark.parametrize(("var", "value", "message"), [
    ("N_SAMPLES", "many", "N_SAMPLES must be a whole number of at least 1 (got 'many')"),
    ("N_SAMPLES", "0", "N_SAMPLES must be a whole number"),
    ("MAX_TOOLS", "-3", "MAX_TOOLS must be a whole number"),
    ("N_SAMPLES", "00", "N_SAMPLES must be a whole number of at least 1 (got '00')"),
    ("MAX_TURNS", "000", "MAX_TURNS must be a whole number of at least 1 (got '000')"),
    ("OPENAI_BACKEND", "soap", "OPENAI_BACKEND must be responses or chat (got 'soap')"),
    ("DRY_RUN", "maybe", "DRY_RUN must be 1 or 0 (got 'maybe')"),
])
def test_a_bad_variable_exits_2_naming_it(tmp_path: Path, var: str, value: str,
                                          message: str) -> None:
    res = wrapper("out", cwd=tmp_path, OPENAI_API_KEY="sk-x", **{var: value})
    assert res.returncode == 2
    assert res.stderr == f"generate_llm_dataset.sh: {message}\n" or message in res.stderr


def test_the_key_is_checked_before_anything_starts(tmp_path: Path) -> None:
    res = wrapper("out", cwd=tmp_path)
    assert res.returncode == 1
    assert res.stderr == ("generate_llm_dataset.sh: OPENAI_API_KEY is not set; export your "
                          "API key in it (or run with DRY_RUN=1)\n")
    assert not list(tmp_path.iterdir())


def test_a_blank_key_is_not_a_key(tmp_path: Path) -> None:
    res = wrapper("out", cwd=tmp_path, OPENAI_API_KEY="  ")
    assert res.returncode == 1 and res.stderr.startswith(
        "generate_llm_dataset.sh: OPENAI_API_KEY is not set") and res.stderr.count("\n") == 1


def test_benchsmith_not_found(tmp_path: Path) -> None:
    res = wrapper("out", cwd=tmp_path, OPENAI_API_KEY="sk-x", PATH="/usr/bin:/bin",
                  PYTHON="/nonexistent/python")
    assert res.returncode == 1 and "benchsmith not found" in res.stderr


def test_dry_run_needs_no_key_and_calls_nothing(tmp_path: Path, fake_openai: FakeOpenAI
                                                ) -> None:
    res = wrapper("out", cwd=tmp_path, DRY_RUN="1", N_SAMPLES="6", VERBOSE="1",
                  DOMAINS="devops,data analysis", COMPLEXITIES="simple:1,complex:1",
                  OPENAI_BASE_URL=fake_openai.base_url)
    assert res.returncode == 0, res.stderr
    assert "would ask:  6 request(s) for 6 task slot(s)" in res.stdout
    assert "domains:    data analysis 3, devops 3" in res.stdout
    assert "complexity: simple 3, complex 3" in res.stdout
    # VERBOSE shows the command it runs
    assert "skyrl synth --out out --n-samples 6 --model gpt-5-mini --api responses" in (
        res.stderr)
    assert not fake_openai.requests and not list(tmp_path.iterdir())


def test_a_run_through_the_wrapper(tmp_path: Path, fake_openai: FakeOpenAI) -> None:
    fake_openai.script = synth_script
    inv = write_inventory(tmp_path)
    res = wrapper("data/skyrl", cwd=tmp_path, OPENAI_API_KEY="sk-test-key-123",
                  OPENAI_BASE_URL=fake_openai.base_url, OPENAI_BACKEND="chat", N_SAMPLES="5",
                  INVENTORY=str(inv), MAX_TURNS="4")
    assert res.returncode == 0, res.stderr
    assert len(fake_openai.requests) == 5
    assert all(r.path == "/v1/chat/completions" and r.body["reasoning_effort"] == "high"
               for r in fake_openai.requests)
    assert fake_openai.requests[0].headers["Authorization"] == "Bearer sk-test-key-123"
    rows = dataset(tmp_path / "data" / "skyrl")
    assert len(rows) == 5 and {r["extra_info"]["max_turns"] for r in rows} == {4}
    assert list((tmp_path / "data" / "skyrl" / "raw_llm").glob("skyrl-synth-*.jsonl.gz"))
    assert (tmp_path / "runs").is_dir()


def test_a_failed_run_exits_with_benchsmiths_code_and_says_so(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    fake_openai.script = lambda _r, _i: Reply.error(401, "Incorrect API key provided")
    res = wrapper("out", cwd=tmp_path, OPENAI_API_KEY="sk-wrong-key-0000",
                  OPENAI_BASE_URL=fake_openai.base_url, N_SAMPLES="2")
    assert res.returncode == 3
    assert "status:    stopped_auth" in res.stdout
    assert "authentication failed (HTTP 401)" in res.stdout
    assert res.stderr.rstrip().endswith(
        "generate_llm_dataset.sh: benchsmith skyrl synth stopped with exit code 3 (see the "
        "messages above)")
