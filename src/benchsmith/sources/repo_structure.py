"""Repository layout and file text at an instance's base_commit, for Agentless-style prompts.

Two sources, one result (`RepoStructure`):

* Agentless repo-structure files, `<dir>/<instance_id>.json`:
  `{"repo", "base_commit", "structure": {<dir>: {...}, "<file>.py": {"classes": [...],
  "functions": [...], "text": [lines]}, "<other file>": {}}}`; a file's `text` may be a
  list of lines (Agentless) or one string.
* A local clone, read at the commit with `git ls-tree` and `git cat-file --batch` only: the
  user's checkout (working tree, index, HEAD) is never touched. `.py` files are parsed with
  `ast`; the result is cached as JSON per (repo, commit) under
  `~/.cache/benchsmith/repo_structure/<owner>__<name>/<commit>.json` (or `cache_dir`).

Conventions (those of Agentless, so both sources agree): line numbers are 1-based and
inclusive; `start_line` is the `def`/`class` line (decorators are not included); `classes`
are all classes not inside a function (nested classes too), each with the functions of its
body as `methods`; `functions` are the module-level functions (also those under a
module-level `if`/`try`/`with`). Unlike Agentless, `async def` counts too, and a file that
does not parse keeps its text (with no classes or functions).

`RepoStructure.to_json()` writes the Agentless layout (file text as lines, final newline
dropped) plus the top-level key `files_without_final_newline`, so `from_json` gives the exact
text back; Agentless readers ignore that key.
"""

from __future__ import annotations

import ast
import io
import os
import re
import subprocess
import tokenize
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from types import MappingProxyType
from typing import Any

import orjson

from benchsmith.errors import BenchsmithError, ConfigError
from benchsmith.store.rundir import atomic_write_bytes

__all__ = [
    "BuildReport",
    "ClassSpan",
    "CodeSpan",
    "FileEntry",
    "RepoStructure",
    "build_dataset_structures",
    "build_structure",
    "cache_path",
    "clone_candidates",
    "default_cache_dir",
    "load_instances",
    "load_structure_file",
    "parse_python",
    "structure_for",
]

# Bump when parsing or the cached layout changes: older cache files are then rebuilt.
CACHE_VERSION = 1
_FULL_SHA = re.compile(r"^(?:[0-9a-f]{40}|[0-9a-f]{64})$")
_REPO = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
_NO_FINAL_NL = "files_without_final_newline"


# --------------------------------------------------------------------------- data


@dataclass(frozen=True)
class CodeSpan:
    """A function or method: 1-based inclusive lines; `text` is those lines joined by \\n."""

    name: str
    start_line: int
    end_line: int
    text: str


@dataclass(frozen=True)
class ClassSpan:
    """A class with the functions defined directly in its body."""

    name: str
    start_line: int
    end_line: int
    text: str
    methods: tuple[CodeSpan, ...] = ()


@dataclass(frozen=True)
class FileEntry:
    """One file. `text` is None for files whose content is not kept (non-Python files)."""

    path: str
    text: str | None = None
    classes: tuple[ClassSpan, ...] = ()
    functions: tuple[CodeSpan, ...] = ()

    @property
    def is_python(self) -> bool:
        return self.text is not None and self.path.endswith(".py")


