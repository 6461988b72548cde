"""A local, scriptable OpenAI-compatible HTTP test double.

Used by the test suite (in-process, background thread) and by the throughput
benchmark (as a separate process through the CLI below) instead of a hosted
LLM.

In-process use::

    from fake_openai import FakeOpenAI, Reply

    with FakeOpenAI(latency=0.0) as server:
        server.enqueue(Reply.error(429, headers={"Retry-After": "0.1"}))
        server.script = lambda received, index: Reply.text("hi") if index == 3 else None
        ...  # point a client at server.base_url
        assert server.requests[0].headers["Authorization"] == "Bearer sk-test"

Out of process::

    python tests/fake_openai.py --port 0 --latency 0.2
    # prints "READY http://127.0.0.1:PORT/v1" and serves until killed

Endpoints: ``POST /v1/responses``, ``POST /v1/chat/completions``,
``GET /v1/models``. Anything else answers 404 (wrong method: 405) with an
OpenAI-style error body. Every request is recorded.

Reply resolution order per request: ``enqueue``d replies (FIFO), then
``server.script(received, index)`` (``None`` falls through), then the default
answerer. The default answerer returns a schema-valid JSON instance when the
request asks for structured output, otherwise a short text.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import hashlib
import inspect
import itertools
import os
import random
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import orjson
from aiohttp import web

__all__ = ["FakeOpenAI", "Received", "Reply", "generate_instance", "main"]

_JSON = "application/json"
_RESPONSES = "/v1/responses"
_CHAT = "/v1/chat/completions"
_MODELS = "/v1/models"
_REASONING_TOKENS = 7


# --------------------------------------------------------------------------- #
# Request log
# --------------------------------------------------------------------------- #


class Headers(dict):
    """A plain ``dict`` of request headers (original spelling kept) whose
    lookups fall back to a case-insensitive match."""

    __slots__ = ()

    def _key(self, key: Any) -> Any:
        if isinstance(key, str):
            low = key.lower()
            for k in dict.keys(self):
                if k.lower() == low:
                    return k
        raise KeyError(key)

    def __getitem__(self, key: Any) -> Any:
        try:
            return dict.__getitem__(self, key)
        except KeyError:
            return dict.__getitem__(self, self._key(key))

    def get(self, key: Any, default: Any = None) -> Any:
        try:
            return self[key]
        except KeyError:
            return default

    def __contains__(self, key: object) -> bool:
        if dict.__contains__(self, key):
            return True
        try:
            self._key(key)
        except KeyError:
            return False
        return True


@dataclass(frozen=True)
class Received:
    """One request as the fake server saw it.

    ``t`` is ``time.monotonic()`` at arrival (compare differences only).
    ``body`` is the parsed JSON object, or ``None`` if the body was empty,
    not JSON, or not a JSON object. ``headers`` keeps every header, including
    ``Authorization``; lookups are case-insensitive.
    """

    path: str
    headers: dict
    body: dict | None
    raw: bytes
    t: float
    method: str = "POST"


# --------------------------------------------------------------------------- #
# Replies
# --------------------------------------------------------------------------- #


@dataclass(frozen=True, eq=False)
class Reply:
    """What the fake server should answer. Build with the classmethods."""

    kind: str
    content: Any = None
    usage: Mapping[str, int] | None = None
    status: int = 200
    message: str | None = None
    headers: Mapping[str, str] | None = None
    err_type: str | None = None
    code: str | None = None
    seconds: float = 0.0
    inner: "Reply | None" = None
    body: bytes | None = None
    content_type: str = _JSON

    @classmethod
    def text(cls, text: Any, usage: Mapping[str, int] | None = None) -> "Reply":
        """A normal successful answer whose assistant text is ``text``
        (dicts/lists are JSON-dumped). ``usage`` overrides any of
        ``input_tokens``/``prompt_tokens``, ``output_tokens``/``completion_tokens``,
        ``cached_tokens``, ``reasoning_tokens``, ``total_tokens``."""
        return cls("text", content=_as_text(text), usage=usage)

    @classmethod
    def json(cls, obj: Any, usage: Mapping[str, int] | None = None) -> "Reply":
        """Alias of :meth:`text` for JSON payloads."""
        return cls.text(obj, usage=usage)

    @classmethod
    def error(
        cls,
        status: int,
        message: str = "fake error",
        headers: Mapping[str, str] | None = None,
        type: str | None = None,  # noqa: A002 - mirrors the OpenAI field name
        code: str | None = None,
    ) -> "Reply":
        """An OpenAI-style error: ``{"error": {"message", "type", "param", "code"}}``."""
        return cls(
            "error",
            status=status,
            message=message,
            headers=dict(headers) if headers else None,
            err_type=type,
            code=code,
        )

    @classmethod
    def hang(cls, seconds: float, reply: "Reply | None" = None) -> "Reply":
        """Sleep ``seconds`` before answering (normally, or with ``reply``)."""
        return cls("delay", seconds=float(seconds), inner=reply)

    @classmethod
    def delay(cls, seconds: float, reply: "Reply | None" = None) -> "Reply":
        """Answer ``reply`` (default answer if ``None``) after ``seconds``."""
        return cls("delay", seconds=float(seconds), inner=reply)

    @classmethod
    def malformed(cls, body: bytes = b'{"id": "resp_broken", "output": [<<not json>>') -> "Reply":
        """HTTP 200 with a body that is not valid JSON."""
        return cls("raw", status=200, body=body)

    @classmethod
    def incomplete(cls, text: Any = None, usage: Mapping[str, int] | None = None) -> "Reply":
        """A truncated answer: Responses ``status: "incomplete"`` with
        ``incomplete_details.reason == "max_output_tokens"``; Chat
        ``finish_reason: "length"``. ``text=None`` means "the first half of
        the default answer" (i.e. truncated JSON for structured requests)."""
        return cls("incomplete", content=None if text is None else _as_text(text), usage=usage)

    @classmethod
    def raw(
        cls,
        status: int,
        body: bytes | str,
        headers: Mapping[str, str] | None = None,
        content_type: str = _JSON,
    ) -> "Reply":
        """Arbitrary status and body bytes."""
        if isinstance(body, str):
            body = body.encode()
        return cls(
            "raw",
            status=status,
            body=body,
            headers=dict(headers) if headers else None,
            content_type=content_type,
        )


