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
- query: Q queries of each kind with `RepoIndex.query(text, 10)`, median and p95. A query is
  what the infbench builder sends: a sentence of requirement plus previous edits, here a
  slice of one file: 40 lines ("short", ~1.6 KB) or 400 lines ("long", ~16 KB, a long
  edit history).

Build and load+query each run in a fresh process, so their peak RSS is their own.

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
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

import bm25s  # noqa: E402

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


def queries(files: dict[str, str], n: int, seed: int, lines: int) -> list[tuple[str, str]]:
    """(file the query is about, query text): a requirement sentence and `lines` lines of it
    (or the whole file when shorter)."""
    rng = random.Random(seed + lines)
    paths = sorted(files)
    out = []
    for _ in range(n):
        path = rng.choice(paths)
        text = files[path].splitlines()
        start = rng.randrange(max(1, len(text) - lines))
        words = [w for w in rng.choice(text[start:start + lines] or [""]).split() if w.isalpha()]
        sentence = f"Fix the {' '.join(words[:3]) or 'bug'} handling when the input is empty."
        out.append((path, sentence + "\n" + "\n".join(text[start:start + lines])))
    return out


def _maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def phase_build(clone: Path, sha: str, cache: Path) -> dict:
    t0 = time.perf_counter()
    index = bm25.build_index(clone, sha)
    build_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    folder = bm25.save_index(index, cache)
    save_s = time.perf_counter() - t0
    return {"build_s": build_s, "save_s": save_s, "build_peak_mb": _maxrss_mb(),
            "vocab": index.vocab_size,
            "cache_mb": sum(p.stat().st_size for p in folder.iterdir()) / 1e6}


def phase_query(clone: Path, sha: str, cache: Path, qfile: Path) -> dict:
    t0 = time.perf_counter()
    index = bm25.load_index(clone, sha, cache)
    out: dict = {"load_s": time.perf_counter() - t0}
    for name, qs in json.loads(qfile.read_text()).items():
        times, hits = [], 0
        for path, text in qs:
            t0 = time.perf_counter()
            top = index.query(text, 10)
            times.append(time.perf_counter() - t0)
            hits += path in top
        times.sort()
        out[name] = {"median_ms": statistics.median(times) * 1e3,
                     "p95_ms": times[min(len(times) - 1, int(0.95 * len(times)))] * 1e3,
                     "chars": int(statistics.median(len(q) for _, q in qs)),
                     "n": len(qs), "file_in_top10": hits}
    out["query_peak_mb"] = _maxrss_mb()
    return out


def _child(*args: str) -> dict:
    """Run a phase in a fresh process, so its time and peak memory are its own."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    r = subprocess.run([sys.executable, __file__, *args], env=env, capture_output=True,
                       text=True, check=False)
    if r.returncode != 0:
        raise SystemExit(f"benchmark phase {args[1]} failed:\n{r.stderr[-3000:]}")
    return json.loads(r.stdout)


def run(n_files: int, mb: float, n_queries: int, seed: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="bm25-bench-") as tmp:
        clone, cache, qfile = Path(tmp) / "repo", Path(tmp) / "cache", Path(tmp) / "q.json"
        t0 = time.perf_counter()
        sha, files = make_repo(clone, n_files, mb, seed)
        gen_s = time.perf_counter() - t0
        qfile.write_text(json.dumps({
            "short": queries(files, n_queries, seed, 40),
            "long": queries(files, n_queries, seed, 400),
        }))
        common = ["--clone", str(clone), "--commit", sha, "--cache", str(cache)]
        build = _child("--phase", "build", *common)
        query = _child("--phase", "query", *common, "--qfile", str(qfile))
        return {"files": len(files), "mb": sum(len(t.encode()) for t in files.values()) / 1e6,
                "generate_s": gen_s, **build, **query}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--files", type=int, default=5000)
    ap.add_argument("--mb", type=float, default=50.0, help="total size of the files (MB)")
    ap.add_argument("--queries", type=int, default=100, help="queries of each kind")
    ap.add_argument("--seed", type=int, default=10)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--phase", choices=("build", "query"), help=argparse.SUPPRESS)
    ap.add_argument("--clone", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--commit", help=argparse.SUPPRESS)
    ap.add_argument("--cache", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--qfile", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.phase == "build":
        print(json.dumps(phase_build(args.clone, args.commit, args.cache)))
        return 0
    if args.phase == "query":
        print(json.dumps(phase_query(args.clone, args.commit, args.cache, args.qfile)))
        return 0
    res = run(args.files, args.mb, args.queries, args.seed)
    if args.json:
        print(json.dumps(res))
        return 0
    ok = {True: "yes", False: "no"}
    print(f"Python {platform.python_version()}, bm25s {bm25s.__version__}, "
          f"{os.cpu_count()} cores; {res['files']:,} files, {res['mb']:.1f} MB (generated in "
          f"{res['generate_s']:.1f} s); vocabulary {res['vocab']:,}; cache {res['cache_mb']:.0f} MB")
    print("| step | time | peak RSS | target | met |\n|---|--:|--:|---|:-:|")
    print(f"| build the index from the commit (cold) | {res['build_s']:.2f} s | "
          f"{res['build_peak_mb']:.0f} MB | < 10 s | {ok[res['build_s'] < 10]} |")
    print(f"| save it to the cache | {res['save_s']:.2f} s | | | |")
    print(f"| load it from the cache | {res['load_s']:.2f} s | {res['query_peak_mb']:.0f} MB | | |")
    for name in ("short", "long"):
        q = res[name]
        for stat in ("median", "p95"):
            v = q[f"{stat}_ms"]
            print(f"| top-10 query, {name} ({q['chars']:,} chars), {stat} of {q['n']} | "
                  f"{v:.1f} ms | | < 50 ms | {ok[v < 50]} |")
    print("The file a query was cut from was in its top 10: "
          + ", ".join(f"{res[k]['file_in_top10']}/{res[k]['n']} ({k})" for k in ("short", "long")))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