@dataclass(frozen=True)
class RepoStructure:
    """The files of a repository at one commit, Python files with text, classes, functions."""

    repo: str
    base_commit: str
    entries: Mapping[str, FileEntry] = field(default_factory=dict, hash=False, repr=False)
    instance_id: str | None = None

    def __post_init__(self) -> None:
        ordered = {p: self.entries[p] for p in sorted(self.entries)}
        object.__setattr__(self, "entries", MappingProxyType(ordered))

    def __repr__(self) -> str:
        return (f"RepoStructure(repo={self.repo!r}, base_commit={self.base_commit!r}, "
                f"files={len(self.entries)}, instance_id={self.instance_id!r})")

    # ---- queries

    def files(self) -> list[str]:
        """Every file path (repository-relative, `/`-separated), sorted."""
        return list(self.entries)

    @cached_property
    def _python(self) -> tuple[str, ...]:
        return tuple(p for p, e in self.entries.items() if e.is_python)

    def python_files(self) -> list[str]:
        """Paths of the `.py` files whose text is known, sorted."""
        return list(self._python)

    def file(self, path: str) -> FileEntry | None:
        return self.entries.get(_norm_path(path))

    def file_text(self, path: str) -> str | None:
        """The file's text, or None for an unknown path or a file without stored text."""
        e = self.file(path)
        return None if e is None else e.text

    def tree_text(
        self, max_files: int | None = None, *, python_only: bool = True,
        exclude_tests: bool = False,
    ) -> str:
        """An indented tree like Agentless's `show_project_structure`: `dir/` lines, then
        files, 4 spaces a level; in each folder its files come first, then its subfolders,
        each sorted by name. Only `.py` files by default; folders without a shown file are
        left out. `exclude_tests` drops paths with a part starting with `test` (Agentless's
        filter). `max_files` caps the files shown and ends with `... (N more files)`."""
        if max_files is not None and max_files < 0:
            raise ValueError("max_files must be >= 0")
        paths = self.python_files() if python_only else self.files()
        if exclude_tests:
            paths = [p for p in paths if not any(s.startswith("test") for s in p.split("/"))]
        tree: dict[str, Any] = {}
        for p in paths:
            *dirs, name = p.split("/")
            node = tree
            for d in dirs:
                node = node.setdefault(d + "/", {})
            node[name] = None
        lines: list[str] = []
        shown = 0
        for depth, name, is_file in _walk_tree(tree, 0):
            if is_file:
                if max_files is not None and shown >= max_files:
                    break
                shown += 1
            lines.append("    " * depth + name)
        if shown < len(paths):
            while lines and lines[-1].endswith("/"):
                lines.pop()  # folders whose first file was cut
            lines.append(f"... ({len(paths) - shown} more files)")
        return "\n".join(lines)

    # ---- JSON (the Agentless layout)

    def to_json(self) -> dict[str, Any]:
        """The Agentless repo-structure layout (loadable by `from_json` and by Agentless)."""
        structure: dict[str, Any] = {}
        no_final_nl: list[str] = []
        for path, e in self.entries.items():
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
        out: dict[str, Any] = {"repo": self.repo, "base_commit": self.base_commit}
        if self.instance_id is not None:
            out["instance_id"] = self.instance_id
        out["structure"] = structure
        out[_NO_FINAL_NL] = no_final_nl
        return out

    @classmethod
    def from_json(cls, data: Any, *, source: str = "<json>") -> RepoStructure:
        """Read the Agentless layout. `source` names the file in errors."""
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
        return cls(
            repo=meta["repo"] or "", base_commit=meta["base_commit"] or "", entries=entries,
            instance_id=meta["instance_id"],
        )


def _walk_tree(node: dict[str, Any], depth: int) -> Iterator[tuple[int, str, bool]]:
    files = sorted(k for k, v in node.items() if v is None)
    dirs = sorted(k for k, v in node.items() if v is not None)
    for f in files:
        yield depth, f, True
    for d in dirs:
        yield depth, d, False
        yield from _walk_tree(node[d], depth + 1)


def _span_json(s: CodeSpan) -> dict[str, Any]:
    return {"name": s.name, "start_line": s.start_line, "end_line": s.end_line,
            "text": s.text.split("\n")}


def _class_json(c: ClassSpan) -> dict[str, Any]:
    return {"name": c.name, "start_line": c.start_line, "end_line": c.end_line,
            "text": c.text.split("\n"), "methods": [_span_json(m) for m in c.methods]}


