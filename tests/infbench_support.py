"""Shared by the infbench tests: the real RealisticEditBench rows, a git repository whose
commits form an edit history, and bench rows written to files."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from git_support import GIT_ENV

DATA = Path(__file__).resolve().parents[2] / (
    "shared/data/realisticeditbench/work_patch_list_from_patch_histories.jsonl.gz")


def real_rows() -> list[dict[str, Any]]:
    if not DATA.is_file():
        pytest.skip(f"real data not found at {DATA}")
    with gzip.open(DATA, "rt", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def write_jsonl(path: Path, rows: list[Any]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def git(repo: Path, *args: str) -> str:
    """`git args` in `repo`, its output as is (a diff keeps its last newline)."""
    return subprocess.run(["git", "-C", str(repo), *args], env=GIT_ENV, check=True,
                          capture_output=True, text=True).stdout


# --------------------------------------------------------------------------- git fixture

CORE_V1 = "".join(f"def f{i}():\n    return {i}\n\n\n" for i in range(1, 31))
UTIL_V1 = "import os\n\n\ndef here():\n    return os.getcwd()\n"


@dataclass(frozen=True)
class History:
    clone: Path  # <repos_dir>/acme__widgets
    repos_dir: Path
    commits: tuple[str, ...]  # c0 (base) .. c3
    texts: tuple[dict[str, str | None], ...]  # the files at each commit
    steps: tuple[tuple[str, ...], ...]  # step i = git diff c(i) c(i+1), one diff per file


def _commit(repo: Path, files: dict[str, str | None], msg: str) -> str:
    for path, text in files.items():
        p = repo / path
        if text is None:
            if p.exists():
                git(repo, "rm", "-q", path)
            continue
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text, encoding="utf-8")
        git(repo, "add", path)
    git(repo, "commit", "-q", "-m", msg)
    return git(repo, "rev-parse", "HEAD").strip()


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> History:
    """acme/widgets: four commits; the diffs between them are the steps of one PR."""
    repos_dir = tmp_path_factory.mktemp("repos")
    repo = repos_dir / "acme__widgets"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    v0 = {"pkg/core.py": CORE_V1, "pkg/util.py": UTIL_V1, "pkg/new.py": None}
    v1 = {**v0, "pkg/core.py": CORE_V1.replace("return 3\n", "return 3  # step 1\n")}
    v2 = {**v1, "pkg/core.py": v1["pkg/core.py"].replace("return 20\n", "return 200\n"),
          "pkg/util.py": UTIL_V1.replace("import os\n", "import os\nimport sys\n")}
    v3 = {**v2, "pkg/new.py": "VALUE = 1\n",
          "pkg/core.py": v2["pkg/core.py"].replace("def f25", "def f25_renamed")}
    texts = (v0, v1, v2, v3)
    commits = tuple(_commit(repo, v, f"v{i}") for i, v in enumerate(texts))
    steps = []
    for a, b in zip(commits, commits[1:]):
        names = git(repo, "diff", "--name-only", a, b).split()
        steps.append(tuple(git(repo, "diff", a, b, "--", n) for n in names))
    return History(repo, repos_dir, commits, texts, tuple(steps))


# --------------------------------------------------------------------------- stand-ins


def _stand_in_gitread() -> types.ModuleType:
    """gitread's interface over `git cat-file`, for a tree where the module is not merged."""
    from benchsmith.errors import ConfigError

    mod = types.ModuleType("benchsmith.sources.gitread")

    def run(clone: Path, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["git", "-C", str(clone), *args], capture_output=True, text=True,
                              env=GIT_ENV)

    def check_clone(clone: Path) -> None:
        if run(clone, "rev-parse", "--git-dir").returncode:
            raise ConfigError(str(clone), "", "not a git clone")

    def resolve_commit(clone: Path, commit: str) -> str:
        r = run(clone, "rev-parse", "--verify", "--quiet", f"{commit}^{{commit}}")
        if r.returncode:
            raise ConfigError(str(clone), "base_commit", f"commit {commit!r} not found")
        return r.stdout.strip()

    def read_files(clone: Path, commit: str, paths: list[str]) -> dict[str, str | None]:
        out: dict[str, str | None] = {}
        for p in paths:
            r = run(clone, "show", f"{commit}:{p}")
            out[p] = r.stdout if r.returncode == 0 else None
        return out

    mod.check_clone, mod.resolve_commit, mod.read_files = check_clone, resolve_commit, read_files
    return mod


@pytest.fixture
def gitread(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    """The real benchsmith.sources.gitread when merged, else the stand-in above."""
    try:
        from benchsmith.sources import gitread as real
        return real
    except ImportError:
        mod = _stand_in_gitread()
        import benchsmith.sources as sources

        monkeypatch.setitem(sys.modules, "benchsmith.sources.gitread", mod)
        monkeypatch.setattr(sources, "gitread", mod, raising=False)
        return mod


@pytest.fixture
def fake_bm25(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """bm25.top_files replaced: records its calls, answers `calls[0]["answer"]` (a list)."""
    import benchsmith.sources.editbench as eb

    calls: list[dict[str, Any]] = [{"answer": []}]
    mod = types.ModuleType("benchsmith.sources.editbench.bm25")

    def top_files(clone: Path, commit: str, query: str, topn: int,
                  cache_dir: Path | None) -> list[str]:
        calls.append({"clone": clone, "commit": commit, "query": query, "topn": topn,
                      "cache_dir": cache_dir})
        return list(calls[0]["answer"])[:topn]

    mod.top_files = top_files
    monkeypatch.setitem(sys.modules, "benchsmith.sources.editbench.bm25", mod)
    monkeypatch.setattr(eb, "bm25", mod, raising=False)
    return calls
