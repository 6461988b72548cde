"""Agentless rollouts: resume after a kill between stages, batch mode, re-asks, retrying
failed units and resuming with more samples. See test_rollouts.py for the setup.
"""

from __future__ import annotations

import json
import signal
from collections import Counter
from typing import Any

from fake_openai import Reply
from helpers import (
    assert_terminal_invariants,
    cli_env,
    ledger_rows,
    popen_cli,
    read_jsonl,
    request_messages,
    run_cli,
    wait_for,
)
from rollouts_support import (
    CALC_FIXED,
    GOLD_MARKS,
    I1,
    I2,
    IDS,
    LOC_1,
    Workspace,
    check_diff,
    clone_at,
    rollout,
    stage_of,
    swebench_predictions,
)
from typer.testing import CliRunner

from benchsmith.cli.app import app


def test_resume_after_kill_between_stages(ws: Workspace) -> None:
    ws.model.hang_stage2 = True
    cfg = ws.config()
    rd = ws.runs / "K"
    args = ["rollout", "bugfix", "--config", str(cfg), "--run-id", "K", "--quiet",
            "--passk", "2"]
    proc = popen_cli(args, env=cli_env())
    try:
        def stage1_done() -> bool:
            if proc.poll() is not None:
                raise AssertionError(f"CLI exited early: {proc.communicate()}")
            if not (rd / "ledger.sqlite").exists():
                return False
            try:
                states = ledger_rows(rd, "SELECT stage, state FROM units")
            except Exception:  # the schema may not be there yet
                return False
            loc = [s for st, s in states if st == "localize"]
            return (len(loc) == 6 and "pending" not in loc
                    and len([q for q in ws.chat_requests()
                             if stage_of(request_messages(q.body)[0]["content"]) == "repair"])
                    >= 1)

        wait_for(stage1_done, timeout=30, what="all stage-1 answers recorded")
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    first = ws.chat_requests()
    n_first = len(first)
    loc_first = [q for q in first
                 if stage_of(request_messages(q.body)[0]["content"]) == "localize"]
    assert len(loc_first) == 2 + 2 + 4  # instance 3 re-asked once per sample
    states = dict(ledger_rows(rd, "SELECT unit_id, state FROM units WHERE stage='localize'"))
    assert sorted(states.values()) == ["invalid"] * 2 + ["ok"] * 4

    ws.model.hang_stage2 = False
    res = run_cli([*args, "--resume", "--model-name", "resumed"], env=cli_env(), timeout=60)
    assert res.returncode == 4, res.stderr  # some samples stay invalid: finished with failures
    assert_terminal_invariants(rd)
    second = ws.chat_requests()[n_first:]
    assert second, "the resume sent nothing"
    assert all(stage_of(request_messages(q.body)[0]["content"]) == "repair" for q in second)
    # Stage-1 answers were reused: the localize units are the same, answered once.
    assert dict(ledger_rows(rd, "SELECT unit_id, state FROM units WHERE stage='localize'")) \
        == states
    rows = read_jsonl(rd / "output.jsonl")
    assert [(r["instance_id"], r["sample"]) for r in rows] == [
        (i, k) for i in IDS for k in range(2)
    ]
    assert {r["status"] for r in rows if r["instance_id"] == I2} == {"ok"}
    i1 = {r["localize_answer"]: r for r in rows if r["instance_id"] == I1}
    assert set(i1) == {LOC_1[0], LOC_1[1]}
    assert i1[LOC_1[0]]["status"] == "ok" and i1[LOC_1[1]]["status"] == "invalid"
    preds = swebench_predictions(rd / "preds.jsonl")
    ok1 = i1[LOC_1[0]]
    first_i2 = next(r for r in rows if r["instance_id"] == I2)
    assert preds == [
        {"instance_id": I1, "model_name_or_path": "resumed", "model_patch": ok1["model_patch"]},
        {"instance_id": I2, "model_name_or_path": "resumed",
         "model_patch": first_i2["model_patch"]},
    ]
    checkout = clone_at(ws.repo, ws.repo.c2, ws.root / "check")
    check_diff(checkout, rd / "samples" / I1 / f"sample_{ok1['sample']}.diff",
               {"pkg/calc.py": CALC_FIXED})


