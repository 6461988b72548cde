"""Reading files of a commit from a local clone (`sources.gitread`) and BM25 top-n files of a
commit (`sources.editbench.bm25`), on a real git repository with three commits and
uncommitted changes that must be neither touched nor read."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import bm25s
import numpy as np
import pytest
from git_support import git, write

from benchsmith.errors import ConfigError
from benchsmith.sources import gitread
from benchsmith.sources.editbench import bm25

ROOT = Path(__file__).resolve().parents[1]

CONFIG = '''"""Reading settings files."""

import yaml


class ConfigLoader:
    def parse_config_file(self, config_path):
        with open(config_path) as fh:
            return yaml.safe_load(fh)

    def merge_defaults(self, settings, defaults):
        return {**defaults, **settings}
'''
HTTP = '''"""A small HTTP client with retries."""


class HttpClient:
    def send_request(self, url, payload):
        for attempt in range(self.max_retries):
            response = self.transport.post(url, payload)
            if response.status_code < 500:
                return response
            self.retry_backoff(attempt)

    def retry_backoff(self, attempt):
        return 2 ** attempt
'''
GEOMETRY_V1 = '''"""Shapes."""


def rectangle_area(width, height):
    return width * height


class Polygon:
    def __init__(self, vertices):
        self.vertices = vertices
'''
GEOMETRY_V2 = GEOMETRY_V1 + '''
    def compute_centroid(self):
        xs = [x for x, _ in self.vertices]
        ys = [y for _, y in self.vertices]
        return sum(xs) / len(xs), sum(ys) / len(ys)
'''
CACHE = '''"""An in-memory cache with a size limit."""


class CacheStore:
    def __init__(self, capacity):
        self.capacity = capacity
        self.entries = {}

    def evict_oldest_entry(self):
        oldest_key = next(iter(self.entries))
        del self.entries[oldest_key]
'''
# Only in the working tree (modified, staged or untracked), never committed.
LOCAL_WORD = "zanzibar_quokka_uncommitted"


@dataclass(frozen=True)
class Repo:
    path: Path
    commits: tuple[str, str, str]


@pytest.fixture
def repo(tmp_path: Path) -> Repo:
    root = tmp_path / "acme__widgets"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    files = {"pkg/config_loader.py": CONFIG, "pkg/http_client.py": HTTP,
             "pkg/geometry.py": GEOMETRY_V1, "pkg/__init__.py": "",
             "README.md": "# Widgets\nCacheStore evict_oldest_entry\n",
             "pkg/latin.py": b'NAME = "caf\xe9"\n', "docs/a b.txt": "spaced out\n"}
    for rel, text in files.items():
        write(root, rel, text)
    git(root, "add", "-A")
    git(root, "commit", "-qm", "one")
    c1 = git(root, "rev-parse", "HEAD")
    write(root, "pkg/geometry.py", GEOMETRY_V2)
    write(root, "pkg/cache_store.py", CACHE)
    git(root, "add", "-A")
    git(root, "commit", "-qm", "two")
    c2 = git(root, "rev-parse", "HEAD")
    git(root, "rm", "-q", "pkg/http_client.py")
    git(root, "commit", "-qm", "three")
    c3 = git(root, "rev-parse", "HEAD")
    # uncommitted work of the user: a modified file, a staged file and an untracked one
    write(root, "pkg/geometry.py", GEOMETRY_V2 + f"\n\ndef {LOCAL_WORD}():\n    pass\n")
    write(root, "pkg/staged.py", f"{LOCAL_WORD} = 1\n")
    git(root, "add", "pkg/staged.py")
    write(root, "pkg/untracked.py", f"def {LOCAL_WORD}():\n    return 2\n")
    return Repo(root, (c1, c2, c3))


def snapshot(root: Path) -> tuple:
    return (
        git(root, "status", "--porcelain=v1", "-uall"), git(root, "rev-parse", "HEAD"),
        git(root, "diff"), git(root, "diff", "--cached"),
        (root / ".git/index").read_bytes(),
        {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*")
         if p.is_file() and ".git" not in p.parts},
    )


# --------------------------------------------------------------------------- gitread


def test_read_files_at_an_older_commit(repo: Repo):
    before = snapshot(repo.path)
    c1, c2, c3 = repo.commits
    got = gitread.read_files(repo.path, c1, [
        "pkg/geometry.py", "pkg/cache_store.py", "pkg", "pkg/latin.py", "pkg/untracked.py",
        "pkg/staged.py", "README.md",
    ])
    assert got == {
        "pkg/geometry.py": GEOMETRY_V1,  # the commit's text, not the working tree's
        "pkg/cache_store.py": None,  # added later
        "pkg": None,  # a folder
        "pkg/latin.py": 'NAME = "caf\ufffd"\n',  # not UTF-8: replaced, not an error
        "pkg/untracked.py": None, "pkg/staged.py": None,
        "README.md": "# Widgets\nCacheStore evict_oldest_entry\n",
    }
    assert gitread.read_files(repo.path, c3[:10], ["pkg/geometry.py", "pkg/http_client.py"]) \
        == {"pkg/geometry.py": GEOMETRY_V2, "pkg/http_client.py": None}
    assert gitread.read_files(str(repo.path), "main~1", ["pkg/http_client.py"]) == {
        "pkg/http_client.py": HTTP}
    assert gitread.read_files(repo.path, c2, []) == {}
    assert gitread.read_files(repo.path, c2, ["docs/a b.txt", "docs/a c.txt", "pkg/x 1"]) == {
        "docs/a b.txt": "spaced out\n", "docs/a c.txt": None, "pkg/x 1": None}
    assert snapshot(repo.path) == before


def test_list_files(repo: Repo):
    c1, _, c3 = repo.commits
    py = gitread.list_files(repo.path, c1)
    assert [p for p, _ in py] == ["pkg/__init__.py", "pkg/config_loader.py", "pkg/geometry.py",
                                  "pkg/http_client.py", "pkg/latin.py"]
    assert dict(py)["pkg/geometry.py"] == git(repo.path, "rev-parse", f"{c1}:pkg/geometry.py")
    assert [p for p, _ in gitread.list_files(repo.path, c3, suffixes=(".md", ".txt"))] == [
        "README.md", "docs/a b.txt"]
    assert len(gitread.list_files(repo.path, c3, suffixes=())) == 7  # every file


@pytest.mark.parametrize("call", [
    lambda clone, c: gitread.read_files(clone, c, ["a.py"]),
    lambda clone, c: gitread.list_files(clone, c),
    lambda clone, c: bm25.top_files(clone, c, "ConfigLoader"),
    lambda clone, c: bm25.top_files(clone, c, ""),
])
def test_bad_clone_or_commit_is_a_one_line_config_error(repo: Repo, tmp_path: Path, call):
    for clone, commit, expect in [
        (tmp_path / "nowhere", repo.commits[0], "no such folder"),
        (tmp_path, repo.commits[0], "not a git clone"),
        (repo.path, "0" * 40, f"commit {'0' * 40} is not in this clone"),
        (repo.path, "no-such-branch", "is not in this clone"),
        (repo.path, "--output=x", "not a commit id"),
    ]:
        with pytest.raises(ConfigError) as e:
            call(clone, commit)
        assert expect in str(e.value) and "\n" not in str(e.value), str(e.value)
        assert str(clone) in str(e.value)


# --------------------------------------------------------------------------- tokens


def test_tokenize_splits_identifiers_and_keeps_compounds():
    assert bm25.tokenize("parseHTTPHeader(get_http_response, x) # Retry 3 times, 404") == [
        "parse", "http", "header", "parsehttpheader", "get", "http", "response",
        "gethttpresponse", "retry", "times", "404",
    ]
    assert set(bm25.tokenize("ParseHttpHeader parse_http_header")) == {
        "parse", "http", "header", "parsehttpheader"}
    assert bm25.tokenize("sha256 HTTPServer") == [
        "sha", "256", "sha256", "http", "server", "httpserver"]
    assert bm25.tokenize("def f(self, cls): return None if x else value") == ["value"]
    assert bm25.tokenize("") == [] and bm25.tokenize("__init__ café") == ["init", "caf"]


# --------------------------------------------------------------------------- bm25


def test_bm25_ranks_the_file_the_query_is_about_first(repo: Repo, tmp_path: Path):
    before = snapshot(repo.path)
    c1, c2, c3 = repo.commits
    cache = tmp_path / "cache"
    q_cache = "evict the oldest entry when the CacheStore is over capacity"
    assert bm25.top_files(repo.path, c2, q_cache, cache_dir=cache)[0] == "pkg/cache_store.py"
    q_http = "send_request should retry with backoff on a 500 status_code"
    assert bm25.top_files(repo.path, c1, q_http, cache_dir=cache)[0] == "pkg/http_client.py"
    assert bm25.top_files(repo.path, c1, "compute_centroid of a Polygon")[0] == \
        "pkg/geometry.py"
    # at c1 the cache store does not exist yet; at c3 the HTTP client is gone
    assert "pkg/cache_store.py" not in bm25.top_files(repo.path, c1, q_cache, topn=10)
    assert "pkg/http_client.py" not in bm25.top_files(repo.path, c3, q_http, topn=10)
    # README.md is not a .py file: not a document unless asked for
    assert "README.md" not in bm25.top_files(repo.path, c2, q_cache)
    assert bm25.top_files(repo.path, c2, q_cache, suffixes=(".md",)) == ["README.md"]
    # uncommitted text is never read
    for c in repo.commits:
        assert bm25.top_files(repo.path, c, LOCAL_WORD, cache_dir=cache) == []
    assert snapshot(repo.path) == before


def test_topn_ties_and_empty(repo: Repo, tmp_path: Path):
    c1, c2, _ = repo.commits
    q = "return the config, the response and the vertices"
    full = bm25.top_files(repo.path, c2, q, topn=100)
    assert len(full) == 3  # only files that share a token with the query
    assert bm25.top_files(repo.path, c2, q, topn=2) == full[:2]
    assert bm25.top_files(repo.path, c2, q, topn=0) == []
    assert bm25.top_files(repo.path, c2, "") == []
    assert bm25.top_files(repo.path, c2, "  self def return if ( ) ;") == []  # no tokens
    assert bm25.top_files(repo.path, c2, "unrelatedword") == []
    # no documents: an empty list, not an error
    assert bm25.top_files(repo.path, c2, q, suffixes=(".rs",)) == []
    # equal scores: path order
    twin = tmp_path / "twin"
    twin.mkdir()
    git(twin, "init", "-q")
    for name in ("b_mod.py", "a_mod.py", "c_mod.py"):
        write(twin, name, "def shared_helper():\n    return 1\n")
    git(twin, "add", "-A")
    git(twin, "commit", "-qm", "twins")
    assert bm25.top_files(twin, "HEAD", "shared_helper", topn=2) == ["a_mod.py", "b_mod.py"]


def test_ranking_is_bm25s_scores_of_tokenize(repo: Repo):
    index = bm25.build_index(repo.path, repo.commits[1])
    query = "CacheStore capacity capacity evict entries vertices config_path yaml"
    # the index (built through a memo of word ids) holds the tokens `tokenize` gives
    texts = gitread.read_files(repo.path, repo.commits[1], list(index.paths))
    plain = bm25s.BM25()
    plain.index([bm25.tokenize(p + "\n" + texts[p]) for p in index.paths], show_progress=False)
    assert sorted(plain.vocab_dict) == sorted(index.retriever.vocab_dict)
    tokens = [t for t in bm25.tokenize(query) if t in plain.vocab_dict]
    scores = plain.get_scores(tokens)
    assert np.allclose(index.retriever.get_scores(tokens), scores, rtol=1e-6)
    ranked = sorted((p for p, s in zip(index.paths, scores) if s > 0),
                    key=lambda p: (-scores[index.paths.index(p)], p))
    assert len(ranked) >= 3 and index.query(query, 10) == ranked


def test_cache_is_reused_and_a_damaged_cache_rebuilt(
    repo: Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
):
    calls = []
    real_ls_tree = gitread.ls_tree
    monkeypatch.setattr(gitread, "ls_tree", lambda *a: calls.append(a) or real_ls_tree(*a))
    cache, c2 = tmp_path / "cache", repo.commits[1]
    q = "evict_oldest_entry capacity"
    first = bm25.top_files(repo.path, c2, q, topn=3, cache_dir=cache)
    assert len(calls) == 1 and first[0] == "pkg/cache_store.py"
    folder = bm25.cache_path(cache, c2)
    assert folder.is_dir() and [p.name for p in cache.iterdir()] == [folder.name]  # no temp
    # a second query of the commit (by a short id, too) does not read the repository
    assert bm25.top_files(repo.path, c2, q, topn=3, cache_dir=cache) == first
    assert bm25.top_files(repo.path, c2[:8], q, topn=3, cache_dir=cache) == first
    assert len(calls) == 1
    # a cache of another commit is its own
    bm25.top_files(repo.path, repo.commits[0], q, cache_dir=cache)
    assert len(calls) == 2 and len(list(cache.iterdir())) == 2

    # saving again (as a second process building the same commit would) keeps the copy
    meta_stat = (folder / "benchsmith.json").stat()
    assert bm25.save_index(bm25.load_index(repo.path, c2, cache), cache) == folder
    assert (folder / "benchsmith.json").stat() == meta_stat
    assert sorted(p.name for p in cache.iterdir()) == sorted(
        bm25.cache_path(cache, c).name for c in repo.commits[:2])

    files = sorted(p.name for p in folder.iterdir())
    for name in files:
        damaged = folder / name
        good = damaged.read_bytes()
        for bad in (b"", good[: len(good) // 2], b"{not json", b"x" * len(good)):
            damaged.write_bytes(bad)
            n = len(calls)
            assert bm25.top_files(repo.path, c2, q, topn=3, cache_dir=cache) == first, name
            assert len(calls) == n + 1, name  # rebuilt ...
            assert bm25.top_files(repo.path, c2, q, topn=3, cache_dir=cache) == first
            assert len(calls) == n + 1, name  # ... and cached again
    # a cache of another commit, or of an older format, in the folder is not used
    meta = folder / "benchsmith.json"
    data = json.loads(meta.read_bytes())
    meta.write_text(json.dumps({**data, "format": bm25.FORMAT - 1}))
    n = len(calls)
    assert bm25.top_files(repo.path, c2, q, topn=3, cache_dir=cache) == first
    assert len(calls) == n + 1
    # an unwritable cache only costs a rebuild
    blocked = tmp_path / "blocked"
    blocked.write_text("a file, not a folder")
    assert bm25.top_files(repo.path, c2, q, topn=3, cache_dir=blocked) == first


def test_empty_repo_index_is_cached(repo: Repo, tmp_path: Path):
    c2 = repo.commits[1]
    index = bm25.load_index(repo.path, c2, tmp_path / "c", suffixes=(".rs",))
    assert index.paths == () and index.query("anything", 5) == []
    again = bm25.read_cached(bm25.cache_path(tmp_path / "c", c2, (".rs",)), c2, (".rs",))
    assert again == index


def test_benchmark_script_runs():
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    args = [sys.executable, "benchmarks/bm25_repo.py", "--files", "40", "--mb", "0.3",
            "--queries", "5"]
    res = subprocess.run([*args, "--json"], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    out = json.loads(res.stdout)
    assert out["files"] == 40 and out["vocab"] > 0 and out["build_peak_mb"] > 0
    for kind in ("short", "long"):
        assert out[kind]["n"] == 5 and out[kind]["file_in_top10"] == 5
    table = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert table.returncode == 0 and "| build the index from the commit (cold) |" in table.stdout
