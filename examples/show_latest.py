"""Print where the newest demo dataset is and what it contains (used by `make demo`)."""

import json
import sys
from pathlib import Path

from benchsmith import read_records, run_status

root = Path(sys.argv[1] if len(sys.argv) > 1 else "demo_runs")
runs = sorted((p for p in root.iterdir() if (p / "ledger.sqlite").exists()), key=lambda p: p.stat().st_mtime)
if not runs:
    sys.exit(f"no run found under {root}")
run = runs[-1]
st = run_status(run)
plans = list(read_records(run))
print()
print(f"Dataset written to {run}/datasets/")
for ds, d in st["datasets"].items():
    print(f"  {ds}: {d['complete']}/{d['tasks']} tasks complete, "
          f"{sum(1 for p in plans if p['dataset'] == ds)} valid plans in datasets/{ds}/plans.jsonl")
print(f"  units: {st['units']}; failed attempts with their validation errors: failed_plans/")
if plans:
    print("  first plan:", json.dumps({k: plans[0][k] for k in ("task_id", "title", "steps")})[:400])
print("Note: the demo model (stories260K, 260K parameters) writes schema-valid JSON with nonsense")
print("text; set provider/model in a config of your own for real plans.")