def test_batch_mode_matches_online(ws: Workspace) -> None:
    cfg = ws.config()
    rollout("bugfix", cfg, "--run-id", "ON", "--passk", "2")
    online_preds = (ws.runs / "ON" / "preds.jsonl").read_bytes()
    online_rows = read_jsonl(ws.runs / "ON" / "output.jsonl")
    n_online = len(ws.chat_requests())
    ws.model.log.clear()
    ws.model.loc_count.clear()

    rollout("bugfix", cfg, "--run-id", "BA", "--passk", "2", "--mode", "batch")
    rd = ws.runs / "BA"
    assert len(ws.chat_requests()) == n_online  # nothing went online
    assert_terminal_invariants(rd)
    assert (rd / "preds.jsonl").read_bytes() == online_preds
    rows = read_jsonl(rd / "output.jsonl")

    def outcomes(rs: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
        # which sample got which stage-1 answer depends on arrival order; the outcomes do not
        return sorted((r["instance_id"], r["localize_answer"], r["localized_files"],
                       r["dropped_files"], r["status"], r["reason"], r["model_patch"] or "")
                      for r in rs)

    assert outcomes(rows) == outcomes(online_rows)
    assert [(r["instance_id"], r["sample"], r["custom_id"]) for r in rows] == \
        [(r["instance_id"], r["sample"], r["custom_id"]) for r in online_rows]

    # Stage 1 went in one batch, stage 2 in a later one (re-asks in later batches still).
    batches = sorted(ws.server.batches.values(), key=lambda b: b.created_at)
    stages = [sorted({stage_of(request_messages(line["body"])[0]["content"])
                      for line in b.lines}) for b in batches]
    assert stages[0] == ["localize"] and len(batches[0].lines) == 6
    assert ["repair"] in stages[1:]
    assert stages.index(["repair"]) > 0
    for b in batches:
        for line in b.lines:
            body = json.dumps(line["body"])
            assert not any(m in body for m in GOLD_MARKS)


def test_reask_does_not_demand_json_for_free_text_stages(ws: Workspace) -> None:
    """The repair stage asks for SEARCH/REPLACE edits in plain text; its re-ask must not
    tell the model to answer with a JSON object."""
    rollout("bugfix", ws.config(), "--run-id", "J", "--end", "1", "--passk", "3")
    reasks = [m for _, s, m, _ in ws.model.log if s == "repair" and len(m) > 1]
    assert reasks
    for m in reasks:
        assert "failed validation" in m[2]["content"]
        assert "JSON" not in m[2]["content"], m[2]["content"]


def test_retry_failed_localize_plans_the_later_stage(ws: Workspace) -> None:
    """Every stage-1 request failed, so no stage 2 was planned; `--resume --retry-failed`
    sends the same localize units again and their repairs follow."""
    ws.server.script = lambda r, i: Reply.error(400, "bad request")
    cfg = ws.config()
    out = rollout("bugfix", cfg, "--run-id", "RF", "--passk", "1")
    rd = ws.runs / "RF"
    assert out["units"] == {"failed": 3} and out["message"].startswith("finished with failures")
    loc = dict(ledger_rows(rd, "SELECT unit_id, state FROM units WHERE stage='localize'"))
    ws.server.script = ws.model.script
    out = rollout("bugfix", cfg, "--run-id", "RF", "--passk", "1", "--resume", "--retry-failed")
    assert set(dict(ledger_rows(rd, "SELECT unit_id, state FROM units WHERE stage='localize'"))) \
        == set(loc)
    stages = Counter(st for (st,) in ledger_rows(rd, "SELECT stage FROM units"))
    assert stages == {"localize": 3, "repair": 2}  # instance 3: stage 1 stays invalid
    # Each localize unit: the failed attempt, then the answer (instance 3: re-asked once).
    att = ledger_rows(rd, "SELECT a.status FROM attempts a JOIN units u USING (unit_id) "
                          "WHERE u.stage='localize' ORDER BY a.id")
    assert Counter(s for (s,) in att) == {"http_error": 3, "ok": 2, "invalid": 2}
    assert [(r["instance_id"], r["status"]) for r in read_jsonl(rd / "output.jsonl")][:2] == [
        (I1, "ok"), (I2, "ok")]
    assert_terminal_invariants(rd)


def test_resume_with_more_samples_is_refused_then_replanned(ws: Workspace) -> None:
    """rollout.passk shapes the plan: a resume asking for more samples stops with the field
    named; --replan keeps the samples answered and asks only the new ones."""
    cfg = ws.config()
    rollout("bugfix", cfg, "--run-id", "P", "--end", "2")
    rd = ws.runs / "P"
    before = ledger_rows(rd, "SELECT unit_id, state, plan FROM units ORDER BY 1")
    n_sent = len(ws.chat_requests())
    res = CliRunner().invoke(app, ["rollout", "bugfix", "--config", str(cfg), "--run-id", "P",
                                   "--end", "2", "--passk", "2", "--resume", "--quiet"])
    assert res.exit_code == 1, res.output
    assert "rollout.passk: 1 -> 2" in res.output and "--replan" in res.output
    assert ledger_rows(rd, "SELECT unit_id, state, plan FROM units ORDER BY 1") == before
    assert len(ws.chat_requests()) == n_sent

    out = rollout("bugfix", cfg, "--run-id", "P", "--end", "2", "--passk", "2", "--resume",
                  "--replan")
    assert out["stopped"] is None
    rows = read_jsonl(rd / "output.jsonl")
    assert [(r["instance_id"], r["sample"]) for r in rows] == [(I1, 0), (I1, 1), (I2, 0), (I2, 1)]
    # Sample 0 of each instance is the same request as before: kept, not asked again.
    new_loc = [q for q in ws.chat_requests()[n_sent:]
               if stage_of(request_messages(q.body)[0]["content"]) == "localize"]
    assert len(new_loc) == 2
    assert ledger_rows(rd, "SELECT COUNT(*) FROM units WHERE plan=2") == [(len(before) * 2,)]
