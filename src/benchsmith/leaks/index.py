"""Gold lines of a task, indexed once, and the check of texts against them.

A task's gold (its patch, tests, canonical solution) is cut into normalised lines: for a
unified diff its added lines (removed ones only if asked: they are the code before the fix,
which a prompt showing the files holds by construction), for anything else its lines, each
stripped of surrounding whitespace. Lines shorter than `min_line_chars` or on the stop-list say nothing
about the answer and are left out. A gold list or dict is each string inside it, indexed
on its own. A text leaks a gold line when it contains it verbatim, or JSON-escaped (a
prompt shows a list or dict field as JSON, where quotes and backslashes are escaped).
Gold that is not line-shaped (a value whose lines average over `min_shared_chars`: JSON, a
paragraph; code and diffs are matched by whole lines) is also cut into
`min_shared_chars // 2` character pieces, so a text sharing `min_shared_chars` or more of it
contains a whole piece; a piece found is then grown both ways and counts only if the shared
stretch reaches `min_shared_chars`. That search is bounded, so repetitive gold against a
repetitive text stays cheap: a piece inside a stretch already found is skipped, a piece
is tried at no more than `_MAX_PLACES` places of the text, and the first place giving a
long enough stretch ends it.

The check is a handful of `str.__contains__` scans per gold line, so it costs microseconds
per request: cheap enough for the online hot path.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from json.encoder import encode_basestring  # what json.dumps(ensure_ascii=False) uses
from typing import Any

# Lines long enough to pass the length threshold that still say nothing about an answer.
DEFAULT_STOP_LINES = (
    'if __name__ == "__main__":',
    "if __name__ == '__main__':",
    "from __future__ import annotations",
    "from __future__ import absolute_import",
    "from __future__ import print_function",
    "from __future__ import unicode_literals",
    "# -*- coding: utf-8 -*-",
    "raise NotImplementedError()",
    "def __init__(self, *args, **kwargs):",
    "super().__init__(*args, **kwargs)",
    "return",
    "pass",
    "}",
)
SAMPLE_CHARS = 80
_MAX_PLACES = 8  # places of the text one gold piece is tried at


@dataclass(frozen=True)
class LeakSettings:
    """What counts as a leak (config section `leaks`, see config_sections.LeakConfig)."""

    min_line_chars: int = 25
    min_shared_chars: int = 80
    stop_lines: tuple[str, ...] = DEFAULT_STOP_LINES
    diff_lines: tuple[str, ...] = ("added",)

    @classmethod
    def from_config(cls, lc: Any) -> LeakSettings:
        """From the config's `leaks` section (config_sections.LeakConfig)."""
        stop = DEFAULT_STOP_LINES if lc.stop_lines is None else tuple(s.strip() for s in lc.stop_lines)
        return cls(lc.min_line_chars, lc.min_shared_chars, stop, tuple(lc.diff_lines))


@dataclass(frozen=True)
class GoldIndex:
    """One task's gold, ready to be checked against: (gold field, line) pairs and the
    (gold field, long line, piece start, piece) of lines too long to need whole."""

    lines: tuple[tuple[str, str], ...]
    pieces: tuple[tuple[str, str, int, str], ...]
    min_shared: int

    @cached_property
    def escaped(self) -> tuple[tuple[str, str, str, str], ...]:
        """(gold field, line, the line as a JSON string shows it, its first escape such as
        `\\"`) for the lines JSON escapes; worked out the first time a text has a backslash."""
        plain = [s for _, s in self.lines]
        return tuple(
            (name, s, e[1:-1], e[e.index("\\"):][:2])
            for (name, s), e in zip(self.lines, map(encode_basestring, plain))
            if len(e) != len(s) + 2  # escaping lengthens a line, and only then
        )

    @property
    def empty(self) -> bool:
        return not self.lines


