"""Why an attempt failed, from its test output: a category and the first actionable error.

Reads pytest, Django (`runtests.py`, unittest style) and sympy `bin/test` output, raw or as
the SWE-bench harness writes it (`test_output.txt`, whose test run lies between
`>>>>> Start Test Output` and `>>>>> End Test Output`; `run_instance.log`, which holds
`>>>>> Patch Apply Failed` and the `git apply` / `patch` errors).

Categories, in precedence order (the first that applies wins):

1. ``patch_apply_failure``: the patch (or the test patch after it) did not apply: the
   harness marker, `git apply` errors (`error: patch failed`, `corrupt patch`, `patch does
   not apply`), GNU patch (`Hunk #1 FAILED`, `malformed patch`). Searched in the whole text.
2. ``timeout``: the harness's timeout lines, pytest-timeout's, a line saying "timed out",
   or a raised `*Timeout*` exception (TimeoutError, subprocess.TimeoutExpired).
3. ``syntax_error``: SyntaxError / IndentationError / TabError raised anywhere, even inside
   an import chain (the import failed because of it).
4. ``import_error``: ImportError / ModuleNotFoundError, "cannot import name".
5. ``assertion_failure``: AssertionError, pytest's `E   assert ...` lines and `Failed:`
   (e.g. DID NOT RAISE), unittest's `FAIL:` headers, doctest failures.
6. ``exception:<Type>``: the first other exception raised, by position; dotted names are
   reduced to the class name (`django.core.exceptions.ImproperlyConfigured` ->
   `exception:ImproperlyConfigured`).
7. ``no_tests_run``: "no tests ran", "collected 0 items", "Ran 0 tests", sympy's "tests
   finished: 0 passed".
8. ``patch_apply_failure`` again when the output says nothing and the patch itself is not a
   well-formed unified diff (no hunk, or hunk line counts that do not match the header).
9. ``unknown``.

Categories 2-7 are read from the harness's test region when it has one, then (when the
region tells nothing) from the rest of the log; the patch and timeout markers from all of
it. Exception names are only taken where a runner prints a raised exception: at the start
of a line, after pytest's `E` prefix, after ` - ` in a `FAILED`/`ERROR` summary line, as the
`path:line: Name` line ending a pytest traceback, or as the line ending a `Traceback (most
recent call last):` block — never from diff or source lines, which are indented or
prefixed. Every pattern is compiled once and each is one linear scan (about 50 ms per MB).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

START_TEST_OUTPUT = ">>>>> Start Test Output"
END_TEST_OUTPUT = ">>>>> End Test Output"

CATEGORIES = ("patch_apply_failure", "timeout", "syntax_error", "import_error",
              "assertion_failure", "exception:<Type>", "no_tests_run", "unknown")

MAX_LINE_CHARS = 400  # one line of error context
MAX_CONTEXT_CHARS = 4000  # the whole error context
MAX_NAME_CHARS = 100  # an exception class name

# Markers found anywhere (run_instance.log prefixes them with time and level); the patterns
# are anchored at line starts.
_PATCH_APPLY_MARKERS = (">>>>> Patch Apply Failed",)
_PATCH_APPLY = re.compile(
    r"^(?:error: patch failed"
    r"|error: corrupt patch"
    r"|error: [^\n]*: patch does not apply"
    r"|error: No valid patches in input"
    r"|error: unrecognized input"
    r"|fatal: corrupt patch"
    r"|Hunk #\d+ FAILED"
    r"|(?:patch: \*\*\*\* )?(?:malformed patch|Only garbage was found in the patch input)"
    r"|Patch failed)",
    re.M,
)
_TIMEOUT_MARKERS = ("Test timed out after ", ">>>>> Tests Timed Out")
_TIMEOUT = re.compile(
    r"^(?:Timeout error: \d+ seconds exceeded"  # appended to test_output.txt by the harness
    r"|\++ Timeout \++"  # pytest-timeout banner
    r"|E?[ \t]*Failed: Timeout >"  # pytest-timeout, signal method
    r"|Timeout \(\d+:\d\d:\d\d\)!)",  # faulthandler dump
    re.M,
)
_TIMED_OUT = "timed out"
_CANNOT_IMPORT = "cannot import name "
_NOT_OUTPUT = (" ", "\t", "+", "-", "@", "")  # first characters of diff, source, frame lines

_NAME = r"(?:[A-Za-z_]\w*\.)*[A-Z]\w*"
# Outside a traceback, a name counts as an exception only if it looks like one (not a
# warning: printed warnings are not raised).
_EXC_NAME = (r"(?:[A-Za-z_]\w*\.)+[A-Z]\w*"
             r"|[A-Z]\w*(?:Error|Exception|Exit|Interrupt|Iteration|Failure|Failed"
             r"|Expired|Timeout)"
             r"|Failed")
_RAISED = re.compile(
    rf"^(?:E[ \t]+|(?:FAILED|ERROR) [^\n]*? - )?(?P<n>{_EXC_NAME})(?=:[ \t]|:?[ \t]*\r?$)"
    rf"|^[^\s:][^:\n]*:\d+: (?P<loc>{_NAME})\r?$",  # pytest: "tests/test_x.py:5: TypeError"
    re.M,
)
_TRACEBACK = re.compile(r"^Traceback \(most recent call last\):[ \t]*\r?$", re.M)
_TB_END = re.compile(rf"({_NAME})(?::|[ \t]*\r?$)")
_ASSERT = re.compile(
    r"^(?:E[ \t]+assert\b"  # pytest's rewritten assert
    r"|FAILED [^\n]*? - assert\b"
    r"|[^\s:][^:\n]*:\d+: DocTestFailure)",
    re.M,
)
# unittest / Django: a failed assertion (ERROR: is an exception); the context is centred on
# the AssertionError line below it when there is one.
_FAIL_HEADER = re.compile(r"^FAIL: ", re.M)
_NO_TESTS = re.compile(
    r"^(?:=+ )?(?:no tests ran\b|collected 0 items\b|Ran 0 tests\b|tests finished: 0 passed, in\b"
    r"|ERROR: file or directory not found:|ERROR: not found:)",
    re.M,
)
_HUNK = re.compile(r"@@ -\d+(?:,(\d+))? \+\d+(?:,(\d+))? @@")

_SYNTAX = {"SyntaxError", "IndentationError", "TabError"}
_IMPORT = {"ImportError", "ModuleNotFoundError"}
_ASSERTION = {"AssertionError", "Failed", "DocTestFailure"}


@dataclass(frozen=True)
class Finding:
    """A category and where its evidence starts (`pos` in `text`; None: no line)."""

    category: str
    text: str = ""
    pos: int | None = None


def categorize(test_stdout: str | None, patch: str | None = None) -> str:
    """The failure category of an attempt (see the module docstring for the precedence)."""
    return analyse(test_stdout, patch).category


def error_context(test_stdout: str | None, lines_around: int = 3) -> str:
    """The first actionable error — the failing assertion or the raised exception line (or
    the patch / timeout / no-tests line when that is the category) — with up to
    `lines_around` lines before and after; "" when there is none. Lines are cut at
    MAX_LINE_CHARS and the whole at MAX_CONTEXT_CHARS."""
    f = analyse(test_stdout)
    if f.pos is None:
        return ""
    return _context(f.text, f.pos, max(0, lines_around))


def analyse(test_stdout: str | None, patch: str | None = None) -> Finding:
    """The category of `test_stdout` (and `patch`) with the position of its evidence."""
    text = test_stdout or ""
    if text:
        lo, hi = _test_region(text)
        whole = (lo, hi) == (0, len(text))
        region = text if whole else text[lo:hi]
        for kind, pos in (("patch_apply_failure", _patch_apply_pos(text)),
                          ("timeout", _timeout_pos(text))):
            if pos is not None:
                pos = _line_start(text, pos)
                if not whole and lo <= pos < hi:  # context from the test run
                    return Finding(kind, region, pos - lo)
                return Finding(kind, text, pos)
        found = _from_tests(region)
        if found is None and not whole:  # what ran before or after the tests
            found = _from_tests(text[:lo] + text[hi:])
        if found is not None:
            return found
    if patch and patch.strip() and patch_problem(patch) is not None:
        return Finding("patch_apply_failure")
    return Finding("unknown")


def patch_problem(patch: str) -> str | None:
    """Why `patch` is not a well-formed unified diff (no hunk; a hunk whose line counts do
    not match its header, as in a truncated patch), or None."""
    lines = patch.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    hunks, i = 0, 0
    while i < len(lines):
        m = _HUNK.match(lines[i])
        i += 1
        if not m:
            continue
        hunks += 1
        old = 1 if m.group(1) is None else int(m.group(1))
        new = 1 if m.group(2) is None else int(m.group(2))
        while (old > 0 or new > 0) and i < len(lines):
            c = lines[i][:1]
            if c in (" ", "", "\r"):  # git takes an empty line as empty context
                old, new = old - 1, new - 1
            elif c == "-":
                old -= 1
            elif c == "+":
                new -= 1
            elif c != "\\":  # "\ No newline at end of file"
                break
            i += 1
        if old != 0 or new != 0:
            return f"hunk {hunks}: its lines do not match the counts in its header"
    return None if hunks else "no hunk (@@ -a,b +c,d @@)"


# --------------------------------------------------------------------------- internals


def _test_region(text: str) -> tuple[int, int]:
    """Bounds of the harness's test run (the lines between its markers), else the whole."""
    i = text.find(START_TEST_OUTPUT)
    if i < 0:
        return 0, len(text)
    start = text.find("\n", i)
    if start < 0:
        return len(text), len(text)
    start += 1
    j = text.find(END_TEST_OUTPUT, start)
    end = len(text) if j < 0 else _line_start(text, j)
    return start, max(start, end)


