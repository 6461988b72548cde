"""The ``local`` provider: run llama-cpp-python's OpenAI-compatible server ourselves.

``local_server(path)`` starts ``python -m llama_cpp.server`` as a child process on a
free loopback port, waits until ``GET /v1/models`` answers, yields a
:class:`LocalServer` describing where to send requests, and stops the process on
exit (also when the body raises).

Nothing here imports ``llama_cpp``: the server runs in a subprocess of the current
interpreter, so this module costs nothing when the provider is not used.

Quirks of the server the engine must respect (llama-cpp-python 0.3.x):

* only ``/v1/chat/completions`` (and ``/v1/completions``) exist; ``/v1/responses`` is 404;
* structured output is ``response_format={"type": "json_object", "schema": {...}}``;
  the OpenAI ``{"type": "json_schema", ...}`` form is rejected with HTTP 500.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from benchsmith.errors import BenchsmithError, ConfigError

__all__ = ["LocalServer", "local_server"]

_INSTALL_HINT = "the local provider needs llama-cpp-python: pip install 'benchsmith[local]'"
_LOG_TAIL_CHARS = 2000
_POLL_INTERVAL = 0.1
_STOP_TIMEOUT = 10.0


@dataclass(frozen=True)
class LocalServer:
    """A running local server: where to send requests and under which model name."""

    base_url: str  # "http://127.0.0.1:<port>/v1"
    model_alias: str  # the model name to send in requests
    pid: int


def _free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _server_command(
    model_path: Path, port: int, alias: str, n_ctx: int, extra_args: Sequence[str]
) -> list[str]:
    threads = str(max(1, min(4, os.cpu_count() or 1)))
    return [
        sys.executable,
        "-m",
        "llama_cpp.server",
        "--host", "127.0.0.1",
        "--port", str(port),
        "--model", str(model_path),
        "--model_alias", alias,
        "--n_ctx", str(n_ctx),
        "--n_threads", threads,
        "--n_threads_batch", threads,
        "--n_gpu_layers", "0",
        "--verbose", "False",
        *extra_args,
    ]  # fmt: skip


def _log_tail(log_path: Path | None) -> str:
    if log_path is None:
        return " (no server log; pass log_path to capture it)"
    try:
        text = log_path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return f" (server log {log_path} unreadable)"
    tail = text[-_LOG_TAIL_CHARS:].strip()
    if not tail:
        return f" (server log {log_path} is empty)"
    return f"; server log tail ({log_path}): " + " | ".join(tail.splitlines())


def _models_ready(base_url: str) -> bool:
    try:
        with urllib.request.urlopen(base_url + "/models", timeout=2.0) as resp:
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError, ValueError):
        return False


def _wait_ready(
    proc: subprocess.Popen[bytes], base_url: str, timeout: float, log_path: Path | None
) -> None:
    deadline = time.monotonic() + timeout
    while True:
        code = proc.poll()
        if code is not None:
            raise BenchsmithError(
                f"local server exited with code {code} before it was ready" + _log_tail(log_path)
            )
        if _models_ready(base_url):
            return
        if time.monotonic() >= deadline:
            raise BenchsmithError(
                f"local server not ready at {base_url} after {timeout:g}s" + _log_tail(log_path)
            )
        time.sleep(_POLL_INTERVAL)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=_STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@contextlib.contextmanager
def local_server(
    model_path: str | Path,
    *,
    n_ctx: int = 2048,
    startup_timeout: float = 120.0,
    log_path: Path | None = None,
    extra_args: Sequence[str] = (),
) -> Iterator[LocalServer]:
    """Serve ``model_path`` (a .gguf file) on a free loopback port for the ``with`` body."""
    path = Path(model_path).expanduser()
    if not path.is_file():
        raise ConfigError(
            file=str(model_path),
            field="local.model_path",
            problem="model file not found; point local.model_path at a .gguf file",
        )
    if importlib.util.find_spec("llama_cpp") is None:
        raise BenchsmithError(_INSTALL_HINT)

    port = _free_port()
    alias = path.stem
    base_url = f"http://127.0.0.1:{port}/v1"
    cmd = _server_command(path.resolve(), port, alias, n_ctx, extra_args)

    with contextlib.ExitStack() as stack:
        if log_path is not None:
            log_path = Path(log_path)
            log_path.parent.mkdir(parents=True, exist_ok=True)
            out = stack.enter_context(open(log_path, "wb"))  # noqa: SIM115
        else:
            out = subprocess.DEVNULL  # type: ignore[assignment]
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            close_fds=True,
        )
        try:
            _wait_ready(proc, base_url, startup_timeout, log_path)
            yield LocalServer(base_url=base_url, model_alias=alias, pid=proc.pid)
        finally:
            _stop(proc)