def _norm_path(path: str) -> str:
    p = path.strip().replace("\\", "/")
    while p.startswith("./"):
        p = p[2:]
    return p.lstrip("/")


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
    text: str | None = None
    if "text" in v:
        t = v["text"]
        if isinstance(t, str):
            text = t
        elif isinstance(t, list) and all(isinstance(x, str) for x in t):
            text = "\n".join(t) + ("\n" if t and not no_final_nl else "")
        else:
            raise ConfigError(source, f"{where}.text", "must be a list of lines or a string")
    classes = tuple(
        _read_class(c, f"{where}.classes[{i}]", source)
        for i, c in enumerate(_list(v, "classes", where, source))
    )
    functions = tuple(
        _read_span(f, f"{where}.functions[{i}]", source)
        for i, f in enumerate(_list(v, "functions", where, source))
    )
    return FileEntry(path=path, text=text, classes=classes, functions=functions)


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
    t = d.get("text", [])
    if isinstance(t, list) and all(isinstance(x, str) for x in t):
        text = "\n".join(t)
    elif isinstance(t, str):
        text = t
    else:
        raise ConfigError(source, f"{where}.text", "must be a list of lines or a string")
    return CodeSpan(name, nums[0], nums[1], text)


def _read_class(d: Any, where: str, source: str) -> ClassSpan:
    s = _read_span(d, where, source)
    methods = tuple(
        _read_span(m, f"{where}.methods[{i}]", source)
        for i, m in enumerate(_list(d, "methods", where, source))
    )
    return ClassSpan(s.name, s.start_line, s.end_line, s.text, methods)


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
    return RepoStructure.from_json(data, source=str(p))


# --------------------------------------------------------------------------- parsing


def _decode(data: bytes) -> str:
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


_DEFS = (ast.FunctionDef, ast.AsyncFunctionDef)


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


# --------------------------------------------------------------------------- git


def _git_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(GIT_TERMINAL_PROMPT="0", GIT_OPTIONAL_LOCKS="0", GIT_NO_LAZY_FETCH="1")
    return env


