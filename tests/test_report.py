"""`benchsmith report` and the report `run` writes: real runs through the fake server (a plans
run on HumanEval, a bug-fixer rollout, SWE-bench Verified instances that carry their gold),
the page checked against the ledger and opened in headless Chromium with the network off."""

from __future__ import annotations

import html
import json
import sqlite3
from pathlib import Path

import pytest
from fake_openai import Reply
from helpers import KEY_ENV, SECRET, cfg_dict, make_cfg, read_json, read_jsonl, write_yaml
from leak_support import clean_ids, gold_lines, leaking_lines, pick, swe_cfg, swe_plan, verified_rows
from report_browser import open_offline
from rollouts_support import Workspace, rollout
from typer.testing import CliRunner

from benchsmith import api
from benchsmith.cli.app import app
from benchsmith.store import leak_rows
from benchsmith.store.ledger import Ledger
from benchsmith.store.lock import run_lock

HOSTILE = "</script><script>alert('x')</script>"


def _plan(title: str, summary: str, steps: list[str]) -> dict:
    return {"title": title, "summary": summary, "steps": steps}


CALL1 = [
    _plan(f"Pairwise {HOSTILE}", "Compare every pair of numbers and check the gap.",
          ["loop over i", "loop over j after i", "return True on a small gap"]),
    _plan("Sort then scan", "Sort a copy and compare neighbours only.",
          ["sort the numbers", "walk adjacent pairs", "compare each gap to the threshold"]),
    _plan("Bucket by threshold", "Hash each number into buckets of threshold width.",
          ["compute bucket ids", "check same and adjacent buckets", "insert as you go"]),
    _plan("Balanced tree neighbours", "Keep a sorted structure and query neighbours.",
          ["insert into a sorted list", "bisect for neighbours", "compare the closest two"]),
]
FRESH = [
    _plan("Recursive halving", "Divide the list, solve halves, merge the borders.",
          ["split in two", "recurse on each half", "check pairs across the cut"]),
    _plan("Numpy broadcasting", "Vectorise all pairwise differences at once.",
          ["build an array", "subtract its transpose", "mask the diagonal"]),
    _plan("Early-exit generator", "Stream candidate pairs lazily, stop at first hit.",
          ["yield index pairs", "test each gap", "short-circuit with any()"]),
]


def _content(body: dict) -> str:
    msgs = body.get("input") or body.get("messages") or []
    return "\n".join(m["content"] for m in msgs if isinstance(m.get("content"), str))


def _plans_run(fake_openai, tmp_path: Path, monkeypatch, *extra: str) -> tuple[Path, object]:
    """A plans run over 3 HumanEval tasks, through `benchsmith run`: the first call gets an
    HTTP 500 (retried); HumanEval/0's second call first repeats a plan (a similarity
    rejection); every answer for HumanEval/1 is empty (its requests end invalid)."""
    monkeypatch.setenv(KEY_ENV, SECRET)
    seen = {"n": 0}

    def script(rec, index):
        text = _content(rec.body)
        seen["n"] += 1
        if seen["n"] == 1:
            return Reply.error(500, "upstream hiccup")
        if "def separate_paren_groups" in text:
            return Reply.text({"plans": []})
        if "def has_close_elements" in text:
            if "(Call 1 of" in text:
                return Reply.text({"plans": CALL1})
            if "(Call 2 of" in text and "failed validation" not in text:
                return Reply.text({"plans": [dict(CALL1[1]), *FRESH]})
        return None

    fake_openai.script = script
    cfg = write_yaml(tmp_path / "cfg.yaml", cfg_dict(tmp_path, fake_openai.base_url, {
        "recipe_options": {"max_validation_retries": 1},
        "prices": {"gpt-5-mini": {"input": 1.0, "output": 2.0}},
        "budget": {"max_usd": 5.0}}))
    res = CliRunner().invoke(app, ["run", "--config", str(cfg), "--run-id", "P", "--quiet",
                                   *extra])
    assert res.exit_code == 4, (res.output, res.exception)  # HumanEval/1 ended invalid
    return tmp_path / "runs" / "P", res


