"""Judging batch result lines for ingest: each 200 answer parsed and validated against its
unit's spec ahead of applying it (`batch_answer.judge_answer`), in blocks read from the result
files. The same code runs here and in the helper process (ingest/helper.py).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from benchsmith.config import RunConfig
from benchsmith.engine.batch_answer import Answer, judge_answer, ok_answer_parts
from benchsmith.recipes.base import Recipe, RequestSpec
from benchsmith.store import batches as bstore
from benchsmith.store.ledger import Ledger

FIRST_BLOCKS = 8  # the first blocks are a quarter of the size (see `raw_blocks`)
JUDGE_CHUNK = 500  # lines judged together (one unit query)

# A judged line: (None, custom_id, Answer, (model, stage) of the unit), or (raw line, None,
# None, None). With an Answer (a 200 answer for a unit of the run, judged ahead) the raw line
# is not needed; otherwise the line is parsed and applied as it is.
Entry = tuple["bytes | None", "str | None", "Answer | None", "tuple[str, str] | None"]


def line_hash(raw: bytes) -> str:
    """A line's identity in `ingested_lines`."""
    return hashlib.sha256(raw.strip()).hexdigest()


def raw_blocks(files: list[Path], size: int) -> Iterator[tuple[Path, list[bytes]]]:
    """(file, non-blank lines) for every block, in order: `size` lines, but the first
    FIRST_BLOCKS blocks are a quarter of that (they are judged here while a helper starts)."""
    k = 0
    small = max(size // 4, 1)
    for f in files:
        block: list[bytes] = []
        n = small if k < FIRST_BLOCKS else size
        with f.open("rb") as fh:
            for raw in fh:
                if not raw.strip():
                    continue
                block.append(raw)
                if len(block) >= n:
                    yield f, block
                    block = []
                    k += 1
                    n = small if k < FIRST_BLOCKS else size
        if block:
            yield f, block
            k += 1


class LineJudge:
    """Judges the answers of a block ahead of applying it (`judge_answer`: it needs only the
    unit's spec and model, which never change). Lines it cannot judge are left as they are."""

    def __init__(self, ledger: Ledger, recipe: Recipe, api: str, cfg: RunConfig):
        self.ledger = ledger
        self.recipe = recipe
        self.api = api
        self.price_for = cfg.price_for
        self.multiplier = cfg.batch.price_multiplier
        self._schema: tuple[bytes, Any] | None = None  # (JSON, parsed) of the last spec schema

    def _spec(self, spec_json: bytes) -> RequestSpec:
        """`RequestSpec.from_stored(orjson.loads(spec_json))`, but the spec's schema (the bulk of
        its JSON, the same for every unit of a stage) is parsed once and shared: the specs
        here only serve `judge_answer`, which reads them."""
        cached = self._schema
        key = b'"schema":'
        i = spec_json.find(key) + len(key)
        if cached is not None and i >= len(key) and spec_json.count(key) == 1 and \
                spec_json.startswith(cached[0], i):
            # The value of the only "schema" key is the cached JSON (a JSON value ends where
            # it ends): parse the rest, with null there. If the top level then has "schema"
            # null, the only "schema" key is the top level's: its value was the cached one.
            d = orjson.loads(spec_json[:i] + b"null" + spec_json[i + len(cached[0]) :])
            if "schema" in d and d["schema"] is None:
                d["schema"] = cached[1]
                return RequestSpec.from_stored(d)
        d = orjson.loads(spec_json)
        schema = d.get("schema")
        if isinstance(schema, dict):
            self._schema = (orjson.dumps(schema), schema)
        return RequestSpec.from_stored(d)

    def block(self, lines: list[bytes], hashes: list[str] | None = None) -> list[Entry]:
        """The lines judged. `hashes`: theirs, if known (else worked out as needed)."""
        out: list[Entry] = []
        for i in range(0, len(lines), JUDGE_CHUNK):  # a few hundred at a time: stays in cache
            j = i + JUDGE_CHUNK
            out += self._chunk(lines[i:j], None if hashes is None else hashes[i:j])
        return out

    def _chunk(self, lines: list[bytes], hashes: list[str] | None) -> list[Entry]:
        # Lines already ingested are skipped when applied: not worth judging. Without their
        # hashes, the lines are checked only if the first or the last one was ingested.
        if hashes is None and bstore.seen_lines(
            self.ledger, [line_hash(lines[0]), line_hash(lines[-1])]
        ):
            hashes = [line_hash(raw) for raw in lines]
        seen = bstore.seen_lines(self.ledger, hashes) if hashes is not None else set()
        parts: list[tuple[str, dict[str, Any]] | None] = []
        for i, raw in enumerate(lines):
            p = None
            if not seen or hashes[i] not in seen:  # type: ignore[index]
                try:
                    p = ok_answer_parts(orjson.loads(raw))
                except orjson.JSONDecodeError:
                    pass
            parts.append(p)
        specs = self.ledger.unit_specs([p[0] for p in parts if p is not None])
        out: list[Entry] = []
        for raw, p in zip(lines, parts):
            answer = None
            if p is not None and p[0] in specs:
                model, spec_json = specs[p[0]]
                try:
                    spec = self._spec(spec_json)
                    answer = judge_answer(self.recipe, self.api, self.price_for, self.multiplier,
                                          model, spec, p[1])
                except Exception:  # noqa: BLE001 - left to `apply`, which raises it in place
                    answer = None
            if answer is None or p is None:
                out.append((raw, None, None, None))
            else:
                out.append((None, p[0], answer, (model, spec.stage)))
        return out
