"""Batch file throughput: preparing/writing request lines and ingesting an output file.

    python benchmarks/batch_io.py            # 100,000 requests
    python benchmarks/batch_io.py --n 20000  # smaller

Plans N units in a temp run (HumanEval tasks x enough calls, diversity off so every unit is
planned up front), then times, in separate child processes (so peak memory is per phase):
  export  `batch_ops.batch_export`: build every body, write the JSONL (streamed)
  ingest  `batch_ops.batch_ingest`: parse, validate (schema + plan rules), settle cost,
          finish units, regenerate the run's JSONL outputs
Targets: >= 20,000 lines/s each, peak memory < 500 MB (of the phase's process; on big files
ingest also runs a helper process of its own, not counted). Results: benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import resource
import sys
import tempfile
import time
from pathlib import Path

TARGET_LPS = 20_000
TARGET_MB = 500


def _cfg(root: Path, n: int):
    from benchsmith.config import parse_config

    calls = -(-n // 164)
    return parse_config(
        {
            "run_dir": str(root / "runs"),
            "datasets": {"humaneval": {}},
            "recipe_options": {"calls_per_task": min(calls, 100), "diversity": False},
            "openai": {"base_url": "http://127.0.0.1:9/v1", "api_key_env": None},
            "prices": {"gpt-5-mini": {"input": 0.25, "cached_input": 0.025, "output": 2.0}},
        },
        config_dir=str(root),
    )


def _plan(root: Path, n: int) -> Path:
    """A dry-run with >= n pending units (calls are capped at 100 per task; extra datasets)."""
    from benchsmith import api
    from benchsmith.config import parse_config

    cfg = _cfg(root, n)
    per_ds = 164 * cfg.options().calls_per_task
    copies = -(-n // per_ds)
    data = cfg.public_dict()
    data.pop("config_dir")
    data["datasets"] = {f"he{i}": {"source": "humaneval"} for i in range(copies)}
    cfg = parse_config(data, config_dir=str(root))
    rep = api.dry_run(cfg, "bench")
    return rep.run_dir


def _answer(uid: str) -> bytes:
    plans = [
        {
            "title": f"approach {j} for {uid[-8:]}",
            "summary": f"summary {j} of the idea behind {uid[-12:]}",
            "steps": [f"step {k} of plan {j} ({uid[-6:]})" for k in range(3)],
        }
        for j in range(4)
    ]
    text = json.dumps({"plans": plans})
    body = {
        "id": "resp_x", "object": "response", "status": "completed", "model": "gpt-5-mini",
        "output": [{"type": "message", "role": "assistant", "content": [
            {"type": "output_text", "text": text, "annotations": []}]}],
        "usage": {"input_tokens": 400, "input_tokens_details": {"cached_tokens": 0},
                  "output_tokens": 180, "output_tokens_details": {"reasoning_tokens": 0},
                  "total_tokens": 580},
    }
    return json.dumps({"id": "batch_req_x", "custom_id": uid,
                       "response": {"status_code": 200, "request_id": "req_x", "body": body},
                       "error": None}).encode() + b"\n"


def _phase(kind: str, run_dir: str, path: str, q) -> None:  # runs in a child process
    from benchsmith import batch_ops

    t0 = time.perf_counter()
    if kind == "export":
        n = batch_ops.batch_export(run_dir, Path(path))
    else:
        rep = batch_ops.batch_ingest(run_dir, [Path(path)])
        n = rep.lines
    dt = time.perf_counter() - t0
    q.put((n, dt, _peak_mb()))


def _peak_mb() -> float:
    """This process's peak RSS (VmHWM: unlike ru_maxrss, not inherited across fork/exec)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _run_phase(kind: str, run_dir: Path, path: Path) -> tuple[int, float, float]:
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=_phase, args=(kind, str(run_dir), str(path), q))
    p.start()
    res = q.get()
    p.join()
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=100_000, help="requests (default 100,000)")
    ap.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        run_dir = _plan(root, args.n)
        plan_s = time.perf_counter() - t0
        req = root / "requests.jsonl"
        n_exp, dt_exp, mb_exp = _run_phase("export", run_dir, req)
        out = root / "output.jsonl"
        with req.open("rb") as fh, out.open("wb") as w:
            for line in fh:
                w.write(_answer(json.loads(line)["custom_id"]))
        n_ing, dt_ing, mb_ing = _run_phase("ingest", run_dir, out)
    rows = [
        ("export (build + write lines)", n_exp, dt_exp, mb_exp),
        ("ingest (validate + ledger + outputs)", n_ing, dt_ing, mb_ing),
    ]
    if args.json:
        print(json.dumps([{"phase": r[0], "lines": r[1], "seconds": round(r[2], 2),
                           "lines_per_s": round(r[1] / r[2]), "peak_mb": round(r[3])} for r in rows]))
        return
    print(f"planned {n_exp:,} units in {plan_s:.1f} s (not timed below)\n")
    print("| phase | lines | seconds | lines/s (target >= 20,000) | peak MB (target < 500) |")
    print("|---|---|---|---|---|")
    for name, n, dt, mb in rows:
        ok = "ok" if n / dt >= TARGET_LPS and mb < TARGET_MB else "BELOW TARGET"
        print(f"| {name} | {n:,} | {dt:.2f} | {n / dt:,.0f} ({ok}) | {mb:.0f} |")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
