"""The Agentless repo-structure JSON layout, both ways, and reading such a file.

`{"repo", "base_commit", "structure": {<dir>: {...}, "<file>.py": {"classes": [...],
"functions": [...], "text": [lines]}, "<other file>": {}}}`; a file's `text` may be a list of
lines (Agentless) or one string. Written with file text as lines, final newline dropped, plus
the top-level key `files_without_final_newline`, so reading gives the exact text back;
Agentless readers ignore that key.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from benchsmith.errors import ConfigError
from benchsmith.sources.repo_structure.model import ClassSpan, CodeSpan, FileEntry, RepoStructure

_NO_FINAL_NL = "files_without_final_newline"


# --------------------------------------------------------------------------- writing


def structure_to_json(st: RepoStructure) -> dict[str, Any]:
    """`st` in the Agentless layout (read back by `structure_from_json`)."""
    structure: dict[str, Any] = {}
    no_final_nl: list[str] = []
    for path, e in st.entries.items():
        *dirs, name = path.split("/")
        node = structure
        for d in dirs:
            node = node.setdefault(d, {})
        if e.text is None and not e.classes and not e.functions:
            node[name] = {}
            continue
        text_lines: list[str] = []
        if e.text is not None:
            text_lines = e.text.split("\n")
            if text_lines[-1] == "":
                text_lines.pop()
            elif e.text:
                no_final_nl.append(path)
        node[name] = {
            "classes": [_class_json(c) for c in e.classes],
            "functions": [_span_json(f) for f in e.functions],
            "text": text_lines,
        }
    out: dict[str, Any] = {"repo": st.repo, "base_commit": st.base_commit}
    if st.instance_id is not None:
        out["instance_id"] = st.instance_id
    out["structure"] = structure
    out[_NO_FINAL_NL] = no_final_nl
    return out


def _span_json(s: CodeSpan | ClassSpan) -> dict[str, Any]:
    return {"name": s.name, "start_line": s.start_line, "end_line": s.end_line,
            "text": s.text.split("\n")}


def _class_json(c: ClassSpan) -> dict[str, Any]:
    return {**_span_json(c), "methods": [_span_json(m) for m in c.methods]}


# --------------------------------------------------------------------------- reading


def structure_from_json(data: Any, source: str = "<json>") -> RepoStructure:
    """Read the Agentless layout; `source` names the file in errors."""
    if not isinstance(data, dict):
        raise ConfigError(source, "", "expected a JSON object {repo, base_commit, structure}")
    structure = data.get("structure")
    if not isinstance(structure, dict):
        raise ConfigError(
            source, "structure",
            "missing or not an object; expected an Agentless repo-structure file "
            "{repo, base_commit, structure}",
        )
    meta: dict[str, str | None] = {}
    for key in ("repo", "base_commit", "instance_id"):
        v = data.get(key)
        if v is not None and not isinstance(v, str):
            raise ConfigError(source, key, "must be a string")
        meta[key] = v
    no_nl = data.get(_NO_FINAL_NL) or []
    if not isinstance(no_nl, list) or not all(isinstance(p, str) for p in no_nl):
        raise ConfigError(source, _NO_FINAL_NL, "must be a list of paths")
    entries: dict[str, FileEntry] = {}
    _read_tree(structure, "", entries, set(no_nl), source)
    return RepoStructure(repo=meta["repo"] or "", base_commit=meta["base_commit"] or "",
                         entries=entries, instance_id=meta["instance_id"])


def load_structure_file(path: Path | str) -> RepoStructure:
    """Read an Agentless repo-structure JSON file (or one written by this module)."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        raise ConfigError(str(p), "", "file not found") from None
    except OSError as e:
        raise ConfigError(str(p), "", f"cannot read: {e.strerror or e}") from None
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        raise ConfigError(str(p), "", f"not valid JSON: {e}") from None
    return structure_from_json(data, source=str(p))


def _is_file_entry(v: dict[str, Any]) -> bool:
    # A folder's children are objects; a file's `text` is a list/str, its classes a list.
    if not v:
        return True
    return (isinstance(v.get("text"), (list, str)) or isinstance(v.get("classes"), list)
            or isinstance(v.get("functions"), list))


def _read_tree(
    node: dict[str, Any], prefix: str, out: dict[str, FileEntry], no_nl: set[str], source: str
) -> None:
    for name, v in node.items():
        path = f"{prefix}{name}"
        if name == ".git" or not name or name in (".", "..") or "/" in name:
            continue  # Agentless walked .git of its checkout; never a tracked path
        if not isinstance(v, dict):
            raise ConfigError(source, f"structure/{path}",
                              "expected an object (a folder, or a file entry like {} or "
                              "{classes, functions, text})")
        if _is_file_entry(v):
            out[path] = _read_file_entry(path, v, path in no_nl, source)
        else:
            _read_tree(v, path + "/", out, no_nl, source)


def _read_file_entry(path: str, v: dict[str, Any], no_final_nl: bool, source: str) -> FileEntry:
    where = f"structure/{path}"
    text = _read_text(v["text"], where, source, not no_final_nl) if "text" in v else None
    classes = tuple(
        _read_class(c, f"{where}.classes[{i}]", source)
        for i, c in enumerate(_list(v, "classes", where, source))
    )
    functions = tuple(
        _read_span(f, f"{where}.functions[{i}]", source)
        for i, f in enumerate(_list(v, "functions", where, source))
    )
    return FileEntry(path=path, text=text, classes=classes, functions=functions)


def _read_text(t: Any, where: str, source: str, final_newline: bool) -> str:
    """A string as is, or lines joined by \\n (+ a final one if `final_newline` and any)."""
    if isinstance(t, str):
        return t
    if isinstance(t, list) and all(isinstance(x, str) for x in t):
        return "\n".join(t) + ("\n" if t and final_newline else "")
    raise ConfigError(source, f"{where}.text", "must be a list of lines or a string")


def _list(v: dict[str, Any], key: str, where: str, source: str) -> list[Any]:
    x = v.get(key, [])
    if not isinstance(x, list):
        raise ConfigError(source, f"{where}.{key}", "must be a list")
    return x


def _read_span(d: Any, where: str, source: str) -> CodeSpan:
    if not isinstance(d, dict):
        raise ConfigError(source, where, "must be an object {name, start_line, end_line, text}")
    name = d.get("name")
    if not isinstance(name, str):
        raise ConfigError(source, f"{where}.name", "must be a string")
    nums = []
    for key in ("start_line", "end_line"):
        n = d.get(key)
        if not isinstance(n, int) or isinstance(n, bool):
            raise ConfigError(source, f"{where}.{key}", "must be an integer")
        nums.append(n)
    text = _read_text(d.get("text", []), where, source, False)
    return CodeSpan(name, nums[0], nums[1], text)


def _read_class(d: Any, where: str, source: str) -> ClassSpan:
    s = _read_span(d, where, source)
    methods = tuple(
        _read_span(m, f"{where}.methods[{i}]", source)
        for i, m in enumerate(_list(d, "methods", where, source))
    )
    return ClassSpan(s.name, s.start_line, s.end_line, s.text, methods)
