"""Python source -> `FileEntry`: decoding the bytes, then classes and functions with `ast`.

Agentless's conventions, so both sources agree: line numbers are 1-based and inclusive;
`start_line` is the `def`/`class` line (decorators are not included); `classes` are all
classes not inside a function (nested classes too), each with the functions of its body as
`methods`; `functions` are the module-level functions (also those under a module-level
`if`/`try`/`with`). Unlike Agentless, `async def` counts too, and a file that does not parse
keeps its text (with no classes or functions).
"""

from __future__ import annotations

import ast
import io
import tokenize
import warnings
from collections.abc import Iterator

from benchsmith.sources.repo_structure.model import ClassSpan, CodeSpan, FileEntry

_DEFS = (ast.FunctionDef, ast.AsyncFunctionDef)


def decode_source(data: bytes) -> str:
    """Source bytes -> text: BOM / PEP 263 coding cookie, else UTF-8; bad bytes replaced."""
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
    except (SyntaxError, LookupError):
        encoding = "utf-8"
    try:
        return data.decode(encoding, errors="replace")
    except LookupError:  # pragma: no cover - detect_encoding only returns known codecs
        return data.decode("utf-8", errors="replace")


def _child_blocks(node: ast.AST) -> Iterator[list[ast.stmt]]:
    """Statement lists of a compound statement (if/for/while/with/try/match)."""
    for name in ("body", "orelse", "finalbody"):
        v = getattr(node, name, None)
        if isinstance(v, list):
            yield v
    for h in getattr(node, "handlers", None) or ():
        yield h.body
    for c in getattr(node, "cases", None) or ():
        yield c.body


def parse_python(path: str, text: str) -> FileEntry:
    """Classes (with methods) and module-level functions of one Python file."""
    lines = text.split("\n")

    def span(node: ast.FunctionDef | ast.AsyncFunctionDef) -> CodeSpan:
        end = node.end_lineno or node.lineno
        return CodeSpan(node.name, node.lineno, end, "\n".join(lines[node.lineno - 1 : end]))

    def methods_of(body: list[ast.stmt]) -> Iterator[CodeSpan]:
        for node in body:
            if isinstance(node, _DEFS):
                yield span(node)
            elif not isinstance(node, ast.ClassDef):
                for block in _child_blocks(node):
                    yield from methods_of(block)

    classes: list[ClassSpan] = []
    functions: list[CodeSpan] = []

    def visit(body: list[ast.stmt], in_class: bool) -> None:
        for node in body:
            if isinstance(node, ast.ClassDef):
                end = node.end_lineno or node.lineno
                classes.append(ClassSpan(
                    node.name, node.lineno, end, "\n".join(lines[node.lineno - 1 : end]),
                    tuple(methods_of(node.body)),
                ))
                visit(node.body, True)
            elif isinstance(node, _DEFS):
                if not in_class:
                    functions.append(span(node))
            else:
                for block in _child_blocks(node):
                    visit(block, in_class)

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # invalid escape sequences etc. in old code
            tree = ast.parse(text, filename=path)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return FileEntry(path=path, text=text)
    visit(tree.body, False)
    return FileEntry(path=path, text=text, classes=tuple(classes), functions=tuple(functions))
