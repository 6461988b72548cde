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

    python tests/fake_openai.py --port 0 --latency 0.2 [--force-output-tokens 50000]
    # prints "READY http://127.0.0.1:PORT/v1" and serves until killed

Endpoints: ``POST /v1/responses``, ``POST /v1/chat/completions``,
``GET /v1/models``, and the Files + Batches API below. Anything else answers
404 (wrong method: 405) with an OpenAI-style error body. Every request is
recorded.

Reply resolution order per request: ``enqueue``d replies (FIFO), then
``server.script(received, index)`` (``None`` falls through), then the default
answerer. The default answerer returns a schema-valid JSON instance when the
request asks for structured output, otherwise a short text.

Files and Batches API (see ``BatchScript`` for every knob)::

    POST /v1/files (multipart: file, purpose)   GET /v1/files[?purpose=]
    GET /v1/files/{id}   GET /v1/files/{id}/content   DELETE /v1/files/{id}
    POST /v1/batches   GET /v1/batches?limit=&after=
    GET /v1/batches/{id}   POST /v1/batches/{id}/cancel

A batch walks its states one per ``GET /v1/batches/{id}`` (default
``validating -> in_progress -> finalizing -> completed``; the create call
answers ``validating``). Its lines are answered by the same default answerer
as the online endpoints (not by ``enqueue``/``script``), each wrapped as
``{"id": "batch_req_…", "custom_id", "response": {"status_code": 200,
"request_id": "req_…", "body": <Response | ChatCompletion>}, "error": null}``.
Per batch, the first ``enqueue_batch``ed script (FIFO) is used, else
``server.batch_plan(batch_id, input_lines)`` (``None`` falls through), else
``BatchScript()``::

    server.enqueue_batch(BatchScript(expire_after=3, shuffle=True))
    server.batch_plan = lambda bid, lines: BatchScript(drop={"c2"}) if len(lines) > 5 else None
    server.max_batch_lines = 10          # validation limits (also max_batch_bytes)
    server.batches[bid].lines            # parsed input lines; .processed, .status, .outputs ...
    server.files[fid].content            # raw bytes of any file
    server.custom_id_counts()            # Counter of custom_ids over all batches
    server.advance_batch(bid) / server.finish_batch(bid)   # move without polling
    server.batch_advance_on_get = False  # polls no longer advance a batch

File and batch endpoints answer at once (``latency`` does not apply) and are
recorded in ``server.requests`` like the rest (multipart uploads have
``body=None``; ``raw`` keeps the bytes).
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
import re
import sys
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from typing import Any, Callable, Collection, Mapping, Sequence

import orjson
from aiohttp import web

