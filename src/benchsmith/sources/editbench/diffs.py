"""Unified diffs in memory: parse (git style or plain `---`/`+++`), the files they touch,
apply them to file texts (context-checked, with patch's offset search and fuzz 1), and the
pre-image fragments they show (lines with their real numbers, gaps as "...")."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from benchsmith.errors import BenchsmithError

_HUNK = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")
_GIT = re.compile(r"^diff --git (?:\"?a/)?(.+?)\"? (?:\"?b/)?(.+?)\"?\s*$")
NO_NEWLINE = "\\ No newline at end of file"
GAP = "..."


class DiffError(BenchsmithError):
    """A diff that cannot be parsed or applied; the message names the file and the hunk."""


@dataclass(frozen=True)
class Hunk:
    old_start: int
    old_len: int
    new_start: int
    new_len: int
    lines: tuple[tuple[str, str], ...]  # (" " | "-" | "+", text without the newline)
    old_no_eol: bool = False  # "\ No newline at end of file" after the last old line
    new_no_eol: bool = False

    @property
    def header(self) -> str:
        return f"@@ -{self.old_start},{self.old_len} +{self.new_start},{self.new_len} @@"

    def old_lines(self) -> list[str]:
        return [t for tag, t in self.lines if tag != "+"]

    def new_lines(self) -> list[str]:
        return [t for tag, t in self.lines if tag != "-"]


@dataclass(frozen=True)
class FileDiff:
    old_path: str | None  # None: the diff creates the file (/dev/null)
    new_path: str | None  # None: the diff deletes the file
    hunks: tuple[Hunk, ...]

    @property
    def path(self) -> str:
        """The path a reader knows the file by: the new one, the old one when deleted."""
        return self.new_path or self.old_path or ""

    @property
    def is_new(self) -> bool:
        return self.old_path is None

    @property
    def is_deleted(self) -> bool:
        return self.new_path is None


def _strip_prefix(p: str) -> str | None:
    p = p.split("\t", 1)[0].strip().strip('"')
    if p == "/dev/null":
        return None
    return p[2:] if p[:2] in ("a/", "b/") else p


def parse(diff: str) -> list[FileDiff]:
    """The file diffs of a unified diff text (one or several files)."""
    lines = diff.split("\n")
    out: list[FileDiff] = []
    i = 0
    git_paths: tuple[str | None, str | None] | None = None
    old: str | None = None
    new: str | None = None
    hunks: list[Hunk] = []
    started = False

    def flush() -> None:
        if started:
            o, n = (old, new)
            if git_paths is not None and o is None and n is None:
                # A git header without ---/+++: empty new/deleted file, rename, mode change.
                o, n = git_paths
                o = None if "new" in git_kind else git_kind.get("from", o)
                n = None if "deleted" in git_kind else git_kind.get("to", n)
            out.append(FileDiff(o, n, tuple(hunks)))

    git_kind: dict[str, str] = {}

    while i < len(lines):
        line = lines[i]
        m = _GIT.match(line)
        if m:
            flush()
            started, hunks = True, []
            git_paths = (m.group(1), m.group(2))
            old = new = None
            git_kind = {}
            i += 1
            continue
        for key, mark in (("new", "new file mode"), ("deleted", "deleted file mode"),
                          ("from", "rename from "), ("to", "rename to ")):
            if git_paths is not None and not hunks and line.startswith(mark):
                git_kind[key] = line[len(mark):].strip()
        if line.startswith("--- ") and i + 1 < len(lines) and lines[i + 1].startswith("+++ "):
            if not started or hunks:
                flush()
                started, hunks, git_paths = True, [], None
            old, new = _strip_prefix(line[4:]), _strip_prefix(lines[i + 1][4:])
            i += 2
            continue
        if line.startswith("@@"):
            if not started:
                raise DiffError(f"diff: hunk {line!r} before any file header (diff --git / ---)")
            hunk, i = _parse_hunk(lines, i, old or new or "?")
            hunks.append(hunk)
            continue
        i += 1  # index, mode, similarity lines and trailing text
    flush()
    return out


def _parse_hunk(lines: list[str], i: int, path: str) -> tuple[Hunk, int]:
    m = _HUNK.match(lines[i])
    if not m:
        raise DiffError(f"{path}: bad hunk header {lines[i]!r}")
    a, b, c, d = m.groups()
    old_start, old_len = int(a), 1 if b is None else int(b)
    new_start, new_len = int(c), 1 if d is None else int(d)
    body: list[tuple[str, str]] = []
    seen_old = seen_new = 0
    old_no_eol = new_no_eol = False
    i += 1
    # Count-driven: a removed line "-- x" or added "++ x" is not mistaken for a header.
    while i < len(lines):
        line = lines[i]
        if line.startswith("\\"):  # "\ No newline at end of file": about the line before
            last = body[-1][0] if body else " "
            old_no_eol = old_no_eol or last in " -"
            new_no_eol = new_no_eol or last in " +"
            i += 1
            continue
        if seen_old >= old_len and seen_new >= new_len:
            break
        tag, text = (line[:1], line[1:]) if line else (" ", "")  # "" = blank context line
        if tag not in " -+":
            break
        body.append((tag, text))
        seen_old += tag != "+"
        seen_new += tag != "-"
        i += 1
    short = old_len - seen_old
    if short > 0 and short == new_len - seen_new and (i >= len(lines) or _is_header(lines[i])):
        # Trailing blank context lines lost with their whitespace (diffs stored stripped,
        # then concatenated): blank lines, as the original tool's trailing padding assumed.
        body.extend([(" ", "")] * short)
        seen_old, seen_new = old_len, new_len
    if seen_old != old_len or seen_new != new_len:
        raise DiffError(
            f"{path}: hunk {lines_header(old_start, old_len, new_start, new_len)} is cut short: "
            f"{seen_old}/{old_len} old and {seen_new}/{new_len} new lines"
        )
    return Hunk(old_start, old_len, new_start, new_len, tuple(body), old_no_eol,
                new_no_eol), i


def _is_header(line: str) -> bool:
    return line.startswith(("diff --git ", "--- ", "@@ "))


def lines_header(a: int, b: int, c: int, d: int) -> str:
    return f"@@ -{a},{b} +{c},{d} @@"


def files_touched(diffs: Iterable[str]) -> list[str]:
    """Paths the diffs touch, in first-touch order (a renamed file by its new path)."""
    seen: dict[str, None] = {}
    for d in diffs:
        for fd in parse(d):
            seen.setdefault(fd.path, None)
    return list(seen)


# --------------------------------------------------------------------------- apply


def _split(text: str) -> tuple[list[str], bool]:
    """(lines, ends with a newline); "" is no lines."""
    if text == "":
        return [], True
    lines = text.split("\n")
    if lines[-1] == "":
        return lines[:-1], True
    return lines, False


def _find(lines: list[str], want: list[str], at: int) -> int | None:
    """Where `want` sits in `lines`: at `at`, else the nearest offset either way (patch)."""
    n, m = len(lines), len(want)
    if m == 0:
        return max(0, min(at, n))
    for off in range(0, n + 1):
        for pos in (at - off, at + off) if off else (at,):
            if 0 <= pos <= n - m and lines[pos:pos + m] == want:
                return pos
    return None


def _apply_hunk(lines: list[str], h: Hunk, delta: int) -> tuple[int, int, int] | None:
    """(position, old lines dropped at the top, at the bottom) where the hunk applies:
    exactly first, then with one edge context line dropped each side (patch's fuzz 1)."""
    tags = [tag for tag, _ in h.lines]
    at = max(h.old_start - 1 + delta, 0) if h.old_len else h.old_start + delta
    old = h.old_lines()
    for fuzz in (0, 1):
        top = 1 if fuzz and tags[0] == " " else 0
        bottom = 1 if fuzz and tags[-1] == " " and len(old) > top + 1 else 0
        if fuzz and not (top or bottom):
            break
        pos = _find(lines, old[top:len(old) - bottom], at + top)
        if pos is not None:
            return pos, top, bottom
    return None


def apply_file(text: str | None, fd: FileDiff) -> str | None:
    """The file's text after `fd` (None: deleted). `text` None: the file does not exist."""
    if fd.is_new and text is not None and text != "":
        raise DiffError(f"{fd.path}: the diff creates the file but it exists already")
    if text is None and not fd.is_new:
        raise DiffError(f"{fd.path}: the diff changes the file but it does not exist")
    lines, eol = _split(text or "")
    delta = 0
    for n, h in enumerate(fd.hunks, 1):
        if not h.lines:
            continue
        found = _apply_hunk(lines, h, delta)
        if found is None:
            raise DiffError(
                f"{fd.path}: hunk {n} ({h.header}) does not apply: its context and removed "
                "lines are not in the file (checked every offset, fuzz 1)"
            )
        pos, top, bottom = found
        old, new = h.old_lines(), h.new_lines()
        lines[pos:pos + len(old) - top - bottom] = new[top:len(new) - bottom]
        delta = pos - top - (h.old_start - 1 if h.old_len else h.old_start) + (
            h.new_len - h.old_len)
        if h.new_no_eol:
            eol = False
        elif h.old_no_eol:
            eol = True
    if fd.is_deleted:
        return None
    if not lines:
        return ""
    return "\n".join(lines) + ("\n" if eol else "")


def apply(files: dict[str, str | None], diffs: Iterable[str]) -> dict[str, str | None]:
    """`files` (path -> text, None: absent) after the diffs, in order; a new dict.

    A path the diffs touch must be in `files` (the caller read it); a renamed file moves.
    """
    out = dict(files)
    for d in diffs:
        for fd in parse(d):
            src = fd.old_path if fd.old_path is not None else fd.path
            if src not in out:
                raise DiffError(f"{src}: the diff touches a file that was not read")
            text = apply_file(out[src], fd)
            if fd.old_path is not None and fd.new_path is not None and fd.old_path != fd.new_path:
                out[fd.old_path] = None
            out[fd.path] = text
    return out


# --------------------------------------------------------------------------- fragments


def _back(h_list: Sequence[Hunk], line: int) -> int | None:
    """The line number before the diff of line `line` after it; None: the diff added it."""
    delta = 0
    for h in h_list:
        new_first = h.new_start if h.new_len else h.new_start + 1
        if line < new_first:
            break
        if line < new_first + h.new_len:
            o, n = h.old_start, h.new_start
            for tag, _ in h.lines:
                if tag == " ":
                    if n == line:
                        return o
                    o, n = o + 1, n + 1
                elif tag == "-":
                    o += 1
                else:
                    if n == line:
                        return None
                    n += 1
            return None
        delta = h.new_len - h.old_len + delta
    return line - delta


@dataclass(frozen=True)
class Fragments:
    """What diffs show of one file's text before them: known lines by number."""

    path: str
    lines: dict[int, str]
    eof: int | None  # the last line's number, when a diff shows the end of the file
    new_file: bool = False  # the first diff creates the file: nothing before it


def fragments(path: str, diffs: Iterable[str]) -> Fragments:
    """The lines of `path` before `diffs` (in order) that their hunks show: context and
    removed lines, mapped back through the earlier diffs to their numbers in that text."""
    known: dict[int, str] = {}
    eof: int | None = None
    later: list[tuple[Hunk, ...]] = []  # hunks of the diffs already walked, in order
    new_file: bool | None = None
    current = path
    for d in diffs:
        for fd in parse(d):
            if fd.path != current and fd.old_path != current:
                continue
            if new_file is None:
                new_file = fd.is_new
            for h in fd.hunks:
                o = h.old_start if h.old_len else h.old_start + 1
                for tag, text in h.lines:
                    if tag == "+":
                        continue
                    origin: int | None = o
                    for hl in reversed(later):
                        if origin is None:
                            break
                        origin = _back(hl, origin)
                    if origin is not None:
                        known.setdefault(origin, text)
                    o += 1
                if h.old_no_eol and not later and h.old_len:
                    eof = h.old_start + h.old_len - 1
            later.append(fd.hunks)
            current = fd.path
    return Fragments(path, known, eof, bool(new_file))


def render_fragments(fr: Fragments) -> str:
    """Known lines as "<number> <text>", runs of unknown lines as one "..." line."""
    if fr.new_file:
        return "(new file: it does not exist before these edits)"
    out: list[str] = []
    prev = 0
    for n in sorted(fr.lines):
        if n != prev + 1:
            out.append(GAP)
        out.append(f"{n} {fr.lines[n]}")
        prev = n
    if fr.eof is None or prev < fr.eof:
        out.append(GAP)
    return "\n".join(out)
