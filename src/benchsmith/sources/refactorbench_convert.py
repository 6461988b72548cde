"""Convert a RefactorBench checkout into the JSONL the `refactorbench_py` source loads.

Input layout (github.com/microsoft/RefactorBench):

    problems/<variant>_problems/<repo_dir>/<task>-task.txt   instruction text per variant
    tests/<repo_dir>/*.py                                    unittest file per task
    repositories/<repo_dir>/...                              the source repository
    scripts/<variant>_mapping.py                             file_mapping = {test: problem}

The mapping files are read with `ast` (never imported or executed). One output row per task:
task_id, repo_dir, upstream_repo, variant, instruction, problem_file, test_file, files and,
only when asked for, test_source. Paths are relative to the RefactorBench root. The test
fields are gold: `sources/refactorbench.py` keeps them out of prompts.
"""

from __future__ import annotations

import ast
import os
import posixpath
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchsmith.errors import ConfigError
from benchsmith.store.rundir import atomic_write_jsonl

VARIANTS = ("base", "descriptive", "lazy")
MAX_FILES = 20

# The nine vendored repositories and the upstream project each one is a copy of.
UPSTREAM_REPOS: dict[str, str] = {
    "ansible_refactor": "ansible/ansible",
    "celery_refactor": "celery/celery",
    "django_refactor": "django/django",
    "fastapi_refactor": "tiangolo/fastapi",
    "flask_refactor": "pallets/flask",
    "requests_refactor": "psf/requests",
    "salt_refactor": "saltstack/salt",
    "scrapy_refactor": "scrapy/scrapy",
    "tornado_refactor": "tornadoweb/tornado",
}

_TASK_SUFFIX = "-task.txt"
_ROOT_FIELD = "--refactorbench-root"
_CHECKOUT_HINT = "pass a checkout of https://github.com/microsoft/RefactorBench"


