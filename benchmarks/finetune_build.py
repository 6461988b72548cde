"""`finetune build` + `finetune stats` on 10,000 trajectory entries: read and check the
trajectory file, filter, make pairs, split and write all six formats, then `finetune stats`
with the real GPT-2 tokenizer on openai/train.jsonl (the positive and reflection pairs one
uploads). The stats of dpo/train.jsonl (the preference pairs) are timed too, apart.

    python benchmarks/finetune_build.py              # median of 3 runs
    python benchmarks/finetune_build.py --repeat 1 --entries 2000 --json

The entries are generated from the 300 real SWE-bench Lite rows (problem statements and gold
patches), each row reused under new instance ids, in five per-instance patterns cycled:
resolved at once; failed then resolved; failed twice then resolved; failed twice; resolved
then failed. Every copy gets its own problem statement and patch text (a variant number added), so
no token count is shared between copies. Failed attempts carry a changed line of the gold
patch, a pytest failure as test output and a failure_category (so the numbers do not depend
on the categorizer, whose own cost is not measured here).
Target: under 10 s for the whole chain. Results: benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import gzip
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

SHARED = Path(__file__).resolve().parents[2] / "shared/data"
LITE = SHARED / "swebench_lite/swebench_lite_test.jsonl.gz"
TOKENIZER = SHARED / "models/fake_gpt2/tokenizer.json"
TARGET_S = 10.0
PATTERNS = ("R", "FR", "FFR", "FF", "RF")
CATEGORIES = ("assertion_failure", "exception:TypeError", "syntax_error", "timeout")
STDOUT = """tests/test_core.py ..F.                                                [100%]

=================================== FAILURES ===================================
_________________________________ test_fix _____________________________________

    def test_fix():
        result = compute(3)
>       assert result == 6
E       AssertionError: assert 5 == 6

tests/test_core.py:17: AssertionError
=========================== short test summary info ============================
FAILED tests/test_core.py::test_fix - AssertionError: assert 5 == 6
========================= 1 failed, 3 passed in 0.42s ==========================
"""


def changed_line(patch: str, note: str) -> str:
    """`patch` with `note` appended to its first added line."""
    lines = patch.split("\n")
    for i, line in enumerate(lines):
        if line.startswith("+") and not line.startswith("+++"):
            lines[i] = f"{line}  # {note}"
            break
    return "\n".join(lines)


def generate(n: int) -> list[dict[str, Any]]:
    with gzip.open(LITE, "rt", encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh if line.strip()]
    out: list[dict[str, Any]] = []
    k = 0
    while len(out) < n:
        row = rows[k % len(rows)]
        iid = f"{row['instance_id']}__v{k}"
        files = [ln[6:] for ln in row["patch"].splitlines() if ln.startswith("+++ b/")]
        # every copy has its own text, so no count is shared between copies of a real row
        problem = f"(variant {k}) {row['problem_statement']}"
        gold = changed_line(row["patch"], f"v{k}")
        for a, kind in enumerate(PATTERNS[k % len(PATTERNS)], 1):
            failed = kind == "F"
            out.append({
                "instance_id": iid, "repo": row["repo"], "problem_statement": problem,
                "patch": changed_line(gold, f"attempt {a}") if failed else gold,
                "resolved": not failed, "attempt": a,
                "failure_category": CATEGORIES[len(out) % len(CATEGORIES)] if failed else None,
                "test_stdout": STDOUT if failed else None, "localised_files": files,
                "model": "bench-model",
            })
        k += 1
    return out[:n]


def one_run(traj_dir: Path, out_dir: Path) -> dict[str, Any]:
    from benchsmith.finetune.build import BuildOptions, build
    from benchsmith.finetune.formats import FORMATS
    from benchsmith.finetune.tokens import stats
    from benchsmith.finetune.trajectories import load_trajectories

    c0, t0 = time.process_time(), time.perf_counter()
    loaded = load_trajectories(traj_dir)
    t1 = time.perf_counter()
    rep = build(loaded, BuildOptions(formats=FORMATS), out_dir)
    t2 = time.perf_counter()
    st = stats(out_dir / "openai" / "train.jsonl", tokenizer=TOKENIZER)
    t3, c3 = time.perf_counter(), time.process_time()
    dpo = stats(out_dir / "dpo" / "train.jsonl", tokenizer=TOKENIZER)  # not in the target
    t4 = time.perf_counter()
    written = sum(f.stat().st_size for f in rep.files)
    return {"entries": len(loaded.entries), "pairs": rep.stats["pairs"],
            "rows_written": sum(v["train"] + v["val"] for v in rep.stats["formats"].values()),
            "mb_written": round(written / 1e6, 1), "tokens": st.tokens_total,
            "token_rows": st.rows, "dpo_tokens": dpo.tokens_total, "dpo_rows": dpo.rows,
            "load_s": t1 - t0, "build_s": t2 - t1, "stats_s": t3 - t2, "total_s": t3 - t0,
            "cpu_s": c3 - c0, "dpo_stats_s": t4 - t3}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--entries", type=int, default=10_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    for need in (LITE, TOKENIZER):
        if not need.is_file():
            print(f"error: not found: {need}", file=sys.stderr)
            return 1
    with tempfile.TemporaryDirectory() as tmp:
        traj = Path(tmp) / "trajs"
        traj.mkdir()
        (traj / "entries.jsonl").write_text(
            "".join(json.dumps(e) + "\n" for e in generate(args.entries)), encoding="utf-8")
        runs = [one_run(traj, Path(tmp) / f"out{i}") for i in range(args.repeat)]
    med = {k: round(statistics.median(r[k] for r in runs), 3)
           for k in ("load_s", "build_s", "stats_s", "total_s", "cpu_s", "dpo_stats_s")}
    first = runs[0]
    result = {**{k: first[k] for k in ("entries", "pairs", "rows_written", "mb_written",
                                       "tokens", "token_rows", "dpo_tokens", "dpo_rows")},
              "repeat": args.repeat, **med,
              "total_s_range": [round(min(r["total_s"] for r in runs), 3),
                                round(max(r["total_s"] for r in runs), 3)],
              "target_s": TARGET_S, "met": med["total_s"] < TARGET_S}
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    p = result["pairs"]
    print(f"finetune build, {result['entries']:,} entries -> positive {p['positive']:,}, "
          f"reflection {p['reflection']:,}, preference {p['preference']:,}; "
          f"{result['rows_written']:,} rows in 6 formats ({result['mb_written']} MB); "
          f"median of {args.repeat}:")
    print(f"  load + check entries:       {med['load_s']:.3f} s")
    print(f"  filter, pairs, split, write: {med['build_s']:.3f} s")
    print(f"  stats, GPT-2 tokenizer:     {med['stats_s']:.3f} s "
          f"({result['tokens']:,} tokens in {result['token_rows']:,} rows of "
          "openai/train.jsonl)")
    print(f"  total:                      {med['total_s']:.3f} s "
          f"(range {result['total_s_range'][0]}-{result['total_s_range'][1]}; target < "
          f"{TARGET_S:.0f} s: {'met' if result['met'] else 'NOT met'})")
    print(f"  CPU of the total (all threads): {med['cpu_s']:.3f} s")
    print(f"  not in the total: stats of dpo/train.jsonl {med['dpo_stats_s']:.3f} s "
          f"({result['dpo_tokens']:,} tokens in {result['dpo_rows']:,} rows)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
