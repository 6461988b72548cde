"""The top-n files of a repository at a commit by BM25 (`bm25s`), for `--use-bm25`.

Documents are the regular files of the commit with the chosen suffixes, read from git objects
through `sources.gitread` (the user's checkout is never touched): each is its path plus its
text. The index of a commit is cached on disk (a folder per commit id and suffixes, written as
a temp folder + rename), so later queries of that commit do not read the repository again; a
damaged cache folder is rebuilt.
"""

from __future__ import annotations

import hashlib
import itertools
import keyword
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import orjson

from benchsmith.sources import gitread

if TYPE_CHECKING:
    import bm25s

# bm25s and numpy are imported when an index is built or loaded (about 0.1 s), so importing
# this module costs a command that does not use BM25 nothing.

# Bump when tokenizing, scoring parameters or the cache layout change: old caches are rebuilt.
FORMAT = 1
_META = "benchsmith.json"

# Code tokens. A word is a run of ASCII letters, digits and `_`; it gives its parts
# (`parse_http_header`, `parseHTTPHeader` and `ParseHttpHeader` all give parse, http,
# header; `sha256` gives sha, 256), so prose in a requirement meets code, and, when it has
# more than one part, also itself whole, lowercased without `_` (`parsehttpheader` in all
# three spellings, `sha256`), so naming the exact identifier ranks the file that has it above
# files that only share its words. One-character tokens, Python keywords and self/cls are
# dropped: they are in nearly every file and only slow building and queries down. Non-ASCII
# letters are not tokens. Each distinct word is split once (memo), which makes building an
# index over a repository's files about twice as fast as splitting every occurrence.
_WORD = re.compile(r"[A-Za-z0-9_]+")
_PART = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")
_STOP = frozenset(k.lower() for k in keyword.kwlist) | {"self", "cls"}


def _word_tokens(word: str) -> tuple[str, ...]:
    if word.isalpha() and word.islower():  # the common case: one part
        return (word,) if len(word) > 1 and word not in _STOP else ()
    parts = _PART.findall(word)
    toks = [p.lower() for p in parts if len(p) > 1]
    if len(parts) > 1:
        toks.append(word.replace("_", "").lower())
    return tuple(t for t in toks if t not in _STOP)


def tokenize(text: str) -> list[str]:
    """The BM25 tokens of code or prose (see the comment above)."""
    words = _WORD.findall(text)
    memo = {w: _word_tokens(w) for w in dict.fromkeys(words)}
    return list(itertools.chain.from_iterable(map(memo.__getitem__, words)))


@dataclass(frozen=True)
class RepoIndex:
    """The BM25 index of the files of one commit; `paths` sorted (document i is paths[i])."""

    commit: str  # full commit id
    suffixes: tuple[str, ...]
    paths: tuple[str, ...]
    retriever: bm25s.BM25 | None = field(default=None, compare=False, repr=False)

    @property
    def vocab_size(self) -> int:
        return len(self.retriever.vocab_dict) if self.retriever is not None else 0

    def query(self, text: str, topn: int = 10) -> list[str]:
        """Paths of the `topn` best files for `text`, best first; ties in path order. Only
        files sharing a token with the query: an empty query gives []."""
        if topn <= 0 or self.retriever is None:
            return []
        vocab = self.retriever.vocab_dict
        tokens = [t for t in tokenize(text) if t in vocab]
        if not tokens:
            return []
        # the sum over the query's tokens, repeats counted (a few ms for a 10 KB query)
        scores = self.retriever.get_scores(tokens)
        order = (-scores).argsort(kind="stable")[:topn]  # stable: ties keep path order
        return [self.paths[i] for i in order if scores[i] > 0]


# --------------------------------------------------------------------------- building


def build_index(
    clone: Path, commit: str, suffixes: tuple[str, ...] = (".py",),
) -> RepoIndex:
    """The index of the files of `commit` ending with `suffixes`, read from git objects."""
    clone, suffixes = Path(clone), tuple(suffixes)
    gitread.check_clone(clone)
    sha = gitread.resolve_commit(clone, commit)
    return _build(clone, sha, suffixes)


def _build(clone: Path, sha: str, suffixes: tuple[str, ...]) -> RepoIndex:
    files = gitread.list_files(clone, sha, suffixes)
    if not files:
        return RepoIndex(sha, suffixes, ())
    blobs = gitread.cat_blobs(clone, list(dict.fromkeys(oid for _, oid in files)))
    # Token ids are made here, file by file, through a memo of each distinct word's ids:
    # faster than bm25s' per-token loop, and no file's token strings are kept.
    vocab: dict[str, int] = {}
    word_ids: dict[str, tuple[int, ...]] = {}
    ids: list[list[int]] = []
    for path, oid in files:
        words = _WORD.findall(path + "\n" + blobs[oid].decode("utf-8", errors="replace"))
        for w in itertools.filterfalse(word_ids.__contains__, dict.fromkeys(words)):
            word_ids[w] = tuple([vocab.setdefault(t, len(vocab)) for t in _word_tokens(w)])
        ids.append(list(itertools.chain.from_iterable(map(word_ids.__getitem__, words))))
    del blobs, word_ids  # not needed by bm25s: lowers the peak while it builds
    paths = tuple(p for p, _ in files)
    if not vocab:
        return RepoIndex(sha, suffixes, paths)  # files, but not one token in them
    import bm25s

    retriever = bm25s.BM25()  # Lucene BM25, k1=1.5, b=0.75; numpy only (no numba, no scipy)
    retriever.index((ids, vocab), show_progress=False)
    return RepoIndex(sha, suffixes, paths, retriever)


