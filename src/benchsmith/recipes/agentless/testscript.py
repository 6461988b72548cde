"""Reproduction test scripts: take the script out of an answer and check that it compiles.

Which code block is the script:

1. Fenced blocks (```` ``` ```` or ``~~~``, closed by a fence of the same kind at least as long)
   tagged ``python``, ``py``, ``python3`` or ``py3`` are the candidates; when there are none,
   untagged fenced blocks are. Blocks in other languages (``bash``, ``text``, ``diff`` ...)
   are never the script.
2. Of the candidates the largest (most non-blank characters) wins; on a tie, the first. So a
   single python block is taken as is, and a full script beats short snippets around it.
3. With no candidate at all, the whole answer is the script when it compiles.

Line ends are normalised (``\\r\\n`` and lone ``\\r`` become ``\\n``) and a block's common
indentation is removed. Pure functions; results are frozen dataclasses.
"""

from __future__ import annotations

import ast
import re
import textwrap
import warnings
from dataclasses import dataclass, field
from typing import Literal

SCRIPT_NAME = "reproduce_bug.py"
PYTHON_TAGS = frozenset({"python", "py", "python3", "py3"})

_OPEN = re.compile(r"^ {0,3}(`{3,}|~{3,})\s*([^\s`]*)")

NO_SCRIPT = "no python code block found and the answer is not valid python"
EMPTY = "script is empty"
UNCLOSED = "code block is not closed (answer cut off?)"
NO_COMPILE = "does not compile:"


@dataclass(frozen=True)
class ScriptResult:
    script: str | None
    issues: list[str] = field(default_factory=list)
    source: Literal["fenced", "whole", "none"] = "none"  # "none" when script is None


@dataclass(frozen=True)
class _Block:
    lang: str
    text: str
    closed: bool


def _blocks(text: str) -> list[_Block]:
    lines = text.split("\n")
    out = []
    i = 0
    while i < len(lines):
        m = _OPEN.match(lines[i])
        if not m:
            i += 1
            continue
        fence, lang = m.group(1), m.group(2).lower()
        close = re.compile(rf"^ {{0,3}}{re.escape(fence[0])}{{{len(fence)},}}\s*$")
        j = i + 1
        while j < len(lines) and not close.match(lines[j]):
            j += 1
        body = textwrap.dedent("\n".join(lines[i + 1 : j]))
        out.append(_Block(lang, body.strip("\n") + "\n", closed=j < len(lines)))
        i = j + 1
    return out


def _size(block: _Block) -> int:
    return sum(1 for c in block.text if not c.isspace())


def check_script(script: str | None) -> list[str]:
    """Issues of a script: ``script is empty`` (nothing but blanks and comments), or
    ``does not compile: <msg> (line N)`` when ``compile(script, "reproduce_bug.py", "exec")``
    fails. Compile-time warnings (e.g. invalid escapes) are ignored."""
    if script is None or not script.strip():
        return [EMPTY]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            compile(script, SCRIPT_NAME, "exec")
        except SyntaxError as e:
            return [f"{NO_COMPILE} {e.msg} (line {e.lineno})"]
        except ValueError as e:  # e.g. null bytes, on older Pythons
            return [f"{NO_COMPILE} {e}"]
        if not ast.parse(script, SCRIPT_NAME).body:
            return [EMPTY]
    return []


def extract_script(answer: str) -> ScriptResult:
    """The reproduction script of ``answer`` by the rule in the module docstring.

    ``issues`` holds ``check_script``'s issues for the chosen script, ``code block is not
    closed`` when its fence never closes (the script then runs to the end of the answer), or
    the ``no python code block ...`` issue when nothing qualifies (then ``script`` is None).
    """
    text = answer.replace("\r\n", "\n").replace("\r", "\n")
    blocks = _blocks(text)
    candidates = [b for b in blocks if b.lang in PYTHON_TAGS] or [b for b in blocks if not b.lang]
    if candidates:
        best = max(candidates, key=_size)  # max keeps the first of equal sizes
        issues = [] if best.closed else [UNCLOSED]
        return ScriptResult(best.text, issues + check_script(best.text), "fenced")
    if not text.strip():
        return ScriptResult(None, [EMPTY], "none")
    if blocks or check_script(text):
        return ScriptResult(None, [NO_SCRIPT], "none")
    script = text.strip("\n") + "\n"
    return ScriptResult(script, [], "whole")
