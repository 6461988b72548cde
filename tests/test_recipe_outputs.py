"""Shared layers ask the run's recipe, never its name: the files a run writes besides the
shared ones, its readable rendering, the lines `status` adds and the stage `read_records`
reads by default all come from hooks on `Recipe`."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from benchsmith import api
from benchsmith.cli.app import app
from benchsmith.export.readable import ReadableReport, render_readable
from benchsmith.export.run_files import write_run_files
from benchsmith.recipe_of import recipe_of_run
from benchsmith.store.ledger import Ledger
from benchsmith.store.rundir import RunDir
from rollouts_support import Workspace, rollout

# The rollout fixtures (`repo`, `ws`) come from rollouts_support (tests/conftest.py).


def _rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_rollout_outputs_come_from_its_recipe(ws: Workspace) -> None:
    rollout("bugfix", ws.config(), "--run-id", "R", "--model-name", "org/my-model")
    rd = ws.runs / "R"
    (repair,) = sorted(rd.glob("datasets/*/repair.jsonl"))
    assert _rows(repair)
    # read_records reads the recipe's result stage by default (not a `plans` stage).
    assert list(api.read_records(rd)) == _rows(repair)
    # No plans rendering, no similarity manifest: the bug fixer has neither.
    assert not (rd / "readable").exists()
    assert not list(rd.glob("manifests/*_similarity_rejections.json"))
    assert (rd / "preds.jsonl").is_file()  # its own outputs are written
    st = api.run_status(rd)
    assert st["recipe_lines"] == [] and "similarity_rejections" not in st
    res = CliRunner().invoke(app, ["render-readable", "--run-dir", str(rd)])
    assert res.exit_code == 1
    assert "recipe agentless_bugfix has no readable rendering" in res.output
    assert "Traceback" not in res.output


def test_shared_layers_call_the_recipes_hooks(ws: Workspace, tmp_path: Path) -> None:
    rollout("testgen", ws.config(), "--run-id", "R", "--model-name", "org/my-model")
    rd = RunDir(ws.runs / "R")
    seen: list[str] = []

    def write(ledger: Ledger, run: RunDir) -> None:
        seen.append("write")
        (run.root / "toy.json").write_text("{}", encoding="utf-8")

    def readable(ledger: Ledger, run: RunDir, out: Path | None, text: bool,
                 layout: str) -> ReadableReport:
        seen.append(f"readable {out} {text} {layout}")
        return ReadableReport(index=run.root / "x.md", failed_index=run.root / "y.md", tasks=7)

    base = recipe_of_run(rd.root)
    toy = dataclasses.replace(
        base, record_stage="localize", write_outputs=write, readable=readable,
    )
    shutil.rmtree(rd.root / "datasets")
    ledger = Ledger(rd.ledger)
    try:
        write_run_files(ledger, rd, toy)
    finally:
        ledger.close()
    assert seen == ["write"] and (rd.root / "toy.json").is_file()
    assert list(rd.root.glob("datasets/*/testgen.jsonl"))  # the shared files were written too
    assert render_readable(rd.root, tmp_path / "out", include_task_text=False,
                           recipe=toy).tasks == 7
    assert seen[-1] == f"readable {tmp_path / 'out'} False per_record"
    assert toy.primary_stage == "localize" and base.primary_stage == "testgen"
