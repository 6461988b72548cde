"""End to end: a bug-fixer rollout over real SWE-bench Lite instances against the test
server, a hand-written evaluation in the harness's format, then trajectory entries from the
run dir (`entries_from_run`) and a fine-tuning dataset from them (`finetune build`).

See finetune_chain_support for the instances, what the "model" answers and the verdicts.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from finetune_chain_support import (
    A,
    B,
    C,
    D,
    HARNESS_RUN,
    HARNESS_RUN_2,
    MODEL_NAME,
    PLAN,
    Chain,
    gold_hunks,
    instance_folder,
    run_chain,
)
from typer.testing import CliRunner

from benchsmith.cli.app import app
from benchsmith.errors import ConfigError
from benchsmith.finetune.adapters import adapt_run, entries_from_run
from benchsmith.finetune.failures import categorize

SCHEMA = {"instance_id": str, "repo": str, "problem_statement": str, "patch": str,
          "resolved": bool, "attempt": int, "failure_category": type(None),
          "test_stdout": (str, type(None)), "localised_files": list}


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Chain:
    return run_chain(tmp_path_factory.mktemp("finetune_chain"))


def _by_attempt(entries: list[dict[str, Any]]) -> dict[tuple[str, int], dict[str, Any]]:
    out = {(e["instance_id"], e["attempt"]): e for e in entries}
    assert len(out) == len(entries)
    return out


def test_the_rollout_followed_the_plans(chain: Chain) -> None:
    kinds: dict[str, list[str]] = {}
    for r in chain.output:
        kinds.setdefault(r["instance_id"], []).append(chain.kind(r))
        assert r["status"] == ("invalid" if chain.kind(r) == "bad" else "ok"), r
    assert {i: sorted(k) for i, k in kinds.items()} == {i: sorted(p) for i, p in PLAN.items()}
    # the gold edits reproduce the real gold patches' changes
    for r in chain.output:
        if chain.kind(r) == "gold":
            real = chain.rows[r["instance_id"]]["patch"]
            changed = [ln for ln in r["model_patch"].split("\n") if ln[:1] in "+-"]
            assert changed == [ln for ln in real.split("\n") if ln[:1] in "+-"]
    assert sorted(chain.preds) == [A, B, C]  # D: no sample gave a patch


def test_entries_from_run_with_report_and_harness_logs(chain: Chain) -> None:
    entries = entries_from_run(chain.run_dir, chain.report, chain.eval_dir)
    got = _by_attempt(entries)
    assert sorted(got) == sorted((r["instance_id"], r["sample"] + 1) for r in chain.output)
    for r in chain.output:
        e = got[(r["instance_id"], r["sample"] + 1)]
        real = chain.rows[r["instance_id"]]
        kind = chain.kind(r)
        for key, typ in SCHEMA.items():
            assert isinstance(e[key], typ), (key, e[key])
        assert e["problem_statement"] == real["problem_statement"]
        assert e["repo"] == real["repo"]
        assert e["patch"] == (r["model_patch"] or "")
        assert e["localised_files"] == r["localized_files"] == [gold_hunks(real["patch"])[0]]
        assert e["resolved"] is (kind == "gold")
        assert e["source"] == f"benchsmith-run:{chain.run_dir}"
        assert (e["run_id"], e["custom_id"], e["rollout_status"]) == (
            "fix", r["custom_id"], r["status"])
        if kind == "bad":
            assert (e["evaluation"], e["test_stdout"]) == ("no_patch", None)
            assert "search text not found" in e["rollout_reason"]
        elif r["instance_id"] == C:  # the harness could not apply it: no report.json
            assert e["evaluation"] == "instance_error"
            assert categorize(e["test_stdout"], e["patch"]) == "patch_apply_failure"
        else:  # A (both samples, one from each harness run) and B: the harness's report.json
            assert e["evaluation"] == "instance_report"
            assert categorize(e["test_stdout"]) == ("unknown" if kind == "gold"
                                                     else "assertion_failure")
    assert sum(e["resolved"] for e in entries) == 3  # A's gold sample, both of B's


def test_report_only_labels_the_predictions_it_is_about(chain: Chain) -> None:
    res = adapt_run(chain.run_dir, chain.report)
    got = _by_attempt(res.entries)
    # A's sample not in preds.jsonl was evaluated by nothing the adapter was given
    (a_other,) = [r for r in chain.output if r["instance_id"] == A
                  and r["model_patch"] != chain.preds[A]]
    assert res.skipped == {"not evaluated": 1}
    assert (A, a_other["sample"] + 1) not in got and len(got) == len(chain.output) - 1
    report = json.loads(chain.report.read_text())
    for (iid, _), e in got.items():
        if e["patch"]:
            assert e["patch"] == chain.preds[iid]  # B's samples share one patch
            outcome = next(k for k in ("resolved", "unresolved", "error")
                           if iid in report[f"{k}_ids"])
            assert (e["evaluation"], e["resolved"]) == (f"run_report:{outcome}",
                                                        outcome == "resolved")
            assert e["test_stdout"] is None
        else:
            assert e["evaluation"] == "no_patch" and iid in (C, D)
    assert report["empty_patch_ids"] == [D] and report["error_ids"] == [C]


def test_instance_report_overrides_the_run_report(chain: Chain, tmp_path: Path) -> None:
    # eval_dir at the <model> folder of one harness run; its report.json says otherwise
    model_dir = tmp_path / MODEL_NAME.replace("/", "__")
    shutil.copytree(instance_folder(chain, HARNESS_RUN, A).parent, model_dir)
    rj = model_dir / A / "report.json"
    data = json.loads(rj.read_text())
    data[A]["resolved"] = not data[A]["resolved"]
    rj.write_text(json.dumps(data))
    got = _by_attempt(entries_from_run(chain.run_dir, chain.report, model_dir))
    (a_pred,) = [r for r in chain.output if r["model_patch"] == chain.preds[A]]
    e = got[(A, a_pred["sample"] + 1)]
    assert (e["resolved"], e["evaluation"]) == (data[A]["resolved"], "instance_report")
    assert len(got) == len(chain.output) - 1  # the pass-2 harness run is not under it
    # without patch.diff, a folder is about the submitted prediction
    (model_dir / A / "patch.diff").unlink()
    got = _by_attempt(entries_from_run(chain.run_dir, chain.report, model_dir))
    assert got[(A, a_pred["sample"] + 1)]["resolved"] is data[A]["resolved"]


def _edited_report(chain: Chain, tmp_path: Path, **changes: Any) -> Path:
    data = json.loads(chain.report.read_text())
    for k, v in changes.items():
        if v is None:
            del data[k]
        else:
            data[k] = v
    path = tmp_path / chain.report.name
    path.write_text(json.dumps(data))
    return path


def _error(fn: Any, *args: Any) -> ConfigError:
    with pytest.raises(ConfigError) as ei:
        fn(*args)
    assert "\n" not in str(ei.value)
    return ei.value


def test_bad_reports_and_eval_dirs(chain: Chain, tmp_path: Path) -> None:
    e = _error(entries_from_run, chain.run_dir, _edited_report(chain, tmp_path, error_ids=None))
    assert (e.file, e.field) == (str(tmp_path / chain.report.name), "error_ids")
    assert "resolved_ids, unresolved_ids, error_ids and empty_patch_ids" in str(e)
    # the report of other predictions: D had no patch, an instance of no attempt
    e = _error(entries_from_run, chain.run_dir,
               _edited_report(chain, tmp_path, resolved_ids=[D], resolved_instances=1,
                              empty_patch_ids=[], empty_patch_instances=0))
    assert e.field == "resolved_ids" and D in str(e) and "other predictions" in str(e)
    e = _error(entries_from_run, chain.run_dir,
               _edited_report(chain, tmp_path, unresolved_ids=["django__django-10914"],
                              unresolved_instances=1))
    assert "django__django-10914 has no attempt" in str(e)
    e = _error(entries_from_run, chain.run_dir,
               _edited_report(chain, tmp_path, resolved_instances=7))
    assert e.field == "resolved_instances"
    bad = tmp_path / "not.json"
    bad.write_text("{")
    assert _error(entries_from_run, chain.run_dir, bad).file == str(bad)
    assert "file not found" in str(_error(entries_from_run, chain.run_dir, tmp_path / "no.json"))
    # a malformed per-instance report.json names the file and the field
    logs = tmp_path / "logs"
    shutil.copytree(chain.eval_dir, logs)
    rj = instance_folder(chain, HARNESS_RUN, B).relative_to(chain.eval_dir) / "report.json"
    (logs / rj).write_text(json.dumps({B: {"resolved": "yes"}}))
    e = _error(entries_from_run, chain.run_dir, chain.report, logs)
    assert (e.file, e.field) == (str(logs / rj), f"{B}.resolved")
    # two folders of the submitted prediction without patch.diff: ambiguous
    shutil.rmtree(logs)
    shutil.copytree(chain.eval_dir, logs)
    for run in (HARNESS_RUN, HARNESS_RUN_2):
        (logs / instance_folder(chain, run, A).relative_to(chain.eval_dir) / "patch.diff").unlink()
    assert _error(entries_from_run, chain.run_dir, chain.report, logs).field == "patch.diff"
    assert "not a folder" in str(_error(entries_from_run, chain.run_dir, chain.report, bad))


def test_not_a_bugfix_run(chain: Chain, tmp_path: Path) -> None:
    e = _error(entries_from_run, tmp_path, chain.report)
    assert "not a run directory" in str(e)
    run = tmp_path / "run"
    shutil.copytree(chain.run_dir, run)
    cfg = run / "config" / "run_config.json"
    data = json.loads(cfg.read_text())
    data["recipe"] = "agentless_testgen"
    cfg.write_text(json.dumps(data))
    e = _error(entries_from_run, run, chain.report)
    assert (e.file, e.field) == (str(cfg), "recipe") and "rollout bugfix" in str(e)
    data["recipe"] = "agentless_bugfix"
    cfg.write_text(json.dumps(data))
    (run / "output.jsonl").write_text('{"instance_id": "x", "sample": "0"}\n')
    e = _error(entries_from_run, run, chain.report)
    assert (e.file, e.field) == (str(run / "output.jsonl"), "line 1: sample")


def _rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]


def _find(obj: Any, pattern: str) -> list[Any]:
    """Values of keys matching `pattern`, anywhere in `obj`."""
    found = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            if re.search(pattern, str(k)):
                found.append(v)
            found += _find(v, pattern)
    elif isinstance(obj, list):
        for v in obj:
            found += _find(v, pattern)
    return found


def test_finetune_build_from_the_run_dir(chain: Chain, tmp_path: Path) -> None:
    """`benchsmith finetune build --run-dir`: the chain's last step."""
    out = tmp_path / "ft"
    res = CliRunner().invoke(app, [
        "finetune", "build", "--run-dir", str(chain.run_dir), "--report", str(chain.report),
        "--eval-dir", str(chain.eval_dir), "--out", str(out), "--format", "openai",
        "--val-fraction", "0.5", "--seed", "3"])
    assert res.exit_code == 0, res.output
    rows = _rows(out / "train.jsonl") + _rows(out / "val.jsonl")
    stats = json.loads((out / "dataset_stats.json").read_text())
    # the resolved attempts (A's gold sample, both of B's) all pass the filters (real problem
    # statements, short unified diffs); B's two samples hold the same patch, so one of them
    # is a repeated positive, counted and left out
    assert stats["pairs"]["positive"] + stats["duplicate_positives_skipped"] == 3, stats
    assert stats["duplicate_positives_skipped"] == 1, stats
    assert rows and all(r["messages"][-1]["role"] == "assistant" for r in rows)
    targets = [r["messages"][-1]["content"] for r in rows]
    resolved = {e["patch"] for e in entries_from_run(chain.run_dir, chain.report,
                                                     chain.eval_dir) if e["resolved"]}
    assert all(any(p in t for p in resolved) for t in targets)  # never a failed patch
    # grouped split: an instance's rows (found by its issue's first line) in one file only
    titles = {iid: row["problem_statement"].split("\n")[0].strip()[:80]
              for iid, row in chain.rows.items()}

    def instances(name: str) -> set[str]:
        texts = ["".join(m["content"] for m in r["messages"]) for r in _rows(out / f"{name}.jsonl")]
        return {iid for t in texts for iid, title in titles.items() if title in t}
    assert not instances("train") & instances("val")
