"""End to end: the whole `benchsmith run` process, not only its requests (`throughput.py
--end-to-end`).

Runs `python -m benchsmith run --config CFG --run-id R --quiet` as a child process against
`tests/fake_openai.py`, with the config's default outputs (datasets, manifests, logs, the
readable Markdown, whatever else `run` writes by default), and reports two figures:

- process wall: from starting the process to its exit (interpreter start, imports, config,
  planning, requests, exports, readable output);
- request span: from the first request's start to the last answer's end, as the ledger
  records them (`attempts.started_at`, `attempts.ended_at`).

Their ratio is the target (process wall <= 1.5 x request span), and the time before the
first request and after the last answer are shown apart. Bytecode is compiled by an import
before the timed run, as an installed package has it.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import throughput as tp

KEY_ENV = "BENCHSMITH_BENCH_KEY"
MAX_RATIO = 1.5


@dataclass
class E2EResult:
    scenario: str
    n: int
    concurrency: int
    latency_ms: float
    process_wall_s: float
    request_span_s: float
    before_first_s: float
    after_last_s: float
    ratio: float
    span_efficiency: float | None
    met: bool
    all_ok: bool


def _config(work: Path, n_tasks: int, calls: int, conc: int, base_url: str,
            api: str, diversity: bool) -> Path:
    data = work / "tasks.jsonl"
    tp._write_dataset(data, n_tasks)
    cfg = {
        "run_dir": str(work / "runs"),
        "datasets": {"bench": {"source": "jsonl", "path": str(data),
                               "fields": {"id": "task_id", "primary": "prompt",
                                          "context": ["entry_point"]}}},
        "recipe_options": {"calls_per_task": calls, "diversity": diversity},
        "model": {"name": tp.MODEL, "max_output_tokens": 4000, "reasoning": False},
        "openai": {"base_url": base_url, "api": api, "api_key_env": KEY_ENV},
        "engine": {"concurrency": conc, "max_retries": 6, "timeout_s": 60},
        "budget": {"max_usd": 1_000_000.0},
        "prices": {tp.MODEL: tp.PRICE},
    }
    path = work / "bench.yaml"
    path.write_text(json.dumps(cfg, indent=2), encoding="utf-8")  # JSON is YAML
    return path


def _span(ledger: Path) -> tuple[float, float, dict[str, int]]:
    db = sqlite3.connect(f"file:{ledger}?mode=ro", uri=True)
    try:
        first, last = db.execute("SELECT MIN(started_at), MAX(ended_at) FROM attempts").fetchone()
        counts = dict(db.execute("SELECT state, COUNT(*) FROM units GROUP BY state").fetchall())
    finally:
        db.close()
    return first, last, counts


def run_e2e(sc: tp.Scenario, n: int, calls: int, diversity: bool, api: str,
            tmp_root: str | None) -> E2EResult:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env[KEY_ENV] = "sk-benchmark"
    # Compile what a run imports, as an installed package would have it.
    subprocess.run([sys.executable, "-c", "import benchsmith.api, benchsmith.cli.app"],
                   env=env, check=True)
    with tempfile.TemporaryDirectory(prefix="benchsmith-e2e-", dir=tmp_root) as tmp, \
            tp.FakeServer(sc.latency_s) as srv:
        work = Path(tmp)
        cfg = _config(work, n // calls, calls, sc.concurrency, srv.base_url, api, diversity)
        cmd = [sys.executable, "-m", "benchsmith", "run", "--config", str(cfg),
               "--run-id", "R", "--quiet"]
        t_start = time.time()
        p0 = time.perf_counter()
        child = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600 + n / 10)
        wall = time.perf_counter() - p0
        t_end = t_start + wall
        if child.returncode != 0:
            sys.stderr.write(child.stdout[-2000:] + child.stderr[-2000:])
            raise RuntimeError(f"benchsmith run for {sc.name} failed (exit {child.returncode})")
        first, last, counts = _span(work / "runs" / "R" / "ledger.sqlite")
        # the default outputs were all written (the figures are worth nothing otherwise)
        run = work / "runs" / "R"
        parts = list((run / "readable").rglob("*_part*.md"))
        if not (parts and (run / "readable" / "index.md").is_file()
                and (run / "report.html").is_file()):
            raise RuntimeError(f"{sc.name}: the run's readable Markdown or report is missing")
    span = last - first
    eff = (n / span) / (min(sc.concurrency, n) / sc.latency_s) if sc.latency_s > 0 else None
    ratio = wall / span
    return E2EResult(
        scenario=sc.name, n=n, concurrency=sc.concurrency, latency_ms=sc.latency_s * 1000,
        process_wall_s=wall, request_span_s=span, before_first_s=first - t_start,
        after_last_s=t_end - last, ratio=ratio, span_efficiency=eff, met=ratio <= MAX_RATIO,
        all_ok=counts == {"ok": n},
    )


def markdown(results: list[E2EResult]) -> str:
    lines = [
        "| scenario | N | request span (s) | process wall (s) | wall / span | before first "
        "request (s) | after last answer (s) | span efficiency | target | met |",
        "|---|--:|--:|--:|--:|--:|--:|--:|---|:-:|",
    ]
    for r in results:
        eff = f"{r.span_efficiency:.3f}" if r.span_efficiency is not None else "—"
        lines.append(
            f"| {r.scenario} | {r.n:,} | {r.request_span_s:.2f} | {r.process_wall_s:.2f} "
            f"| {r.ratio:.2f} | {r.before_first_s:.2f} | {r.after_last_s:.2f} | {eff} "
            f"| wall <= {MAX_RATIO} x span | {'yes' if r.met else 'NO'} |"
        )
    return "\n".join(lines)


def main(args: Any, scs: list[tp.Scenario]) -> int:
    n = 1000 if args.quick else args.n
    calls = args.calls_per_task or 1  # single-call tasks unless asked
    n = -(-n // calls) * calls
    results: list[E2EResult] = []
    for sc in scs:
        runs = []
        for k in range(max(1, args.repeat)):
            if not args.json:
                print(f"running {sc.name} end to end, N={n:,} ({k + 1}/{args.repeat}) ...",
                      file=sys.stderr, flush=True)
            runs.append(run_e2e(sc, n, calls, not args.no_diversity, args.api, args.tmpdir))
            if not args.json and args.repeat > 1:
                r = runs[-1]
                print(f"  span {r.request_span_s:.2f} s, wall {r.process_wall_s:.2f} s, "
                      f"ratio {r.ratio:.2f}", file=sys.stderr)
        runs.sort(key=lambda r: r.ratio)
        results.append(runs[len(runs) // 2])
    stamp = time.strftime("%Y-%m-%d")
    if args.json:
        print(json.dumps({"date": stamp, "machine": tp.machine(), "n": n, "api": args.api,
                          "calls_per_task": calls, "end_to_end": True,
                          "results": [r.__dict__ for r in results]}, indent=2))
    else:
        print(f"benchsmith run, the whole process, vs tests/fake_openai.py, {stamp}, "
              f"{tp.machine()}")
        print(f"{n:,} requests = {n // calls:,} tasks x {calls} call(s), default outputs, "
              f"{args.api} API\n")
        print(markdown(results))
    return 0 if all(r.all_ok for r in results) else 1
