"""The ``local`` provider: run llama-cpp-python's OpenAI-compatible server ourselves.

``local_server(path)`` starts ``python -m llama_cpp.server`` as a child process on a
free loopback port, waits until ``GET /v1/models`` answers, yields a
:class:`LocalServer` describing where to send requests, and stops the process on
exit (also when the body raises).

Nothing here imports ``llama_cpp``: the server runs in a subprocess of the current
interpreter, so this module costs nothing when the provider is not used.

Quirks of the server the engine must respect (llama-cpp-python 0.3.36):

* only ``/v1/chat/completions`` (and ``/v1/completions``) exist; ``/v1/responses`` is 404;
* structured output is ``response_format={"type": "json_object", "schema": {...}}``;
  the OpenAI ``{"type": "json_schema", ...}`` form is rejected with HTTP 500;
* the schema grammar lets raw control characters (newlines) into strings, so strict
  JSON parsers (``json.loads``, orjson) can reject a grammar-complete answer; parse with
  ``json.loads(text, strict=False)``;
* request validation errors come back as HTTP 500 (not 4xx) and are not retryable;
  an over-long prompt is HTTP 400 with ``code == "context_length_exceeded"``;
* ``max_tokens`` missing, ``<= 0`` or given as ``max_completion_tokens`` means "until
  the context is full"; always send a positive ``max_tokens``.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import socket
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from benchsmith.errors import BenchsmithError, ConfigError

__all__ = ["LocalServer", "local_server"]

_INSTALL_HINT = "the local provider needs llama-cpp-python: pip install 'benchsmith[local]'"
# llama_cpp itself plus what its [server] extra brings; checked without importing them.
_SERVER_MODULES = ("llama_cpp", "uvicorn", "fastapi", "sse_starlette", "pydantic_settings")
_LOG_TAIL_CHARS = 1500
_LOG_TAIL_LINES = 8
_POLL_INTERVAL = 0.1
_STOP_TIMEOUT = 10.0

# llama_cpp.server reads its settings from environment variables too (pydantic-settings,
# no prefix, case-insensitive), and its __main__ lets $HOST / $PORT override --host /
# --port.  A stray PORT=8080 or MODEL=... in the caller's environment would silently
# move or change the server, so these names are dropped from the child's environment.
_SERVER_ENV_NAMES = frozenset(
    """
    api_key cache cache_size cache_type chat_format chat_template_kwargs clip_model_path
    config_file disable_ping_events draft_model draft_model_num_pred_tokens embedding
    flash_attn hf_model_repo_id hf_pretrained_model_name_or_path hf_tokenizer_config_path
    host interrupt_requests kv_overrides last_n_tokens_size logits_all lora_base lora_path
    main_gpu model model_alias models mul_mat_q n_batch n_ctx n_gpu_layers n_threads
    n_threads_batch n_ubatch numa offload_kqv port root_path rope_freq_base rope_freq_scale
    rope_scaling_type rpc_servers seed split_mode ssl_certfile ssl_keyfile tensor_split
    type_k type_v use_mlock use_mmap verbose vocab_only yarn_attn_factor yarn_beta_fast
    yarn_beta_slow yarn_ext_factor yarn_orig_ctx
    """.split()
)


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
        "--use_mlock", "False",
        "--logits_all", "False",
        "--interrupt_requests", "False",
        "--verbose", "False",
        *extra_args,
    ]  # fmt: skip


def _server_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k.lower() not in _SERVER_ENV_NAMES}
    env["PYTHONUNBUFFERED"] = "1"  # so the log tail is current when startup fails
    return env


def _log_tail(log_path: Path | None) -> str:
    if log_path is None:
        return " (no server log; pass log_path to capture it)"
    try:
        text = log_path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return f" (server log {log_path} unreadable)"
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    tail = " | ".join(lines[-_LOG_TAIL_LINES:])[-_LOG_TAIL_CHARS:]
    if not tail:
        return f" (server log {log_path} is empty)"
    return f"; server log tail ({log_path}): {tail}"


def _models_ready(base_url: str) -> bool:
    # No proxies: an $http_proxy without 127.0.0.1 in $no_proxy would swallow the probe.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(base_url + "/models", timeout=2.0) as resp:
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


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when the parent dies (Linux; elsewhere a no-op)."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


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
    """Serve ``model_path`` (a .gguf file) on a free loopback port for the ``with`` body.

    ``n_ctx`` is the context size (prompt + completion tokens of one request).  The
    server's output goes to ``log_path`` (overwritten) or is discarded.  ``extra_args``
    are appended to the server command line, so they override the defaults chosen here
    (e.g. ``("--n_threads", "8")`` or ``("--chat_format", "chatml")``).

    Raises ConfigError if the model file is missing, BenchsmithError if
    llama-cpp-python[server] is not installed or the server does not come up within
    ``startup_timeout`` seconds.  On exit the server gets SIGTERM, then SIGKILL after 10 s.
    """
    path = Path(model_path).expanduser()
    if not path.is_file():
        raise ConfigError(
            file=str(model_path),
            field="local.model_path",
            problem="model file not found; point local.model_path at a .gguf file",
        )
    if any(importlib.util.find_spec(name) is None for name in _SERVER_MODULES):
        raise BenchsmithError(_INSTALL_HINT)

    port = _free_port()
    alias = path.stem
    base_url = f"http://127.0.0.1:{port}/v1"
    cmd = _server_command(path.resolve(), port, alias, n_ctx, extra_args)

    with contextlib.ExitStack() as stack:
        out: IO[bytes] | int = subprocess.DEVNULL  # never a pipe: nobody would drain it
        if log_path is not None:
            log_path = Path(log_path)
            log_path.parent.mkdir(parents=True, exist_ok=True)
            out = stack.enter_context(open(log_path, "wb"))  # noqa: SIM115
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=_server_env(),
            close_fds=True,
            # Its own session: a terminal's Ctrl-C reaches benchsmith only, so requests in
            # flight can finish during the shutdown grace period; the server still dies with
            # benchsmith (parent-death signal), even after kill -9.
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        try:
            _wait_ready(proc, base_url, startup_timeout, log_path)
            yield LocalServer(base_url=base_url, model_alias=alias, pid=proc.pid)
        finally:
            _stop(proc)
