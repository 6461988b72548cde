"""The gold-leak guard in runs: `leak_policy` warn / redact / skip on the real SWE-bench
Verified rows (planning only: no model is needed to see what would be sent) and, against
the fake server, a crafted task whose context field carries its canonical solution, under
every wire format (responses, chat, batch, `batch export`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fake_openai import FakeOpenAI
from typer.testing import CliRunner
from helpers import (
    KEY_ENV, SECRET, cfg_dict, deep_merge, humaneval_problems, ledger_rows, read_json,
    read_jsonl, request_messages, unit_specs,
)
from leak_support import clean_ids, gold_lines, leaking_lines, pick, swe_plan, verified_rows

from benchsmith import api, batch_ops
from benchsmith.cli.app import app
from benchsmith.config import parse_config
from benchsmith.leaks.guard import MARKER
from benchsmith.validate.run_checks import check_run

FAST = {"engine": {"concurrency": 4, "max_retries": 1}}


def first_prompts(rd: Path) -> dict[str, str]:
    """task id -> the text of the first request planned for it."""
    out = {}
    for spec in unit_specs(rd).values():
        if spec["parent_id"] is None and spec["sample_index"] == 0:
            out[spec["task_id"]] = "\n".join(m["content"] for m in spec["messages"])
    return out


def test_redact_removes_leaking_hint_lines_and_nothing_else(tmp_path: Path):
    rows = verified_rows()
    ids = sorted(pick(rows, "hints_text", 3, clean="problem_statement")
                 + pick(rows, "problem_statement", 1))
    warned = first_prompts(swe_plan(tmp_path, ids, "warn", "W"))
    rd = swe_plan(tmp_path, ids, "redact", "X")
    redacted = first_prompts(rd)
    removed = {}
    for uid, tid, removed_json, matched, fields in ledger_rows(
            rd, "SELECT unit_id, task_id, removed_json, matched, fields_json FROM gold_leaks"):
        removed[tid] = json.loads(removed_json) if removed_json else {}
    for tid in ids:
        row = rows[tid]
        gold = gold_lines(row)
        want_gone = leaking_lines(row["hints_text"], gold)
        before, after = warned[tid].splitlines(), redacted[tid].splitlines()
        assert len(before) == len(after)
        changed = [(b, a) for b, a in zip(before, after) if b != a]
        # exactly the hint lines holding gold, each replaced by the marker
        assert [b for b, _ in changed] == [ln for ln in before if ln in want_gone
                                          or any(ln.endswith(w) for w in want_gone)]
        assert all(a.endswith(MARKER) for _, a in changed)
        assert len(changed) == len(want_gone)
        assert row["problem_statement"].strip() in redacted[tid]  # never edited
        if want_gone:
            rec = removed[tid]["hints_text"]  # each line recorded (long ones cut short)
            assert len(rec) == len(want_gone)
            assert all(r and w.strip().startswith(r) for r, w in zip(rec, want_gone))
        else:
            assert "hints_text" not in removed.get(tid, {})
    # the problem-statement leak stays, recorded as leaking
    ps = [t for t in ids if leaking_lines(rows[t]["problem_statement"], gold_lines(rows[t]))]
    st = api.run_status(rd)["gold_leaks"]
    assert st["tasks"] == len(ps) and st["by_field"] == {"problem_statement": len(ps)}
    manifest = read_json(rd / "manifests/swebench_verified_gold_leaks.json")
    assert {(r["task_id"], r["field"]) for r in manifest} == (
        {(t, "problem_statement") for t in ps}
        | {(t, "hints_text") for t in ids if leaking_lines(rows[t]["hints_text"],
                                                          gold_lines(rows[t]))})
    assert {r.name: r.ok for r in check_run(rd)}["gold_leaks"]


def test_redact_is_part_of_the_plan(tmp_path: Path):
    rows = verified_rows()
    ids = pick(rows, "hints_text", 1, clean="problem_statement")
    swe_plan(tmp_path, ids, "warn", "P")
    with pytest.raises(Exception, match="leaks.leak_policy"):
        swe_plan(tmp_path, ids, "redact", "P")


def test_skip_ends_leaking_units_with_the_reason(tmp_path: Path):
    rows = verified_rows()
    leak = pick(rows, "problem_statement", 2)
    clean = clean_ids(rows, 2)
    rd = swe_plan(tmp_path, sorted(leak + clean), "skip", "S")
    states = {tid: (state, reason) for tid, state, reason in ledger_rows(
        rd, "SELECT task_id, state, reason FROM units")}
    for t in leak:
        assert states[t] == ("skipped", "gold_leak:problem_statement")
    for t in clean:
        assert states[t] == ("pending", None)
    st = api.run_status(rd)
    assert st["gold_leaks"]["skipped"] == 2
    assert st["failure_reasons"] == {"gold_leak": 2}
    out = CliRunner().invoke(app, ["status", str(rd)]).output
    assert "leaks:     2 request(s) of 2 task(s) carry gold (problem_statement 2); 2 skipped" in out
    checks = json.loads(CliRunner().invoke(app, ["validate-run", str(rd), "--json"]).output)
    (row,) = [c for c in checks["checks"] if c["name"] == "gold_leaks"]
    assert row["ok"] and "2 skipped" in row["detail"]


# ----------------------------------------------------------------- a crafted leaking task

def crafted_file(tmp_path: Path) -> tuple[Path, str, str]:
    """HumanEval rows as a jsonl dataset with a `notes` context field; the first task's
    notes carry its canonical solution. Returns (file, leaking id, a solution line)."""
    probs = humaneval_problems()
    ids = sorted(probs)[:3]
    path = tmp_path / "crafted.jsonl"
    with path.open("w", encoding="utf-8") as f:
        for tid in ids:
            p = probs[tid]
            notes = p["canonical_solution"] if tid == ids[0] else "Think about edge cases."
            f.write(json.dumps({**p, "notes": notes}) + "\n")
    line = max(probs[ids[0]]["canonical_solution"].splitlines(), key=len).strip()
    return path, ids[0], line


def crafted_cfg(tmp_path: Path, server: FakeOpenAI, api_kind: str, policy: str) -> Any:
    path, _, _ = crafted_file(tmp_path)
    over = deep_merge(FAST, {
        "openai": {"api": "chat" if api_kind == "chat" else "responses"},
        "leaks": {"leak_policy": policy},
    })
    data = cfg_dict(tmp_path, server.base_url, over)
    data["datasets"] = {"crafted": {"source": "jsonl", "path": str(path), "fields": {
        "id": "task_id", "primary": "prompt", "context": ["entry_point", "notes"],
        "gold": ["canonical_solution", "test"], "answer": ["canonical_solution"]}}}
    return parse_config(data, file=str(tmp_path / "c.yaml"), config_dir=str(tmp_path))


@pytest.mark.parametrize("policy", ["warn", "skip"])
@pytest.mark.parametrize("wire", ["responses", "chat", "batch", "batch_export"])
def test_crafted_leak_caught_on_every_wire(tmp_path: Path, monkeypatch, wire: str, policy: str):
    monkeypatch.setenv(KEY_ENV, SECRET)
    _, leaking, line = crafted_file(tmp_path)
    with FakeOpenAI() as server:
        cfg = crafted_cfg(tmp_path, server, wire, policy)
        if wire == "batch_export":
            rd = api.dry_run(cfg, "R").run_dir
            out = tmp_path / "requests.jsonl"
            batch_ops.batch_export(rd, out)
            sent = [json.dumps(r["body"]) for r in read_jsonl(out)]
        else:
            summary = api.run(cfg, "R", mode="batch" if wire == "batch" else None)
            assert summary.stopped is None
            rd = summary.run_dir
            sent = [json.dumps(request_messages(b)) for b in server.bodies()
                    if request_messages(b)]
    found = ledger_rows(rd, "SELECT task_id, policy, matched, fields_json FROM gold_leaks")
    assert found and {r[0] for r in found} == {leaking}
    assert all(json.loads(f) == {"notes": n} and n >= 1 for _, _, n, f in found)
    assert all(pol == policy for _, pol, _, _ in found)
    carried = [s for s in sent if json.dumps(line)[1:-1] in s]
    manifest = read_json(rd / "manifests/crafted_gold_leaks.json")
    assert [(r["task_id"], r["field"], r["skipped"]) for r in manifest] == [
        (leaking, "notes", policy == "skip")]
    if policy == "skip":
        assert carried == []
        (state,) = {s for s, in ledger_rows(
            rd, "SELECT state || ':' || reason FROM units WHERE task_id=?", (leaking,))}
        assert state == "skipped:gold_leak:notes"
    elif wire != "batch":  # the batch executor's lines are uploaded as a file
        assert carried
    if wire != "batch_export":
        recs = read_jsonl(rd / "datasets/crafted/plans.jsonl")
        assert recs and all(r["gold_leak"] == (r["task_id"] == leaking) for r in recs)
        assert {r.name: r.ok for r in check_run(rd)}["gold_leaks"]
