"""The embedded default end to end: the plans recipe on the real local model (llama-cpp-python
with the TinyStories GGUF), as `make demo` runs it. No network, no API key."""

from __future__ import annotations

import json
from pathlib import Path

from benchsmith import api, load_config, read_records
from benchsmith.recipes.schema import validate_instance
from benchsmith.recipes.plans.stages import plan_schema

ROOT = Path(__file__).resolve().parents[1]


def test_demo_config_runs_on_the_real_local_model(tmp_path):
    cfg = load_config(ROOT / "examples" / "demo.yaml")
    cfg = cfg.model_copy(update={"run_dir": str(tmp_path)})
    ds = cfg.datasets["humaneval"].model_copy(update={"max_tasks": 1})
    cfg = cfg.model_copy(update={"datasets": {"humaneval": ds}})
    summary = api.run(cfg, "demo")
    rd = summary.run_dir
    assert summary.stopped is None
    calls = [json.loads(x) for x in (rd / "logs/batch_calls.jsonl").read_text().splitlines()]
    assert calls and all(c["http_status"] == 200 for c in calls)
    assert all(c["usage"]["output_tokens"] > 0 for c in calls)  # real generations, with usage
    plans = list(read_records(rd, "humaneval"))
    # The grammar keeps answers schema-valid; every accepted plan passes local validation.
    schema_item = plan_schema(4, 2)["properties"]["plans"]["items"]
    for p in plans:
        assert validate_instance({k: p[k] for k in ("title", "summary", "steps")}, schema_item) == []
        assert p["title"].strip() and len(p["steps"]) >= 2
    assert summary.counts.get("ok", 0) >= 1
    assert len(plans) == 4 * summary.counts["ok"]
    assert (rd / "logs/local_server.log").exists()
    assert (rd / "readable/index.md").exists()