def _row(*cells: object, whole: bool = True) -> str:
    """A table row of the page (its first cells only unless `whole`)."""
    return "<tr>" + "".join(
        f"<td class=\"n\">{c:,}</td>" if isinstance(c, int) else f"<td>{html.escape(str(c))}</td>"
        for c in cells) + ("</tr>" if whole else "")


def test_plans_run_writes_a_report_that_matches_its_ledger(fake_openai, tmp_path, monkeypatch):
    rd, res = _plans_run(fake_openai, tmp_path, monkeypatch)
    page_file = rd / "report.html"
    assert f"report:   {page_file}" in res.output
    page = page_file.read_text(encoding="utf-8")
    assert page_file.stat().st_size < 10_000_000
    # Written by the run's own process while it still held the lock: not a live run's page.
    assert "The run is in progress" not in page and "not running" in page
    db = sqlite3.connect(rd / "ledger.sqlite")
    # Requests per state per dataset and model, as the ledger counts them.
    states = dict(db.execute("SELECT state, COUNT(*) FROM units GROUP BY state").fetchall())
    assert states["ok"] and states["invalid"]
    shown = [s for s in ("ok", "invalid", "failed", "skipped", "pending") if s in states]
    assert _row("humaneval", "gpt-5-mini", *(states[s] for s in shown),
                sum(states.values())) in page
    # Calls and tokens by model.
    calls, inp, out = db.execute(
        "SELECT COUNT(*), SUM(input_tokens), SUM(output_tokens) FROM attempts").fetchone()
    assert f"<td>gpt-5-mini</td><td class=\"n\">{calls:,}</td><td class=\"n\">{inp:,}</td>" in page
    assert f"<td class=\"n\">{out:,}</td>" in page
    # Reasons, ranked with examples: the invalid requests' reason, the HTTP 500, the duplicate.
    (reason,) = db.execute("SELECT reason FROM units WHERE state='invalid' LIMIT 1").fetchone()
    assert html.escape("invalid: " + reason.split(":")[0][:60]) in page
    assert "http_error 500: HTTP 500" in page and "upstream hiccup" in page
    assert "duplicate_of:HumanEval/0#c0p1" in page
    # The plans recipe's sections: HumanEval/1 has no plan of the 12 asked; HumanEval/0 one
    # rejection.
    assert "<h2>Plans per task</h2>" in page and "<h2>Similarity rejections</h2>" in page
    assert _row("humaneval", "HumanEval/1", 0, 12) in page
    assert _row("humaneval", "HumanEval/0", 1) in page
    assert "2 of 3 task(s) have all 12 plans asked for." in page
    # The plan fingerprint, and the records' text escaped; no secret, key variable or endpoint.
    # HumanEval prompts hold no line of their canonical solutions: the empty state.
    assert db.execute("SELECT COUNT(*) FROM gold_leaks").fetchone()[0] == 0
    assert "<h2>Gold leaks</h2>" in page
    assert "Policy in force: warn (leaks.leak_policy). No request carried gold" in page
    fp = json.loads((rd / "config/plan.json").read_text())["fingerprint"]
    assert fp in page
    assert HOSTILE not in page and html.escape(HOSTILE) in page
    for secret in (SECRET, KEY_ENV, fake_openai.base_url):
        assert secret not in page
    seen = open_offline(page_file, tmp_path / "plans_report.png")
    assert seen.errors == [] and seen.refused == [] and seen.dialogs == []
    assert seen.charts >= 8 and seen.drawn == seen.charts, seen
    assert seen.title == "benchsmith run P"
    assert (tmp_path / "plans_report.png").stat().st_size > 10_000


