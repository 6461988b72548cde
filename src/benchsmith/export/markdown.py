"""Markdown for untrusted text: escaping, code spans and fences, table rows, relative links,
and portable file-name parts.

Pure text helpers: nothing here reads or writes files.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import unicodedata
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import quote

__all__ = [
    "code_span",
    "fenced",
    "link",
    "md_block",
    "md_cell",
    "md_inline",
    "safe_name",
    "short_hash",
    "shown_id",
    "table_row",
]

NAME_MAX_CHARS = 60  # of the task / dataset part of a file name
NAME_MAX_BYTES = 120  # same, UTF-8 encoded (file systems cap names at 255 bytes)


# --------------------------------------------------------------------------- Markdown


_INLINE = re.compile(r"[\\`*_\[\]<>|#~]")  # each gets a backslash
_ESCAPES = str.maketrans({c: "\\" + c for c in "\\`*_[]<>|#~"})
# Line starts that would make a list, quote, heading underline or thematic break.
_LINE_START = re.compile(r"^(\s*)(\d*)([-+=>.)])")


def _escape_line(line: str) -> str:
    # Most lines need no escape: a search is 5x cheaper than a substitution.
    s = line.translate(_ESCAPES) if _INLINE.search(line) else line
    m = _LINE_START.match(s)
    if m and (m.group(2) or m.group(3) in "-+=>"):
        s = m.group(1) + m.group(2) + "\\" + m.group(3) + s[m.end():]
    return s


def md_inline(text: Any) -> str:
    """One line of escaped Markdown (safe in headings, list items and table cells)."""
    return _escape_line(" ".join(str(text).split()))


def md_block(text: Any, indent: str = "") -> str:
    """Escaped Markdown keeping line breaks; continuation lines get `indent`."""
    raw = str(text).splitlines()
    if len(raw) <= 1:  # the usual case: one line
        return _escape_line(raw[0].strip()) if raw else ""
    lines = [ln.strip() for ln in raw]
    out = []
    for i, ln in enumerate(lines):
        esc = _escape_line(ln)
        if i and esc:
            esc = indent + esc
        out.append(esc)
    # A blank line would end the paragraph / list item; keep structure with a hard break.
    return "  \n".join(x for x in out if x) or ""


def md_cell(text: Any, limit: int | None = None) -> str:
    """A table cell: one escaped line, cut to `limit` characters with an ellipsis."""
    s = " ".join(str(text).split())
    if limit is not None and len(s) > limit:
        s = s[: limit - 1] + "…"
    return md_inline(s)


def _longest_backticks(text: str) -> int:
    if "`" not in text:  # the usual case, without a regex
        return 0
    return max((len(m) for m in re.findall(r"`+", text)), default=0)


def code_span(text: Any) -> str:
    """An inline code span longer than any backtick run in `text` (whitespace folded)."""
    s = " ".join(str(text).split())
    if s and "`" not in s:  # the usual case: no padding, one backtick
        return f"`{s}`"
    tick = "`" * (_longest_backticks(s) + 1)
    pad = " " if s.startswith("`") or s.endswith("`") or not s.strip() else ""
    return f"{tick}{pad}{s}{pad}{tick}"


def shown_id(task_id: str) -> str:
    """The id as is, or as a JSON string when whitespace or control characters would hide it."""
    if task_id and task_id == " ".join(task_id.split()) and task_id.isprintable():
        return task_id
    return json.dumps(task_id, ensure_ascii=False)


def fenced(text: str, info: str = "text") -> str:
    """A fenced code block longer than any backtick run in `text`."""
    fence = "`" * max(3, _longest_backticks(text) + 1)
    body = text if text.endswith("\n") else text + "\n"
    return f"{fence}{info}\n{body}{fence}\n"


def link(from_dir: Path, target: Path) -> str:
    """URL-quoted relative link from a file in `from_dir` to `target`."""
    rel = os.path.relpath(target, from_dir).replace(os.sep, "/")
    return quote(rel, safe="/")


def table_row(cells: list[str]) -> str:
    """A table row; an empty cell gets a space so the row keeps its columns."""
    return "| " + " | ".join(c if c else " " for c in cells) + " |"


# --------------------------------------------------------------------------- file names


_WINDOWS_RESERVED = {
    "con", "prn", "aux", "nul", "conin$", "conout$",
    *(f"com{i}" for i in range(10)), *(f"lpt{i}" for i in range(10)),
}


def short_hash(text: str) -> str:
    """First 8 hex characters of the text's SHA-256 (lone surrogates allowed)."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:8]


def safe_name(name: str, *, reserved: Iterable[str] = ()) -> str:
    """A readable, portable file-name part for an arbitrary id.

    Letters, digits, `_`, `-` and `.` are kept (Unicode letters too, NFC-normalised); any other
    run of characters becomes `_`; leading and trailing dots, dashes and underscores go; the
    result is capped. If anything was changed, or the result is empty, a Windows device name
    or in `reserved` (compared case-insensitively), `_<8 hex of the original>` is appended so
    distinct ids keep distinct names. Never contains a path separator, never starts with `.`.
    """
    text = unicodedata.normalize("NFC", str(name))
    out = re.sub(r"[^\w.-]+", "_", text)
    out = re.sub(r"\.{2,}", "_", out)
    altered = out != text
    if altered:
        out = re.sub(r"_{2,}", "_", out)
    stripped = out.strip("._- ")
    altered = altered or stripped != out
    out = stripped
    if len(out) > NAME_MAX_CHARS:
        out, altered = out[:NAME_MAX_CHARS], True
    while len(out.encode("utf-8")) > NAME_MAX_BYTES:
        out, altered = out[:-1], True
    out = out.rstrip("._- ")
    low = out.lower()
    device = low.split(".")[0] in _WINDOWS_RESERVED  # CON, con.txt, ... even with a suffix
    if device:
        out = out.replace(".", "_")
    clash = not out or device or low in {r.lower() for r in reserved}
    if altered or clash:
        out = f"{out}_{short_hash(str(name))}" if out else f"id_{short_hash(str(name))}"
    return out
