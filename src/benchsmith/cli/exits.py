"""How the commands that drive runs built in code (`infbench run`, `skyrl synth`, `skyrl
retrofit`) end: exit codes as `run`'s, and the command that continues after Ctrl-C."""

from __future__ import annotations

import shlex
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from benchsmith.cli.console import STOP_EXIT, fail
from benchsmith.errors import BenchsmithError

if TYPE_CHECKING:  # the console comes from cli.console, the one place that makes one
    from rich.console import Console

FAILURES_EXIT = 4  # the run ended, some units failed or are invalid


def again() -> str:
    """The command line as it was given: running it again continues."""
    return shlex.join(["benchsmith", *sys.argv[1:]])


def exit_code(statuses: Iterable[str]) -> int:
    """The exit code of runs that ended with `statuses`, in order: a stop's (budget 2, auth
    3, interrupted 130; the last one's), else 4 when some ended with failures, else 0."""
    code = 0
    for status in statuses:
        if status in STOP_EXIT:
            code = STOP_EXIT[status]
        elif status == "completed_with_failures" and code == 0:
            code = FAILURES_EXIT
    return code


@contextmanager
def ending(console: Console, config: Path | None, kept: str) -> Iterator[None]:
    """Ctrl-C: says what is `kept` and how to continue, exit 130; a BenchsmithError: one
    line, exit non-zero (`fail`)."""
    try:
        yield
    except KeyboardInterrupt:
        console.print(f"interrupted; {kept}; continue with: {again()}", markup=False)
        raise typer.Exit(130) from None
    except BenchsmithError as e:
        fail(e, config)
