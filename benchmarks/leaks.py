"""The gold-leak table of all 500 SWE-bench Verified instances (`benchsmith leaks`): loading
the tasks, indexing each task's gold, checking its fields; and `find` alone per task.

    python benchmarks/leaks.py              # median of 5 runs
    python benchmarks/leaks.py --repeat 1 --json

Target: the table in under 2 s; `find` well under 1 ms. Results: benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

DATA = Path(__file__).resolve().parents[2] / (
    "shared/data/swebench_verified/swebench_verified_test.jsonl.gz")
TARGET_S = 2.0


def one_run(path: Path) -> dict[str, float | int]:
    from benchsmith.config import parse_config
    from benchsmith.leaks.index import LeakSettings, find
    from benchsmith.leaks.table import leak_table, task_index, task_texts
    from benchsmith.sources import answer_fields, load_tasks

    t0 = time.perf_counter()
    cfg = parse_config({"datasets": {"swebench_verified": {"path": str(path)}}}, config_dir=".")
    ds = cfg.datasets["swebench_verified"]
    tasks = load_tasks("swebench_verified", ds, cfg)
    t1 = time.perf_counter()
    answer = answer_fields("swebench_verified", ds)
    settings = LeakSettings.from_config(cfg.leaks)
    rows = leak_table(tasks, answer, settings)
    t2 = time.perf_counter()
    idx = [(task_index(t, answer, settings), "\n".join(task_texts(t).values())) for t in tasks]
    t3 = time.perf_counter()
    for index, text in idx:
        find(index, {"messages": text})
    t4 = time.perf_counter()
    guard_ms = _guard_ms(cfg, tasks)
    return {"tasks": len(tasks), "leaking": len({r.task_id for r in rows}),
            "load_s": t1 - t0, "table_s": t2 - t1, "total_s": t2 - t0,
            "find_ms": (t4 - t3) * 1000 / len(tasks), **guard_ms}


def _guard_ms(cfg, tasks) -> dict[str, float]:
    """What the guard adds to building a request (the plans recipe's first calls: the task's
    whole text in the prompt), per request: the first build of a task (its gold indexed)
    and later ones (index cached, as for every chained call and re-ask)."""
    from benchsmith.recipe_of import context_for, recipe_for
    from benchsmith.recipes.registry import get_recipe

    guarded = recipe_for(cfg)  # with the config's guard
    plain = get_recipe(cfg.recipe, cfg.options(), context_for(cfg))

    def build(recipe) -> tuple[float, int]:
        t = time.perf_counter()
        n = sum(len(recipe.stages[0].build(task, None)) for task in tasks)
        return time.perf_counter() - t, n

    base, n = build(plain)
    first, _ = build(guarded)
    again, _ = build(guarded)
    return {"requests": n, "build_ms": base * 1000 / n,
            "guard_first_ms": (first - base) * 1000 / n,
            "guard_cached_ms": (again - base) * 1000 / n}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if not args.data.is_file():
        print(f"error: data not found: {args.data}", file=sys.stderr)
        return 1
    runs = [one_run(args.data) for _ in range(args.repeat)]
    med = {k: statistics.median(float(r[k]) for r in runs)
           for k in ("load_s", "table_s", "total_s", "find_ms", "build_ms", "guard_first_ms",
                     "guard_cached_ms")}
    result = {"tasks": runs[0]["tasks"], "leaking": runs[0]["leaking"], "repeat": args.repeat,
              **{k: round(v, 4) for k, v in med.items()},
              "target_s": TARGET_S, "met": med["total_s"] < TARGET_S}
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"{result['tasks']} tasks, {result['leaking']} leaking: load {result['load_s']} s, "
              f"table {result['table_s']} s, total {result['total_s']} s "
              f"(target < {TARGET_S} s: {'met' if result['met'] else 'NOT met'}); "
              f"find {result['find_ms']} ms per task; building a request "
              f"{result['build_ms']} ms, the guard adds {result['guard_first_ms']} ms "
              f"(first, gold indexed) / {result['guard_cached_ms']} ms (cached)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
