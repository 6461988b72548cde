"""`benchsmith validate-run` on rollout runs (bug fixer and test writer, online and batch):
healthy runs pass with the checks their recipe declares (no plans checks); a removed
prediction, an edited sample row or a sample file that does not parse fails, naming it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from benchsmith.cli.app import app
from rollouts_support import I2, Workspace, rollout

# The rollout fixtures (`repo`, `ws`) come from rollouts_support (tests/conftest.py).

ROLLOUT_CHECKS = ["ledger", "rollout_outputs", "samples", "matches_ledger", "manifests",
                  "gold_leaks",
                  "costs", "one_plan", "files_parse", "no_secret"]


def _validate(rd: Path) -> tuple[int, dict[str, Any]]:
    res = CliRunner().invoke(app, ["validate-run", str(rd), "--json"])
    return res.exit_code, json.loads(res.stdout)


def _failing(out: dict[str, Any]) -> dict[str, list[str]]:
    return {c["name"]: c["problems"] for c in out["checks"] if not c["ok"]}


@pytest.mark.parametrize("mode", ["online", "batch"])
@pytest.mark.parametrize("kind", ["bugfix", "testgen"])
def test_healthy_rollout_validates(ws: Workspace, kind: str, mode: str) -> None:
    rollout(kind, ws.config(), "--run-id", "R", "--passk", "2", "--mode", mode,
            "--model-name", "org/my-model")
    rd = ws.runs / "R"
    code, out = _validate(rd)
    assert code == 0 and out["ok"], _failing(out)
    assert [c["name"] for c in out["checks"]] == ROLLOUT_CHECKS
    # The checks looked at the rollout's own files, not for plans.
    detail = {c["name"]: c["detail"] for c in out["checks"]}
    n_samples = len((rd / "output.jsonl").read_text().splitlines())
    assert detail["rollout_outputs"].startswith(f"{n_samples} sample(s)")
    n_files = len(list((rd / "samples").rglob("sample_*")))
    assert n_files and detail["samples"] == f"{n_files} sample file(s)"
    assert (rd / "preds.jsonl").is_file() == (kind == "bugfix")


def _copy(rd: Path, name: str) -> Path:
    dst = rd.parent / name
    shutil.copytree(rd, dst)
    return dst


def test_broken_rollout_artifacts_fail(ws: Workspace) -> None:
    rollout("bugfix", ws.config(), "--run-id", "B", "--passk", "2")
    rd = ws.runs / "B"
    assert _validate(rd)[0] == 0

    # A prediction removed from preds.jsonl.
    bad = _copy(rd, "no_pred")
    lines = (bad / "preds.jsonl").read_text().splitlines(keepends=True)
    gone = json.loads(lines.pop(0))["instance_id"]
    (bad / "preds.jsonl").write_text("".join(lines))
    code, out = _validate(bad)
    assert code == 1 and not out["ok"]
    assert set(_failing(out)) == {"rollout_outputs"}, _failing(out)
    assert f"preds.jsonl: prediction for {gone!r} is in the ledger but not in the file (lost)" \
        in _failing(out)["rollout_outputs"]

    # A patch edited in output.jsonl and in its sample file.
    bad = _copy(rd, "edited")
    rows = [json.loads(x) for x in (bad / "output.jsonl").read_text().splitlines()]
    row = next(r for r in rows if r["status"] == "ok")
    row["model_patch"] += "+ one more line\n"
    (bad / "output.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    sample = bad / "samples" / row["instance_id"] / f"sample_{row['sample']}.diff"
    sample.write_text(row["model_patch"])
    code, out = _validate(bad)
    fails = _failing(out)
    assert code == 1 and set(fails) == {"rollout_outputs", "samples"}, fails
    assert any(f"sample {row['sample']} of {row['instance_id']!r} differs from the ledger in "
               "model_patch (edited)" in x for x in fails["rollout_outputs"])
    assert fails["samples"] == [f"{sample.relative_to(bad)}: differs from the ledger's text "
                                "(edited)"]


def test_sample_script_that_does_not_compile_fails(ws: Workspace) -> None:
    rollout("testgen", ws.config(), "--run-id", "T", "--start", "1", "--end", "2")  # I2 only
    rd = ws.runs / "T"
    assert _validate(rd)[0] == 0
    script = rd / "samples" / I2 / "sample_0.py"
    script.write_text("def broken(:\n")
    (rd / "samples" / I2 / "sample_9.py").write_text("print('stray')\n")
    code, out = _validate(rd)
    fails = _failing(out)
    assert code == 1 and set(fails) == {"samples"}, fails
    assert any(x.startswith(f"samples/{I2}/sample_0.py: does not compile") for x in fails["samples"])
    assert f"samples/{I2}/sample_9.py: not an ok sample of the ledger (added)" in fails["samples"]
