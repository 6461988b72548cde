"""BM25 over a repository at a commit (`sources.editbench.bm25`): index build, cache load and
top-10 queries, on a generated git repository of Python files.

The repository is generated in a temp dir from a seed (so runs compare): N Python files of
realistic-looking code (imports, module constants, classes with methods, functions with
docstrings, comments) over a vocabulary of made-up words, written as one commit with
`git fast-import` (no work tree is written). Then, each timed:

- build: `build_index` from the commit, cold (no cache): `git ls-tree`, one
  `git cat-file --batch` for every blob, tokenizing, the bm25s index;
- save: writing the index to the cache (temp folder + rename);
- load: `load_index` from the cache (one `git rev-parse`, no reading of the repository);
- query: Q queries of `RepoIndex.query(text, 10)`, median and p95. A query is what the
  infbench builder sends: a sentence of requirement plus a 40-line slice of one file (as
  the previous edits would show it), so it is a few KB of text.

    python benchmarks/bm25_repo.py                    # 5,000 files, about 50 MB, 100 queries
    python benchmarks/bm25_repo.py --files 500 --json # smaller; the results as JSON

The targets (index under 10 s, a query under 50 ms) are printed, not enforced.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from benchsmith.sources.editbench import bm25  # noqa: E402

_CONS = "bcdfghjklmnprstvwz"
_VOW = "aeiou"
_TYPES = ["int", "str", "float", "bool", "list[str]", "dict[str, int]", "Path", "bytes"]


def _vocab(rng: random.Random, n: int) -> list[str]:
    words: set[str] = set()
    while len(words) < n:
        k = rng.choice((1, 2, 2, 3))
        words.add("".join(rng.choice(_CONS) + rng.choice(_VOW) for _ in range(k))
                  + rng.choice(("", "", "r", "n", "s", "t")))
    return sorted(words)


class _Gen:
    """Python-looking source text from a vocabulary, seeded."""

    def __init__(self, rng: random.Random, vocab: list[str]):
        self.rng, self.vocab = rng, vocab

    def w(self) -> str:
        # a Zipf-like choice: a few words are frequent, most are rare, as in real code
        return self.vocab[min(int(self.rng.paretovariate(1.1)) - 1, len(self.vocab) - 1)
                          if self.rng.random() < 0.5 else self.rng.randrange(len(self.vocab))]

    def snake(self, k: int = 0) -> str:
        return "_".join(self.w() for _ in range(k or self.rng.choice((1, 2, 2, 3))))

    def camel(self) -> str:
        return "".join(self.w().capitalize() for _ in range(self.rng.choice((1, 2, 2, 3))))

    def expr(self, names: list[str]) -> str:
        r = self.rng.random()
        n = self.rng.choice(names)
        if r < 0.3:
            return f"{self.snake()}({n}, {self.rng.choice(names)})"
        if r < 0.5:
            return f"{n}.{self.snake()}"
        if r < 0.7:
            return f"{n} + {self.rng.randint(0, 99)}"
        if r < 0.85:
            return f'"{self.w()} {self.w()}"'
        return f"[{n} for {n} in {self.rng.choice(names)} if {n}]"

    def body(self, names: list[str], indent: str, lines: int) -> list[str]:
        out = []
        for _ in range(lines):
            r = self.rng.random()
            if r < 0.45:
                v = self.snake()
                out.append(f"{indent}{v} = {self.expr(names)}")
                names = names + [v]
            elif r < 0.6:
                out.append(f"{indent}if {self.rng.choice(names)} is None:")
                out.append(f"{indent}    raise {self.camel()}Error(\"{self.w()} {self.w()}\")")
            elif r < 0.7:
                out.append(f"{indent}for {self.w()} in {self.expr(names)}:")
                out.append(f"{indent}    {self.snake()}({self.rng.choice(names)})")
            elif r < 0.8:
                out.append(f"{indent}# {' '.join(self.w() for _ in range(self.rng.randint(3, 9)))}")
            else:
                out.append(f"{indent}{self.rng.choice(names)}.{self.snake()}({self.expr(names)})")
        out.append(f"{indent}return {self.rng.choice(names)}")
        return out

    def function(self, indent: str, method: bool) -> list[str]:
        args = [self.snake(1) for _ in range(self.rng.randint(0, 4))]
        sig = ", ".join((["self"] if method else [])
                        + [f"{a}: {self.rng.choice(_TYPES)}" for a in args])
        lines = [f"{indent}def {self.snake()}({sig}) -> {self.rng.choice(_TYPES)}:",
                 f'{indent}    """{" ".join(self.w() for _ in range(self.rng.randint(4, 12)))}."""']
        names = args + (["self"] if method else []) or ["None"]
        return lines + self.body(names, indent + "    ", self.rng.randint(3, 18)) + [""]

    def module(self, target_bytes: int) -> str:
        lines = [f'"""{" ".join(self.w() for _ in range(8))}."""', "", "import os"]
        lines += [f"from {self.snake(1)}.{self.snake(1)} import {self.camel()}, {self.snake()}"
                  for _ in range(self.rng.randint(2, 8))]
        lines += ["", f"{self.snake().upper()} = {self.rng.randint(0, 1000)}", "", ""]
        size = sum(len(x) + 1 for x in lines)
        while size < target_bytes:
            if self.rng.random() < 0.4:
                block = [f"class {self.camel()}({self.rng.choice(('object', self.camel()))}):",
                         f'    """{" ".join(self.w() for _ in range(6))}."""', ""]
                for _ in range(self.rng.randint(1, 6)):
                    block += self.function("    ", method=True)
            else:
                block = self.function("", method=False) + [""]
            lines += block
            size += sum(len(x) + 1 for x in block)
        return "\n".join(lines) + "\n"


def make_repo(root: Path, n_files: int, total_mb: float, seed: int) -> tuple[str, dict[str, str]]:
    """A git repository at `root` with one commit of `n_files` generated Python files;
    returns (commit id, {path: text})."""
    rng = random.Random(seed)
    gen = _Gen(rng, _vocab(rng, 6000))
    dirs = [f"src/{gen.snake(1)}/{gen.snake(1)}" for _ in range(max(1, n_files // 40))]
    files: dict[str, str] = {}
    mean = total_mb * 1e6 / n_files / 1.12  # the generator overshoots its target by ~12%
    while len(files) < n_files:
        path = f"{rng.choice(dirs)}/{gen.snake()}.py"
        if path not in files:
            files[path] = gen.module(int(rng.uniform(0.3, 1.7) * mean))
    env = {**os.environ, "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}
    subprocess.run(["git", "init", "-q", "-b", "main", str(root)], check=True, env=env)
    chunks = [b"commit refs/heads/main\ncommitter Bench <bench@example.com> 0 +0000\n"
              b"data 6\nbench\n"]
    for path, text in files.items():
        data = text.encode()
        chunks.append(b"M 100644 inline %s\ndata %d\n%s\n" % (path.encode(), len(data), data))
    subprocess.run(["git", "-C", str(root), "fast-import", "--quiet"], input=b"".join(chunks),
                   check=True, env=env)
    sha = subprocess.run(["git", "-C", str(root), "rev-parse", "main"], check=True, env=env,
                         capture_output=True, text=True).stdout.strip()
    return sha, files


def queries(files: dict[str, str], n: int, seed: int) -> list[tuple[str, str]]:
    """(file the query is about, query text): a requirement sentence and 40 lines of it."""
    rng = random.Random(seed + 1)
    paths = sorted(files)
    out = []
    for _ in range(n):
        path = rng.choice(paths)
        lines = files[path].splitlines()
        start = rng.randrange(max(1, len(lines) - 40))
        words = [w for w in rng.choice(lines[start:start + 40] or [""]).split() if w.isalpha()]
        sentence = f"Fix the {' '.join(words[:3]) or 'bug'} handling when the input is empty."
        out.append((path, sentence + "\n" + "\n".join(lines[start:start + 40])))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--files", type=int, default=5000)
    ap.add_argument("--mb", type=float, default=50.0, help="total size of the files (MB)")
    ap.add_argument("--queries", type=int, default=100)
    ap.add_argument("--seed", type=int, default=10)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bm25-bench-") as tmp:
        clone, cache = Path(tmp) / "repo", Path(tmp) / "cache"
        t0 = time.perf_counter()
        sha, files = make_repo(clone, args.files, args.files and args.mb, args.seed)
        gen_s = time.perf_counter() - t0
        size_mb = sum(len(t.encode()) for t in files.values()) / 1e6

        t0 = time.perf_counter()
        index = bm25.build_index(clone, sha)
        build_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        bm25.save_index(index, cache)
        save_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        loaded = bm25.load_index(clone, sha, cache)
        load_s = time.perf_counter() - t0
        assert loaded.paths == index.paths

        qs = queries(files, args.queries, args.seed)
        times, hits = [], 0
        for path, text in qs:
            t0 = time.perf_counter()
            top = loaded.query(text, 10)
            times.append(time.perf_counter() - t0)
            hits += path in top
        times.sort()
        p95 = times[min(len(times) - 1, int(0.95 * len(times)))]
        res = {
            "files": len(files), "mb": round(size_mb, 1), "generate_s": round(gen_s, 2),
            "build_s": round(build_s, 2), "save_s": round(save_s, 3), "load_s": round(load_s, 3),
            "query_median_ms": round(statistics.median(times) * 1e3, 2),
            "query_p95_ms": round(p95 * 1e3, 2),
            "query_chars_median": int(statistics.median(len(q) for _, q in qs)),
            "queries": len(qs), "file_in_top10": hits, "vocab": index.vocab_size,
        }
    if args.json:
        print(json.dumps(res))
        return 0
    print(f"{platform.python_version()}, {os.cpu_count()} cores; {res['files']:,} files, "
          f"{res['mb']} MB (generated in {res['generate_s']} s), vocabulary {res['vocab']:,}")
    print("| step | time | target | met |\n|---|--:|---|:-:|")
    print(f"| build index from the commit (cold) | {res['build_s']} s | < 10 s | "
          f"{'yes' if build_s < 10 else 'no'} |")
    print(f"| save to the cache | {res['save_s']} s | | |")
    print(f"| load from the cache | {res['load_s']} s | | |")
    print(f"| top-10 query, median of {res['queries']} | {res['query_median_ms']} ms | < 50 ms | "
          f"{'yes' if res['query_median_ms'] < 50 else 'no'} |")
    print(f"| top-10 query, p95 | {res['query_p95_ms']} ms | < 50 ms | "
          f"{'yes' if res['query_p95_ms'] < 50 else 'no'} |")
    print(f"queries of {res['query_chars_median']:,} characters (median); the file a query was "
          f"cut from was in its top 10 for {res['file_in_top10']} of {res['queries']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
