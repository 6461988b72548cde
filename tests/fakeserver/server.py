"""``FakeOpenAI``: the HTTP server core (lifecycle, request log, scripting, dispatch)."""

from __future__ import annotations

import asyncio
import collections
import inspect
import itertools
import os
import threading
import time
from typing import Any, Callable

import orjson
from aiohttp import web

from .answerer import _Answerer
from .batches_api import _BatchAPI
from .common import _BATCHES, _CHAT, _FILES, _RESPONSES, Headers, Received
from .online import _OnlineAPI
from .replies import Reply, refusal


class FakeOpenAI(_OnlineAPI, _Answerer, _BatchAPI):
    """OpenAI-compatible fake server on ``127.0.0.1`` (see module docstring)."""

    def __init__(
        self,
        latency: float = 0.0,
        cached_tokens: int = 0,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        models: tuple[str, ...] | list[str] = ("fake-model",),
        force_output_tokens: int | None = None,
    ) -> None:
        self.latency = float(latency)
        self.cached_tokens = int(cached_tokens)
        # Report this many output tokens in every answer's usage (online and batch), past
        # any max_output_tokens: a server that bills more than the request's cap.
        self.force_output_tokens = force_output_tokens
        self.models = list(models)
        self.script: Callable[[Received, int], Reply | None] | None = None
        # Top-level body keys refused with a 400 (online and batch lines), before any
        # enqueued reply or script: an endpoint without reasoning ("reasoning",
        # "reasoning_effort"); see replies.refusal for the messages.
        self.reject_params: tuple[str, ...] = ()
        self.errors: list[BaseException] = []  # exceptions raised by `script`
        self._host = host
        self._want_port = int(port)
        self._port: int | None = None
        self._log: list[Received] = []
        self._queue: collections.deque[Reply] = collections.deque()
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._id_prefix = os.urandom(6).hex()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._init_batches()

    # ------------------------------------------------------------ lifecycle

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("FakeOpenAI is not started")
        return self._port

    @property
    def base_url(self) -> str:
        return f"http://{self._host}:{self.port}/v1"

    def start(self) -> "FakeOpenAI":
        if self._thread is not None:
            return self
        ready = threading.Event()
        failure: list[BaseException] = []
        loop = asyncio.new_event_loop()

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self._astart())
            except BaseException as exc:  # pragma: no cover - surfaced below
                failure.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                loop.close()

        self._loop = loop
        self._thread = threading.Thread(target=run, name="fake-openai", daemon=True)
        self._thread.start()
        ready.wait(30)
        if failure:
            self._thread.join(5)
            self._thread = self._loop = None
            raise RuntimeError("FakeOpenAI failed to start") from failure[0]
        return self

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        try:
            fut = asyncio.run_coroutine_threadsafe(self._astop(), loop)
            fut.result(10)
        except Exception:  # pragma: no cover - best-effort shutdown
            pass
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        self._loop = self._thread = None

    def __enter__(self) -> "FakeOpenAI":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def _make_runner(self) -> web.AppRunner:
        app = web.Application(client_max_size=256 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        return web.AppRunner(
            app,
            access_log=None,
            handle_signals=False,
            handler_cancellation=True,  # a client hanging up cancels its handler
            shutdown_timeout=0.25,
        )

    async def _astart(self) -> None:
        runner = self._make_runner()
        await runner.setup()
        site = web.TCPSite(runner, self._host, self._want_port, backlog=4096, reuse_address=True)
        await site.start()
        self._runner = runner
        self._port = runner.addresses[0][1]

    async def _astop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def serve_forever(self, on_ready: Callable[[str], None] | None = None) -> None:
        """Serve in the current thread until interrupted (used by the CLI)."""

        async def amain() -> None:
            await self._astart()
            if on_ready is not None:
                on_ready(self.base_url)
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            try:
                import signal

                for sig in (signal.SIGTERM, signal.SIGINT):
                    loop.add_signal_handler(sig, stop.set)
            except (NotImplementedError, RuntimeError, ValueError):  # pragma: no cover
                pass
            try:
                await stop.wait()
            finally:
                await self._astop()

        try:
            import uvloop  # type: ignore[import-not-found]
        except ImportError:
            asyncio.run(amain())
        else:  # pragma: no cover - optional speed-up
            uvloop.run(amain())

    # ------------------------------------------------------------ scripting

    @property
    def requests(self) -> list[Received]:
        with self._lock:
            return list(self._log)

    def bodies(self, path: str | None = None) -> list[dict | None]:
        """Parsed bodies of all recorded requests (optionally one path only)."""
        with self._lock:
            return [r.body for r in self._log if path is None or r.path == path]

    def enqueue(self, *replies: Reply) -> None:
        with self._lock:
            self._queue.extend(replies)

    @property
    def pending(self) -> int:
        """Enqueued replies not consumed yet."""
        with self._lock:
            return len(self._queue)

    def reset(self) -> None:
        """Clear the request log, the script, the reply queue and script
        errors; also all files, batches, the batch queue and ``batch_plan``."""
        with self._lock:
            self._log.clear()
            self._queue.clear()
            self.script = None
            self.reject_params = ()
            self.errors.clear()
        self._reset_batches()

    # ------------------------------------------------------------ handling

    def _new_id(self) -> str:
        return f"{self._id_prefix}{next(self._ids):012x}"

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        raw = await request.read()
        path = request.path
        method = request.method
        body: dict | None = None
        if raw:
            try:
                parsed = orjson.loads(raw)
            except orjson.JSONDecodeError:
                parsed = None
            if isinstance(parsed, dict):
                body = parsed
        received = Received(
            path, Headers(request.headers), body, raw, time.monotonic(), method, request.query_string
        )

        known = path in (_RESPONSES, _CHAT) and method == "POST"
        refused = refusal(body, self.reject_params) if known else None
        with self._lock:
            index = len(self._log)
            self._log.append(received)
            queued = self._queue.popleft() if known and self._queue and not refused else None

        if not known:
            if path.startswith(_FILES) or path.startswith(_BATCHES):
                return self._batch_api(received)
            return self._other(received)

        reply = refused or queued
        if reply is None and self.script is not None:
            try:
                reply = self.script(received, index)
                if inspect.isawaitable(reply):
                    reply = await reply
            except Exception as exc:
                self.errors.append(exc)
                reply = Reply.error(500, f"fake_openai script raised {exc!r}", type="server_error")

        latency = self.latency
        if latency > 0:
            await asyncio.sleep(latency)
        return await self._render(reply, received)
