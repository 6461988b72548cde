"""Throughput of the online engine against a local fake OpenAI server.

Drives the real engine end to end, the way `api.run` does in online mode: plan the run
(config snapshot, tasks and units in a real SQLite ledger in a temp run dir), then execute it
(OnlineExecutor + real HttpClient + Budget with a price table + RateLimiter + the plans
recipe with its JSON/schema/diversity validation + every ledger write), against
`tests/fake_openai.py` started as a separate process.

Each scenario runs the client in a fresh child process, so its CPU time
(`time.process_time()`) and peak RSS (`ru_maxrss`) belong to that scenario alone. Only the
execution is timed (`asyncio.run(execute_online(...))`); planning is not.

    python benchmarks/throughput.py              # 5,000 requests per scenario
    python benchmarks/throughput.py --quick      # 1,000-request smoke run
    python benchmarks/throughput.py --n 20000 --repeat 3 --json
    python benchmarks/throughput.py --end-to-end # the whole `benchsmith run` process
                                                 # (throughput_e2e.py): request span and
                                                 # process wall, 5,000 single-call tasks, c=500

Exit status 1 if any request did not end `ok` (the numbers would be meaningless); the
targets are printed, not enforced.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
FAKE_SERVER = ROOT / "tests" / "fake_openai.py"
MODEL = "bench-model"
PRICE = {"input": 0.25, "cached_input": 0.025, "output": 2.00}  # USD per 1M tokens


@dataclass(frozen=True)
class Scenario:
    name: str
    latency_s: float
    concurrency: int
    target: str  # human-readable target
    min_eff: float | None = None  # efficiency target (latency > 0)
    min_rps: float | None = None  # req/s target (latency == 0)


def scenarios(zero_c: int) -> list[Scenario]:
    return [
        Scenario("200 ms, c=100", 0.2, 100, "efficiency >= 0.95", min_eff=0.95),
        Scenario("200 ms, c=500", 0.2, 500, "efficiency >= 0.60", min_eff=0.60),
        Scenario(f"0 ms, c={zero_c}", 0.0, zero_c, ">= 1,500 req/s", min_rps=1500.0),
    ]


# ------------------------------------------------------------------------------------------
# client side (runs in a child process)
# ------------------------------------------------------------------------------------------


def auto_calls_per_task(n: int, max_concurrency: int) -> int:
    """With the diversity chain only one call per task is in flight at a time, so there must
    be at least one task per worker; and tasks x calls must equal N exactly."""
    for d in (4, 3, 2):
        if n % d == 0 and n // d >= max_concurrency:
            return d
    return 1


def _write_dataset(path: Path, n_tasks: int) -> None:
    """n_tasks rows cycling through the HumanEval prompts (realistic prompt sizes)."""
    from benchsmith.sources.humaneval import packaged_path

    with gzip.open(packaged_path(), "rt", encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh if line.strip()]
    with path.open("w", encoding="utf-8") as out:
        for i in range(n_tasks):
            r = rows[i % len(rows)]
            out.write(json.dumps({
                "task_id": f"{r['task_id']}/{i}",
                "prompt": r["prompt"],
                "entry_point": r["entry_point"],
                "canonical_solution": r["canonical_solution"],
            }) + "\n")


def _pipeline() -> tuple[Any, Any, Any, Any]:
    """(open_run, plan_run, wire_for, execute_online): the steps `api.run` takes."""
    try:
        from benchsmith.execute import execute_online
        from benchsmith.planner import open_run, plan_run, wire_for
    except ImportError:  # before the planner/execute split
        from benchsmith import api

        return api._open_run, api._plan, api._wire, api._execute
    return open_run, plan_run, wire_for, execute_online


def bare_main(spec: dict[str, Any]) -> dict[str, Any]:
    """The ceiling: a plain aiohttp loop posting one plans request N times at the same
    concurrency, reading and JSON-parsing each answer; no engine, ledger or validation."""
    import asyncio

    import aiohttp
    import orjson

    from benchsmith.recipes.plans.stages import plan_schema

    n, conc, base_url = spec["n"], spec["concurrency"], spec["base_url"]
    body = orjson.dumps({
        "model": MODEL,
        "input": [{"role": "user", "content": "Write 4 distinct implementation plans. " * 40}],
        "max_output_tokens": 4000,
        "text": {"format": {"type": "json_schema", "name": "implementation_plans",
                            "schema": plan_schema(4), "strict": True}},
    })
    headers = {"Content-Type": "application/json", "Authorization": "Bearer sk-benchmark"}

    async def run() -> None:
        left = [n]
        conn = aiohttp.TCPConnector(limit=conc, limit_per_host=0)
        async with aiohttp.ClientSession(connector=conn) as session:
            async def worker() -> None:
                while left[0] > 0:
                    left[0] -= 1
                    async with session.post(base_url + "/responses", data=body,
                                            headers=headers) as r:
                        orjson.loads(await r.read())

            await asyncio.gather(*(worker() for _ in range(min(conc, n))))

    cpu0, t0 = time.process_time(), time.perf_counter()
    asyncio.run(run())
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    return {
        "wall_s": wall, "cpu_s": cpu,
        "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
        "stopped": None, "counts": {"ok": n}, "api_calls": n, "spent_usd": 0.0,
        "unsettled_usd": 0.0,
    }


def client_main(spec: dict[str, Any]) -> dict[str, Any]:
    import asyncio

    from benchsmith.config import parse_config
    from benchsmith.engine.budget import Budget

    open_run, plan_run, wire_for, execute_online = _pipeline()

    n, conc, base_url = spec["n"], spec["concurrency"], spec["base_url"]
    work = Path(spec["workdir"])
    calls = spec["calls_per_task"]
    data = work / "tasks.jsonl"
    _write_dataset(data, n // calls)
    cfg = parse_config(
        {
            "run_dir": str(work / "runs"),
            "datasets": {
                "bench": {
                    "source": "jsonl",
                    "path": str(data),
                    # --leak-guard on: the solution is gold, every request is checked
                    # against it (the gold-leak guard); off: no gold, nothing to check.
                    "fields": {"id": "task_id", "primary": "prompt", "context": ["entry_point"],
                               "gold": ["canonical_solution"] if spec.get("leak_guard") else []},
                }
            },
            # Recipe defaults otherwise: 4 plans per call, schema + plan checks, and the
            # diversity chain (call k+1 of a task is planned when call k is accepted, shows
            # the plans accepted so far, and its answer is checked for near-duplicates).
            "recipe_options": {"calls_per_task": calls, "diversity": spec["diversity"]},
            "model": {"name": MODEL, "max_output_tokens": 4000, "reasoning": False},
            "openai": {"base_url": base_url, "api": spec["api"], "api_key_env": None},
            "engine": {"concurrency": conc, "max_retries": 6, "timeout_s": 60},
            # High enough never to stop the run, set so every request goes through
            # Budget.try_reserve/settle and cost_usd with a real price.
            "budget": {"max_usd": 1_000_000.0},
            "prices": {MODEL: PRICE},
        },
        file="<benchmark>",
        config_dir=str(work),
    )

    # The same steps as api.run() online, minus the cost estimate and the final export.
    rd = open_run(cfg, None, resume=False, create=True)
    ledger, recipe, tasks = plan_run(cfg, rd, lambda _m: None)
    settled, unsettled = ledger.spend()
    budget = Budget(cfg.budget.max_usd, spent=settled + unsettled)
    inv = ledger.start_invocation("online", cfg.budget.max_usd)
    api_name, structured = wire_for(cfg)
    keys = ["sk-benchmark"]  # sent as Authorization, like a real key

    # What the CLI's progress costs: its real bar (drawn on a terminal of 80 columns, here a
    # buffer), handed the engine's counters on every finished unit and redrawn by its thread.
    import io

    from rich.console import Console

    from benchsmith.cli.console import RunProgress

    term = Console(file=io.StringIO(), force_terminal=True, width=80)
    progress = RunProgress(term, True)
    on_progress = progress.update

    cpu0, t0 = time.process_time(), time.perf_counter()
    with progress:
        outcome = asyncio.run(
            execute_online(cfg, ledger, recipe, tasks, inv, api_name, structured, keys,
                           base_url, budget, on_progress)
        )
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    ledger.end_invocation(inv, "completed", "")

    counts = ledger.state_counts()
    usage = ledger.usage_totals()
    settled, unsettled = ledger.spend()
    ledger.close()
    maxrss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return {
        "wall_s": wall,
        "cpu_s": cpu,
        "maxrss_mb": maxrss_kb / 1024.0,
        "stopped": outcome.stopped,
        "counts": counts,
        "api_calls": usage["api_calls"],
        "spent_usd": settled + unsettled,
        "unsettled_usd": unsettled,
        "budget_reserved_left": budget.reserved,
        "bar_drawn": "━" in term.file.getvalue(),  # type: ignore[attr-defined]
    }


# ------------------------------------------------------------------------------------------
# orchestration (parent process)
# ------------------------------------------------------------------------------------------


def _proc_cpu_s(pid: int) -> float | None:
    """utime + stime of a process from /proc (Linux); None elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


