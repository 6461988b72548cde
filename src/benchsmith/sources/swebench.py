"""SWE-bench (full, Lite, Verified): from a local .jsonl/.jsonl.gz/.parquet or a HF name."""

from __future__ import annotations

from benchsmith.config_sections import FieldMap

HF_NAMES = {
    "swebench_verified": "princeton-nlp/SWE-bench_Verified",
    "swebench_lite": "princeton-nlp/SWE-bench_Lite",
    "swebench": "princeton-nlp/SWE-bench",
}

FIELDS = FieldMap(
    id="instance_id",
    primary="problem_statement",
    context=["repo", "base_commit", "hints_text", "version", "created_at"],
    gold=[
        "patch",
        "test_patch",
        "FAIL_TO_PASS",
        "PASS_TO_PASS",
        "environment_setup_commit",
        "difficulty",
    ],
    answer=["patch", "test_patch"],
)
