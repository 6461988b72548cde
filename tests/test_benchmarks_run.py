"""The benchmark scripts still run against the current code (small sizes; their numbers
are not checked here: performance lives in benchmarks/README.md)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _run(*args: str) -> dict | list:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    res = subprocess.run([sys.executable, *args, "--json"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    return json.loads(res.stdout)


def test_batch_io_benchmark_runs() -> None:
    phases = _run("benchmarks/batch_io.py", "--n", "300")
    assert [p["lines"] for p in phases] == [phases[0]["lines"]] * 2 and phases[0]["lines"] >= 300


def test_throughput_benchmark_runs() -> None:
    out = _run("benchmarks/throughput.py", "--n", "200", "--only", "3")
    (r,) = out["results"]
    assert r["all_ok"] and r["n"] == 200


def test_infbench_build_benchmark_runs() -> None:
    out = _run("benchmarks/infbench_build.py", "--repeat", "1")
    assert (out["rows"], out["written"]) == (478, 478)


def test_finetune_build_benchmark_runs() -> None:
    out = _run("benchmarks/finetune_build.py", "--entries", "200", "--repeat", "1")
    assert out["entries"] == 200 and out["tokens"] > 0
    # 20 cycles of the 5 per-instance patterns R, FR, FFR, FF, RF (10 entries each)
    assert out["pairs"] == {"positive": 80, "reflection": 60, "preference": 80}


def test_leaks_benchmark_runs() -> None:
    out = _run("benchmarks/leaks.py", "--repeat", "1")
    assert out["tasks"] == 500 and 0 < out["leaking"] < 500


def test_report_render_benchmark_runs() -> None:
    out = _run("benchmarks/report_render.py", "--units", "2000", "--repeat", "1")
    assert out["units"] == 2000 and len(out["seconds"]) == 1 and out["bytes"] > 0