def _as_text(text: Any) -> str:
    if isinstance(text, str):
        return text
    if isinstance(text, (dict, list)):
        return orjson.dumps(text).decode()
    return str(text)


_ERROR_TYPES = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("permission_error", None),
    404: ("invalid_request_error", "model_not_found"),
    405: ("invalid_request_error", None),
    408: ("timeout", None),
    409: ("conflict_error", None),
    413: ("invalid_request_error", None),
    422: ("invalid_request_error", None),
    429: ("requests", "rate_limit_exceeded"),
}


def _error_body(status: int, message: str, type_: str | None, code: str | None) -> bytes:
    dtype, dcode = _ERROR_TYPES.get(status, ("server_error" if status >= 500 else "error", None))
    return orjson.dumps(
        {
            "error": {
                "message": message,
                "type": type_ if type_ is not None else dtype,
                "param": None,
                "code": code if code is not None else dcode,
            }
        }
    )


# --------------------------------------------------------------------------- #
# Deterministic JSON-schema instance generator
# --------------------------------------------------------------------------- #

_VOCAB = tuple(
    """
    amber anchor apple arch arrow atlas autumn axis badge balance bamboo banner
    basin beacon berry birch blade blossom bolt branch breeze brick bridge brook
    cable canyon carbon cedar chalk channel charm cipher citrus cliff cloud clover
    cobalt comet compass copper coral cotton crane crater crystal current cypress
    dawn delta desert dial drift dune eagle echo ember engine falcon feather fern
    fiber field flame flint forest fossil fountain frost galaxy garden garnet
    glacier granite harbor harvest hazel horizon island ivory jade jasmine jet
    kernel kettle lagoon lantern lattice lava ledger lemon lilac linen lotus
    magnet maple marble meadow mesa meteor mint mirror monsoon mosaic moss nectar
    needle nickel north oasis ocean olive onyx orbit orchard otter oxide paddle
    palm panel parcel pebble pepper pilot pine pixel planet plaza plume polar
    prairie prism pulse quartz quill radar rain raven reef ridge ripple river
    rocket ruby saddle saffron sage salt sapphire satin scarlet shadow shell
    signal silver sketch slate solar sparrow spiral spruce stone storm summit
    sunset swift talon tangent thistle thunder tide timber topaz torch tower
    trail tundra tulip valley vapor velvet vertex violet vortex walnut willow
    window winter wolf yarrow zenith zephyr acorn bison cinder dahlia ermine
    fjord geyser heron indigo juniper kelp lichen marsh nova opal pollen quarry
    rowan sierra tern umber vine wren yew
    """.split()
)

