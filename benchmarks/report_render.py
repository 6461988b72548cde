"""`benchsmith report` on a large run: render time and page size.

    python benchmarks/report_render.py                 # 100,000 units
    python benchmarks/report_render.py --units 20000 --repeat 3
    python benchmarks/report_render.py --json          # the results as JSON

Writes a synthetic plans run (a real ledger schema and config snapshot, no server): N units
over two datasets and two models, 4 plans of realistic size per accepted unit; about 92% ok
(a tenth of them after an invalid answer), 4% invalid (3 invalid answers each, some rejected
as too similar), 2% failed (HTTP 429/500 each time), 2% pending; latencies log-normal, calls
spread over an hour. Then times `report.build.write_report` in a fresh process per repeat
(plotly import included). Targets: < 10 s, page < 10 MB. Results: benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import random
import sys
import tempfile
import time
from pathlib import Path

TARGET_S = 10.0
TARGET_MB = 10.0
STEP = "Keep a running structure of what was seen and compare each new item against it."


def _plans(task: str, call: int) -> bytes:
    return json.dumps([
        {"plan_id": f"{task}#c{call}p{j}", "call_index": call, "plan_index": j,
         "title": f"Approach {j} for {task}", "summary": STEP, "steps": [STEP] * 4}
        for j in range(4)]).encode()


def build(root: Path, n: int) -> Path:
    from benchsmith.config import parse_config
    from benchsmith.store.ledger import Ledger
    from benchsmith.store.rundir import atomic_write_json

    rd = root / "runs" / "big"
    (rd / "config").mkdir(parents=True)
    cfg = parse_config({
        "run_dir": str(root / "runs"),
        "datasets": {"he-a": {"source": "humaneval"}, "he-b": {"source": "humaneval"}},
        "openai": {"base_url": "http://127.0.0.1:9/v1", "api_key_env": None},
        "multi_model": True, "model1": "model-a", "model2": "model-b", "model3": "model-a",
        "budget": {"max_usd": 40.0},
        "prices": {m: {"input": 0.25, "cached_input": 0.025, "output": 2.0}
                   for m in ("model-a", "model-b")},
    }, config_dir=str(root))
    data = cfg.public_dict()
    atomic_write_json(rd / "config" / "run_config.json", data)
    rng = random.Random(7)
    led = Ledger(rd / "ledger.sqlite")
    t0 = time.time() - 3600
    db = led.db
    db.execute("BEGIN")
    db.execute("INSERT INTO plans (fingerprint, fields_json, config_json, created_at, settled_at)"
               " VALUES ('sha256:bench', '{}', '{}', ?, ?)", (t0, t0))
    db.execute("INSERT INTO invocations (started_at, ended_at, status, mode, budget_usd, message)"
               " VALUES (?, ?, 'completed_with_failures', 'online', 40.0, '')", (t0, t0 + 3600))
    tasks, units, attempts = [], [], []
    aid = 0
    for i in range(n):
        ds = "he-a" if i % 2 == 0 else "he-b"
        task, call = f"Task/{i // 8}", (i // 2) % 4
        if call == 0:
            tasks.append((ds, task, json.dumps({"id": task, "dataset": ds}).encode(), 1))
        model = "model-b" if call == 1 else "model-a"
        uid = f"r1_{i:040d}"
        r = rng.random()
        state = ("ok" if r < 0.92 else "invalid" if r < 0.96 else "failed" if r < 0.98
                 else "pending")
        at = t0 + 3600 * i / n
        calls: list[tuple[str, int | None, str | None, list[str] | None]] = []
        reason = None
        if state == "ok":
            if rng.random() < 0.1:
                calls.append(("invalid", 200, None, [f"duplicate_of:{task}#c0p1 (too similar)"]))
            calls.append(("ok", 200, None, None))
        elif state == "invalid":
            issues = ["$.plans: 0 items; at least 4 required"]
            calls += [("invalid", 200, None, issues)] * 3
            reason = "validation: " + issues[0]
        elif state == "failed":
            code = rng.choice((429, 500))
            calls += [("http_error", code, f"HTTP {code}: fake error", None)] * 4
            reason = f"http {code}: fake error"
        for k, (st, http, err, issues) in enumerate(calls, start=1):
            aid += 1
            lat = rng.lognormvariate(0.0, 0.6)
            inp, cached, out = 1200 + rng.randrange(400), rng.choice((0, 0, 1024)), 900
            attempts.append((aid, uid, 1, k, model, at, at + lat, st, http, lat, inp, cached,
                             out, rng.choice((0, 256)), 0.01, (inp * 0.25 + out * 2.0) / 1e6,
                             None, "x" * 400 if st != "http_error" else None, err,
                             json.dumps(issues).encode() if issues else None))
        units.append((uid, ds, task, "plans", call, None, model, b"{}", state, reason,
                      _plans(task, call) if state == "ok" else None, at, at, 1))
    db.executemany("INSERT INTO tasks (dataset, task_id, task_json, plan) VALUES (?,?,?,?)", tasks)
    db.executemany("INSERT INTO units (unit_id, dataset, task_id, stage, sample_index, parent_id,"
                   " model, spec_json, state, reason, result_json, created_at, updated_at, plan)"
                   " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)", units)
    db.executemany("INSERT INTO attempts VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                   attempts)
    db.execute("COMMIT")
    led.close()
    return rd


def _time_one(rd: str, q: mp.Queue) -> None:
    t = time.perf_counter()
    from benchsmith.report.build import write_report

    rep = write_report(rd)
    q.put((time.perf_counter() - t, rep.bytes))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--units", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", action="store_true", help="print the results as JSON")
    args = ap.parse_args()
    say = (lambda *_a: None) if args.json else print
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        rd = build(Path(tmp), args.units)
        say(f"synthetic run: {args.units:,} units, ledger "
              f"{(rd / 'ledger.sqlite').stat().st_size / 1e6:.0f} MB, built in "
              f"{time.perf_counter() - t:.1f} s")
        times, size = [], 0
        for _ in range(args.repeat):
            ctx = mp.get_context("spawn")
            q = ctx.Queue()
            p = ctx.Process(target=_time_one, args=(str(rd), q))
            p.start()
            secs, size = q.get()
            p.join()
            times.append(secs)
        times.sort()
        med = times[len(times) // 2]
        say(f"report: median {med:.2f} s (runs {', '.join(f'{s:.2f}' for s in times)}), "
              f"page {size / 1e6:.2f} MB")
        say(f"targets: < {TARGET_S:.0f} s ({'met' if med < TARGET_S else 'NOT met'}), "
              f"< {TARGET_MB:.0f} MB ({'met' if size / 1e6 < TARGET_MB else 'NOT met'})")
        if args.json:
            print(json.dumps({"units": args.units, "seconds": times, "median_s": med,
                              "bytes": size}))
        return 0 if med < TARGET_S and size / 1e6 < TARGET_MB else 1


if __name__ == "__main__":
    sys.exit(main())
