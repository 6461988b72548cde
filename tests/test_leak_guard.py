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


# ------------------------------------------- list, dict and number fields (hostile input)

QUOTED = "HumanEval/148"  # its canonical solution has a line full of double quotes


def quoted_line() -> str:
    sol = humaneval_problems()[QUOTED]["canonical_solution"]
    return next(s for s in map(str.strip, sol.splitlines()) if s.count('"') >= 4)


def odd_plan(tmp_path: Path, notes: dict[str, Any], policy: str, run_id: str) -> Path:
    """A dry run over HumanEval rows whose `notes` context field is `notes[task id]`."""
    probs = humaneval_problems()
    path = tmp_path / f"{run_id}.jsonl"
    with path.open("w", encoding="utf-8") as f:
        for tid, n in notes.items():
            f.write(json.dumps({**probs[tid], "notes": n}) + "\n")
    data = cfg_dict(tmp_path, "http://127.0.0.1:9/v1", {"leaks": {"leak_policy": policy}})
    data["datasets"] = {"odd": {"source": "jsonl", "path": str(path), "fields": {
        "id": "task_id", "primary": "prompt", "context": ["notes"],
        "gold": ["canonical_solution"]}}}
    cfg = parse_config(data, file=str(tmp_path / "c.yaml"), config_dir=str(tmp_path))
    return api.dry_run(cfg, run_id).run_dir


def shown_notes(prompt: str) -> Any:
    """The `notes` field as the prompt shows it (JSON for a list or dict)."""
    (ln,) = [ln for ln in prompt.splitlines() if ln.startswith("notes: ")]
    return json.loads(ln[len("notes: "):])


def odd_notes() -> dict[str, Any]:
    line = quoted_line()
    return {QUOTED: ["See the reference:", f"  {line}  # copy this"],
            "HumanEval/0": {"hint": f"It goes:\n{line}", "n": 2**70},
            "HumanEval/1": ["Think about edge cases.", 'say "hello"'],
            "HumanEval/2": 2**70}


@pytest.mark.parametrize("policy", ["warn", "skip"])
def test_quoted_gold_line_in_a_list_or_dict_field_is_caught(tmp_path: Path, policy: str):
    line = quoted_line()
    rd = odd_plan(tmp_path, odd_notes(), policy, "Q")
    prompts = first_prompts(rd)
    assert json.dumps(line, ensure_ascii=False)[1:-1] in prompts[QUOTED]  # escaped as sent
    assert line not in prompts[QUOTED]
    found = {tid: json.loads(f) for tid, f in ledger_rows(
        rd, "SELECT task_id, fields_json FROM gold_leaks")}
    # HumanEval/0's notes carry HumanEval/148's line, not its own gold
    assert found == {QUOTED: {"notes": 1}}
    states = {tid: (s, r) for tid, s, r in ledger_rows(
        rd, "SELECT task_id, state, reason FROM units")}
    want = ("skipped", "gold_leak:notes") if policy == "skip" else ("pending", None)
    assert states[QUOTED] == want
    assert all(states[t] == ("pending", None) for t in states if t != QUOTED)


def test_redact_keeps_a_list_or_dict_field_and_removes_its_gold_strings(tmp_path: Path):
    line = quoted_line()
    notes = odd_notes()
    notes["HumanEval/0"] = {"hint": f"It goes:\n{humaneval_problems()['HumanEval/0']['canonical_solution']}",
                            "n": 2**70, "more": ["ok", notes["HumanEval/0"]["hint"]]}
    warned = first_prompts(odd_plan(tmp_path, notes, "warn", "W"))
    rd = odd_plan(tmp_path, notes, "redact", "X")
    prompts = first_prompts(rd)
    assert shown_notes(prompts[QUOTED]) == ["See the reference:", MARKER]
    sol0 = humaneval_problems()["HumanEval/0"]["canonical_solution"]
    gone0 = [s.strip() for s in sol0.splitlines() if len(s.strip()) >= 25]
    assert gone0  # the test needs a line of HumanEval/0's gold to remove
    got = shown_notes(prompts["HumanEval/0"])
    assert got["n"] == 2**70 and got["more"] == ["ok", notes["HumanEval/0"]["more"][1]]
    kept = [ln for ln in f"It goes:\n{sol0}".splitlines(keepends=True)]
    assert got["hint"] == "".join(MARKER + "\n" if ln.strip() in gone0 else ln for ln in kept)
    for tid in ("HumanEval/1", "HumanEval/2"):  # nothing to remove
        assert prompts[tid] == warned[tid]
    removed = {tid: json.loads(r) for tid, r in ledger_rows(
        rd, "SELECT task_id, removed_json FROM gold_leaks")}
    assert removed[QUOTED] == {"notes": [f"{line}  # copy this"]}
    assert removed["HumanEval/0"] == {"notes": gone0}
    st = api.run_status(rd)["gold_leaks"]
    assert st["tasks"] == 0  # nothing leaks once removed
    assert line not in json.dumps(prompts[QUOTED]) and all(
        json.dumps(s)[1:-1] not in prompts["HumanEval/0"] for s in gone0)


def test_leaks_command_reads_wide_ints_and_nested_fields(tmp_path: Path):
    path = tmp_path / "odd.jsonl"
    probs = humaneval_problems()
    with path.open("w", encoding="utf-8") as f:
        for tid, n in odd_notes().items():
            f.write(json.dumps({**probs[tid], "notes": n, "wide": 2**70}) + "\n")
        f.write(json.dumps({"task_id": "wide", "prompt": "p", "notes": f"is {2**100}",
                            "wide": 2**100}) + "\n")
    cfg = tmp_path / "c.yaml"
    cfg.write_text(json.dumps({"datasets": {"odd": {"source": "jsonl", "path": str(path), "fields": {
        "id": "task_id", "primary": "prompt", "context": ["notes"],
        "gold": ["canonical_solution", "wide"]}}}}), encoding="utf-8")
    res = CliRunner().invoke(app, ["leaks", str(cfg), "--json"])
    assert res.exit_code == 0, res.output
    rows = {(r["task_id"], r["field"]): r["gold_fields"] for r in json.loads(res.output)["leaks"]}
    assert rows == {(QUOTED, "notes"): ["canonical_solution"], ("wide", "notes"): ["wide"]}