_MAX_DEPTH = 16
_Gen = Callable[["_Ctx", int], Any]


class _Ctx:
    __slots__ = ("rng", "used")

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.used: set[str] = set()


def _phrase(ctx: _Ctx) -> str:
    rng = ctx.rng
    return " ".join(rng.choices(_VOCAB, k=rng.randint(4, 8)))


def _resolve_pointer(root: Any, ref: str) -> Any:
    if not ref.startswith("#"):
        raise ValueError(f"fake_openai: only local $ref supported, got {ref!r}")
    node = root
    for part in ref[1:].split("/"):
        if not part:
            continue
        part = part.replace("~1", "/").replace("~0", "~")
        node = node[int(part)] if isinstance(node, list) else node[part]
    return node


def _merge_all_of(schema: dict, root: Any) -> dict:
    merged: dict = {k: v for k, v in schema.items() if k != "allOf"}
    for sub in schema.get("allOf") or ():
        if isinstance(sub, dict) and "$ref" in sub:
            sub = _resolve_pointer(root, sub["$ref"])
        if not isinstance(sub, dict):
            continue
        if "allOf" in sub:
            sub = _merge_all_of(sub, root)
        for k, v in sub.items():
            if k == "properties":
                merged["properties"] = {**merged.get("properties", {}), **v}
            elif k == "required":
                merged["required"] = list(dict.fromkeys([*merged.get("required", []), *v]))
            else:
                merged.setdefault(k, v)
    return merged


def _is_null_schema(s: Any) -> bool:
    return isinstance(s, dict) and (s.get("type") == "null" or s.get("const", 0) is None)


