"""Agentless rollouts (`benchsmith rollout bugfix|testgen`) end to end.

A real git repository (three commits: modules added, bugs introduced, an unrelated module
added; plus a dirty working tree the rollout must not touch) and three SWE-bench-shaped
instances at different commits. The fake OpenAI server answers like a model, keyed on the
prompt: which instance (a marker in the problem statement), which stage (the template's
own headings) and which sample. Samples of one instance send byte-identical stage-1
requests, so the k-th stage-1 request of an instance gets the k-th scripted file list; the
stage-2 prompt then shows which files were localized, and every later answer is keyed on
it. Expectations per output row come from the row's own stage-1 answer (its trajectory),
from the file texts written here and from what the server received.

Patches are checked with `git apply` in a separate clone at the instance's base_commit,
never in the fixture's checkout.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import (
    assert_terminal_invariants,
    ledger_rows,
    read_jsonl,
    request_messages,
)
from rollouts_support import (
    BIG,
    BROKEN_1,
    CALC_V2,
    FENCED_1,
    GEOMETRY,
    GEOMETRY_FIXED,
    GOLD_MARKS,
    I1,
    I2,
    I3,
    IDS,
    LOC_1,
    LOC_2,
    LOC_3,
    MODEL,
    NOCHANGE_1,
    PRICE,
    PROBLEM,
    REPAIR_2,
    SCRIPT_1,
    SCRIPT_2,
    SYNTAX_1,
    TESTGEN_2,
    TEXT_V1,
    TEXT_V2,
    TRAJ_1,
    TREE_C1,
    TREE_C3,
    UNFENCED_1,
    VALID_1,
    Workspace,
    base_commit,
    check_diff,
    clone_at,
    dataset_rows,
    expected_bugfix_files,
    instance_of,
    rollout,
    shown_files,
    stage2_prompts,
    swebench_predictions,
)
from typer.testing import CliRunner

from benchsmith.cli.app import app

# --------------------------------------------------------------------------- tests


def test_bugfix_rollout_online(ws: Workspace) -> None:
    before = ws.repo.snapshot()
    cfg = ws.config()
    out = rollout("bugfix", cfg, "--run-id", "B", "--passk", "3", "--temp", "0.3",
                  "--model-name", "org/my-model")
    rd = ws.runs / "B"
    assert Path(out["run_dir"]) == rd and out["stopped"] is None
    assert_terminal_invariants(rd)
    assert ws.repo.snapshot() == before  # checkout, index, HEAD untouched

    rows = read_jsonl(rd / "output.jsonl")
    assert [(r["instance_id"], r["sample"]) for r in rows] == [
        (i, k) for i in IDS for k in range(3)
    ]
    # Instance 1: each scripted stage-1 answer went to exactly one sample.
    assert sorted(r["localize_answer"] for r in rows if r["instance_id"] == I1) == sorted(LOC_1)

    checkouts = {iid: clone_at(ws.repo, base_commit(ws.repo, iid), ws.root / f"check_{iid}")
                 for iid in IDS}
    for r in rows:
        iid, k = r["instance_id"], r["sample"]
        assert r["custom_id"] == f"{iid}__pass{k + 1}"
        assert r["model"] == MODEL and r["test_script"] is None
        diff = rd / "samples" / iid / f"sample_{k}.diff"
        if iid == I1:
            kept, dropped = TRAJ_1[r["localize_answer"]]
            assert (r["localized_files"], r["dropped_files"]) == (kept, dropped)
            assert r["over_budget_files"] == []
            if r["localize_answer"] == LOC_1[0]:
                exp = ("ok", None, VALID_1, 2)
            elif r["localize_answer"] == LOC_1[1]:
                exp = ("invalid", "repair: validation: search text not found in pkg/calc.py: "
                       "def add(x, y):", BROKEN_1, 3)
            else:
                exp = ("invalid", "repair: validation: edit makes no change in pkg/calc.py: "
                       "def mul(a, b):", NOCHANGE_1, 3)
        elif iid == I2:
            assert r["localize_answer"] == LOC_2
            assert r["localized_files"] == ["pkg/big.py", "pkg/text.py", "pkg/geometry.py"]
            assert r["dropped_files"] == ["docs/conf.py"] and r["over_budget_files"] == []
            exp = ("ok", None, REPAIR_2, 2)
        else:
            assert r["localize_answer"] == LOC_3
            assert r["localized_files"] == [] and r["dropped_files"] == []
            exp = ("invalid", "localize: validation: no file of the repository was named; "
                   "not in the repository: src/nothing.py, lib/ghost.py", None, 2)
        status, reason, repair_answer, attempts = exp
        assert (r["status"], r["reason"], r["repair_answer"]) == (status, reason, repair_answer)
        assert r["usage"]["attempts"] == attempts
        assert r["usage"]["input_tokens"] > 0 and r["usage"]["output_tokens"] > 0
        assert r["cost_usd"] > 0
        files = expected_bugfix_files(iid, r["localize_answer"])
        if status == "ok":
            assert files is not None
            assert diff.read_text(encoding="utf-8") == r["model_patch"]
            check_diff(checkouts[iid], diff, files)
        else:
            assert r["model_patch"] is None and not diff.exists()
    assert sorted(str(p.relative_to(rd / "samples")) for p in (rd / "samples").rglob("*.diff")) \
        == sorted(f"{r['instance_id']}/sample_{r['sample']}.diff" for r in rows
                  if r["status"] == "ok")
    assert read_jsonl(rd / "failures.jsonl") == [r for r in rows if r["status"] != "ok"]

    # Usage and cost add up to what the server saw and answered.
    reqs = ws.chat_requests()
    assert len(reqs) == sum(r["usage"]["attempts"] for r in rows) == len(ws.model.log)
    n_in = sum(max(1, len(q.raw) // 4) for q in reqs)
    n_out = sum(max(1, len(a) // 4) for *_, a in ws.model.log)
    assert sum(r["usage"]["input_tokens"] for r in rows) == n_in
    assert sum(r["usage"]["output_tokens"] for r in rows) == n_out
    assert sum(r["cost_usd"] for r in rows) == pytest.approx(
        (n_in * PRICE["input"] + n_out * PRICE["output"]) / 1e6)

    # preds.jsonl: the first good sample of each instance, SWE-bench's three keys only.
    preds = swebench_predictions(rd / "preds.jsonl")
    first_ok = {}
    for r in rows:
        if r["status"] == "ok":
            first_ok.setdefault(r["instance_id"], r)
    assert [list(p) for p in preds] == [["instance_id", "model_name_or_path", "model_patch"]] * 2
    assert preds == [{"instance_id": i, "model_name_or_path": "org/my-model",
                      "model_patch": first_ok[i]["model_patch"]} for i in (I1, I2)]
    assert {p["instance_id"] for p in preds} <= {d["instance_id"] for d in dataset_rows(ws.repo)}
    for k in range(3):
        assert swebench_predictions(rd / f"preds_pass{k + 1}.jsonl") == [
            {"instance_id": r["instance_id"], "model_name_or_path": "org/my-model",
             "model_patch": r["model_patch"]}
            for r in rows if r["sample"] == k and r["status"] == "ok"
        ]
    assert not (rd / "preds_pass4.jsonl").exists()

    # What the server received.
    bodies = [q.body for q in reqs]
    assert all(b["model"] == MODEL and b["temperature"] == 0.3 for b in bodies)
    for q in reqs:
        for mark in GOLD_MARKS:
            assert mark.encode() not in q.raw, mark
    loc = {iid: [m[0]["content"] for i, s, m, _ in ws.model.log if i == iid and s == "localize"]
           for iid in IDS}
    assert [len(loc[i]) for i in IDS] == [3, 3, 6]  # instance 3: each sample re-asked once
    for iid, tree in ((I1, TREE_C1), (I2, TREE_C3), (I3, TREE_C1)):
        for p in loc[iid]:
            assert f"### Repository Structure ###\n{tree}\n\n###" in p
            assert f"### GitHub Problem Description ###\n{PROBLEM[iid]}" in p  # CRLF kept
    repair_1 = stage2_prompts(ws.model, I1, "repair")
    assert sorted(shown_files(p) for p in repair_1) == sorted(k for k, _ in TRAJ_1.values())
    for p in repair_1:  # the file text at base_commit (commit 2), not HEAD's nor the dirty one
        assert f"### pkg/calc.py\n{CALC_V2.rstrip()}\n" in p
        assert "DIRTY-WORKTREE" not in p and PROBLEM[I1] in p
    for p in stage2_prompts(ws.model, I2, "repair"):
        assert shown_files(p) == ["pkg/big.py", "pkg/text.py", "pkg/geometry.py"]
        for rel, text in (("pkg/big.py", BIG), ("pkg/text.py", TEXT_V2),
                          ("pkg/geometry.py", GEOMETRY)):
            assert f"### {rel}\n{text.rstrip()}\n" in p
    assert stage2_prompts(ws.model, I3, "repair") == []  # invalid at localize: no stage 2

    # The re-ask of the broken edit carries the answer and the validation error.
    reasks = [m for i, s, m, _ in ws.model.log if s == "repair" and len(m) > 1]
    assert len(reasks) == 2
    by_files = {tuple(shown_files(m[0]["content"])): m for m in reasks}
    broken = by_files[("pkg/calc.py", "pkg/text.py")]
    assert broken[1] == {"role": "assistant", "content": BROKEN_1}
    assert "search text not found in pkg/calc.py: def add(x, y):" in broken[2]["content"]
    nochange = by_files[("pkg/calc.py", "pkg/__init__.py")]
    assert "edit makes no change in pkg/calc.py: def mul(a, b):" in nochange[2]["content"]
    loc_reasks = [m for i, s, m, _ in ws.model.log if s == "localize" and len(m) > 1]
    assert len(loc_reasks) == 3 and all(m[0]["content"] == loc[I3][0] for m in loc_reasks)
    assert all("src/nothing.py, lib/ghost.py" in m[2]["content"] for m in loc_reasks)


def test_testgen_rollout_online(ws: Workspace) -> None:
    before = ws.repo.snapshot()
    cfg = ws.config()
    out = rollout("testgen", cfg, "--run-id", "T", "--passk", "3")
    rd = ws.runs / "T"
    assert "predictions" not in out
    assert_terminal_invariants(rd)
    assert ws.repo.snapshot() == before

    rows = read_jsonl(rd / "output.jsonl")
    assert [(r["instance_id"], r["sample"]) for r in rows] == [
        (i, k) for i in IDS for k in range(3)
    ]
    for r in rows:
        iid, k = r["instance_id"], r["sample"]
        assert r["custom_id"] == f"{iid}__pass{k + 1}" and r["model_patch"] is None
        if iid == I1:
            assert (r["localized_files"], r["dropped_files"]) == TRAJ_1[r["localize_answer"]]
            exp = {LOC_1[0]: ("ok", SCRIPT_1, FENCED_1),
                   LOC_1[1]: ("ok", UNFENCED_1, UNFENCED_1),
                   LOC_1[2]: ("invalid", None, SYNTAX_1)}[r["localize_answer"]]
        elif iid == I2:
            exp = ("ok", SCRIPT_2, TESTGEN_2)
        else:
            exp = ("invalid", None, None)
        status, script, answer = exp
        assert (r["status"], r["test_script"], r["testgen_answer"]) == (status, script, answer)
        path = rd / "samples" / iid / f"sample_{k}.py"
        if status == "ok":
            assert r["reason"] is None
            text = path.read_text(encoding="utf-8")
            assert text == script
            compile(text, str(path), "exec")
        else:
            assert not path.exists()
    bad = [r for r in rows if r["instance_id"] == I1 and r["status"] != "ok"]
    assert len(bad) == 1
    assert bad[0]["reason"].startswith("testgen: validation: does not compile:")
    assert bad[0]["usage"]["attempts"] == 3  # localize + answer + one re-ask
    assert all(r["reason"].startswith("localize: validation: no file of the repository")
               for r in rows if r["instance_id"] == I3)
    assert read_jsonl(rd / "failures.jsonl") == [r for r in rows if r["status"] != "ok"]
    assert not list(rd.glob("preds*.jsonl"))
    # The re-ask of the script that does not compile names the compile error.
    reasks = [m for i, s, m, _ in ws.model.log if s == "testgen" and len(m) > 1]
    assert len(reasks) == 1 and "does not compile" in reasks[0][2]["content"]
    for q in ws.chat_requests():
        for mark in GOLD_MARKS:
            assert mark.encode() not in q.raw, mark


def test_context_budget_drops_big_file(ws: Workspace) -> None:
    cfg = ws.config(rollout={"max_context_tokens": 500})  # ~2000 characters of files
    rollout("bugfix", cfg, "--run-id", "S", "--start", "1", "--end", "2")  # instance 2 only
    rd = ws.runs / "S"
    (row,) = read_jsonl(rd / "output.jsonl")
    assert row["instance_id"] == I2 and row["status"] == "ok"
    assert row["localized_files"] == ["pkg/big.py", "pkg/text.py", "pkg/geometry.py"]
    assert row["over_budget_files"] == ["pkg/big.py"]
    (p,) = stage2_prompts(ws.model, I2, "repair")
    assert shown_files(p) == ["pkg/text.py", "pkg/geometry.py"]
    assert "helper_0" not in p and f"### pkg/text.py\n{TEXT_V2.rstrip()}\n" in p
    check_diff(clone_at(ws.repo, ws.repo.c3, ws.root / "check"),
               rd / "samples" / I2 / "sample_0.diff",
               {"pkg/text.py": TEXT_V1, "pkg/geometry.py": GEOMETRY_FIXED})


def test_all_localized_files_over_budget_are_recorded(ws: Workspace) -> None:
    ws.model.loc_override[I1] = ["```\npkg/big.py\n```"]
    cfg = ws.config(rollout={"max_context_tokens": 500})
    rollout("bugfix", cfg, "--run-id", "O", "--end", "1")  # instance 1 only
    rd = ws.runs / "O"
    (row,) = read_jsonl(rd / "output.jsonl")
    assert [s for _, s, _, _ in ws.model.log] == ["localize"]  # no stage-2 request
    assert row["instance_id"] == I1 and row["status"] != "ok" and row["model_patch"] is None
    assert row["localized_files"] == ["pkg/big.py"]
    assert "budget" in row["reason"]
    assert read_jsonl(rd / "failures.jsonl") == [row]
    # The file that did not fit is recorded, as when some other file fits.
    assert row["over_budget_files"] == ["pkg/big.py"]


def test_structure_dir_gives_same_prompts_as_clone(ws: Workspace, tmp_path: Path) -> None:
    before = ws.repo.snapshot()
    res = CliRunner().invoke(app, ["repo-structure", "build", "--repos-dir",
                                   str(ws.repo.path.parent), "--dataset",
                                   str(tmp_path / "data.jsonl"), "--out", str(tmp_path / "st"),
                                   "--quiet"])
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in (tmp_path / "st").iterdir()) == [f"{i}.json" for i in IDS]
    assert ws.repo.snapshot() == before

    rollout("bugfix", ws.config("clone.yaml"), "--run-id", "C")
    from_clone = sorted(m[0]["content"] for _, _, m, _ in ws.model.log)
    ws.model.log.clear()
    ws.model.loc_count.clear()
    cfg = ws.config("st.yaml", rollout={"structure_dir": "st", "repos_dir": None,
                                        "cache_dir": str(tmp_path / "cache2")})
    rollout("bugfix", cfg, "--run-id", "D")
    from_dir = sorted(m[0]["content"] for _, _, m, _ in ws.model.log)
    # passk 1: two requests per instance (instance 3: localize and its re-ask)
    assert from_dir == from_clone and len(from_dir) == 6
    assert not (tmp_path / "cache2").exists()  # nothing was built from a clone
    for iid, tree in ((I1, TREE_C1), (I2, TREE_C3)):
        assert any(f"### Repository Structure ###\n{tree}\n\n###" in p
                   for p in from_dir if instance_of(p) == iid)
    assert read_jsonl(ws.runs / "D" / "preds.jsonl") == read_jsonl(ws.runs / "C" / "preds.jsonl")
    assert ws.repo.snapshot() == before


def test_range_crlf_and_thinking_params(ws: Workspace) -> None:
    cfg = ws.config(rollout={"enable_thinking": True, "thinking_budget": 64})
    rollout("bugfix", cfg, "--run-id", "R", "--start", "1", "--end", "3", "--convert-crlf",
            "--temp", "0.7", "--passk", "2")
    rd = ws.runs / "R"
    rows = read_jsonl(rd / "output.jsonl")
    assert [(r["instance_id"], r["sample"]) for r in rows] == [(I2, 0), (I2, 1), (I3, 0), (I3, 1)]
    assert ledger_rows(rd, "SELECT DISTINCT task_id FROM units ORDER BY 1") == [(I2,), (I3,)]
    reqs = ws.chat_requests()
    assert {instance_of(request_messages(q.body)[0]["content"]) for q in reqs} == {I2, I3}
    for q in reqs:
        b = q.body
        assert b["chat_template_kwargs"] == {"enable_thinking": True}
        assert b["thinking_budget"] == 64 and b["temperature"] == 0.7
        assert not any("\r" in m["content"] for m in request_messages(b))
    p = next(m[0]["content"] for i, s, m, _ in ws.model.log if i == I2 and s == "localize")
    assert PROBLEM[I2].replace("\r\n", "\n") in p
    preds = read_jsonl(rd / "preds.jsonl")
    assert [p["instance_id"] for p in preds] == [I2]
    assert preds[0]["model_name_or_path"] == MODEL  # default: the model name