@dataclass(frozen=True)
class LeakFinding:
    """Which texts carry gold: the text names in the order given, the distinct gold lines
    (or shared stretches) found in them, per text, the gold fields matched, and a sample."""

    fields: tuple[str, ...] = ()
    matched: int = 0
    sample: str = ""
    gold_fields: tuple[str, ...] = ()
    lines: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def leaks(self) -> bool:
        return self.matched > 0

    def to_dict(self) -> dict[str, Any]:
        return {"fields": list(self.fields), "matched": self.matched, "sample": self.sample,
                "gold_fields": list(self.gold_fields)}


NO_LEAK = LeakFinding()


def strings_of(value: Any) -> Iterator[str]:
    """The texts a field's value holds: a string itself; the keys and values of a list or
    dict, nested; a number or boolean as JSON writes it (ints of any width)."""
    if value is None:
        return
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for k, v in value.items():
            yield from strings_of(k)
            yield from strings_of(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from strings_of(v)
    elif isinstance(value, (bool, int, float)):
        yield json.dumps(value)
    else:
        yield str(value)


def as_text(value: Any) -> str:
    """A field's value as text: its strings (see `strings_of`) one per line."""
    return value if isinstance(value, str) else "\n".join(strings_of(value))


def escaped_forms(line: str) -> list[str]:
    """How `line` reads inside a JSON string, as prompts write one (non-ASCII kept), where
    that differs from the line itself."""
    e = encode_basestring(line)[1:-1]
    return [e] if e != line else []


def is_diff(text: str) -> bool:
    return "\n@@ " in text and ("\n+++ " in text or text.startswith("--- ") or "\n--- " in text)


def line_shaped(text: str, min_shared: int) -> bool:
    """Whether a gold value's lines are its units (a diff, code), not one long stretch (JSON,
    prose): its non-blank lines are `min_shared` characters long or less on average."""
    if is_diff(text):
        return True
    lens = [len(s) for s in (ln.strip() for ln in text.splitlines()) if s]
    return not lens or sum(lens) / len(lens) <= min_shared


def gold_lines(text: str, settings: LeakSettings) -> list[str]:
    """The normalised lines of one gold value worth matching (see the module docstring)."""
    stop = set(settings.stop_lines)
    out: list[str] = []
    if is_diff(text):
        signs = {"added": "+", "removed": "-"}
        keep = tuple(signs[s] for s in settings.diff_lines if s in signs)
        raw = (
            ln[1:] for ln in text.splitlines()
            if ln[:1] in keep and not ln.startswith(("+++ ", "--- "))
        )
    else:
        raw = iter(text.splitlines())
    for ln in raw:
        s = ln.strip()
        if len(s) >= settings.min_line_chars and s not in stop:
            out.append(s)
    return out


def build_index(gold: Mapping[str, Any], settings: LeakSettings) -> GoldIndex:
    """Index a task's gold fields ({name: value}); built once per task."""
    seen: set[str] = set()
    lines: list[tuple[str, str]] = []
    pieces: list[tuple[str, str, int, str]] = []
    step = max(1, settings.min_shared_chars // 2)
    for name, value in gold.items():
        for text in (value,) if isinstance(value, str) else strings_of(value):
            shaped = line_shaped(text, settings.min_shared_chars)
            for s in gold_lines(text, settings):
                if s in seen:
                    continue
                seen.add(s)
                lines.append((name, s))
                if not shaped and len(s) > settings.min_shared_chars:
                    pieces.extend((name, s, i, s[i:i + step])
                                  for i in range(0, len(s) - step + 1, step))
    return GoldIndex(tuple(lines), tuple(pieces), settings.min_shared_chars)


def _same_ahead(a: str, i: int, b: str, j: int) -> int:
    """How many characters `a[i:]` and `b[j:]` share from their start (slices compared in
    doubling steps, then halved: C-speed, no loop per character)."""
    n = min(len(a) - i, len(b) - j)
    lo, step = 0, 64
    while lo < n:
        k = min(step, n - lo)
        if a[i + lo:i + lo + k] != b[j + lo:j + lo + k]:
            while k > 1:
                half = k // 2
                if a[i + lo:i + lo + half] == b[j + lo:j + lo + half]:
                    lo += half
                    k -= half
                else:
                    k = half
            return lo
        lo += k
        step *= 2
    return n


def _same_behind(a: str, i: int, b: str, j: int) -> int:
    """How many characters `a[:i]` and `b[:j]` share at their end."""
    n = min(i, j)
    lo, step = 0, 64
    while lo < n:
        k = min(step, n - lo)
        if a[i - lo - k:i - lo] != b[j - lo - k:j - lo]:
            while k > 1:
                half = k // 2
                if a[i - lo - half:i - lo] == b[j - lo - half:j - lo]:
                    lo += half
                    k -= half
                else:
                    k = half
            return lo
        lo += k
        step *= 2
    return n


def _shared_around(line: str, start: int, piece: str, text: str, need: int
                   ) -> tuple[int, int] | None:
    """The span of `line` around `line[start:]`'s piece that `text` holds at one of the
    piece's first `_MAX_PLACES` places, the first reaching `need` characters (else None)."""
    at = text.find(piece)
    for _ in range(_MAX_PLACES):
        if at < 0:
            return None
        end = start + len(piece)
        lo = start - _same_behind(line, start, text, at)
        hi = end + _same_ahead(line, end, text, at + len(piece))
        if hi - lo >= need:
            return lo, hi
        at = text.find(piece, at + 1)
    return None


def _piece_hits(index: GoldIndex, text: str, whole: set[str], hits: list[str],
                gold_hit: dict[str, None]) -> None:
    """Add to `hits` the long shared stretches of `text` with the index's pieces."""
    covered: dict[str, list[tuple[int, int]]] = {}  # line -> spans found in this text
    for g, line, start, piece in index.pieces:
        if line in whole:
            continue
        end = start + len(piece)
        spans = covered.setdefault(line, [])
        if any(lo <= start and end <= hi for lo, hi in spans) or piece not in text:
            continue
        span = _shared_around(line, start, piece, text, index.min_shared)
        if span is None:
            continue
        spans.append(span)
        stretch = line[span[0]:span[1]]
        if stretch not in whole:
            whole.add(stretch)
            hits.append(stretch)
            gold_hit[g] = None


def find(index: GoldIndex, texts: Mapping[str, str]) -> LeakFinding:
    """The gold of `index` that `texts` ({name: text}) carry verbatim."""
    if index.empty:
        return NO_LEAK
    found: dict[str, list[str]] = {}
    gold_hit: dict[str, None] = {}
    for name, text in texts.items():
        if not text:
            continue
        hits: list[str] = []
        for g, s in index.lines:
            if s in text:
                hits.append(s)
                gold_hit[g] = None
        whole = set(hits)
        if "\\" in text and index.escaped:  # each escaped form has a backslash
            # a form is looked for only if the text holds its first escape (`\"`, `\\`, ...)
            has: dict[str, bool] = {}
            for g, s, e, esc in index.escaped:
                ok = has.get(esc)
                if ok is None:
                    ok = has[esc] = esc in text
                if ok and s not in whole and e in text:
                    whole.add(s)
                    hits.append(s)
                    gold_hit[g] = None
        if index.pieces:
            _piece_hits(index, text, whole, hits, gold_hit)
        if hits:
            found[name] = hits
    if not found:
        return NO_LEAK
    distinct = {s for hits in found.values() for s in hits}
    first = next(iter(found.values()))[0]
    return LeakFinding(
        fields=tuple(found), matched=len(distinct), sample=first[:SAMPLE_CHARS],
        gold_fields=tuple(gold_hit),
        lines={k: tuple(v) for k, v in found.items()},
    )