def test_rollout_report_shows_each_instances_samples(ws: Workspace, tmp_path: Path) -> None:
    rollout("bugfix", ws.config(), "--run-id", "B", "--passk", "2")
    rd = ws.runs / "B"
    page = (rd / "report.html").read_text(encoding="utf-8")
    rows = read_jsonl(rd / "output.jsonl")
    assert "<h2>Samples per instance</h2>" in page
    assert "<h2>Plans per task</h2>" not in page  # the plans recipe's, not this one's
    by_instance: dict[str, list[dict]] = {}
    for r in rows:
        by_instance.setdefault(r["instance_id"], []).append(r)
    for iid, samples in by_instance.items():
        ok = sum(r["status"] == "ok" for r in samples)
        assert _row("swebench_lite", iid, len(samples), ok, whole=False) in page, iid
    solved = sum(any(r["status"] == "ok" for r in s) for s in by_instance.values())
    assert f"{solved} of {len(by_instance)} instance(s) have at least one accepted sample" in page
    seen = open_offline(rd / "report.html", tmp_path / "rollout_report.png")
    assert seen.errors == [] and seen.refused == [] and seen.dialogs == []
    assert seen.charts >= 6 and seen.drawn == seen.charts, seen


def test_no_report_flag_then_report_command_with_out(ws: Workspace, tmp_path: Path) -> None:
    rollout("testgen", ws.config(), "--run-id", "T", "--no-report")
    rd = ws.runs / "T"
    assert not (rd / "report.html").exists()
    out = tmp_path / "elsewhere" / "t.html"
    res = CliRunner().invoke(app, ["report", str(rd), "--out", str(out)])
    assert res.exit_code == 0, (res.output, res.exception)
    assert f"wrote:     {out}" in res.output and "Samples per instance" in res.output
    assert out.is_file() and not (rd / "report.html").exists()
    assert "<h2>Samples per instance</h2>" in out.read_text(encoding="utf-8")


def test_bad_run_dir_and_bad_out_are_one_line_errors(tmp_path, fake_openai, monkeypatch):
    runner = CliRunner()
    res = runner.invoke(app, ["report", str(tmp_path / "nope")])
    assert res.exit_code == 1 and "not a run directory" in res.output
    assert len(res.output.strip().splitlines()) == 1
    monkeypatch.setenv(KEY_ENV, SECRET)
    rd = api.dry_run(make_cfg(tmp_path, fake_openai.base_url, tasks=1), "D").run_dir
    res = runner.invoke(app, ["report", str(rd), "--out", str(tmp_path)])
    assert res.exit_code == 1 and "is a folder" in res.output
    assert len(res.output.strip().splitlines()) == 1


def test_the_library_run_writes_the_report_unless_asked_not_to(tmp_path, fake_openai, monkeypatch):
    monkeypatch.setenv(KEY_ENV, SECRET)
    cfg = make_cfg(tmp_path, fake_openai.base_url, tasks=2)
    off = api.run(cfg, "N", report=False)
    assert off.report is None and off.report_warning is None
    assert not (off.run_dir / "report.html").exists()
    on = api.run(cfg, "Y")
    assert on.report == on.run_dir / "report.html" and on.report_warning is None
    page = on.report.read_text(encoding="utf-8")
    assert "benchsmith run Y" in page and "not running" in page
    # The readable Markdown was written alongside it.
    assert (on.run_dir / "readable" / "index.md").is_file()


def test_live_run_is_reported_as_it_stands(tmp_path, fake_openai, monkeypatch):
    """A run another process writes (its lock held, its ledger open in WAL mode): the report
    reads it without waiting and shows the pending requests."""
    monkeypatch.setenv(KEY_ENV, SECRET)
    rd = api.dry_run(make_cfg(tmp_path, fake_openai.base_url, tasks=2), "L").run_dir
    with run_lock(rd, "run"):
        writer = Ledger(rd / "ledger.sqlite")
        try:
            assert (rd / "ledger.sqlite-wal").exists()
            (pending,) = writer.db.execute(
                "SELECT COUNT(*) FROM units WHERE state='pending'").fetchone()
            rep = api.write_report(rd)
        finally:
            writer.close()
    assert rep.live and pending > 0
    page = rep.path.read_text(encoding="utf-8")
    assert "The run is in progress" in page
    assert _row("humaneval", "gpt-5-mini", pending, pending) in page