class FakeServer:
    def __init__(self, latency: float):
        self.latency = latency
        self.proc: subprocess.Popen[str] | None = None
        self.base_url = ""

    def __enter__(self) -> FakeServer:
        self.proc = subprocess.Popen(
            [sys.executable, str(FAKE_SERVER), "--port", "0", "--latency", str(self.latency)],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()
        if not line.startswith("READY "):
            self.proc.kill()
            raise RuntimeError(f"fake server did not start: {line!r}")
        self.base_url = line.split(" ", 1)[1]
        return self

    def __exit__(self, *_: Any) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@dataclass
class Result:
    scenario: str
    n: int
    concurrency: int
    latency_ms: float
    wall_s: float
    req_per_s: float
    client_cpu_s_per_1k: float
    peak_rss_mb: float
    efficiency: float | None
    server_cpu_s_per_1k: float | None
    target: str
    met: bool
    all_ok: bool
    spent_usd: float


def run_scenario(sc: Scenario, n: int, calls: int, diversity: bool, api_name: str,
                 tmp_root: str | None, bare: bool = False, leak_guard: bool = False) -> Result:
    with tempfile.TemporaryDirectory(prefix="benchsmith-bench-", dir=tmp_root) as work, \
            FakeServer(sc.latency_s) as srv:
        assert srv.proc is not None
        spec = {"n": n, "concurrency": sc.concurrency, "base_url": srv.base_url,
                "workdir": work, "api": api_name, "calls_per_task": calls,
                "diversity": diversity, "bare": bare, "leak_guard": leak_guard}
        s_cpu0 = _proc_cpu_s(srv.proc.pid)
        child = subprocess.run(
            [sys.executable, __file__, "--_client", json.dumps(spec)],
            capture_output=True, text=True, timeout=600 + n / 10,
        )
        s_cpu1 = _proc_cpu_s(srv.proc.pid)
        if child.returncode != 0:
            sys.stderr.write(child.stderr)
            raise RuntimeError(f"client for {sc.name} failed (exit {child.returncode})")
        r = json.loads(child.stdout.strip().splitlines()[-1])
    rps = n / r["wall_s"]
    eff = None
    if sc.latency_s > 0:
        eff = rps / (min(sc.concurrency, n) / sc.latency_s)
    met = (eff is not None and sc.min_eff is not None and eff >= sc.min_eff) or (
        sc.min_rps is not None and rps >= sc.min_rps
    )
    all_ok = (r["counts"] == {"ok": n} and r["api_calls"] == n and r["stopped"] is None
              and r["unsettled_usd"] == 0 and (bare or r["spent_usd"] > 0))
    if not all_ok:
        sys.stderr.write(f"warning: {sc.name}: not every unit ended ok: {r}\n")
    return Result(
        scenario=sc.name,
        n=n,
        concurrency=sc.concurrency,
        latency_ms=sc.latency_s * 1000,
        wall_s=r["wall_s"],
        req_per_s=rps,
        client_cpu_s_per_1k=r["cpu_s"] / n * 1000,
        peak_rss_mb=r["maxrss_mb"],
        efficiency=eff,
        server_cpu_s_per_1k=(
            (s_cpu1 - s_cpu0) / n * 1000 if s_cpu0 is not None and s_cpu1 is not None else None
        ),
        target=sc.target,
        met=met,
        all_ok=all_ok,
        spent_usd=r["spent_usd"],
    )


def markdown(results: list[Result]) -> str:
    head = ("| scenario | N | concurrency | server latency | req/s | client CPU s / 1k req "
            "| peak RSS (MB) | efficiency | target | met |")
    sep = "|---|--:|--:|--:|--:|--:|--:|--:|---|:-:|"
    lines = [head, sep]
    for r in results:
        eff = f"{r.efficiency:.3f}" if r.efficiency is not None else "—"
        lines.append(
            f"| {r.scenario} | {r.n:,} | {r.concurrency} | {r.latency_ms:.0f} ms "
            f"| {r.req_per_s:,.0f} | {r.client_cpu_s_per_1k:.3f} | {r.peak_rss_mb:.0f} "
            f"| {eff} | {r.target} | {'yes' if r.met else 'NO'} |"
        )
    return "\n".join(lines)


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (f"{os.cpu_count()} cores ({cpu}), Python {platform.python_version()}, "
            f"{platform.system()} {platform.release()}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=5000, help="requests per scenario (default 5000)")
    p.add_argument("--quick", action="store_true", help="1,000-request smoke run")
    p.add_argument("--zero-concurrency", type=int, default=100,
                   help="concurrency of the 0 ms scenario (default 100)")
    p.add_argument("--only", default="", help="comma-separated scenario numbers, e.g. 1,3")
    p.add_argument("--repeat", type=int, default=1,
                   help="run each scenario K times and report the median by req/s")
    p.add_argument("--calls-per-task", type=int, default=0,
                   help="recipe_options.calls_per_task; default: the largest of 4..1 that divides N and "
                   "leaves at least one task (chain) per worker. N is rounded up to a multiple")
    p.add_argument("--no-diversity", action="store_true",
                   help="recipe_options.diversity: false (all calls of a task independent)")
    p.add_argument("--api", choices=("responses", "chat"), default="responses")
    p.add_argument("--leak-guard", choices=("off", "on"), default="off",
                   help="on: each task's solution is gold, every request is checked against it")
    p.add_argument("--tmpdir", default=None, help="where the temp run dirs go (default: $TMPDIR)")
    p.add_argument("--json", action="store_true", help="print JSON instead of the Markdown table")
    p.add_argument("--bare", action="store_true",
                   help="reference ceiling: a plain aiohttp loop instead of the engine")
    p.add_argument("--end-to-end", action="store_true",
                   help="time the whole `benchsmith run` process (default outputs) against its "
                   "request span; default scenario 2 and one call per task")
    p.add_argument("--_client", help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    if args._client:
        spec = json.loads(args._client)
        print(json.dumps((bare_main if spec.get("bare") else client_main)(spec)))
        return 0

    n = 1000 if args.quick else args.n
    diversity = not args.no_diversity
    scs = scenarios(args.zero_concurrency)
    if args.only or args.end_to_end:
        keep = {int(x) for x in (args.only or "2").split(",") if x.strip()}
        scs = [s for i, s in enumerate(scs, 1) if i in keep]
    if args.end_to_end:
        import throughput_e2e

        return throughput_e2e.main(args, scs)
    calls = args.calls_per_task or auto_calls_per_task(n, max(s.concurrency for s in scs))
    n = -(-n // calls) * calls  # whole tasks: tasks x calls_per_task units
    results: list[Result] = []
    for sc in scs:
        runs = []
        for k in range(max(1, args.repeat)):
            if not args.json:
                print(f"running {sc.name}, N={n:,} ({k + 1}/{args.repeat}) ...",
                      file=sys.stderr, flush=True)
            runs.append(run_scenario(sc, n, calls, diversity, args.api, args.tmpdir, args.bare,
                                     args.leak_guard == "on"))
        runs.sort(key=lambda r: r.req_per_s)
        results.append(runs[len(runs) // 2])
        if not args.json and args.repeat > 1:
            print("  req/s: " + ", ".join(f"{r.req_per_s:,.0f}" for r in runs)
                  + f" (median {statistics.median(r.req_per_s for r in runs):,.0f})",
                  file=sys.stderr)

    stamp = time.strftime("%Y-%m-%d")
    if args.json:
        print(json.dumps({"date": stamp, "machine": machine(), "n": n, "api": args.api,
                          "bare": args.bare, "leak_guard": args.leak_guard,
                          "calls_per_task": calls, "diversity": diversity,
                          "results": [asdict(r) for r in results]}, indent=2))
    else:
        print(f"benchsmith online engine vs tests/fake_openai.py, {stamp}, {machine()}")
        if args.bare:
            print(f"{n:,} requests per scenario, BARE aiohttp loop (no engine): the ceiling\n")
        else:
            print(f"{n:,} requests per scenario = {n // calls:,} tasks x {calls} calls, "
                  f"diversity chain {'on' if diversity else 'off'}, {args.api} API\n")
        print(markdown(results))
        if n < 5000:
            print(f"\nnote: {n:,} requests is a smoke run; connection setup and the first and "
                  "last waves weigh too much for the efficiency targets (use N >= 5,000)")
        srv = [f"{r.scenario}: {r.server_cpu_s_per_1k:.3f}" for r in results
               if r.server_cpu_s_per_1k is not None]
        if srv:
            print("\nfake server CPU s / 1k req (same machine, competes for the cores): "
                  + "; ".join(srv))
    return 0 if all(r.all_ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
