"""A deterministic JSON instance generator for the JSON schemas requests ask for."""

from __future__ import annotations

import hashlib
import random
import threading
from typing import Any, Callable

import orjson

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
