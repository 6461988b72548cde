"""Integration tests for the ``local`` provider's server (needs llama-cpp-python[server])."""

from __future__ import annotations

import json
import os
import socket
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import jsonschema
import pytest

from benchsmith.engine.local_server import LocalServer, local_server
from benchsmith.errors import BenchsmithError, ConfigError

MODEL = Path("/work/shared/data/models/stories260K/stories260K.gguf")

# Bounded on purpose: the tiny model never stops on its own inside an unbounded array or
# string, so without maxItems/maxLength the answer is cut at max_tokens (invalid JSON).
# With these bounds a complete answer is ~210-260 tokens (the vocab has 512 tokens,
# ~1.4 chars/token), so max_tokens=300 always lets the grammar finish.
_TEXT = {"type": "string", "minLength": 1, "maxLength": 32}
SCHEMA = {
    "type": "object",
    "properties": {
        "title": _TEXT,
        "items": {
            "type": "array",
            "minItems": 2,
            "maxItems": 3,
            "items": {
                "type": "object",
                "properties": {"question": _TEXT, "answer": _TEXT},
                "required": ["question", "answer"],
                "additionalProperties": False,
            },
        },
    },
    "required": ["title", "items"],
    "additionalProperties": False,
}

_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _post(url: str, body: dict) -> dict:
    req = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with _NO_PROXY.open(req, timeout=60) as resp:
        assert resp.status == 200
        return json.loads(resp.read())


def _port(srv: LocalServer) -> int:
    port = urllib.parse.urlsplit(srv.base_url).port
    assert port is not None
    return port


def _port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(1.0)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    log = tmp_path_factory.mktemp("local_server") / "server.log"
    with local_server(MODEL, n_ctx=2048, startup_timeout=60, log_path=log) as srv:
        yield srv


def test_server_describes_itself(server: LocalServer) -> None:
    assert server.base_url == f"http://127.0.0.1:{_port(server)}/v1"
    assert server.model_alias == "stories260K"
    with _NO_PROXY.open(server.base_url + "/models", timeout=10) as resp:
        ids = [m["id"] for m in json.loads(resp.read())["data"]]
    assert ids == ["stories260K"]


@pytest.mark.parametrize(
    "prompt",
    [
        "Write two quiz questions about Python lists.",
        "Tom and Lily went to the park. Make questions about the story.",
        "Generate test cases for a function that adds two numbers.",
    ],
)
def test_structured_chat_completion_validates(server: LocalServer, prompt: str) -> None:
    body = _post(
        server.base_url + "/chat/completions",
        {
            "model": server.model_alias,
            "messages": [
                {"role": "system", "content": "Answer in JSON."},
                {"role": "user", "content": prompt},
            ],
            "response_format": {"type": "json_object", "schema": SCHEMA},
            "max_tokens": 300,
            "temperature": 0,
            "seed": 1,
        },
    )
    choice = body["choices"][0]
    assert choice["finish_reason"] == "stop"  # the grammar completed, not cut at max_tokens
    assert 0 < body["usage"]["completion_tokens"] < 300
    # strict=False: llama-cpp-python's schema grammar lets raw control characters (e.g. a
    # literal newline) into strings, which strict JSON parsers reject.
    answer = json.loads(choice["message"]["content"], strict=False)
    jsonschema.validate(answer, SCHEMA)


def test_server_stops_on_exit_and_on_error() -> None:
    with local_server(MODEL, startup_timeout=60) as srv:
        port = _port(srv)
        assert _pid_alive(srv.pid) and _port_open(port)
    assert not _pid_alive(srv.pid)
    assert not _port_open(port)

    with pytest.raises(RuntimeError, match="boom"):
        with local_server(MODEL, startup_timeout=60) as srv:
            port = _port(srv)
            raise RuntimeError("boom")
    assert not _pid_alive(srv.pid)
    assert not _port_open(port)


def test_missing_model_raises_config_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.gguf"
    with pytest.raises(ConfigError) as info:
        with local_server(missing):
            pytest.fail("body must not run")
    assert info.value.field == "local.model_path"
    assert info.value.file == str(missing)
    assert "model file not found" in str(info.value)


def test_bad_model_file_reports_log_tail(tmp_path: Path) -> None:
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"not a gguf file")
    log = tmp_path / "server.log"
    with pytest.raises(BenchsmithError, match="exited with code") as info:
        with local_server(bad, startup_timeout=60, log_path=log):
            pytest.fail("body must not run")
    assert "server log tail" in str(info.value)


def test_missing_llama_cpp_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real_find_spec = importlib.util.find_spec

    def fake_find_spec(name: str, *args: object, **kwargs: object) -> object:
        return None if name == "llama_cpp" else real_find_spec(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", fake_find_spec)
    with pytest.raises(BenchsmithError, match=r"pip install 'benchsmith\[local\]'"):
        with local_server(MODEL):
            pytest.fail("body must not run")


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"  # a zombie has exited
    except FileNotFoundError:
        return False


def test_server_ignores_terminal_ctrl_c_and_dies_with_a_killed_parent(tmp_path: Path) -> None:
    """The server has its own session (a Ctrl-C to benchsmith's process group does not cut
    its requests in flight) yet never outlives benchsmith, even after kill -9."""
    import signal
    import subprocess
    import sys
    import time

    code = (
        "import signal, sys, time\n"
        "from benchsmith.engine.local_server import local_server\n"
        "signal.signal(signal.SIGINT, lambda *_: None)  # a handler: not inherited by exec\n"
        f"with local_server({str(MODEL)!r}) as srv:\n"
        "    print(srv.pid, flush=True)\n"
        "    time.sleep(600)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                              start_new_session=True)
    try:
        assert parent.stdout is not None
        server_pid = int(parent.stdout.readline())
        assert os.getsid(server_pid) != os.getsid(parent.pid)
        os.killpg(parent.pid, signal.SIGINT)  # what a terminal's Ctrl-C does
        time.sleep(0.5)
        assert _alive(server_pid)
        parent.kill()  # SIGKILL: no cleanup runs in the parent
        parent.wait()
        deadline = time.monotonic() + 15
        while _alive(server_pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _alive(server_pid)
    finally:
        if parent.poll() is None:
            parent.kill()