# --------------------------------------------------------------------------- the cache


def default_cache_dir() -> Path:
    """`~/.cache/benchsmith/bm25`: indexes are kept per commit, shared by every build."""
    return Path.home() / ".cache" / "benchsmith" / "bm25"


def cache_path(cache_dir: Path, sha: str, suffixes: tuple[str, ...] = (".py",)) -> Path:
    """The cache folder of the index of commit `sha` (full id) for these suffixes."""
    key = hashlib.sha256(repr((FORMAT, tuple(suffixes))).encode()).hexdigest()[:12]
    return Path(cache_dir).expanduser() / f"{sha}-{key}"


def save_index(index: RepoIndex, cache_dir: Path) -> Path:
    """Write `index` under `cache_dir` (temp folder + rename); returns its folder. A cache
    that cannot be written costs only a rebuild next time: OSError is not raised."""
    final = cache_path(cache_dir, index.commit, index.suffixes)
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.", suffix=".tmp"))
    except OSError:
        return final
    import bm25s

    try:
        if index.retriever is not None:
            index.retriever.save(tmp)  # no corpus: nothing to show progress of
        meta = {"format": FORMAT, "commit": index.commit, "suffixes": list(index.suffixes),
                "paths": list(index.paths), "indexed": index.retriever is not None,
                "sizes": _sizes(tmp), "bm25s": bm25s.__version__}
        (tmp / _META).write_bytes(orjson.dumps(meta))  # last: a folder without it is not used
        if final.exists():
            if read_cached(final, index.commit, index.suffixes) is not None:
                return final  # another process wrote it meanwhile: keep theirs
            shutil.rmtree(final, ignore_errors=True)  # a damaged copy
        os.rename(tmp, final)
    except OSError:
        pass  # another process won the rename, or the disk is full: theirs (or none) is kept
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def _sizes(folder: Path) -> dict[str, int]:
    return {p.name: p.stat().st_size for p in sorted(folder.iterdir()) if p.name != _META}


def _whole(folder: Path, sha: str, suffixes: tuple[str, ...]) -> dict | None:
    """The cache folder's metadata if it is of this commit, suffixes and format and its
    files have the sizes written (none truncated or replaced), else None."""
    try:
        meta = orjson.loads((folder / _META).read_bytes())
        ok = (isinstance(meta, dict) and meta.get("format") == FORMAT
              and meta.get("commit") == sha and meta.get("suffixes") == list(suffixes)
              and meta.get("sizes") == _sizes(folder))
    except (OSError, ValueError):
        return None
    return meta if ok else None


def read_cached(folder: Path, sha: str, suffixes: tuple[str, ...]) -> RepoIndex | None:
    """The index cached in `folder` if it is whole and of this commit and format, else None."""
    suffixes = tuple(suffixes)
    meta = _whole(folder, sha, suffixes)
    if meta is None:
        return None
    import bm25s
    import numpy as np

    try:
        paths = tuple(meta["paths"])
        if not meta["indexed"]:
            return RepoIndex(sha, suffixes, paths)
        retriever = bm25s.BM25.load(folder)
        sc, vocab = retriever.scores, retriever.vocab_dict
        ids = np.fromiter(vocab.values(), dtype=np.int64, count=len(vocab))
        n_terms = len(sc["indptr"]) - 1  # bm25s adds "" as the id after the last term
        ok = (
            sc["num_docs"] == len(paths) and len(sc["data"]) == len(sc["indices"])
            and int(sc["indptr"][-1]) == len(sc["data"])
            and vocab.get("") == n_terms and len(ids) and ids.min() >= 0
            and ids.max() == n_terms
            and (not len(sc["indices"]) or 0 <= int(sc["indices"].min())
                 and int(sc["indices"].max()) < len(paths))
        )
    except (OSError, ValueError, TypeError, KeyError, IndexError, AttributeError, EOFError):
        return None  # unreadable or foreign files: rebuilt by the caller
    return RepoIndex(sha, suffixes, paths, retriever) if ok else None


def load_index(
    clone: Path, commit: str, cache_dir: Path | None = None,
    suffixes: tuple[str, ...] = (".py",),
) -> RepoIndex:
    """The index of `commit`: from `cache_dir` when cached there, else built (and cached
    when `cache_dir` is given). Only `git rev-parse` runs on a cache hit."""
    clone, suffixes = Path(clone), tuple(suffixes)
    gitread.check_clone(clone)
    return _index(clone, gitread.resolve_commit(clone, commit), cache_dir, suffixes)


def _index(clone: Path, sha: str, cache_dir: Path | None, suffixes: tuple[str, ...]) -> RepoIndex:
    if cache_dir is None:
        return _build(clone, sha, suffixes)
    hit = read_cached(cache_path(cache_dir, sha, suffixes), sha, suffixes)
    if hit is not None:
        return hit
    index = _build(clone, sha, suffixes)
    save_index(index, cache_dir)
    return index


def top_files(
    clone: Path, commit: str, query: str, topn: int = 10, cache_dir: Path | None = None,
    suffixes: tuple[str, ...] = (".py",),
) -> list[str]:
    """Paths of the `topn` files of `commit` that best match `query` by BM25, best first
    (ties by path). [] for a query without tokens, `topn` <= 0, or no matching files.
    To query one commit many times without a disk cache, keep `load_index(...)` and call
    its `query`."""
    clone, suffixes = Path(clone), tuple(suffixes)
    gitread.check_clone(clone)
    sha = gitread.resolve_commit(clone, commit)  # a bad commit is an error even for no query
    if topn <= 0 or not tokenize(query):
        return []
    return _index(clone, sha, cache_dir, suffixes).query(query, topn)