def _git(clone: Path, *args: str, data: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    try:
        return subprocess.run(
            ["git", "-C", str(clone), *args], input=data, capture_output=True, env=_git_env(),
            check=False,
        )
    except FileNotFoundError:
        raise BenchsmithError(
            "git not found on PATH: install git to build repo structures from clones"
        ) from None


def _stderr_line(r: subprocess.CompletedProcess[bytes]) -> str:
    msg = r.stderr.decode("utf-8", "replace").strip().splitlines()
    return msg[-1] if msg else f"exit status {r.returncode}"


def _check_clone(clone: Path) -> None:
    if not clone.is_dir():
        raise ConfigError(str(clone), "", "no such folder; clone the repository there")
    bare = (clone / "objects").is_dir() and (clone / "HEAD").is_file()
    if not (clone / ".git").exists() and not bare:
        raise ConfigError(str(clone), "", "not a git clone (no .git); clone the repository there")


def _resolve_commit(clone: Path, commit: str) -> str:
    if not commit or commit.startswith("-") or any(c.isspace() for c in commit):
        raise ConfigError(str(clone), "base_commit", f"not a commit id: {commit!r}")
    r = _git(clone, "rev-parse", "--verify", "--quiet", f"{commit}^{{commit}}")
    sha = r.stdout.decode().strip()
    if r.returncode != 0 or not sha:
        raise ConfigError(
            str(clone), "base_commit",
            f"commit {commit} is not in this clone; git fetch it: `git -C {clone} fetch origin "
            f"{commit}` (a shallow clone: `git -C {clone} fetch --unshallow`)",
        )
    return sha


def _ls_tree(clone: Path, sha: str) -> list[tuple[str, str, str, str]]:
    """(mode, type, object id, path) of every entry of the commit's tree, recursively."""
    r = _git(clone, "ls-tree", "-r", "-z", "--full-tree", sha)
    if r.returncode != 0:
        raise BenchsmithError(f"{clone}: git ls-tree {sha} failed: {_stderr_line(r)}")
    out = []
    for rec in r.stdout.split(b"\0"):
        if not rec:
            continue
        meta, _, path = rec.partition(b"\t")
        mode, typ, oid = meta.decode().split()
        out.append((mode, typ, oid, path.decode("utf-8", errors="replace")))
    return out


def _cat_blobs(clone: Path, oids: list[str]) -> dict[str, bytes]:
    """Contents of the blobs, read with one `git cat-file --batch` (no checkout)."""
    if not oids:
        return {}
    r = _git(clone, "cat-file", "--batch", data=("\n".join(oids) + "\n").encode())
    if r.returncode != 0:
        raise BenchsmithError(f"{clone}: git cat-file failed: {_stderr_line(r)}")
    out: dict[str, bytes] = {}
    buf, pos = r.stdout, 0
    while pos < len(buf):
        nl = buf.index(b"\n", pos)
        header = buf[pos:nl].decode().split()
        if len(header) != 3:
            raise BenchsmithError(
                f"{clone}: object {header[0] if header else '?'} is missing from the clone "
                "(a partial clone? fetch the blobs: git fetch --refetch)"
            )
        oid, _typ, size = header[0], header[1], int(header[2])
        out[oid] = buf[nl + 1 : nl + 1 + size]
        pos = nl + 1 + size + 1
    return out


def _repo_label(repo: str | None, clone: Path) -> str:
    if repo:
        return repo
    name = clone.expanduser().resolve().name
    return name.replace("__", "/", 1) if "__" in name else name


def default_cache_dir() -> Path:
    """`~/.cache/benchsmith/repo_structure` (set `rollout.cache_dir` to choose another)."""
    root = str(Path.home() / ".cache")
    return Path(root) / "benchsmith" / "repo_structure"


def cache_path(repo: str, commit: str, cache_dir: Path | str | None = None) -> Path:
    """Where the structure of `repo` ("owner/name") at full commit id `commit` is cached."""
    base = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    key = re.sub(r"[^A-Za-z0-9_.-]", "_", repo.replace("/", "__")) or "repo"
    return base / key / f"{commit}.json"


def _read_cache(path: Path, commit: str) -> RepoStructure | None:
    try:
        data = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return None
    if not isinstance(data, dict) or data.get("cache_version") != CACHE_VERSION:
        return None
    try:
        st = RepoStructure.from_json(data, source=str(path))
    except ConfigError:
        return None
    return st if st.base_commit == commit else None


def _write_cache(path: Path, st: RepoStructure) -> None:
    payload = {**st.to_json(), "cache_version": CACHE_VERSION}
    try:
        atomic_write_bytes(path, orjson.dumps(payload) + b"\n")
    except OSError:
        pass  # a cache that cannot be written only costs a rebuild next time


def _from_git(clone: Path, sha: str, repo: str) -> RepoStructure:
    entries: dict[str, FileEntry] = {}
    wanted: dict[str, list[str]] = {}
    for mode, typ, oid, path in _ls_tree(clone, sha):
        if typ != "blob":
            continue  # submodules (type commit) are not files of this repository
        entries[path] = FileEntry(path=path)
        if path.endswith(".py") and mode in ("100644", "100755"):
            wanted.setdefault(oid, []).append(path)
    blobs = _cat_blobs(clone, list(wanted))
    for oid, paths in wanted.items():
        text = _decode(blobs[oid])
        for path in paths:
            entries[path] = parse_python(path, text)
    return RepoStructure(repo=repo, base_commit=sha, entries=entries)


def build_structure(
    clone_dir: Path | str, commit: str, *, repo: str | None = None,
    cache_dir: Path | str | None = None, use_cache: bool = True,
) -> RepoStructure:
    """The structure of the clone at `commit`, read from git objects (no checkout).

    `repo` ("owner/name") names the cache folder; default: from the clone's folder name
    (`owner__name` -> `owner/name`). A full commit id found in the cache needs no git call.
    """
    clone = Path(clone_dir).expanduser()
    label = _repo_label(repo, clone)
    commit = (commit or "").strip()
    if use_cache and _FULL_SHA.match(commit.lower()):
        hit = _read_cache(cache_path(label, commit.lower(), cache_dir), commit.lower())
        if hit is not None:
            return hit
    _check_clone(clone)
    sha = _resolve_commit(clone, commit)
    path = cache_path(label, sha, cache_dir)
    if use_cache and sha != commit:
        hit = _read_cache(path, sha)
        if hit is not None:
            return hit
    st = _from_git(clone, sha, label)
    if use_cache:
        _write_cache(path, st)
    return st


# --------------------------------------------------------------------------- instances


def _instance_fields(instance: Any) -> tuple[str, str | None, str | None]:
    """(instance_id, repo, base_commit) of a SWE-bench row, a benchsmith Task, or an object."""
    if isinstance(instance, Mapping):
        iid, repo, commit = (instance.get(k) for k in ("instance_id", "repo", "base_commit"))
        if iid is None and "task_id" in instance:  # Task.to_dict()
            ctx = instance.get("context") or {}
            iid, repo, commit = instance["task_id"], ctx.get("repo"), ctx.get("base_commit")
    elif hasattr(instance, "context") and hasattr(instance, "id"):  # benchsmith Task
        iid = instance.id
        repo, commit = instance.context.get("repo"), instance.context.get("base_commit")
    else:
        iid = getattr(instance, "instance_id", None)
        repo, commit = getattr(instance, "repo", None), getattr(instance, "base_commit", None)
    if not isinstance(iid, str) or not iid:
        raise ConfigError("instance", "instance_id", "missing; a SWE-bench row has instance_id")
    _check_iid(iid)
    for key, v in (("repo", repo), ("base_commit", commit)):
        if v is not None and not isinstance(v, str):
            raise ConfigError(iid, key, "must be a string")
    return iid, repo or None, commit or None


def _check_iid(iid: str) -> None:
    if iid in (".", "..") or "/" in iid or "\\" in iid or "\0" in iid:
        raise ConfigError(iid, "instance_id", "must be usable as a file name (no / or \\)")


def clone_candidates(repos_dir: Path | str, repo: str) -> list[Path]:
    """Where a clone of "owner/name" is looked for: `<repos_dir>/<owner>__<name>`, then
    `<repos_dir>/<name>`."""
    owner, name = repo.split("/", 1)
    base = Path(repos_dir).expanduser()
    return [base / f"{owner}__{name}", base / name]


def _check_repo(iid: str, repo: str | None) -> str:
    if not repo:
        raise ConfigError(iid, "repo", "missing; a SWE-bench row has repo (\"owner/name\")")
    if not _REPO.match(repo) or any(part in (".", "..") for part in repo.split("/")):
        raise ConfigError(iid, "repo", f"{repo!r} is not \"owner/name\"")
    return repo


def _same_commit(a: str, b: str) -> bool:
    a, b = a.lower(), b.lower()
    return a.startswith(b) or b.startswith(a)


def structure_for(
    instance: Any, *, structure_dir: Path | str | None = None,
    repos_dir: Path | str | None = None, cache_dir: Path | str | None = None,
) -> RepoStructure:
    """The structure of one SWE-bench instance at its base_commit.

    `instance`: a mapping or object with instance_id, repo ("owner/name") and base_commit
    (a benchsmith Task works too). Looked up in order: `<structure_dir>/<instance_id>.json`;
    a clone at `<repos_dir>/<owner>__<name>` or `<repos_dir>/<name>` (built, cached); the
    cache alone. Otherwise a one-line ConfigError naming what was looked for and the fix.
    """
    iid, repo, commit = _instance_fields(instance)
    looked: list[str] = []
    if structure_dir is not None:
        f = Path(structure_dir).expanduser() / f"{iid}.json"
        if f.is_file():
            st = load_structure_file(f)
            if commit and st.base_commit and not _same_commit(st.base_commit, commit):
                raise ConfigError(
                    str(f), "base_commit",
                    f"is {st.base_commit} but {iid} needs {commit}; rebuild it: benchsmith "
                    f"repo-structure build --repos-dir <clones> --dataset <swe-bench rows> "
                    f"--out {structure_dir}",
                )
            return st if st.instance_id == iid else replace(st, instance_id=iid)
        looked.append(str(f))
    if repos_dir is not None:
        repo = _check_repo(iid, repo)
        cands = clone_candidates(repos_dir, repo)
        for c in cands:
            if c.is_dir():
                if not commit:
                    raise ConfigError(
                        iid, "base_commit", "missing; a SWE-bench row has base_commit"
                    )
                return replace(
                    build_structure(c, commit, repo=repo, cache_dir=cache_dir), instance_id=iid
                )
        looked += [str(c) for c in cands]
    if repo and commit and _FULL_SHA.match(commit.lower()) and _REPO.match(repo):
        hit = _read_cache(cache_path(repo, commit.lower(), cache_dir), commit.lower())
        if hit is not None:
            return replace(hit, instance_id=iid)
    if not looked:
        raise ConfigError(
            iid, "repo structure",
            "no source: pass structure_dir (Agentless repo-structure files <instance_id>.json) "
            "or repos_dir (local clones) - config: rollout.structure_dir / rollout.repos_dir",
        )
    fix = []
    if repos_dir is not None and repo:
        target = clone_candidates(repos_dir, repo)[0]
        fix.append(f"clone it: git clone https://github.com/{repo}.git {target}")
    if structure_dir is not None:
        fix.append(f"write {structure_dir}/{iid}.json with `benchsmith repo-structure build`")
    raise ConfigError(
        iid, "repo structure", f"not found (looked for {', '.join(looked)}); {', or '.join(fix)}"
    )


# --------------------------------------------------------------------------- datasets


@dataclass(frozen=True)
class Instance:
    instance_id: str
    repo: str
    base_commit: str


def _read_id_file(path: Path) -> list[str]:
    """A JSON list of ids, or one id per line."""
    try:
        text = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        raise ConfigError(str(path), "--instance-ids", "file not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(str(path), "--instance-ids", f"cannot read: {e}") from None
    if text.startswith("["):
        try:
            ids = orjson.loads(text)
        except orjson.JSONDecodeError as e:
            raise ConfigError(str(path), "--instance-ids", f"not valid JSON: {e}") from None
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise ConfigError(str(path), "--instance-ids", "must be a list of strings")
        return ids
    return [line.strip() for line in text.splitlines() if line.strip()]


def _iter_rows(dataset: str, split: str) -> tuple[str, Iterable[tuple[int, dict[str, Any]]]]:
    from benchsmith.sources import swebench
    from benchsmith.sources.rows import iter_file, iter_hf

    path = Path(dataset).expanduser()
    if path.exists():
        return str(path), iter_file(path, "dataset")
    hf = swebench.HF_NAMES.get(dataset)
    file_like = dataset.endswith((".jsonl", ".gz", ".parquet", ".json"))
    if hf is None and "/" in dataset and not file_like:
        hf = dataset
    if hf is None:
        raise ConfigError(
            dataset, "--dataset",
            "file not found; give a .jsonl/.jsonl.gz/.parquet file or a dataset name "
            f"({', '.join(swebench.HF_NAMES)} or a Hugging Face owner/name)",
        )
    return hf, iter_hf(hf, split, "dataset")


def load_instances(
    dataset: str | Path, *, split: str = "test", instance_ids_file: Path | None = None,
    limit: int | None = None,
) -> list[Instance]:
    """SWE-bench instances of a file or dataset name, sorted by id, filtered by the id list,
    capped at `limit`."""
    where, rows = _iter_rows(str(dataset), split)
    found: dict[str, Instance] = {}
    for n, row in rows:
        vals = []
        for key in ("instance_id", "repo", "base_commit"):
            v = row.get(key)
            if not isinstance(v, str) or not v:
                raise ConfigError(
                    where, f"line {n}",
                    f"missing field {key!r}; a SWE-bench row needs instance_id, repo, base_commit",
                )
            vals.append(v)
        if vals[0] in found:
            raise ConfigError(where, f"line {n}", f"duplicate instance_id {vals[0]!r}")
        found[vals[0]] = Instance(*vals)
    out = [found[i] for i in sorted(found)]
    if instance_ids_file is not None:
        wanted = _read_id_file(Path(instance_ids_file))
        unknown = [i for i in wanted if i not in found]
        if unknown:
            raise ConfigError(
                str(instance_ids_file), "--instance-ids",
                f"{len(unknown)} id(s) not in {where}, e.g. {unknown[0]!r}",
            )
        keep = set(wanted)
        out = [i for i in out if i.instance_id in keep]
    if limit is not None:
        out = out[: max(limit, 0)]
    return out


@dataclass(frozen=True)
class BuildReport:
    """What `build_dataset_structures` did, per instance id."""

    out_dir: Path
    built: tuple[str, ...]
    existing: tuple[str, ...]
    skipped: tuple[tuple[str, str], ...]  # (instance id, one-line reason)

    @property
    def available(self) -> int:
        return len(self.built) + len(self.existing)


def build_dataset_structures(
    instances: list[Instance], *, repos_dir: Path | str, out_dir: Path | str,
    force: bool = False, cache_dir: Path | str | None = None, use_cache: bool = False,
    on_instance: Callable[[Instance, str, str | None], None] | None = None,
) -> BuildReport:
    """Write `<out_dir>/<instance_id>.json` (Agentless layout) for each instance from its
    clone under `repos_dir`. Files already there are kept unless `force`. Instances whose
    clone or commit is missing are skipped with a reason. `on_instance(instance, status,
    reason)` is called after each one; status: built, existing or skipped."""
    out = Path(out_dir).expanduser()
    built: list[str] = []
    existing: list[str] = []
    skipped: list[tuple[str, str]] = []
    last: tuple[tuple[str, str], RepoStructure] | None = None
    for inst in instances:
        status, reason = "built", None
        target = out / f"{inst.instance_id}.json"
        data: bytes | None = None
        try:
            _check_iid(inst.instance_id)
            if target.exists() and not force:
                status = "existing"
            else:
                repo = _check_repo(inst.instance_id, inst.repo)
                cands = clone_candidates(repos_dir, repo)
                clone = next((c for c in cands if c.is_dir()), None)
                if clone is None:
                    raise BenchsmithError(
                        f"no clone of {repo} at {' or '.join(str(c) for c in cands)}; clone it: "
                        f"git clone https://github.com/{repo}.git {cands[0]}"
                    )
                key = (repo, inst.base_commit)
                if last is None or last[0] != key:
                    last = (key, build_structure(clone, inst.base_commit, repo=repo,
                                                 cache_dir=cache_dir, use_cache=use_cache))
                data = orjson.dumps(replace(last[1], instance_id=inst.instance_id).to_json())
        except BenchsmithError as e:
            status, reason = "skipped", str(e)
        if data is not None:
            try:
                atomic_write_bytes(target, data + b"\n")
            except OSError as e:
                raise ConfigError(
                    str(target), "--out", f"cannot write: {e.strerror or e}"
                ) from None
        if status == "built":
            built.append(inst.instance_id)
        elif status == "existing":
            existing.append(inst.instance_id)
        else:
            skipped.append((inst.instance_id, reason or ""))
        if on_instance is not None:
            on_instance(inst, status, reason)
    return BuildReport(out, tuple(built), tuple(existing), tuple(skipped))
