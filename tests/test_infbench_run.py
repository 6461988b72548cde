"""`benchsmith infbench run` through the fake server: layout, lines, resume-by-append
(including a file the user already has), context trimming per model limit, batch mode."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from infbench_support import (
    answer_by_instance,
    asked,
    fenced,
    invoke,
    read_lines,
    run_args,
)

FIELDS = {"instance_id", "model_name", "prompt", "full_output", "model_patch", "cost",
          "response_time", "status", "error", "patch_source", "dropped_files"}


def test_two_models_two_run_ids_online(ib: dict[str, Any]) -> None:
    rows = {r["instance_id"]: r for r in ib["rows"]}
    first = ib["ids"][0]
    truth = rows[first]  # the 0.2 ground truth of the first instance, fenced
    ib["server"].script = answer_by_instance({first: fenced("diff --git a/x b/x\n")})
    res = invoke(*run_args(ib, "--model", "gpt-4.1", "gpt-4o", "--dataset-name", "all",
                           "--run-id", "0.2", "0.5"))
    assert res.exit_code == 0, res.output
    for model in ("gpt-4.1", "gpt-4o"):
        folder = ib["results"] / model / "T=0" / "n=1"
        assert sorted(p.name for p in folder.iterdir()) == [
            "all-task-instances_0.2.jsonl", "all-task-instances_0.5.jsonl"]
        for name in ("all-task-instances_0.2.jsonl", "all-task-instances_0.5.jsonl"):
            lines = read_lines(folder / name)
            assert [ln["instance_id"] for ln in lines] == sorted(ib["ids"])
            assert all(set(ln) == FIELDS for ln in lines)
            assert all(ln["model_name"] == model and ln["status"] == "ok" for ln in lines)
    assert sorted(asked(ib["server"])) == sorted(ib["ids"] * 4)
    del truth