def test_a_report_that_cannot_be_written_warns_and_the_run_succeeds(
    fake_openai, tmp_path, monkeypatch
):
    monkeypatch.setenv(KEY_ENV, SECRET)
    cfg = write_yaml(tmp_path / "cfg.yaml", cfg_dict(tmp_path, fake_openai.base_url, tasks=1))
    runner = CliRunner()
    base = ["run", "--config", str(cfg), "--run-id", "W", "--quiet"]
    res = runner.invoke(app, [*base, "--no-report"])
    assert res.exit_code == 0, (res.output, res.exception)
    (tmp_path / "runs" / "W" / "report.html").mkdir()  # a folder in the report's way
    res = runner.invoke(app, [*base, "--resume"])
    assert res.exit_code == 0, (res.output, res.exception)
    assert "warning: the run report was not written" in res.output
    assert "benchsmith report" in res.output
    assert read_jsonl(tmp_path / "runs/W/datasets/humaneval/plans.jsonl")


def test_a_plugin_recipe_adds_its_own_section(tmp_path, fake_openai, monkeypatch):
    """The toy recipe (defined outside src/, as a plug-in would be) contributes its section
    through `Recipe.report_sections`; the shared sections are there as for any recipe."""
    import toy_recipe

    import benchsmith.recipes.registry as registry

    monkeypatch.setenv(KEY_ENV, SECRET)
    registry.names()
    monkeypatch.setattr(registry, "_registry", {**registry._registry})
    registry.register(toy_recipe.SPEC)
    cfg = make_cfg(tmp_path, fake_openai.base_url, {"recipe": "toy"}, tasks=2)
    rd = api.run(cfg, "Y").run_dir
    page = api.write_report(rd).path.read_text(encoding="utf-8")
    summary = json.loads((rd / toy_recipe.SUMMARY_FILE).read_text())
    assert summary and "<h2>Toy sentences</h2>" in page
    for key, sentences in summary.items():
        assert _row(key, len(sentences)) in page
    for title in ("Requests per state", "Cost and tokens by model", "Sample of records"):
        assert f"<h2>{title}</h2>" in page
    assert "<h2>Samples per instance</h2>" not in page and "<h2>Plans per task</h2>" not in page


# ------------------------------------------------------------------------------ gold leaks

def _leak_truth(rd: Path) -> tuple[dict, dict]:
    """From the ledger, computed apart from the report: per (dataset, field) and per
    (dataset, task, field), the requests carrying gold and what happened to them."""
    db = sqlite3.connect(rd / "ledger.sqlite")
    assert db.execute("SELECT COUNT(*) FROM plans").fetchone()[0] == 1  # every unit current
    per_field: dict = {}
    per_task: dict = {}
    for ds, tid, fields, removed, sample, state, calls in db.execute(
            "SELECT g.dataset, g.task_id, g.fields_json, g.removed_json, g.sample, u.state, "
            "(SELECT COUNT(*) FROM attempts a WHERE a.unit_id = g.unit_id) "
            "FROM gold_leaks g JOIN units u USING (unit_id)"):
        fields = json.loads(fields)
        removed = json.loads(removed) if removed else {}
        for f in {*fields, *removed}:
            n, gone = fields.get(f, 0), len(removed.get(f, ()))
            t = per_task.setdefault((ds, tid, f), {"matched": 0, "requests": 0, "sent": 0,
                                                   "skipped": 0, "redacted": 0, "removed": 0,
                                                   "sample": ""})
            t["matched"] = max(t["matched"], n)
            t["requests"] += n > 0
            t["sent"] += n > 0 and calls > 0
            t["skipped"] += n > 0 and state == "skipped"
            t["redacted"] += gone > 0
            t["removed"] = max(t["removed"], gone)
            if n:
                t["sample"] = max(t["sample"], sample)
    for (ds, _tid, f), t in per_task.items():
        a = per_field.setdefault((ds, f), {"requests": 0, "tasks": 0, "sent": 0, "skipped": 0,
                                           "redacted": 0, "removed": 0})
        a["tasks"] += t["requests"] > 0
        for k in ("requests", "sent", "skipped", "redacted", "removed"):
            a[k] += t[k]
    return per_field, per_task