def _first_of(text: str, rx: re.Pattern[str], markers: tuple[str, ...]) -> int | None:
    found = [i for i in (text.find(mk) for mk in markers) if i >= 0]
    m = rx.search(text)
    if m:
        found.append(m.start())
    return min(found) if found else None


def _patch_apply_pos(text: str) -> int | None:
    return _first_of(text, _PATCH_APPLY, _PATCH_APPLY_MARKERS)


def _timeout_pos(text: str) -> int | None:
    best = _first_of(text, _TIMEOUT, _TIMEOUT_MARKERS)
    pos = _output_line_with(text, _TIMED_OUT, best)
    return best if pos is None else pos


def _output_line_with(text: str, needle: str, before: int | None = None) -> int | None:
    """Start of the first line holding `needle` that is printed output (not an indented,
    diff or source line), if it starts before `before`."""
    i = text.find(needle)
    while i >= 0 and (before is None or i < before):
        line = _line_start(text, i)
        if text[line:line + 1] not in _NOT_OUTPUT:
            return line
        i = text.find(needle, i + len(needle))
    return None


def _line_start(text: str, pos: int) -> int:
    return text.rfind("\n", 0, pos) + 1


def _kind(name: str) -> str:
    short = name.rsplit(".", 1)[-1]
    if len(short) > MAX_NAME_CHARS:
        return "unknown"  # no exception class is named so: not a category to count by
    if "Timeout" in short:
        return "timeout"
    if short in _SYNTAX:
        return "syntax_error"
    if short in _IMPORT:
        return "import_error"
    if short in _ASSERTION:
        return "assertion_failure"
    return "exception:" + short


