"""Building the 478-instance infbench of the real RealisticEditBench rows (oracle context
from the diffs, no clone): the time to read and check the bench, and to build and write it.

    python benchmarks/infbench_build.py              # median of 5 runs, --info-pct 0.2
    python benchmarks/infbench_build.py --repeat 1 --info-pct 0.8 --json

Target: under 20 s for the whole build. Results: benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

DATA = Path(__file__).resolve().parents[2] / (
    "shared/data/realisticeditbench/work_patch_list_from_patch_histories.jsonl.gz")
TARGET_S = 20.0


def one_run(bench: Path, info_pct: float, out_dir: Path) -> dict[str, float | int]:
    from benchsmith.sources.editbench.bench import load_bench
    from benchsmith.sources.editbench.build import BuildOptions, build_infbench

    t0 = time.perf_counter()
    rows = load_bench(bench)
    t1 = time.perf_counter()
    save = out_dir / f"all-task-instances_{info_pct}.jsonl"
    summary = build_infbench(rows, save, BuildOptions(info_pct))
    t2 = time.perf_counter()
    return {"rows": summary.rows_read, "written": summary.written, "load_s": t1 - t0,
            "build_s": t2 - t1, "total_s": t2 - t0, "bytes": save.stat().st_size}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bench", type=Path, default=DATA)
    ap.add_argument("--info-pct", type=float, default=0.2)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if not args.bench.is_file():
        print(f"error: bench not found: {args.bench}", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        runs = [one_run(args.bench, args.info_pct, Path(tmp)) for _ in range(args.repeat)]
    med = {k: statistics.median(float(r[k]) for r in runs)
           for k in ("load_s", "build_s", "total_s")}
    result = {"rows": runs[0]["rows"], "written": runs[0]["written"],
              "mb_written": round(runs[0]["bytes"] / 1e6, 1), "repeat": args.repeat,
              **{k: round(v, 3) for k, v in med.items()},
              "total_s_range": [round(min(float(r["total_s"]) for r in runs), 3),
                                round(max(float(r["total_s"]) for r in runs), 3)],
              "target_s": TARGET_S, "met": med["total_s"] < TARGET_S}
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"infbench build, {result['rows']} rows -> {result['written']} written "
          f"({result['mb_written']} MB), --info-pct {args.info_pct}, median of {args.repeat}:")
    print(f"  load + check the bench: {med['load_s']:.3f} s")
    print(f"  build + write:          {med['build_s']:.3f} s")
    print(f"  total:                  {med['total_s']:.3f} s "
          f"(range {result['total_s_range'][0]}-{result['total_s_range'][1]}; target < "
          f"{TARGET_S:.0f} s: {'met' if result['met'] else 'NOT met'})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
