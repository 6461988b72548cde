"""Child processes that write a run's derived files on a second core while the parent does
the rest: when they pay, and how they are started (this package importable in the child)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

_PKG_PARENT = str(Path(__file__).resolve().parents[2])  # for the child's imports


def second_core() -> bool:
    """A child can run beside the parent: POSIX, two cores or more."""
    return os.name == "posix" and (os.cpu_count() or 1) >= 2


def spawn_python(code: str, args: list[str], *, stdin: int = subprocess.DEVNULL,
                 stdout: int = subprocess.DEVNULL) -> subprocess.Popen[bytes] | None:
    """`python -c code args...` with this package importable; None when it cannot start
    (the caller then does the work itself). The child's stderr is discarded."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (_PKG_PARENT, env.get("PYTHONPATH")) if p)
    try:
        return subprocess.Popen([sys.executable, "-c", code, *args], stdin=stdin, stdout=stdout,
                                stderr=subprocess.DEVNULL, env=env)
    except (OSError, ValueError, subprocess.SubprocessError):
        return None
