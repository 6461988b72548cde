"""Agentless-style SEARCH/REPLACE repairs: parse them, apply them, render a git diff.

An answer names a file with a ``### path/to/file.py`` line, then gives one or more blocks::

    <<<<<<< SEARCH
    old lines
    =======
    new lines
    >>>>>>> REPLACE

Fences (with or without a language), surrounding prose and ``\\r\\n`` line ends are tolerated.
A block without its own ``###`` line edits the file named last. Markers must be the exact
seven-character ones (leading/trailing spaces allowed, except before ``=======``), so that
``=====`` underlines or ``###`` comments inside the edited text are taken as text. Everything
is pure: no I/O, results are frozen dataclasses, problems are issue strings, never exceptions.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field

_SEARCH = re.compile(r"^\s*<{7}\s*SEARCH\s*$")
_DIVIDER = re.compile(r"^={7}\s*$")
_REPLACE = re.compile(r"^\s*>{7}\s*REPLACE\s*$")
_HEADER = re.compile(r"^\s*###\s+(.+?)\s*$")
_FENCE = re.compile(r"^\s*(```|~~~)")
_FILE_PREFIX = re.compile(r"^(?:file|path)\s*:\s*", re.IGNORECASE)

MALFORMED = "malformed edit block"
NO_BLOCKS = "no SEARCH/REPLACE edit blocks found"
NOT_PROVIDED = "file not provided:"
NOT_FOUND = "search text not found in"
NO_CHANGE = "edit makes no change"
EMPTY_SEARCH = "empty search text in"


@dataclass(frozen=True)
class Edit:
    """Replace ``search`` by ``replace`` in ``path``; both are whole lines, each ending in \\n."""

    path: str
    search: str
    replace: str


@dataclass(frozen=True)
class ParseResult:
    edits: list[Edit] = field(default_factory=list)
    issues: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ApplyResult:
    new_files: dict[str, str] = field(default_factory=dict)  # only the files that changed
    issues: list[str] = field(default_factory=list)


# ---------------------------------------------------------------- parsing


def _clean_path(raw: str) -> str | None:
    """The file named by a ``###`` header, or None when the header is prose (has spaces)."""
    p = raw.strip().strip("`*'\"").strip()
    p = _FILE_PREFIX.sub("", p).strip("`*'\"").strip()
    while p.startswith("./"):
        p = p[2:]
    if not p or any(c.isspace() for c in p):
        return None
    return p


def _joined(lines: list[str]) -> str:
    return "".join(line + "\n" for line in lines)


def parse_edits(answer: str) -> ParseResult:
    """All well-formed edits of ``answer`` in order, plus one issue per malformed block.

    Issues start with ``malformed edit block at line N:`` (N counts from 1 in the answer), or
    are ``no SEARCH/REPLACE edit blocks found`` when the answer has no block at all. When a
    block lacks its ``>>>>>>> REPLACE`` and another block starts, the lines in between are
    read again as prose, so a ``### path`` header there still applies to the next block.
    """
    lines = answer.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    edits: list[Edit] = []
    issues: list[str] = []
    path: str | None = None
    i = 0
    seen_block = False
    while i < len(lines):
        line = lines[i]
        if _SEARCH.match(line):
            seen_block = True
            start = i
            search: list[str] = []
            replace: list[str] = []
            in_replace = False
            error: str | None = None
            j = i + 1
            while j < len(lines):
                cur = lines[j]
                if _REPLACE.match(cur):
                    if not in_replace:
                        error = "missing ======="
                    break
                if _SEARCH.match(cur):
                    error = "missing >>>>>>> REPLACE" if in_replace else "missing ======="
                    break
                if not in_replace and _DIVIDER.match(cur):
                    in_replace = True
                elif in_replace:
                    replace.append(cur)
                else:
                    search.append(cur)
                j += 1
            else:
                error = "missing >>>>>>> REPLACE" if in_replace else "missing ======="
            where = f"{MALFORMED} at line {start + 1}"
            if error is not None:
                issues.append(f"{where}: {error}")
                if j < len(lines) and _SEARCH.match(lines[j]):
                    # re-read the broken block's lines as prose (they may name the next file)
                    i = start + 1
                    continue
                i = j + 1
                continue
            if path is None:
                issues.append(
                    f"{where}: no file path (expected a '### path/to/file.py' line before it)"
                )
            else:
                edits.append(Edit(path, _joined(search), _joined(replace)))
            i = j + 1
            continue
        if _REPLACE.match(line):
            issues.append(f"{MALFORMED} at line {i + 1}: >>>>>>> REPLACE without <<<<<<< SEARCH")
            seen_block = True
        elif not _FENCE.match(line):
            m = _HEADER.match(line)
            if m:
                path = _clean_path(m.group(1)) or path
        i += 1
    if not seen_block:
        issues.append(NO_BLOCKS)
    return ParseResult(edits, issues)


# ---------------------------------------------------------------- applying