class _Compiler:
    def __init__(self, root: Any) -> None:
        self.root = root
        self.refs: dict[str, _Gen] = {}

    def compile(self, schema: Any) -> _Gen:
        if schema is True or schema is None or schema == {}:
            return self._string({})
        if schema is False:
            return lambda ctx, depth: None
        if not isinstance(schema, dict):
            return self._string({})

        if "$ref" in schema:
            return self._ref(schema["$ref"])
        if "allOf" in schema:
            return self.compile(_merge_all_of(schema, self.root))
        if "const" in schema:
            value = schema["const"]
            return lambda ctx, depth: value
        if "enum" in schema and schema["enum"]:
            choices = list(schema["enum"])
            non_null = [c for c in choices if c is not None] or choices
            if len(non_null) == 1:
                only = non_null[0]
                return lambda ctx, depth: only
            return lambda ctx, depth: ctx.rng.choice(non_null)
        for key in ("anyOf", "oneOf"):
            if schema.get(key):
                branches = schema[key]
                pick = next((b for b in branches if not _is_null_schema(b)), branches[0])
                if isinstance(pick, dict):
                    # Sibling keywords (e.g. description) are irrelevant; merge $defs context.
                    return self.compile(pick)
                return self.compile({})

        typ = schema.get("type")
        if isinstance(typ, list):
            non_null = [t for t in typ if t != "null"]
            typ = non_null[0] if non_null else "null"
        if typ is None:
            if "properties" in schema or "additionalProperties" in schema:
                typ = "object"
            elif "items" in schema or "prefixItems" in schema:
                typ = "array"
            else:
                typ = "string"

        if typ == "object":
            return self._object(schema)
        if typ == "array":
            return self._array(schema)
        if typ == "string":
            return self._string(schema)
        if typ == "integer":
            return self._number(schema, integer=True)
        if typ == "number":
            return self._number(schema, integer=False)
        if typ == "boolean":
            return lambda ctx, depth: ctx.rng.random() < 0.5
        if typ == "null":
            return lambda ctx, depth: None
        return self._string({})

    def _ref(self, ref: str) -> _Gen:
        refs = self.refs
        if ref not in refs:
            refs[ref] = None  # type: ignore[assignment]  # recursion guard
            refs[ref] = self.compile(_resolve_pointer(self.root, ref))

        def gen(ctx: _Ctx, depth: int) -> Any:
            return refs[ref](ctx, depth)

        return gen

    def _object(self, schema: dict) -> _Gen:
        props = [(name, self.compile(sub)) for name, sub in (schema.get("properties") or {}).items()]
        # Required names not listed in properties still need a value.
        for name in schema.get("required") or ():
            if not any(name == p for p, _ in props):
                extra = schema.get("additionalProperties")
                props.append((name, self.compile(extra if isinstance(extra, dict) else {})))

        def gen(ctx: _Ctx, depth: int) -> dict:
            d = depth + 1
            return {name: g(ctx, d) for name, g in props}

        return gen

    def _array(self, schema: dict) -> _Gen:
        min_items = schema.get("minItems")
        max_items = schema.get("maxItems")
        n = int(min_items) if min_items is not None else 2
        if max_items is not None:
            n = min(n, int(max_items))
        deep_n = int(min_items or 0)
        prefix = [self.compile(s) for s in schema.get("prefixItems") or ()]
        items = schema.get("items")
        if isinstance(items, list):  # draft-04 tuple form
            prefix = [self.compile(s) for s in items]
            items = schema.get("additionalItems", {})
        item_gen = self.compile(items if items is not None else {})
        if prefix:
            n = max(n, len(prefix)) if max_items is None else min(max(n, len(prefix)), int(max_items))

        def gen(ctx: _Ctx, depth: int) -> list:
            count = n if depth < _MAX_DEPTH else deep_n
            d = depth + 1
            out = []
            for i in range(count):
                g = prefix[i] if i < len(prefix) else item_gen
                out.append(g(ctx, d))
            return out

        return gen

    def _string(self, schema: dict) -> _Gen:
        min_len = int(schema.get("minLength") or 0)
        max_len = schema.get("maxLength")
        max_len = int(max_len) if max_len is not None else None
        fmt = schema.get("format")

        if fmt in _FORMATS:
            fmt_gen = _FORMATS[fmt]
            return lambda ctx, depth: fmt_gen(ctx)

        def gen(ctx: _Ctx, depth: int) -> str:
            used = ctx.used
            rng = ctx.rng
            s = ""
            for attempt in range(32):
                s = _phrase(ctx)
                if attempt >= 8:
                    s = f"{s} {attempt}"
                while len(s) < min_len:
                    s = f"{s} {rng.choice(_VOCAB)}"
                if max_len is not None and len(s) > max_len:
                    s = s[:max_len].rstrip() or s[:max_len]
                    if len(s) < min_len:
                        s = s.ljust(min_len, "x")
                if s not in used:
                    break
            used.add(s)
            return s

        return gen

    @staticmethod
    def _number(schema: dict, integer: bool) -> _Gen:
        lo = schema.get("minimum")
        hi = schema.get("maximum")
        xlo = schema.get("exclusiveMinimum")
        xhi = schema.get("exclusiveMaximum")
        if isinstance(xlo, (int, float)) and not isinstance(xlo, bool):
            bound = xlo + (1 if integer else 0.01)
            lo = bound if lo is None else max(lo, bound)
        if isinstance(xhi, (int, float)) and not isinstance(xhi, bool):
            bound = xhi - (1 if integer else 0.01)
            hi = bound if hi is None else min(hi, bound)
        if integer:
            if lo is not None:
                lo = int(-(-lo // 1))  # ceil
            if hi is not None:
                hi = int(hi // 1)
        if lo is None and hi is None:
            lo, hi = 1, 100
        elif lo is None:
            lo = hi - 100
        elif hi is None:
            hi = lo + 100
        if hi < lo:
            hi = lo
        mult = schema.get("multipleOf")
        if integer:
            lo_i, hi_i = int(lo), int(hi)
            if isinstance(mult, int) and mult > 0:
                first = -(-lo_i // mult) * mult
                k = max(0, (hi_i - first) // mult)
                return lambda ctx, depth: first + mult * ctx.rng.randint(0, k)
            return lambda ctx, depth: ctx.rng.randint(lo_i, hi_i)
        lo_f, hi_f = float(lo), float(hi)
        return lambda ctx, depth: round(lo_f + (hi_f - lo_f) * ctx.rng.random(), 2) if hi_f - lo_f >= 0.01 else lo_f


def _fmt_uuid(ctx: _Ctx) -> str:
    h = "%032x" % ctx.rng.getrandbits(128)
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:]}"


def _fmt_word(ctx: _Ctx) -> str:
    return f"{ctx.rng.choice(_VOCAB)}{ctx.rng.randint(0, 9999)}"


_FORMATS: dict[str, Callable[[_Ctx], str]] = {
    "date-time": lambda ctx: "2024-%02d-%02dT%02d:%02d:00Z"
    % (ctx.rng.randint(1, 12), ctx.rng.randint(1, 28), ctx.rng.randint(0, 23), ctx.rng.randint(0, 59)),
    "date": lambda ctx: "2024-%02d-%02d" % (ctx.rng.randint(1, 12), ctx.rng.randint(1, 28)),
    "time": lambda ctx: "%02d:%02d:00" % (ctx.rng.randint(0, 23), ctx.rng.randint(0, 59)),
    "email": lambda ctx: f"{_fmt_word(ctx)}@example.com",
    "uri": lambda ctx: f"https://example.com/{_fmt_word(ctx)}",
    "url": lambda ctx: f"https://example.com/{_fmt_word(ctx)}",
    "uuid": _fmt_uuid,
}

_GEN_CACHE: dict[bytes, _Gen] = {}
_GEN_CACHE_LOCK = threading.Lock()


def _compiled(schema: Any) -> _Gen:
    key = orjson.dumps(schema, option=orjson.OPT_SORT_KEYS)
    gen = _GEN_CACHE.get(key)
    if gen is None:
        gen = _Compiler(schema).compile(schema)
        with _GEN_CACHE_LOCK:
            if len(_GEN_CACHE) > 512:
                _GEN_CACHE.clear()
            _GEN_CACHE[key] = gen
    return gen


def generate_instance(schema: Any, seed: int | str | bytes = 0) -> Any:
    """A deterministic JSON instance valid against ``schema`` (a practical
    subset of JSON Schema: object, array, string, integer, number, boolean,
    null, enum, const, anyOf/oneOf, allOf, type unions, local ``$ref``).
    Strings are word phrases, all distinct within one instance."""
    if not isinstance(seed, int):
        seed = _seed_of(seed if isinstance(seed, bytes) else str(seed).encode())
    return _compiled(schema)(_Ctx(seed), 0)


def _seed_of(data: bytes) -> int:
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "little")


# --------------------------------------------------------------------------- #
# The server
# --------------------------------------------------------------------------- #


def _find_schema(path: str, body: dict) -> tuple[bool, Any]:
    """(wants_json, schema_or_None) for a request body."""
    if path == _RESPONSES:
        text = body.get("text")
        fmt = text.get("format") if isinstance(text, dict) else None
    else:
        fmt = body.get("response_format")
    if not isinstance(fmt, dict):
        return False, None
    ftype = fmt.get("type")
    if ftype == "json_schema":
        if "schema" in fmt:  # Responses API
            return True, fmt["schema"]
        js = fmt.get("json_schema")
        if isinstance(js, dict):  # Chat Completions API
            return True, js.get("schema", {})
        return True, None
    if ftype == "json_object":
        return True, fmt.get("schema")  # llama-cpp style when present
    return False, None


def _wants_reasoning(body: dict | None) -> bool:
    if not body:
        return False
    return body.get("reasoning") is not None or body.get("reasoning_effort") is not None


class FakeOpenAI:
    """OpenAI-compatible fake server on ``127.0.0.1`` (see module docstring)."""

    def __init__(
        self,
        latency: float = 0.0,
        cached_tokens: int = 0,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        models: tuple[str, ...] | list[str] = ("fake-model",),
    ) -> None:
        self.latency = float(latency)
        self.cached_tokens = int(cached_tokens)
        self.models = list(models)
        self.script: Callable[[Received, int], Reply | None] | None = None
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
        """Clear the request log, the script, the reply queue and script errors."""
        with self._lock:
            self._log.clear()
            self._queue.clear()
            self.script = None
            self.errors.clear()

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
        received = Received(path, Headers(request.headers), body, raw, time.monotonic(), method)

        known = path in (_RESPONSES, _CHAT) and method == "POST"
        with self._lock:
            index = len(self._log)
            self._log.append(received)
            queued = self._queue.popleft() if known and self._queue else None

        if not known:
            return self._other(received)

        reply = queued
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

    def _other(self, received: Received) -> web.Response:
        path, method = received.path, received.method
        if path == _MODELS and method == "GET":
            data = [{"id": m, "object": "model", "created": 1700000000, "owned_by": "fake-openai"} for m in self.models]
            return web.Response(body=orjson.dumps({"object": "list", "data": data}), content_type=_JSON)
        if path in (_RESPONSES, _CHAT, _MODELS):
            return web.Response(
                status=405,
                body=_error_body(405, f"Method {method} not allowed for {path}", None, None),
                content_type=_JSON,
            )
        return web.Response(
            status=404,
            body=_error_body(404, f"Invalid URL ({method} {path})", "invalid_request_error", None),
            content_type=_JSON,
        )

    async def _render(self, reply: Reply | None, received: Received) -> web.Response:
        while reply is not None and reply.kind == "delay":
            if reply.seconds > 0:
                await asyncio.sleep(reply.seconds)
            reply = reply.inner
        if reply is None:
            return self._answer(received, None, None, incomplete=False)
        kind = reply.kind
        if kind == "text":
            return self._answer(received, reply.content, reply.usage, incomplete=False)
        if kind == "incomplete":
            return self._answer(received, reply.content, reply.usage, incomplete=True)
        if kind == "error":
            return web.Response(
                status=reply.status,
                body=_error_body(reply.status, reply.message or "fake error", reply.err_type, reply.code),
                headers=reply.headers,
                content_type=_JSON,
            )
        if kind == "raw":
            return web.Response(
                status=reply.status, body=reply.body, headers=reply.headers, content_type=reply.content_type
            )
        raise ValueError(f"unknown Reply kind {kind!r}")

    def _default_text(self, received: Received) -> str:
        body = received.body
        if body is None:
            return "Fake answer."
        seed_src = orjson.dumps(
            [body.get("instructions"), body.get("input"), body.get("messages")],
            option=orjson.OPT_SORT_KEYS,
        )
        wants_json, schema = _find_schema(received.path, body)
        ctx = _Ctx(_seed_of(seed_src))
        if wants_json:
            if schema is None or schema is True or schema == {}:
                return orjson.dumps({"answer": _phrase(ctx)}).decode()
            return orjson.dumps(_compiled(schema)(ctx, 0)).decode()
        return f"Fake answer: {_phrase(ctx)}."

    def _answer(
        self, received: Received, text: str | None, usage: Mapping[str, int] | None, incomplete: bool
    ) -> web.Response:
        body = received.body
        if text is None:
            if body is None:
                return web.Response(
                    status=400,
                    body=_error_body(400, "We could not parse the JSON body of your request.", None, None),
                    content_type=_JSON,
                )
            text = self._default_text(received)
            if incomplete:
                text = text[: max(1, len(text) // 2)]
        body = body or {}
        model = body.get("model") or "fake-model"
        reasoning = _wants_reasoning(body)

        n_in = max(1, len(received.raw) // 4)
        n_reason = _REASONING_TOKENS if reasoning else 0
        n_out = max(1, len(text) // 4) + n_reason
        n_cached = min(self.cached_tokens, n_in)
        n_total = None
        if usage:
            n_in = usage.get("input_tokens", usage.get("prompt_tokens", n_in))
            n_out = usage.get("output_tokens", usage.get("completion_tokens", n_out))
            n_cached = usage.get("cached_tokens", n_cached)
            n_reason = usage.get("reasoning_tokens", n_reason)
            n_total = usage.get("total_tokens")
        if n_total is None:
            n_total = n_in + n_out
        now = int(time.time())
        rid = self._new_id()

        if received.path == _RESPONSES:
            output: list[dict] = []
            if reasoning:
                output.append({"type": "reasoning", "id": f"rs_{rid}", "summary": []})
            output.append(
                {
                    "type": "message",
                    "id": f"msg_{rid}",
                    "role": "assistant",
                    "status": "incomplete" if incomplete else "completed",
                    "content": [{"type": "output_text", "text": text, "annotations": []}],
                }
            )
            payload = {
                "id": f"resp_{rid}",
                "object": "response",
                "created_at": now,
                "model": model,
                "status": "incomplete" if incomplete else "completed",
                "error": None,
                "incomplete_details": {"reason": "max_output_tokens"} if incomplete else None,
                "output": output,
                "usage": {
                    "input_tokens": n_in,
                    "input_tokens_details": {"cached_tokens": n_cached},
                    "output_tokens": n_out,
                    "output_tokens_details": {"reasoning_tokens": n_reason},
                    "total_tokens": n_total,
                },
            }
        else:
            payload = {
                "id": f"chatcmpl-{rid}",
                "object": "chat.completion",
                "created": now,
                "model": model,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": text, "refusal": None},
                        "logprobs": None,
                        "finish_reason": "length" if incomplete else "stop",
                    }
                ],
                "usage": {
                    "prompt_tokens": n_in,
                    "completion_tokens": n_out,
                    "total_tokens": n_total,
                    "prompt_tokens_details": {"cached_tokens": n_cached},
                    "completion_tokens_details": {"reasoning_tokens": n_reason},
                },
            }
        return web.Response(body=orjson.dumps(payload), content_type=_JSON)


# --------------------------------------------------------------------------- #
# CLI
# --------------------------------------------------------------------------- #


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Local fake OpenAI-compatible server.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 = pick a free port")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds before each answer")
    parser.add_argument("--cached-tokens", type=int, default=0)
    args = parser.parse_args(argv)

    server = FakeOpenAI(latency=args.latency, cached_tokens=args.cached_tokens, host=args.host, port=args.port)

    def ready(url: str) -> None:
        sys.stdout.write(f"READY {url}\n")
        sys.stdout.flush()

    server.serve_forever(on_ready=ready)
    return 0


if __name__ == "__main__":
    sys.exit(main())