def _from_tests(text: str) -> Finding | None:
    """Categories 2-7 from a test run's output."""
    first: dict[str, int] = {}  # category -> position of its first evidence
    other: tuple[int, str] | None = None  # the first other exception

    def note(kind: str, pos: int) -> None:
        nonlocal other
        if kind.startswith("exception:"):
            if other is None or pos < other[0]:
                other = (pos, kind)
        elif kind not in first or pos < first[kind]:
            first[kind] = pos

    for m in _RAISED.finditer(text):
        note(_kind(m.group("n") or m.group("loc")), m.start())
    tb = _first_traceback_end(text)
    if tb is not None:
        note(_kind(tb[1]), tb[0])
    pos = _output_line_with(text, _CANNOT_IMPORT)
    if pos is not None:
        note("import_error", pos)
    for kind, rx in (("assertion_failure", _ASSERT), ("no_tests_run", _NO_TESTS)):
        m = rx.search(text)
        if m:
            note(kind, _line_start(text, m.start()))
    if "assertion_failure" not in first:
        m = _FAIL_HEADER.search(text)
        if m:
            note("assertion_failure", m.start())
    for kind in ("timeout", "syntax_error", "import_error", "assertion_failure"):
        if kind in first:
            return Finding(kind, text, first[kind])
    if other is not None:
        return Finding(other[1], text, other[0])
    if "no_tests_run" in first:
        return Finding("no_tests_run", text, first["no_tests_run"])
    return None


def _first_traceback_end(text: str, tries: int = 20) -> tuple[int, str] | None:
    """(position, name) of the exception line closing the first `Traceback` block: the
    first line after it that is not indented."""
    for n, m in enumerate(_TRACEBACK.finditer(text)):
        if n >= tries:
            break
        pos = m.end() + 1
        for _ in range(2000):  # a block longer than this is not a traceback we can read
            if pos >= len(text):
                break
            end = text.find("\n", pos)
            end = len(text) if end < 0 else end
            line = text[pos:end]
            if line.strip() and line[0] not in " \t":
                e = _TB_END.match(line)
                if e:
                    return pos, e.group(1)
                break
            pos = end + 1
    return None


def _context(text: str, pos: int, n: int) -> str:
    start = pos
    for _ in range(n):
        if start == 0:
            break
        start = text.rfind("\n", 0, start - 1) + 1
    end = text.find("\n", pos)
    end = len(text) if end < 0 else end
    for _ in range(n):
        if end >= len(text):
            break
        nxt = text.find("\n", end + 1)
        end = len(text) if nxt < 0 else nxt
    lines = [ln.rstrip("\r") for ln in text[start:end].split("\n")]
    lines = [ln if len(ln) <= MAX_LINE_CHARS else ln[:MAX_LINE_CHARS] + " [...]" for ln in lines]
    out = "\n".join(lines).strip("\n")
    return out if len(out) <= MAX_CONTEXT_CHARS else out[:MAX_CONTEXT_CHARS] + " [...]"
