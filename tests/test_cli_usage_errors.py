"""Usage errors (issue 13, CLI conventions): a flag value of the wrong type, an unknown flag, a
missing argument or option are one line on stderr naming the option, what it takes and the
help to read, exit 2, on every command (the whole click command tree is walked)."""

from __future__ import annotations

import subprocess
from typing import Any

import pytest
import typer
from helpers import BIN, cli_env
from typer.testing import CliRunner

from benchsmith.cli.app import app

ROOT_CMD = typer.main.get_command(app)


def _leaves() -> list[tuple[tuple[str, ...], Any]]:
    out: list[tuple[tuple[str, ...], Any]] = []

    def walk(group: Any, prefix: tuple[str, ...]) -> None:
        for name, cmd in group.commands.items():
            if hasattr(cmd, "commands"):
                walk(cmd, (*prefix, name))
            else:
                out.append(((*prefix, name), cmd))

    walk(ROOT_CMD, ())
    return out


def _numeric_options() -> list[tuple[tuple[str, ...], str, str]]:
    """(command words, option, its type) of every option that takes an int or a float."""
    found = []
    for words, cmd in _leaves():
        for p in cmd.params:
            if p.param_type_name != "option" or getattr(p, "is_flag", False) or not p.opts:
                continue
            annotation = p.type_descriptor.annotation  # typer's declared Python type
            if annotation in (int, float):
                found.append((words, p.opts[0], annotation.__name__))
    return found


NUMERIC = _numeric_options()


def _invoke(args: list[str]) -> Any:
    return CliRunner().invoke(app, args, env={"COLUMNS": "80"})


def _one_line(res: Any) -> str:
    assert res.exit_code == 2, (res.exit_code, res.output)
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, res.stderr
    assert res.stdout == ""
    line = lines[0]
    assert line.startswith("error: ") and "╭" not in line and "Traceback" not in line
    return line


def test_every_numeric_option_is_found() -> None:
    # The walk sees the options the README documents; an empty list would test nothing.
    pairs = {(" ".join(w), o) for w, o, _t in NUMERIC}
    assert {("run", "--temp"), ("infbench run", "--timeout"), ("skyrl synth", "--n-samples"),
            ("prepare-sections", "--section-size"), ("repo-structure build", "--limit")} <= pairs


@pytest.mark.parametrize("words,opt,kind", NUMERIC, ids=[f"{' '.join(w)} {o}" for w, o, _ in NUMERIC])
def test_a_bad_number_is_one_line_naming_the_option_and_its_type(
        words: tuple[str, ...], opt: str, kind: str) -> None:
    line = _one_line(_invoke([*words, opt, "abc"]))
    cmd = " ".join(words)
    assert f"{cmd}: Invalid value for '{opt}': " in line
    assert f"valid {'integer' if kind == 'int' else 'number'}" in line  # the expected type
    assert f"; give {opt} " in line  # the fix: the option with the value it takes
    assert line.endswith(f"see `benchsmith {cmd} -h`")


def _required_words(cmd: Any) -> list[str]:
    """Placeholder values for a command's required parameters (parsing never reads them)."""
    words: list[str] = []
    for p in cmd.params:
        if p.required:
            words += ["1"] if p.param_type_name == "argument" else [p.opts[0], "1"]
    return words


@pytest.mark.parametrize("words,cmd", _leaves(), ids=[" ".join(w) for w, _c in _leaves()])
def test_an_unknown_flag_is_one_line_on_every_command(words: tuple[str, ...], cmd: Any) -> None:
    line = _one_line(_invoke([*words, *_required_words(cmd), "--no-such-flag"]))
    assert f"benchsmith {' '.join(words)}: No such option: --no-such-flag" in line


REQUIRED = [(w, c) for w, c in _leaves() if any(p.required for p in c.params)]


@pytest.mark.parametrize("words", [w for w, _c in REQUIRED], ids=" ".join)
def test_a_missing_argument_or_option_is_one_line(words: tuple[str, ...]) -> None:
    line = _one_line(_invoke(list(words)))
    assert "Missing argument" in line or "Missing option" in line
    assert "; give " in line


def test_the_installed_command_prints_one_line_and_exits_2(tmp_path: Any) -> None:
    """Through the console script (its own `main`), not only the test runner."""
    for args, expect in (
        (["run", "--config", "my.yaml", "--temp", "abc"],
         "error: benchsmith run: Invalid value for '--temp': Input should be a valid number"),
        (["infbench", "run", "--timeout", "soon"],
         "error: benchsmith infbench run: Invalid value for '--timeout'"),
        (["status"], "error: benchsmith status: Missing argument"),
        (["no-such-command"], "error: benchsmith: No such command 'no-such-command'"),
    ):
        res = subprocess.run([str(BIN), *args], capture_output=True, text=True, cwd=tmp_path,
                             env=cli_env(), timeout=120)
        assert res.returncode == 2, (args, res.stderr)
        assert res.stdout == ""
        assert res.stderr.count("\n") == 1 and res.stderr.startswith(expect), res.stderr


def test_help_and_no_arguments_still_show_the_help() -> None:
    res = _invoke(["batch"])
    assert "Usage:" in res.output and "status" in res.output
    assert _invoke(["status", "-h"]).exit_code == 0