@pytest.mark.parametrize("policy", ["warn", "skip", "redact"])
def test_gold_leak_section_matches_the_ledger(fake_openai, tmp_path, monkeypatch, policy):
    """SWE-bench Verified instances whose problem statement or hints carry gold lines, run
    through the fake server: the section's counts and leaking tasks are the ledger's."""
    monkeypatch.setenv(KEY_ENV, SECRET)
    rows = verified_rows()
    by_ps = pick(rows, "problem_statement", 2)
    by_hints = pick(rows, "hints_text", 1, clean="problem_statement")
    ids = sorted({*by_ps, *by_hints, *clean_ids(rows, 1)})
    cfg = swe_cfg(tmp_path, fake_openai.base_url, ids, policy, "G",
                  {"engine": {"concurrency": 4, "max_retries": 1}})
    rd = api.run(cfg, "G").run_dir
    page = api.write_report(rd).path.read_text(encoding="utf-8")
    assert "<h2>Gold leaks</h2>" in page
    assert f"Policy in force: {policy} (leaks.leak_policy)." in page
    assert html.escape(leak_rows.describe(api.run_status(rd)["gold_leaks"])) in page
    per_field, per_task = _leak_truth(rd)
    # The leaking tasks are those the rule finds in the raw rows (redact: hints no longer
    # carry gold, their lines are removed instead).
    leaking = {t for t in ids if leaking_lines(rows[t]["problem_statement"], gold_lines(rows[t]))
               or (policy != "redact" and leaking_lines(rows[t]["hints_text"],
                                                        gold_lines(rows[t])))}
    assert {tid for (_ds, tid, _f), t in per_task.items() if t["requests"]} == leaking
    assert set(by_ps) <= leaking
    for (ds, f), a in per_field.items():
        assert _row(ds, f, policy, a["requests"], a["tasks"], a["sent"], a["skipped"],
                    a["redacted"], a["removed"]) in page, (ds, f)
    for (ds, tid, f), t in per_task.items():
        assert _row(ds, tid, f, t["matched"], t["requests"], t["sent"], t["skipped"],
                    t["removed"], t["sample"]) in page, (tid, f)
    totals = {k: sum(a[k] for a in per_field.values()) for k in ("sent", "skipped", "removed")}
    if policy == "skip":
        assert totals["sent"] == 0 and totals["skipped"] > 0
    elif policy == "warn":
        assert totals["sent"] > 0 and totals["skipped"] == 0
    else:
        assert (per_task[("swebench_verified", by_hints[0], "hints_text")]["removed"]
                == len(leaking_lines(rows[by_hints[0]]["hints_text"],
                                     gold_lines(rows[by_hints[0]]))) > 0)
    # The manifest lists the same (task, field) pairs.
    manifest = read_json(rd / "manifests/swebench_verified_gold_leaks.json")
    assert {(r["task_id"], r["field"]) for r in manifest} == {(t, f) for _d, t, f in per_task}
    if policy == "warn":
        seen = open_offline(rd / "report.html", tmp_path / "leaks_report.png")
        assert seen.errors == [] and seen.refused == [] and seen.dialogs == []
        assert seen.drawn == seen.charts, seen


def test_a_run_made_before_the_leak_guard_says_so(tmp_path):
    """A ledger at schema 4 (before m005 added gold_leaks) is reported as it is, its leak
    section saying its requests were not checked; an older one is the one-line error."""
    rows = verified_rows()
    rd = swe_plan(tmp_path, pick(rows, "problem_statement", 1) + clean_ids(rows, 1), "warn", "O")
    db = sqlite3.connect(rd / "ledger.sqlite")
    db.executescript("DROP TABLE gold_leaks; PRAGMA user_version=4;")
    db.close()
    runner = CliRunner()
    res = runner.invoke(app, ["report", str(rd)])
    assert res.exit_code == 0, (res.output, res.exception)
    page = (rd / "report.html").read_text(encoding="utf-8")
    assert "predates the gold-leak guard (no gold_leaks table)" in page
    assert "<h2>Requests per state</h2>" in page and "<h2>Plans per task</h2>" in page
    ledger = sqlite3.connect(rd / "ledger.sqlite")
    assert ledger.execute("PRAGMA user_version").fetchone()[0] == 4  # read, not upgraded
    ledger.execute("PRAGMA user_version=3")
    ledger.close()
    res = runner.invoke(app, ["report", str(rd)])
    assert res.exit_code == 1 and "older benchsmith" in res.output
    assert len(res.output.strip().splitlines()) == 1