def split_lines(text: str) -> list[str]:
    """Lines of ``text`` split on ``\\n`` only, each keeping its end (the last may lack one).

    Unlike ``str.splitlines`` this leaves ``\\f``, ``\\x1c`` and friends inside their line,
    as git does.
    """
    parts = text.split("\n")
    out = [p + "\n" for p in parts[:-1]]
    if parts[-1]:
        out.append(parts[-1])
    return out


def _exact(text: str, search: str) -> int:
    """Index of the first occurrence of ``search`` that starts a line, or -1."""
    start = 0
    while True:
        k = text.find(search, start)
        if k <= 0 or text[k - 1] == "\n":
            return k
        start = k + 1


def _loose(text: str, search: str, replace: str) -> str | None:
    """Line-by-line match ignoring trailing whitespace (and \\r); None when not found.

    The replacement takes the line end of the matched lines (``\\r\\n`` stays ``\\r\\n``) and,
    when the match ends the file without a final newline, ends without one too.
    """
    have = split_lines(text)
    want = [s.rstrip() for s in search.split("\n")[:-1]]
    n = len(want)
    for k in range(len(have) - n + 1):
        if all(have[k + t].rstrip() == want[t] for t in range(n)):
            eol = "\r\n" if have[k].endswith("\r\n") else "\n"
            new = [r + eol for r in replace.split("\n")[:-1]]
            if new and not have[k + n - 1].endswith("\n"):
                new[-1] = new[-1][: -len(eol)]
            return "".join(have[:k] + new + have[k + n:])
    return None


def _first_line(search: str) -> str:
    for line in search.split("\n"):
        if line.strip():
            return line.strip()
    return ""


def apply_edits(files: dict[str, str], edits: list[Edit]) -> ApplyResult:
    """Apply ``edits`` in order to ``files`` (path -> text); later edits see earlier changes.

    Each SEARCH text is looked up first exactly (at a line start), then line by line ignoring
    trailing whitespace; only its first occurrence is replaced. A failing edit is skipped with
    an issue and the others still apply. Issue prefixes: ``file not provided: <path>``,
    ``search text not found in <path>: <first line>``, ``empty search text in <path>``,
    ``edit makes no change`` (for one edit whose replacement equals the found text, and for
    a set of edits that together leave every file as it was). ``new_files`` holds only files
    whose final text differs from the original.
    """
    current: dict[str, str] = {}
    issues: list[str] = []
    for e in edits:
        if e.path not in files:
            issues.append(f"{NOT_PROVIDED} {e.path}")
            continue
        if not e.search.strip():
            issues.append(f"{EMPTY_SEARCH} {e.path} (quote the lines to change)")
            continue
        text = current.get(e.path, files[e.path])
        k = _exact(text, e.search)
        if k >= 0:
            new = text[:k] + e.replace + text[k + len(e.search):]
        else:
            loose = _loose(text, e.search, e.replace)
            if loose is None:
                issues.append(f"{NOT_FOUND} {e.path}: {_first_line(e.search)}")
                continue
            new = loose
        if new == text:
            issues.append(f"{NO_CHANGE} in {e.path}: {_first_line(e.search)}")
        current[e.path] = new
    changed = {p: t for p, t in current.items() if t != files[p]}
    if edits and not changed and not issues:
        issues.append(f"{NO_CHANGE}: the edits leave every file as it was")
    return ApplyResult(changed, issues)


# ---------------------------------------------------------------- diff


def _hunks(old: str, new: str) -> list[str]:
    out = []
    body = difflib.unified_diff(split_lines(old), split_lines(new), n=3, lineterm="\n")
    for k, line in enumerate(body):
        if k < 2:  # difflib's own ---/+++ lines; git-style headers are written by the caller
            continue
        if not line.endswith("\n"):
            line += "\n\\ No newline at end of file\n"
        out.append(line)
    return out


def unified_diff(old_files: dict[str, str], new_files: dict[str, str]) -> str:
    """A git-style patch turning ``old_files`` into ``new_files`` for the paths that differ.

    Paths of ``new_files`` missing from ``old_files`` become new files (mode 100644). Files
    come in sorted order with 3 lines of context; a missing final newline is marked with
    ``\\ No newline at end of file``. Returns "" when nothing changed. Paths are written
    unquoted, so they should not hold spaces, tabs, quotes or newlines.
    """
    parts: list[str] = []
    for path in sorted(new_files):
        new = new_files[path]
        is_new = path not in old_files
        old = old_files.get(path, "")
        if not is_new and old == new:
            continue
        parts.append(f"diff --git a/{path} b/{path}\n")
        if is_new:
            parts.append("new file mode 100644\n")
            if not new:
                continue  # an empty new file has no hunks (and no ---/+++ lines)
        parts.append("--- /dev/null\n" if is_new else f"--- a/{path}\n")
        parts.append(f"+++ b/{path}\n")
        parts.extend(_hunks(old, new))
    return "".join(parts)