def convert_refactorbench(
    root: Path,
    variant: str,
    *,
    limit: int | None = None,
    include_test_source: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> list[dict[str, Any]]:
    """Rows for every task of one instruction variant, sorted by task id, capped at `limit`;
    `progress(done, total)` after each task."""
    root = Path(root)
    if variant not in VARIANTS:
        raise ConfigError(
            "command line", "--variant",
            f"unknown variant {variant!r}; use one of {', '.join(VARIANTS)}",
        )
    if limit is not None and limit < 1:
        raise ConfigError("command line", "--limit", f"must be at least 1; got {limit}")
    if not root.is_dir():
        what = "is not a directory" if root.exists() else "directory not found"
        raise ConfigError(str(root), _ROOT_FIELD, f"{what}; {_CHECKOUT_HINT}")
    problems = root / "problems" / f"{variant}_problems"
    if not problems.is_dir():
        raise ConfigError(
            str(problems), "--variant", f"no problems directory for variant {variant!r}; "
            f"{_ROOT_FIELD} must be a RefactorBench checkout (with problems/, tests/, scripts/)"
        )
    tasks = _find_tasks(problems)
    if not tasks:
        raise ConfigError(
            str(problems), "--variant", f"no <repo>/<task>{_TASK_SUFFIX} files found; "
            f"{_ROOT_FIELD} must be a RefactorBench checkout"
        )
    mapping = read_mapping(root / "scripts" / f"{variant}_mapping.py")

    tasks.sort(key=lambda t: t[0])
    if limit is not None:
        tasks = tasks[:limit]
    indexes: dict[str, _RepoIndex] = {}
    rows = []
    for task_id, repo_dir, problem in tasks:
        problem_file = problem.relative_to(root).as_posix()
        instruction = _read_text(problem, "instruction").strip()
        test_file = mapping.get(problem_file)
        if test_file is None:
            fallback = f"tests/{repo_dir}/{task_id}-test.py"
            test_file = fallback if (root / fallback).is_file() else None
        if repo_dir not in indexes:
            indexes[repo_dir] = _RepoIndex(root, repo_dir)
        row: dict[str, Any] = {
            "task_id": task_id,
            "repo_dir": repo_dir,
            "upstream_repo": UPSTREAM_REPOS.get(repo_dir),
            "variant": variant,
            "instruction": instruction,
            "problem_file": problem_file,
            "test_file": test_file,
            "files": indexes[repo_dir].mentioned(instruction),
        }
        if include_test_source:
            row["test_source"] = _read_text(root / test_file, "test file") if test_file else None
        rows.append(row)
        if progress is not None:
            progress(len(rows), len(tasks))
    return rows


def write_rows(path: Path, rows: list[dict[str, Any]]) -> int:
    """Write rows as JSONL atomically (all or nothing); returns the row count."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(
            str(path), "--output", "is a directory; give a file path ending in .jsonl"
        )
    try:
        return atomic_write_jsonl(path, rows)
    except OSError as e:
        raise ConfigError(str(path), "--output", f"cannot write: {e.strerror or e}") from None


def read_mapping(path: Path) -> dict[str, str]:
    """`file_mapping` of scripts/<variant>_mapping.py as {problem_file: test_file}, root-relative.

    A missing file gives {} (tasks then fall back to tests/<repo>/<task>-test.py).
    """
    if not path.exists():
        return {}
    fix = "expected `file_mapping = {'../tests/<repo>/<x>.py': '../problems/.../<task>-task.txt'}`"
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(str(path), "file_mapping", f"cannot read: {e}") from None
    except SyntaxError as e:
        raise ConfigError(
            str(path), f"line {e.lineno}", f"not valid Python: {e.msg}; {fix}"
        ) from None
    node = None
    for stmt in tree.body:  # the last top-level assignment wins, as when Python runs it
        if isinstance(stmt, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "file_mapping" for t in stmt.targets
        ):
            node = stmt.value
        elif (
            isinstance(stmt, ast.AnnAssign)
            and isinstance(stmt.target, ast.Name)
            and stmt.target.id == "file_mapping"
            and stmt.value is not None
        ):
            node = stmt.value
    if node is None:
        raise ConfigError(str(path), "file_mapping", f"no top-level assignment found; {fix}")
    try:
        raw = ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        raise ConfigError(
            str(path), f"line {node.lineno}", f"file_mapping must be a plain dict literal; {fix}"
        ) from None
    if not isinstance(raw, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in raw.items()
    ):
        raise ConfigError(
            str(path), f"line {node.lineno}", f"file_mapping must map str to str; {fix}"
        )
    out: dict[str, str] = {}
    for test, problem in raw.items():
        test_rel, problem_rel = _root_relative(test, path), _root_relative(problem, path)
        if problem_rel in out and out[problem_rel] != test_rel:
            raise ConfigError(
                str(path), "file_mapping", f"{problem!r} is paired with two test files "
                f"({out[problem_rel]!r} and {test_rel!r}); keep one entry per task"
            )
        out[problem_rel] = test_rel
    return out


# --------------------------------------------------------------------------- helpers


def _find_tasks(problems: Path) -> list[tuple[str, str, Path]]:
    """(task_id, repo_dir, problem path) per task file; task ids must be unique."""
    found: dict[str, Path] = {}
    tasks = []
    for repo in sorted(p for p in problems.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for f in sorted(repo.iterdir()):
            if not f.name.endswith(_TASK_SUFFIX) or not f.is_file():
                continue
            task_id = f.name[: -len(_TASK_SUFFIX)]
            if task_id in found:
                raise ConfigError(
                    str(f), "task_id", f"duplicate task id {task_id!r} (also {found[task_id]}); "
                    "task names must be unique across repositories"
                )
            found[task_id] = f
            tasks.append((task_id, repo.name, f))
    return tasks


def _root_relative(p: str, mapping_file: Path) -> str:
    rel = posixpath.normpath(posixpath.join("scripts", p.replace("\\", "/")))
    if rel.startswith("../") or rel == ".." or posixpath.isabs(rel):
        raise ConfigError(
            str(mapping_file), "file_mapping", f"{p!r} points outside the RefactorBench root; "
            "paths must be relative to scripts/ (e.g. '../tests/<repo>/<x>.py')"
        )
    return rel


def _read_text(path: Path, what: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(str(path), what, f"cannot read: {e}") from None


_PY_TOKEN = re.compile(r"(?<![\w.\-/])((?:[\w.\-]+/)*[\w\-]+\.py)(?![\w])")
_DOTTED = re.compile(r"(?<![\w.])[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+")


class _RepoIndex:
    """The .py files of repositories/<repo_dir>/, to find the ones an instruction mentions."""

    def __init__(self, root: Path, repo_dir: str):
        self.prefix = f"repositories/{repo_dir}/"
        self.paths: list[str] = []  # relative to repositories/<repo_dir>/
        base = root / "repositories" / repo_dir
        if base.is_dir():
            for dirpath, dirnames, filenames in os.walk(base):
                dirnames[:] = sorted(
                    d for d in dirnames if not d.startswith(".") and d != "__pycache__"
                )
                rel_dir = Path(dirpath).relative_to(base).as_posix()
                for name in sorted(filenames):
                    if name.endswith(".py"):
                        self.paths.append(name if rel_dir == "." else f"{rel_dir}/{name}")
        self.by_name: dict[str, list[str]] = {}
        self.by_module: dict[str, str] = {}
        for rel in self.paths:
            self.by_name.setdefault(posixpath.basename(rel), []).append(rel)
            for mod in _module_names(rel):
                self.by_module.setdefault(mod, rel)

    def mentioned(self, text: str) -> list[str]:
        """Files whose name, path or dotted module appears in `text`; sorted, at most 20.

        Score 3: a path with a directory (`scrapy/utils/url.py`) or a dotted module
        (`tornado.tcpclient`). Score 2: the file name plus a directory of its path
        (`helpers.py` ... `ansible/inventory`). Score 1: the file name alone, kept only when
        no file of that name scored higher. Over 20 matches keeps the highest scores.
        """
        if not self.paths:
            return []
        score: dict[str, int] = {}

        def hit(rel: str, s: int) -> None:
            score[rel] = max(score.get(rel, 0), s)

        for tok in _PY_TOKEN.findall(text):
            while tok.startswith(("./", "../")):
                tok = tok.split("/", 1)[1]
            name = posixpath.basename(tok)
            cands = self.by_name.get(name, [])
            if "/" in tok:
                for rel in cands:
                    if rel == tok or rel.endswith("/" + tok):
                        hit(rel, 3)
                continue
            best = 0
            for rel in cands:
                s = 2 if _dir_mentioned(rel, text) else 1
                best = max(best, s)
                hit(rel, s)
            if best >= 2:
                for rel in cands:
                    if score.get(rel) == 1:
                        del score[rel]
        for tok in _DOTTED.findall(text):
            parts = tok.split(".")
            for n in range(len(parts), 1, -1):
                rel = self.by_module.get(".".join(parts[:n]))
                if rel is not None:
                    hit(rel, 3)
                    break
        best_first = sorted(score, key=lambda r: (-score[r], r))[:MAX_FILES]
        return sorted(self.prefix + r for r in best_first)


def _module_names(rel: str) -> list[str]:
    """Dotted names of a file: from the repository root, and without a lib/ or src/ prefix."""
    parts = rel[: -len(".py")].split("/")
    if parts[-1] == "__init__":
        parts = parts[:-1]
    if not parts or not all(p.isidentifier() for p in parts):
        return []
    names = [".".join(parts)] if len(parts) > 1 else []
    if parts[0] in ("lib", "src") and len(parts) > 2:
        names.append(".".join(parts[1:]))
    return names


def _dir_mentioned(rel: str, text: str) -> bool:
    """Whether a directory of `rel` (any tail of its folder path, e.g. `inventory` or
    `ansible/inventory`) appears in `text` as a whole word."""
    dirs = rel.split("/")[:-1]
    for i in range(len(dirs)):
        tail = "/".join(dirs[i:])
        if re.search(rf"(?<![\w\-/.]){re.escape(tail)}(?![\w\-]|\.\w)", text):
            return True
    return False