__all__ = [
    "BatchScript", "FakeBatch", "FakeFile", "FakeOpenAI", "Received", "Reply", "generate_instance", "main",
]

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
    ``Authorization``; lookups are case-insensitive. ``query`` is the raw
    query string (``"limit=2&after=batch_…"``), empty when there is none.
    """

    path: str
    headers: dict
    body: dict | None
    raw: bytes
    t: float
    method: str = "POST"
    query: str = ""


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
# Files and Batches API (state, scripting)
# --------------------------------------------------------------------------- #

_FILES = "/v1/files"
_BATCHES = "/v1/batches"
_FILE_RE = re.compile(r"^/v1/files/([^/]+)(/content)?$")
_BATCH_RE = re.compile(r"^/v1/batches/([^/]+)(/cancel)?$")
_FILE_PURPOSES = ("assistants", "batch", "fine-tune", "vision", "user_data", "evals")
# Accepted by ``batches.create`` (openai-python ``batch_create_params.py``) ...
_BATCH_ENDPOINTS = (
    "/v1/responses", "/v1/chat/completions", "/v1/embeddings", "/v1/completions",
    "/v1/moderations", "/v1/images/generations", "/v1/images/edits", "/v1/videos",
)
# ... of which the fake can answer these two.
_BATCH_SUPPORTED = (_RESPONSES, _CHAT)
_BATCH_STATUSES = (
    "validating", "failed", "in_progress", "finalizing",
    "completed", "expired", "cancelling", "cancelled",
)
_TERMINAL = ("failed", "completed", "expired", "cancelled")
_WITH_RESULTS = ("completed", "expired", "cancelled")
_TIMESTAMP_OF = {
    "in_progress": "in_progress_at", "finalizing": "finalizing_at", "completed": "completed_at",
    "failed": "failed_at", "expired": "expired_at", "cancelling": "cancelling_at",
    "cancelled": "cancelled_at",
}
_TIMESTAMPS = ("in_progress_at", "expires_at", "finalizing_at", "completed_at", "failed_at",
               "expired_at", "cancelling_at", "cancelled_at")
_MAX_REPORTED_ERRORS = 100
_EXPIRED_MSG = "This request could not be executed before the completion window expired."
_CANCELLED_MSG = "This request was cancelled before it could be executed."
_DUPLICATE_MSG = (
    "The custom_id for this request is a duplicate of another request. "
    "The custom_id parameter must be unique for each request in a batch."
)


@dataclass(frozen=True, eq=False)
class BatchScript:
    """How one batch behaves. Every field is optional; ``BatchScript()`` is
    the default batch (``validating -> in_progress -> finalizing -> completed``,
    every line answered by the default answerer).

    ``states``
        Statuses walked through, one per ``GET /v1/batches/{id}`` (the create
        call answers ``states[0]``). The walk stops at the first terminal
        status (``failed``, ``completed``, ``expired``, ``cancelled``) and
        stays on the last entry if there is none (a stuck batch). Repeat an
        entry to make it last several polls. Default: see above, or
        ``validating -> in_progress -> expired`` when ``expire_after`` is set.
        A batch whose input fails validation always goes ``validating ->
        failed`` (leading ``validating`` entries and a ``failed`` entry in
        ``states`` are honoured).
    ``fail_validation``
        ``True``: fail at validation (with the input's real line errors if it
        has any, else one error on line 1). A sequence of line numbers
        (1-based) or of error dicts (``code``/``line``/``message``/``param``,
        missing keys become ``None``): fail with exactly those errors.
    ``expire_after``
        Complete only the first N requests (input order); the rest become
        ``batch_expired`` error lines. Applies when the walk ends in
        ``expired`` (the default walk when ``states`` is not given); with
        ``states`` ending in ``expired`` but no ``expire_after``, whatever ran
        by the last ``in_progress`` poll is kept.
    ``cancel``
        What ``POST /v1/batches/{id}/cancel`` does. ``True``: status
        ``cancelling`` at once, ``cancelled`` on the next poll; requests
        processed so far keep their results, the rest become
        ``batch_cancelled`` error lines. An ``int`` N: as ``True`` but exactly
        the first N requests finish. ``False``: the cancel is refused (409).
        The same N applies when ``states`` itself walks into ``cancelling``.
    ``shuffle``
        Write output and error lines in random order (``True`` = seed 0, an
        ``int`` = that seed).
    ``drop``
        custom_ids omitted from both result files (their request still counts
        in ``request_counts`` as if it had run).
    ``http_errors``
        ``{custom_id: status | Reply.error(...)}``: error-file line with
        ``response: {status_code, request_id, body: {"error": {...}}}`` and
        ``error: null``.
    ``result_lines``
        ``{custom_id: line}``: the result line written for that request (to the
        error file, in place of its outcome), as given: a dict is written as
        JSON (it may lack ``custom_id``, or name another one), ``bytes``/``str``
        verbatim (e.g. not JSON). Shapes other runners write, for the client's
        parser. The request counts as failed.
    ``answer``
        ``fn(custom_id, body)`` returning the answer for a line: ``None``
        (default answer), a ``str``/``dict``/``list`` (answer text, like
        ``Reply.text``), or a ``Reply`` (``text``/``json``/``incomplete``/
        ``error``/``raw``; delays are ignored). Raising records the exception
        in ``server.errors`` and yields a 500 error line.
    ``usage_on_batch``
        Whether the batch object carries ``usage`` (default ``True``).

    Progress: with K ``in_progress`` entries, the k-th shows
    ``floor(N * k / (K + 1))`` requests processed (N = all requests, or the
    expire/cancel count); ``finalizing``/``completed`` show all. Result files
    are written when ``completed``/``expired``/``cancelled`` is reached (only
    non-empty ones get an id). ``request_counts``: ``total`` is 0 until the
    input passed validation; an HTTP-error line counts as failed, a dropped one
    as completed, an expired/cancelled one as failed. ``usage`` is all zeros
    until the result files exist, then the sum over the output-file lines.
    """

    states: Sequence[str] | None = None
    fail_validation: bool | Sequence[int | Mapping[str, Any]] = False
    expire_after: int | None = None
    cancel: bool | int = True
    shuffle: bool | int = False
    drop: Collection[str] = ()
    http_errors: Mapping[str, "int | Reply"] = field(default_factory=dict)
    result_lines: Mapping[str, "dict | bytes | str"] = field(default_factory=dict)
    answer: Callable[[str, dict], Any] | None = None
    usage_on_batch: bool = True

    def __post_init__(self) -> None:
        if self.states is not None:
            if isinstance(self.states, str) or not self.states:
                raise ValueError("BatchScript.states must be a non-empty sequence of statuses")
            bad = [s for s in self.states if s not in _BATCH_STATUSES]
            if bad:
                raise ValueError(
                    f"BatchScript.states: unknown status(es) {bad}; use {_BATCH_STATUSES}"
                )
        if self.expire_after is not None and self.expire_after < 0:
            raise ValueError("BatchScript.expire_after must be >= 0")


@dataclass(eq=False)
class FakeFile:
    """An uploaded or generated file (``server.files[file_id]``)."""

    id: str
    filename: str
    purpose: str
    content: bytes
    created_at: int

    @property
    def bytes(self) -> int:  # noqa: A003 - mirrors the OpenAI field name
        return len(self.content)

    def jsonl(self) -> list[Any]:
        """Parsed non-blank lines (unparseable lines come back as ``None``)."""
        out: list[Any] = []
        for raw in self.content.split(b"\n"):
            if raw.strip():
                try:
                    out.append(orjson.loads(raw))
                except orjson.JSONDecodeError:
                    out.append(None)
        return out

    def as_object(self) -> dict:
        expires = self.created_at + 30 * 86400 if self.purpose == "batch" else None
        return {
            "id": self.id,
            "object": "file",
            "bytes": len(self.content),
            "created_at": self.created_at,
            "expires_at": expires,
            "filename": self.filename,
            "purpose": self.purpose,
            "status": "processed",
            "status_details": None,
        }


@dataclass(eq=False)
class FakeBatch:
    """Server-side state of one batch (``server.batches[batch_id]``).

    ``lines`` are the parsed non-blank input lines (``None`` for a line that
    is not JSON), ``line_numbers`` their 1-based physical line numbers.
    ``status`` / ``states`` / ``pos`` show where the walk is; ``processed`` is
    how many requests (in input order) have run; ``validated`` whether the
    input passed validation (and ``request_counts.total`` is set); ``polls``
    counts ``GET /v1/batches/{id}`` calls; ``cancel_requested`` whether the
    client called cancel. ``outputs`` / ``error_lines`` are the result lines
    as written to the output / error file (after ``drop`` and ``shuffle``; a
    ``result_lines`` entry as given)."""

    id: str
    endpoint: str
    input_file_id: str
    completion_window: str
    metadata: dict | None
    created_at: int
    script: BatchScript
    lines: list[Any]
    line_numbers: list[int]
    model: str | None
    validation_errors: list[dict]
    states: list[str]
    status: str = "validating"
    pos: int = 0
    processed: int = 0
    validated: bool = False
    polls: int = 0
    cancel_requested: bool = False
    results_written: bool = False
    errors: list[dict] | None = None
    output_file_id: str | None = None
    error_file_id: str | None = None
    timestamps: dict = field(default_factory=dict)
    request_counts: dict = field(default_factory=lambda: {"total": 0, "completed": 0, "failed": 0})
    usage: dict = field(default_factory=lambda: _usage_sum([]))
    outcomes: dict = field(default_factory=dict)  # line index -> (status_code, body, request_id)
    outputs: list[dict] = field(default_factory=list)
    error_lines: list[Any] = field(default_factory=list)

    @property
    def custom_ids(self) -> list[Any]:
        """custom_id of every parsed input line (input order, duplicates kept)."""
        return [ln.get("custom_id") for ln in self.lines if isinstance(ln, dict)]

    @property
    def n(self) -> int:
        return len(self.lines)

    def as_object(self) -> dict:
        obj: dict[str, Any] = {
            "id": self.id,
            "object": "batch",
            "endpoint": self.endpoint,
            "errors": (
                None
                if self.errors is None
                else {"object": "list", "data": [dict(e) for e in self.errors]}
            ),
            "input_file_id": self.input_file_id,
            "completion_window": self.completion_window,
            "status": self.status,
            "output_file_id": self.output_file_id,
            "error_file_id": self.error_file_id,
            "created_at": self.created_at,
        }
        for key in _TIMESTAMPS:
            obj[key] = self.timestamps.get(key)
        obj["request_counts"] = dict(self.request_counts)
        obj["metadata"] = None if self.metadata is None else dict(self.metadata)
        obj["model"] = self.model
        if self.script.usage_on_batch:
            obj["usage"] = orjson.loads(orjson.dumps(self.usage))
        return obj


def _usage_sum(bodies: list[Any]) -> dict:
    """Batch ``usage`` summed over result bodies (Responses or Chat shape)."""
    tot = {"in": 0, "cached": 0, "out": 0, "reason": 0, "total": 0}
    for b in bodies:
        u = b.get("usage") if isinstance(b, dict) else None
        if not isinstance(u, dict):
            continue
        if "input_tokens" in u or "output_tokens" in u:
            in_d = u.get("input_tokens_details") or {}
            out_d = u.get("output_tokens_details") or {}
            n_in, n_out = u.get("input_tokens", 0), u.get("output_tokens", 0)
        else:
            in_d = u.get("prompt_tokens_details") or {}
            out_d = u.get("completion_tokens_details") or {}
            n_in, n_out = u.get("prompt_tokens", 0), u.get("completion_tokens", 0)
        tot["in"] += int(n_in or 0)
        tot["out"] += int(n_out or 0)
        tot["cached"] += int(in_d.get("cached_tokens") or 0)
        tot["reason"] += int(out_d.get("reasoning_tokens") or 0)
        tot["total"] += int(u.get("total_tokens", (n_in or 0) + (n_out or 0)) or 0)
    return {
        "input_tokens": tot["in"],
        "input_tokens_details": {"cached_tokens": tot["cached"]},
        "output_tokens": tot["out"],
        "output_tokens_details": {"reasoning_tokens": tot["reason"]},
        "total_tokens": tot["total"],
    }


def _line_error(code: str, line: int | None, message: str, param: str | None = None) -> dict:
    return {"code": code, "line": line, "message": message, "param": param}


def _api_error(
    status: int,
    message: str,
    *,
    type_: str = "invalid_request_error",
    code: str | None = None,
    param: str | None = None,
) -> web.Response:
    body = {"error": {"message": message, "type": type_, "param": param, "code": code}}
    return web.Response(status=status, body=orjson.dumps(body), content_type=_JSON)


def _missing(param: str) -> web.Response:
    message = f"Missing required parameter: '{param}'."
    return _api_error(400, message, code="missing_required_parameter", param=param)


def _invalid(param: str, detail: str) -> web.Response:
    message = f"Invalid value for '{param}': {detail}"
    return _api_error(400, message, code="invalid_value", param=param)


def _missing_line(no: int, param: str) -> dict:
    message = f"Missing required parameter: '{param}'."
    return _line_error("missing_required_parameter", no, message, param)


def _json_response(obj: Any) -> web.Response:
    return web.Response(body=orjson.dumps(obj), content_type=_JSON)


_CD_NAME = re.compile(r'(?:^|;)\s*name="([^"]*)"', re.I)
_CD_FILENAME = re.compile(r'(?:^|;)\s*filename="([^"]*)"', re.I)
_CD_FILENAME_STAR = re.compile(r"(?:^|;)\s*filename\*=([^;]+)", re.I)


def _parse_multipart(raw: bytes, content_type: str) -> dict[str, tuple[str | None, bytes]] | None:
    """``{field: (filename_or_None, data)}`` of a ``multipart/form-data``
    body, or ``None`` if it is not one. Small and fast: splits on the
    boundary; enough for what HTTP clients send."""
    ctype, _, params = content_type.partition(";")
    if ctype.strip().lower() != "multipart/form-data":
        return None
    m = re.search(r'boundary=(?:"([^"]+)"|([^;\s]+))', params, re.I)
    if not m:
        return None
    delim = b"--" + (m.group(1) or m.group(2)).encode("latin-1")
    fields: dict[str, tuple[str | None, bytes]] = {}
    for part in raw.split(delim)[1:]:
        if part.startswith(b"--"):
            break
        if part.startswith(b"\r\n"):
            part = part[2:]
        head, sep, data = part.partition(b"\r\n\r\n")
        if not sep:
            continue
        if data.endswith(b"\r\n"):
            data = data[:-2]
        disposition = ""
        for hline in head.decode("utf-8", "replace").split("\r\n"):
            hname, _, hval = hline.partition(":")
            if hname.strip().lower() == "content-disposition":
                disposition = hval
        name_m = _CD_NAME.search(disposition)
        if not name_m:
            continue
        filename: str | None = None
        star = _CD_FILENAME_STAR.search(disposition)
        plain = _CD_FILENAME.search(disposition)
        if star:
            value = star.group(1).strip().strip('"')
            _, _, value = value.rpartition("'")  # charset'lang'value
            filename = urllib.parse.unquote(value)
        elif plain:  # aiohttp and httpx percent-escape (some) characters
            filename = urllib.parse.unquote(plain.group(1))
        fields[name_m.group(1)] = (filename, data)
    return fields


class _BatchAPI:
    """Files + Batches endpoints of :class:`FakeOpenAI` (a mixin)."""

    # Provided by FakeOpenAI:
    errors: list[BaseException]
    _new_id: Callable[[], str]
    _payload: Callable[..., dict | None]

    def _init_batches(self) -> None:
        self.batch_plan: Callable[[str, list[Any]], BatchScript | None] | None = None
        self.batch_advance_on_get = True
        self.max_batch_bytes = 200 * 1024 * 1024
        self.max_batch_lines = 50_000
        self._files: dict[str, FakeFile] = {}
        self._batches: dict[str, FakeBatch] = {}
        self._batch_queue: collections.deque[BatchScript] = collections.deque()
        # Re-entrant: `batch_plan` / `answer` callbacks may read server.batches.
        self._batch_lock = threading.RLock()

    # ------------------------------------------------------------ public API

    @property
    def files(self) -> dict[str, FakeFile]:
        """Snapshot ``{file_id: FakeFile}`` of live (not deleted) files,
        uploads and generated result files alike."""
        with self._batch_lock:
            return dict(self._files)

    @property
    def batches(self) -> dict[str, FakeBatch]:
        """Snapshot ``{batch_id: FakeBatch}`` in creation order."""
        with self._batch_lock:
            return dict(self._batches)

    def enqueue_batch(self, *scripts: BatchScript) -> None:
        """Scripts for the next created batches, FIFO (before ``batch_plan``)."""
        for s in scripts:
            if not isinstance(s, BatchScript):
                raise TypeError(f"enqueue_batch expects BatchScript, got {type(s).__name__}")
        with self._batch_lock:
            self._batch_queue.extend(scripts)

    @property
    def pending_batches(self) -> int:
        """Enqueued batch scripts not consumed yet."""
        with self._batch_lock:
            return len(self._batch_queue)

    def advance_batch(self, batch_id: str, steps: int = 1) -> str:
        """Move a batch ``steps`` states on without a poll; returns its status."""
        with self._batch_lock:
            batch = self._batches[batch_id]
            self._advance(batch, steps)
            return batch.status

    def finish_batch(self, batch_id: str) -> str:
        """Walk a batch to its last state; returns its status."""
        with self._batch_lock:
            batch = self._batches[batch_id]
            self._advance(batch, len(batch.states))
            return batch.status

    def custom_id_counts(self) -> "collections.Counter[Any]":
        """How often each custom_id was submitted, over all batches."""
        with self._batch_lock:
            batches = list(self._batches.values())
        counts: collections.Counter[Any] = collections.Counter()
        for b in batches:
            counts.update(b.custom_ids)
        return counts

    def _reset_batches(self) -> None:
        with self._batch_lock:
            self._files.clear()
            self._batches.clear()
            self._batch_queue.clear()
            self.batch_plan = None

    # ------------------------------------------------------------ routing

    def _batch_api(self, received: Received) -> web.Response:
        path, method = received.path, received.method
        if path == _FILES:
            if method == "POST":
                return self._file_upload(received)
            if method == "GET":
                return self._file_list(received)
            return self._not_allowed(received)
        if path == _BATCHES:
            if method == "POST":
                return self._batch_create(received)
            if method == "GET":
                return self._batch_list(received)
            return self._not_allowed(received)
        m = _FILE_RE.match(path)
        if m:
            file_id, content = m.group(1), bool(m.group(2))
            if content:
                if method == "GET":
                    return self._file_content(file_id)
                return self._not_allowed(received)
            if method == "GET":
                return self._file_get(file_id)
            if method == "DELETE":
                return self._file_delete(file_id)
            return self._not_allowed(received)
        m = _BATCH_RE.match(path)
        if m:
            batch_id, cancel = m.group(1), bool(m.group(2))
            if cancel:
                if method == "POST":
                    return self._batch_cancel(batch_id)
                return self._not_allowed(received)
            if method == "GET":
                return self._batch_get(batch_id)
            return self._not_allowed(received)
        return _api_error(404, f"Invalid URL ({method} {path})")

    @staticmethod
    def _not_allowed(received: Received) -> web.Response:
        return _api_error(405, f"Method {received.method} not allowed for {received.path}")

    # ------------------------------------------------------------ files

    def _store_file(self, filename: str, purpose: str, content: bytes) -> FakeFile:
        f = FakeFile("file-" + self._new_id(), filename, purpose, content, int(time.time()))
        with self._batch_lock:
            self._files[f.id] = f
        return f

    def _file_upload(self, received: Received) -> web.Response:
        fields = _parse_multipart(received.raw, received.headers.get("Content-Type", ""))
        if fields is None:
            return _api_error(400, "Expected a multipart/form-data body with 'file' and 'purpose'.")
        for key in ("file", "purpose"):
            if key not in fields:
                return _missing(key)
        purpose = fields["purpose"][1].decode("utf-8", "replace").strip()
        if purpose not in _FILE_PURPOSES:
            return _invalid("purpose", f"{purpose!r}; expected one of {list(_FILE_PURPOSES)}.")
        filename, content = fields["file"]
        f = self._store_file(filename or "upload", purpose, content)
        return _json_response(f.as_object())

    def _file_list(self, received: Received) -> web.Response:
        query = urllib.parse.parse_qs(received.query)
        purpose = (query.get("purpose") or [None])[0]
        with self._batch_lock:
            files = [f for f in self._files.values() if purpose is None or f.purpose == purpose]
        data = [f.as_object() for f in reversed(files)]
        return _json_response({
            "object": "list",
            "data": data,
            "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None,
            "has_more": False,
        })

    def _lookup_file(self, file_id: str) -> FakeFile | None:
        with self._batch_lock:
            return self._files.get(file_id)

    @staticmethod
    def _no_file(file_id: str) -> web.Response:
        return _api_error(404, f"No such File object: {file_id}", param="id")

    def _file_get(self, file_id: str) -> web.Response:
        f = self._lookup_file(file_id)
        return self._no_file(file_id) if f is None else _json_response(f.as_object())

    def _file_content(self, file_id: str) -> web.Response:
        f = self._lookup_file(file_id)
        if f is None:
            return self._no_file(file_id)
        return web.Response(body=f.content, content_type="application/octet-stream")

    def _file_delete(self, file_id: str) -> web.Response:
        with self._batch_lock:
            f = self._files.pop(file_id, None)
        if f is None:
            return self._no_file(file_id)
        return _json_response({"id": file_id, "object": "file", "deleted": True})

    # ------------------------------------------------------------ batches: HTTP

    def _batch_create(self, received: Received) -> web.Response:
        body = received.body
        if body is None:
            return _api_error(400, "We could not parse the JSON body of your request.")
        for key in ("input_file_id", "endpoint", "completion_window"):
            if not isinstance(body.get(key), str):
                return _missing(key)
        endpoint, window = body["endpoint"], body["completion_window"]
        if window != "24h":
            return _invalid("completion_window", f"{window!r}. Supported values are: '24h'.")
        if endpoint not in _BATCH_ENDPOINTS:
            return _invalid("endpoint", f"{endpoint!r}.")
        if endpoint not in _BATCH_SUPPORTED:
            return _invalid(
                "endpoint",
                f"{endpoint!r}: fake_openai only fakes batches for {list(_BATCH_SUPPORTED)}.",
            )
        metadata = body.get("metadata")
        if metadata is not None:
            ok = (
                isinstance(metadata, dict) and len(metadata) <= 16
                and all(isinstance(k, str) and len(k) <= 64 for k in metadata)
                and all(isinstance(v, str) and len(v) <= 512 for v in metadata.values())
            )
            if not ok:
                return _invalid(
                    "metadata", "at most 16 string pairs, keys <= 64 and values <= 512 characters."
                )
        src = self._lookup_file(body["input_file_id"])
        if src is None:
            return _invalid("input_file_id", f"{body['input_file_id']!r}: no such file.")
        if src.purpose != "batch":
            return _invalid(
                "input_file_id", f"the file must have purpose 'batch', not {src.purpose!r}."
            )

        lines, numbers, errors, model = self._parse_batch_input(src.content, endpoint)
        batch_id = "batch_" + self._new_id()
        with self._batch_lock:
            script = self._batch_queue.popleft() if self._batch_queue else None
        if script is None and self.batch_plan is not None:
            try:
                script = self.batch_plan(batch_id, list(lines))
            except Exception as exc:
                self.errors.append(exc)
                return _api_error(
                    500, f"fake_openai batch_plan raised {exc!r}", type_="server_error"
                )
            if script is not None and not isinstance(script, BatchScript):
                exc = TypeError(
                    f"batch_plan must return BatchScript or None, got {type(script).__name__}"
                )
                self.errors.append(exc)
                return _api_error(500, f"fake_openai {exc}", type_="server_error")
        script = script or BatchScript()

        forced = script.fail_validation
        if forced is not True and forced:
            errors = [
                _line_error("invalid_request", int(e), "Scripted validation failure (fake).")
                if isinstance(e, int) else {"code": e.get("code"), "line": e.get("line"),
                                            "message": e.get("message"), "param": e.get("param")}
                for e in forced
            ]
        elif forced is True and not errors:
            errors = [_line_error("invalid_request", 1, "Scripted validation failure (fake).")]
        now = int(time.time())
        batch = FakeBatch(
            id=batch_id,
            endpoint=endpoint,
            input_file_id=src.id,
            completion_window=window,
            metadata=dict(metadata) if metadata is not None else None,
            created_at=now,
            script=script,
            lines=lines,
            line_numbers=numbers,
            model=model,
            validation_errors=errors,
            states=self._effective_states(script, bool(errors)),
        )
        batch.timestamps["expires_at"] = now + 86400
        with self._batch_lock:
            self._enter(batch, batch.states[0])
            self._batches[batch_id] = batch
            obj = batch.as_object()
        return _json_response(obj)

    def _batch_get(self, batch_id: str) -> web.Response:
        with self._batch_lock:
            batch = self._batches.get(batch_id)
            if batch is None:
                return _api_error(404, f"No batch found with id '{batch_id}'.", param="batch_id")
            batch.polls += 1
            if self.batch_advance_on_get:
                self._advance(batch, 1)
            obj = batch.as_object()
        return _json_response(obj)

    def _batch_cancel(self, batch_id: str) -> web.Response:
        with self._batch_lock:
            batch = self._batches.get(batch_id)
            if batch is None:
                return _api_error(404, f"No batch found with id '{batch_id}'.", param="batch_id")
            if batch.status in _TERMINAL or batch.script.cancel is False:
                return _api_error(
                    409, f"Cannot cancel a batch with status '{batch.status}'.",
                    type_="invalid_request_error", code="batch_not_cancellable",
                )
            batch.cancel_requested = True
            if batch.status != "cancelling":
                batch.states = batch.states[: batch.pos + 1] + ["cancelling", "cancelled"]
                self._advance(batch, 1)
            obj = batch.as_object()
        return _json_response(obj)

    def _batch_list(self, received: Received) -> web.Response:
        query = urllib.parse.parse_qs(received.query)
        try:
            limit = int((query.get("limit") or ["20"])[0])
        except ValueError:
            limit = -1
        if not 1 <= limit <= 100:
            return _api_error(400, "Invalid 'limit': must be an integer between 1 and 100.",
                              code="invalid_value", param="limit")
        after = (query.get("after") or [None])[0]
        with self._batch_lock:
            ordered = list(reversed(self._batches.values()))  # newest first
            if after is not None:
                ids = [b.id for b in ordered]
                ordered = ordered[ids.index(after) + 1:] if after in ids else []
            page = [b.as_object() for b in ordered[:limit]]
            has_more = len(ordered) > limit
        return _json_response({
            "object": "list",
            "data": page,
            "first_id": page[0]["id"] if page else None,
            "last_id": page[-1]["id"] if page else None,
            "has_more": has_more,
        })

    # ------------------------------------------------------------ batches: logic

    def _parse_batch_input(
        self, data: bytes, endpoint: str
    ) -> tuple[list[Any], list[int], list[dict], str | None]:
        """(parsed lines, their line numbers, validation errors, model)."""
        if len(data) > self.max_batch_bytes:
            return [], [], [_line_error(
                "file_too_large", None,
                f"The input file is {len(data)} bytes; "
                f"the maximum for a batch is {self.max_batch_bytes} bytes.",
            )], None
        lines: list[Any] = []
        numbers: list[int] = []
        errors: list[dict] = []
        seen: set[str] = set()
        model: str | None = None
        for no, raw in enumerate(data.split(b"\n"), 1):
            if not raw.strip():
                continue
            try:
                obj = orjson.loads(raw)
            except orjson.JSONDecodeError:
                obj = None
                err: dict | None = _line_error(
                    "invalid_json_line", no, "This line is not parseable as valid JSON."
                )
            else:
                err = self._check_line(obj, no, endpoint, seen)
                if err is None:
                    line_model = obj["body"]["model"]
                    if model is None:
                        model = line_model
                    elif line_model != model:
                        err = _line_error(
                            "model_mismatch", no,
                            f"The model {line_model!r} does not match the model {model!r} of the "
                            "other requests in the batch. A batch may use a single model only.",
                            "body.model",
                        )
            lines.append(obj)
            numbers.append(no)
            if err is not None:
                errors.append(err)
        if not lines:
            errors.append(_line_error("empty_file", None, "The batch input file is empty."))
        elif len(lines) > self.max_batch_lines:
            errors.insert(0, _line_error(
                "too_many_tasks", None,
                f"The batch has {len(lines)} requests; the maximum is {self.max_batch_lines}.",
            ))
        return lines, numbers, errors[:_MAX_REPORTED_ERRORS], model

    @staticmethod
    def _check_line(obj: Any, no: int, endpoint: str, seen: set[str]) -> dict | None:
        if not isinstance(obj, dict):
            return _line_error("invalid_json_line", no, "This line is not a JSON object.")
        cid = obj.get("custom_id")
        if cid is None:
            return _missing_line(no, "custom_id")
        if not isinstance(cid, str) or not cid:
            return _line_error(
                "invalid_type", no, "'custom_id' must be a non-empty string.", "custom_id"
            )
        method = obj.get("method")
        if method != "POST":
            return _line_error(
                "invalid_value", no, f"Invalid 'method': {method!r}; only 'POST' is supported.",
                "method",
            )
        url = obj.get("url")
        if url != endpoint:
            return _line_error(
                "url_mismatch", no,
                f"The URL {url!r} of this request does not match the batch endpoint {endpoint!r}.",
                "url",
            )
        body = obj.get("body")
        if body is None:
            return _missing_line(no, "body")
        if not isinstance(body, dict):
            return _line_error("invalid_type", no, "'body' must be a JSON object.", "body")
        if not isinstance(body.get("model"), str) or not body["model"]:
            return _missing_line(no, "body.model")
        if cid in seen:
            return _line_error("duplicate_custom_id", no, _DUPLICATE_MSG, "custom_id")
        seen.add(cid)
        return None

    @staticmethod
    def _effective_states(script: BatchScript, invalid: bool) -> list[str]:
        given = list(script.states) if script.states is not None else None
        if invalid:
            if given and "failed" in given:
                states = given[: given.index("failed") + 1]
                # Walking "in_progress" etc. before failing makes no sense: keep
                # the leading validating entries only.
                lead = [s for s in states[:-1] if s == "validating"]
                return (lead or ["validating"]) + ["failed"]
            lead = []
            for s in given or ["validating"]:
                if s != "validating":
                    break
                lead.append(s)
            return (lead or ["validating"]) + ["failed"]
        if given is None:
            if script.expire_after is not None:
                return ["validating", "in_progress", "expired"]
            return ["validating", "in_progress", "finalizing", "completed"]
        for i, s in enumerate(given):
            if s in _TERMINAL:
                return given[: i + 1]
        return given

    def _advance(self, batch: FakeBatch, steps: int) -> None:
        for _ in range(max(0, steps)):
            if batch.pos + 1 >= len(batch.states):
                return
            batch.pos += 1
            self._enter(batch, batch.states[batch.pos])

    def _cancel_count(self, batch: FakeBatch) -> int:
        c = batch.script.cancel
        if isinstance(c, int) and not isinstance(c, bool):
            return c
        return batch.processed

    def _enter(self, batch: FakeBatch, status: str) -> None:
        """Make ``status`` current: timestamps, progress, counts, results."""
        previous = batch.status
        batch.status = status
        n = batch.n
        script = batch.script
        terminal = batch.states[-1]
        now = int(time.time())
        key = _TIMESTAMP_OF.get(status)
        if key and key not in batch.timestamps:
            batch.timestamps[key] = now
        if status in ("in_progress", "finalizing", "completed", "expired"):
            # cancelling/cancelled keep the previous value
            batch.validated = not batch.validation_errors

        if status == "validating":
            processed = 0
        elif status == "failed":
            processed = 0
        elif status == "in_progress":
            k = batch.states[: batch.pos + 1].count("in_progress")
            big_k = batch.states.count("in_progress")
            cap = n
            if terminal == "expired" and script.expire_after is not None:
                cap = min(n, script.expire_after)
            elif terminal in ("cancelling", "cancelled") and not isinstance(script.cancel, bool):
                cap = min(n, int(script.cancel))
            processed = max(batch.processed, cap * k // (big_k + 1))
        elif status in ("finalizing", "completed"):
            if terminal == "expired" and script.expire_after is not None:
                processed = script.expire_after
            elif terminal in ("expired", "cancelling", "cancelled") and status == "finalizing":
                processed = batch.processed
            else:
                processed = n
        elif status == "expired":
            processed = script.expire_after if script.expire_after is not None else batch.processed
        else:  # cancelling / cancelled
            if previous in ("cancelling", "cancelled"):
                processed = batch.processed
            else:
                processed = self._cancel_count(batch)
        batch.processed = processed = max(0, min(n, processed)) if batch.validated else 0

        if status == "failed":
            batch.errors = list(batch.validation_errors) or [
                _line_error("batch_failed", None, "The batch failed (scripted by fake_openai).")
            ]
            batch.request_counts = {"total": 0, "completed": 0, "failed": 0}
            return
        if not batch.validated:
            return
        self._ensure_outcomes(batch, processed)
        ok = sum(1 for i in range(processed) if batch.outcomes[i][0] == 200)
        failed = processed - ok
        if status in ("expired", "cancelled"):
            failed += n - processed
        batch.request_counts = {"total": n, "completed": ok, "failed": failed}
        if status in _WITH_RESULTS and not batch.results_written:
            batch.results_written = True
            self._write_results(batch, status)

    def _ensure_outcomes(self, batch: FakeBatch, upto: int) -> None:
        for i in range(upto):
            if i not in batch.outcomes:
                batch.outcomes[i] = self._line_outcome(batch, i)

    def _line_outcome(self, batch: FakeBatch, i: int) -> tuple[int, Any, str]:
        line = batch.lines[i]
        cid, body = line["custom_id"], line["body"]
        script = batch.script
        request_id = "req_" + self._new_id()
        reply: Reply | None = None
        if cid in script.result_lines:  # written as given by `_write_results`
            return 500, None, request_id
        if cid in script.http_errors:
            spec = script.http_errors[cid]
            reply = spec if isinstance(spec, Reply) else Reply.error(int(spec))
        elif script.answer is not None:
            try:
                got = script.answer(cid, body)
            except Exception as exc:
                self.errors.append(exc)
                got = Reply.error(
                    500, f"fake_openai batch answer raised {exc!r}", type="server_error"
                )
            if got is not None:
                reply = got if isinstance(got, Reply) else Reply.text(got)
        while reply is not None and reply.kind == "delay":
            reply = reply.inner
        received = Received(
            batch.endpoint, Headers(), body, orjson.dumps(body), time.monotonic(), "POST"
        )
        if reply is None or reply.kind in ("text", "incomplete"):
            text = None if reply is None else reply.content
            usage = None if reply is None else reply.usage
            incomplete = reply is not None and reply.kind == "incomplete"
            return 200, self._payload(received, text, usage, incomplete), request_id
        if reply.kind == "error":
            message = reply.message or "fake error"
            err = orjson.loads(_error_body(reply.status, message, reply.err_type, reply.code))
            return reply.status, err, request_id
        if reply.kind == "raw":
            raw = reply.body or b""
            try:
                parsed: Any = orjson.loads(raw)
            except orjson.JSONDecodeError:
                parsed = raw.decode("utf-8", "replace")
            return reply.status, parsed, request_id
        raise ValueError(f"unknown Reply kind {reply.kind!r}")

    def _write_results(self, batch: FakeBatch, status: str) -> None:
        script = batch.script
        drop = set(script.drop)
        outputs: list[dict] = []
        error_lines: list[Any] = []
        ok_bodies: list[Any] = []
        for i, line in enumerate(batch.lines):
            cid = line["custom_id"]
            if i < batch.processed:
                code, body, request_id = batch.outcomes[i]
                row = {
                    "id": "batch_req_" + self._new_id(),
                    "custom_id": cid,
                    "response": {"status_code": code, "request_id": request_id, "body": body},
                    "error": None,
                }
                if cid in drop:
                    continue
                if cid in script.result_lines:
                    given = script.result_lines[cid]
                    error_lines.append(given.encode() if isinstance(given, str) else given)
                    continue
                if code == 200:
                    outputs.append(row)
                    ok_bodies.append(body)
                else:
                    error_lines.append(row)
            elif cid not in drop:
                expired = status == "expired"
                error_lines.append({
                    "id": "batch_req_" + self._new_id(),
                    "custom_id": cid,
                    "response": None,
                    "error": {
                        "code": "batch_expired" if expired else "batch_cancelled",
                        "message": _EXPIRED_MSG if expired else _CANCELLED_MSG,
                    },
                })
        if script.shuffle is not False:
            seed = 0 if script.shuffle is True else int(script.shuffle)
            rng = random.Random(seed)
            rng.shuffle(outputs)
            rng.shuffle(error_lines)
        batch.outputs, batch.error_lines = outputs, error_lines
        batch.usage = _usage_sum(ok_bodies)

        def jsonl(rows: list[Any]) -> bytes:
            return b"".join((r if isinstance(r, bytes) else orjson.dumps(r)) + b"\n" for r in rows)

        if outputs:
            name = f"{batch.id}_output.jsonl"
            batch.output_file_id = self._store_file(name, "batch_output", jsonl(outputs)).id
        if error_lines:
            name = f"{batch.id}_error.jsonl"
            batch.error_file_id = self._store_file(name, "batch_output", jsonl(error_lines)).id


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


class FakeOpenAI(_BatchAPI):
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
        with self._lock:
            index = len(self._log)
            self._log.append(received)
            queued = self._queue.popleft() if known and self._queue else None

        if not known:
            if path.startswith(_FILES) or path.startswith(_BATCHES):
                return self._batch_api(received)
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
        payload = self._payload(received, text, usage, incomplete)
        if payload is None:
            return web.Response(
                status=400,
                body=_error_body(400, "We could not parse the JSON body of your request.", None, None),
                content_type=_JSON,
            )
        return web.Response(body=orjson.dumps(payload), content_type=_JSON)

    def _payload(
        self, received: Received, text: str | None, usage: Mapping[str, int] | None, incomplete: bool
    ) -> dict | None:
        """The Responses / ChatCompletion object for ``received`` (by its
        path), or ``None`` when there is no text and no parseable body."""
        body = received.body
        if text is None:
            if body is None:
                return None
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
        if self.force_output_tokens is not None:
            n_out, n_total = int(self.force_output_tokens), None
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
        return payload


# --------------------------------------------------------------------------- #
# CLI
# --------------------------------------------------------------------------- #


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Local fake OpenAI-compatible server.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 = pick a free port")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds before each answer")
    parser.add_argument("--cached-tokens", type=int, default=0)
    parser.add_argument(
        "--force-output-tokens", type=int, default=None, metavar="N",
        help="report N output tokens in every usage, past any max_output_tokens",
    )
    args = parser.parse_args(argv)

    server = FakeOpenAI(
        latency=args.latency, cached_tokens=args.cached_tokens, host=args.host, port=args.port,
        force_output_tokens=args.force_output_tokens,
    )

    def ready(url: str) -> None:
        sys.stdout.write(f"READY {url}\n")
        sys.stdout.flush()

    server.serve_forever(on_ready=ready)
    return 0


if __name__ == "__main__":
    sys.exit(main())
