"""`finetune stats`: rows and tokens of a training file, and what training on it costs.

A row's tokens are the tokens of each string in it outside `metadata` and the role tags
(`role`, `from`), counted one string at a time and summed: the ChatML text, the Alpaca
fields, each ShareGPT turn or message content, a preference row's prompt, chosen and
rejected answers. Each string counts alone because a chat template puts special tokens
around every message; those template tokens are not counted. With a `tokenizer.json` the
counts are exact for that tokenizer (`tokenizers`, batch-encoded, no special tokens added;
a string that repeats, such as the system prompt, is encoded once); without one they are an
estimate, UTF-8 bytes / 4 rounded up per string, and say so.
Cost = tokens x epochs x price per 1M tokens / 1e6.
"""

from __future__ import annotations

import gzip
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from benchsmith.errors import ConfigError
from benchsmith.finetune.trajectories import BOM, read_error

SKIPPED_KEYS = frozenset({"metadata", "role", "from"})
ESTIMATE = "estimate: UTF-8 bytes / 4 per string (no --tokenizer given)"
BATCH = 1000  # strings per encode call: bounded memory, full parallelism


@dataclass(frozen=True)
class TokenStats:
    file: str
    rows: int
    tokens_total: int
    tokens_mean: float
    tokens_max: int
    counter: str  # "tokenizer: <path>" or ESTIMATE
    exact: bool
    price_per_1m: float
    epochs: int
    cost_usd: float

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            if k not in SKIPPED_KEYS:
                yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


def row_strings(row: dict[str, Any]) -> list[str]:
    """The strings of a row that training reads (see the module docstring)."""
    return list(_strings(row))


def read_rows(path: Path) -> Iterator[dict[str, Any]]:
    if not path.is_file():
        what = "is a folder" if path.is_dir() else "file not found"
        raise ConfigError(str(path), "", f"{what}: give a train.jsonl or val.jsonl")
    opener: Any = gzip.open if path.name.endswith(".gz") else open
    try:
        with opener(path, "rb") as fh:
            lines = list(enumerate(fh, 1))
    except (OSError, EOFError) as e:
        raise read_error(path, e) from None
    for n, line in lines:
        if n == 1:
            line = line.removeprefix(BOM)  # a UTF-8 byte order mark is not JSON
        if not line.strip():
            continue
        try:
            row = orjson.loads(line)
        except orjson.JSONDecodeError as e:
            raise ConfigError(f"{path}: line {n}", "", f"not valid JSON ({e})") from None
        if not isinstance(row, dict):
            raise ConfigError(f"{path}: line {n}", "", "each line must be a JSON object")
        yield row


def load_tokenizer(path: Path) -> Any:
    if not path.is_file():
        raise ConfigError(str(path), "--tokenizer", "file not found: give a tokenizer.json "
                          "(from a Hugging Face model folder)")
    try:
        from tokenizers import Tokenizer
    except ImportError:
        raise ConfigError("--tokenizer", "", "needs the tokenizers package (a benchsmith "
                          "dependency): pip install tokenizers") from None
    try:
        return Tokenizer.from_file(str(path))
    except Exception as e:  # the Rust side raises its own exception type for any bad file
        raise ConfigError(str(path), "--tokenizer", f"not a tokenizers tokenizer.json: "
                          f"{str(e).splitlines()[0] if str(e) else type(e).__name__}") from None


def count_tokens(texts: list[str], tokenizer: Any = None) -> list[int]:
    """Tokens per text: exact with `tokenizer` (each distinct text encoded once), else the
    bytes/4 estimate."""
    if tokenizer is None:
        return [-(-len(t.encode("utf-8")) // 4) for t in texts]
    # encode_batch_fast (tokenizers >= 0.20) skips offsets: the same ids, twice as fast
    encode = getattr(tokenizer, "encode_batch_fast", tokenizer.encode_batch)
    distinct = list(dict.fromkeys(texts))
    known: dict[str, int] = {}
    for i in range(0, len(distinct), BATCH):
        chunk = distinct[i:i + BATCH]
        for text, enc in zip(chunk, encode(chunk, add_special_tokens=False)):
            known[text] = len(enc)  # the token count, without building the ids list
    return [known[t] for t in texts]


def stats(file: Path, tokenizer: Path | None = None, price_per_1m: float = 3.0,
          epochs: int = 3) -> TokenStats:
    """Rows, tokens (total, mean, max per row) and the training cost of `file`."""
    if not math.isfinite(price_per_1m) or price_per_1m < 0:
        raise ConfigError("--price-per-1m", "", f"{price_per_1m}: give the training price in "
                          "USD per 1M tokens, a number >= 0 (e.g. 3.0)")
    if epochs < 1:
        raise ConfigError("--epochs", "", f"{epochs}: give at least 1")
    tok = load_tokenizer(tokenizer) if tokenizer is not None else None
    per_row = [row_strings(r) for r in read_rows(file)]
    flat = count_tokens([t for strings in per_row for t in strings], tok)
    counts, at = [], 0
    for strings in per_row:
        counts.append(sum(flat[at:at + len(strings)]))
        at += len(strings)
    total = sum(counts)
    return TokenStats(
        file=str(file), rows=len(counts), tokens_total=total,
        tokens_mean=round(total / len(counts), 1) if counts else 0.0,
        tokens_max=max(counts, default=0),
        counter=f"tokenizer: {tokenizer}" if tok is not None else ESTIMATE,
        exact=tok is not None, price_per_1m=price_per_1m, epochs=epochs,
        cost_usd=round(total * epochs * price_per_1m / 1e6, 4),
    )
