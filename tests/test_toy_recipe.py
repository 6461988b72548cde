"""A recipe from outside `src/` runs like a built-in one: the toy recipe (tests/toy_recipe.py),
registered from here, runs online, in batch mode and through export/ingest, with its own
options, parser, output file, run check and status line; validate-run passes on it and its
check can fail. A package declaring it through the `benchsmith.recipes` entry point group is
found by the CLI, and a plug-in that fails to import breaks nothing else."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import benchsmith.recipes.registry as registry
import toy_recipe
from batch_executor_support import FAST, online_answer
from benchsmith import api
from benchsmith.cli.app import app
from benchsmith.config import parse_config
from benchsmith.errors import ConfigError
from benchsmith.validate.run_checks import check_run
from fake_openai import BatchScript, FakeOpenAI, Reply
from helpers import (
    KEY_ENV,
    SECRET,
    assert_terminal_invariants,
    attempts_by_unit,
    cfg_dict,
    cli_env,
    deep_merge,
    first_task_ids,
    ledger_rows,
    make_cfg,
    read_jsonl,
    request_messages,
    unit_states,
    write_yaml,
)

SRC = Path(__file__).resolve().parents[1] / "src"
TASKS = 2
SAMPLES = 2
TOY = {"recipe": "toy", "recipe_options": {"samples": SAMPLES, "keywords": 4}}
# The first task's sentences are refused once (the re-ask passes); the second task's second
# keyword set is always refused (so no sentence follows it) and its sentence always.
ONCE, ALWAYS = first_task_ids(TASKS)
NO_KEYWORDS = '{"title": "keywords left out"}'
N_OK, N_INVALID = 2 * TASKS * SAMPLES - SAMPLES - 1, 2


@pytest.fixture
def toy(monkeypatch: pytest.MonkeyPatch) -> None:
    """The toy recipe registered for one test (the registry is restored after it)."""
    monkeypatch.setenv(KEY_ENV, SECRET)
    registry.names()  # load the built-ins and entry points first, into the real registry
    monkeypatch.setattr(registry, "_registry", {**registry._registry})
    registry.register(toy_recipe.SPEC)


def scripted(body: dict[str, Any] | None) -> str | None:
    """The answer the toy's parser must refuse, or None for the fake's default answer."""
    msgs = request_messages(body)
    first = str(msgs[0].get("content")) if msgs else ""
    if first.startswith(f"Task {ALWAYS}: give a title") and f"(set 2 of {SAMPLES})" in first:
        return NO_KEYWORDS
    if first.startswith(f"Task {ALWAYS}: write one sentence"):
        return "no"
    if first.startswith(f"Task {ONCE}: write one sentence") and len(msgs) == 1:
        return "nope"  # the re-ask (answer + feedback appended) gets the default text
    return None


def online_script(received: Any, _index: int) -> Reply | None:
    text = scripted(received.body)
    return None if text is None else Reply.text(text)


def invoke(*args: str) -> Any:
    return CliRunner().invoke(app, [str(a) for a in args])


# --------------------------------------------------------------------------- what every mode gives


def check_toy_run(rd: Path) -> None:
    """Both stages' records, the toy's file, validate-run (API and CLI) with the toy's own
    check, its status line; then a broken toy_summary.json fails the toy's check."""
    assert_terminal_invariants(rd)
    states: dict[tuple[str, str], list[str]] = {}
    for uid, stage, tid, state in ledger_rows(rd, "SELECT unit_id, stage, task_id, state FROM units"):
        states.setdefault((stage, tid), []).append(state)
    assert {k: sorted(v) for k, v in states.items()} == {
        ("keywords", ONCE): ["ok"] * SAMPLES, ("keywords", ALWAYS): ["invalid", "ok"],
        ("sentence", ONCE): ["ok"] * SAMPLES, ("sentence", ALWAYS): ["invalid"],
    }
    # A sentence unit follows each accepted keyword set (none follows the refused one); every
    # refused unit was asked twice (one re-ask), and so were the first task's sentences.
    parents = dict(ledger_rows(rd, "SELECT unit_id, parent_id FROM units WHERE stage='sentence'"))
    kw = dict(ledger_rows(rd, "SELECT unit_id, state FROM units WHERE stage='keywords'"))
    assert sorted(parents.values()) == sorted(u for u, st in kw.items() if st == "ok")
    atts = attempts_by_unit(rd)
    for uid, state in {**kw, **dict.fromkeys(parents, "")}.items():
        assert len(atts[uid]) == (1 if state == "ok" else 2), atts[uid]

    kws = read_jsonl(rd / "datasets/humaneval/keywords.jsonl")
    assert len(kws) == TASKS * SAMPLES - 1
    assert all(len(r["keywords"]) == 4 and r["title"] for r in kws)
    failed = read_jsonl(rd / "failed_plans/datasets/humaneval/keywords.jsonl")
    assert [r["raw_output"] for r in failed] == [NO_KEYWORDS] * 2
    assert all("title and keywords" in r["validation_error"] for r in failed)
    sentences = read_jsonl(rd / "datasets/humaneval/sentence.jsonl")
    assert sorted((r["task_id"], r["set"]) for r in sentences) == [(ONCE, k) for k in range(SAMPLES)]
    assert all(r["sentence"].startswith("Fake answer") and r["keywords"] for r in sentences)
    failed = read_jsonl(rd / "failed_plans/datasets/humaneval/sentence.jsonl")
    assert sorted(r["raw_output"] for r in failed) == ["no"] * 2 + ["nope"] * SAMPLES
    assert all("does not end with '.'" in r["validation_error"] for r in failed)
    # read_records reads the toy's record_stage.
    assert [r["sentence"] for r in api.read_records(rd)] == [r["sentence"] for r in sentences]

    rows = read_jsonl(rd / toy_recipe.SENTENCES_FILE)
    assert [(r["task_id"], r["set"], r["sentence"], r["request_ids"][1]) for r in rows] == [
        (r["task_id"], r["set"], r["sentence"], r["request_id"]) for r in sentences]
    summary = json.loads((rd / toy_recipe.SUMMARY_FILE).read_text())
    assert summary == {f"humaneval/{ONCE}": {
        f"set {r['set']}": r["sentence"] for r in sentences}}

    results = check_run(rd)
    assert all(r.ok for r in results), [(r.name, r.problems) for r in results if not r.ok]
    names = [r.name for r in results]
    assert names[:2] == ["ledger", "toy_summary"] and "matches_ledger" in names
    (mine,) = [r for r in results if r.name == "toy_summary"]
    assert mine.detail == f"{SAMPLES} sentence(s) of 1 task(s)"
    res = invoke("validate-run", rd, "--json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["ok"] and {"name": "toy_summary", "ok": True, "detail": mine.detail,
                          "problems": [], "skipped": False} in out["checks"]

    st = api.run_status(rd)
    line = f"toy: {SAMPLES} sentence(s) from {len(kws)} keyword set(s) (see toy_summary.json)"
    assert st["recipe_lines"] == [line] and st["toy_sentences"] == SAMPLES
    res = invoke("status", rd)
    assert res.exit_code == 0, res.output
    assert f"toy:       {line.removeprefix('toy: ')}" in res.stdout.splitlines()

    # The toy's check can fail: an edited sentence (that also breaks the toy's rule) and an
    # added task.
    path = rd / toy_recipe.SUMMARY_FILE
    good = path.read_bytes()
    broken = {**summary, f"humaneval/{ALWAYS}": {"set 0": "no"}}
    broken[f"humaneval/{ONCE}"] = {**summary[f"humaneval/{ONCE}"], "set 0": "edited"}
    path.write_text(json.dumps(broken))
    (mine,) = [r for r in check_run(rd) if r.name == "toy_summary"]
    assert not mine.ok
    assert f"toy_summary.json: humaneval/{ONCE}: differs from the ledger (edited)" in mine.problems
    assert f"toy_summary.json: humaneval/{ALWAYS}: no accepted sentence in the ledger (added)" in (
        mine.problems)
    assert f"toy_summary.json: humaneval/{ONCE} set 0: the sentence does not end with '.'" in (
        mine.problems)
    res = invoke("validate-run", rd)
    assert res.exit_code == 1 and "toy_summary" in res.stdout and "FAIL" in res.stdout
    path.write_text("{not json")
    (mine,) = [r for r in check_run(rd) if r.name == "toy_summary"]
    assert not mine.ok and "not valid JSON" in mine.problems[0]
    path.unlink()
    bad = {r.name: r for r in check_run(rd) if not r.ok}
    assert set(bad) == {"toy_summary", "files_parse"}  # a declared output is missing
    assert "toy_summary.json" in bad["files_parse"].detail
    path.write_bytes(good)
    assert all(r.ok for r in check_run(rd))


# --------------------------------------------------------------------------- config


def test_unknown_toy_option_is_a_one_line_config_error(toy: None, tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as e:
        parse_config({"recipe": "toy", "recipe_options": {"samples": 2, "colour": "red"}},
                     file="c.yaml")
    assert e.value.field == "recipe_options.colour"
    assert "\n" not in str(e.value)
    cfg = parse_config(TOY, file="c.yaml")
    assert cfg.options() == toy_recipe.ToyOptions(samples=SAMPLES, keywords=4)
    with pytest.raises(ConfigError) as e:
        parse_config({"recipe": "toy", "recipe_options": {"keywords": 0}}, file="c.yaml")
    assert e.value.field == "recipe_options.keywords"

    config = write_yaml(tmp_path / "c.yaml", cfg_dict(
        tmp_path, "http://127.0.0.1:9/v1", {"recipe": "toy", "recipe_options": {"colour": 1}}))
    res = invoke("dry-run", "--config", config)
    assert res.exit_code != 0
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and "recipe_options.colour" in lines[0], res.output
    assert "Traceback" not in res.output


# --------------------------------------------------------------------------- the three modes


def check_progress(seen: list[tuple[int, int]]) -> None:
    """Progress (done, total) as the engine reported it: every sentence counted from the
    start (one per keywords unit), the total only refined down, by the sentences the
    refused keywords units did not plan, to what was done; done never going back."""
    assert seen[0] == (0, TASKS * SAMPLES * 2)
    dones, totals = [d for d, _ in seen], [t for _, t in seen]
    assert dones == sorted(dones) and totals == sorted(totals, reverse=True)
    assert seen[-1] == (N_OK + N_INVALID, N_OK + N_INVALID)
    assert N_OK + N_INVALID < TASKS * SAMPLES * 2  # so the refinement was tested


def test_toy_recipe_online(toy: None, tmp_path: Path, fake_openai: FakeOpenAI) -> None:
    fake_openai.script = online_script
    cfg = make_cfg(tmp_path, fake_openai.base_url, TOY, tasks=TASKS)
    seen: list[tuple[int, int]] = []
    summary = api.run(cfg, "R", on_progress=lambda s: seen.append((s.done, s.total)))
    assert summary.counts == {"ok": N_OK, "invalid": N_INVALID}
    check_progress(seen)
    # The keywords stage asks for strict JSON; the sentence stage for free text.
    for req in fake_openai.requests:
        fmt = (req.body.get("text") or {}).get("format")
        first = request_messages(req.body)[0]["content"]
        if "give a title" in first:
            assert fmt["type"] == "json_schema" and fmt["strict"] is True
            assert fmt["schema"] == toy_recipe.keyword_schema(4)
        else:
            assert "write one sentence" in first and fmt in (None, {"type": "text"})
    check_toy_run(tmp_path / "runs" / "R")


def test_toy_recipe_in_batch_mode(toy: None, tmp_path: Path, fake_openai: FakeOpenAI) -> None:
    fake_openai.batch_plan = lambda _bid, _lines: BatchScript(
        answer=lambda _cid, body: scripted(body))
    cfg = make_cfg(tmp_path, fake_openai.base_url, deep_merge(FAST, TOY), tasks=TASKS)
    seen: list[tuple[int, int]] = []
    summary = api.run(cfg, "R", mode="batch", on_progress=lambda s: seen.append((s.done, s.total)))
    assert summary.counts == {"ok": N_OK, "invalid": N_INVALID}
    check_progress(seen)
    # keywords first; then what they planned and the re-asks, until nothing is pending
    sizes = [len(b.lines) for b in fake_openai.batches.values()]
    assert sizes[0] == TASKS * SAMPLES and len(sizes) >= 3
    assert sum(sizes) == len(ledger_rows(tmp_path / "runs" / "R", "SELECT id FROM attempts"))
    assert not [r for r in fake_openai.requests if r.path.endswith("/responses")]
    check_toy_run(tmp_path / "runs" / "R")


def test_toy_recipe_through_export_and_ingest(
    toy: None, tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    """`batch export`, a runner elsewhere (the fake's online endpoint), `batch ingest`, in
    rounds until nothing is pending; the CLI commands run in-process (the toy is registered
    here, not installed)."""
    fake_openai.script = online_script
    config = write_yaml(tmp_path / "run.yaml",
                        cfg_dict(tmp_path, fake_openai.base_url, TOY, tasks=TASKS))
    res = invoke("dry-run", "--config", config, "--run-id", "R")
    assert res.exit_code == 0, res.output
    rd = tmp_path / "runs" / "R"
    assert set(unit_states(rd).values()) == {"pending"} and len(unit_states(rd)) == TASKS * SAMPLES
    rounds = []
    for rnd in range(6):
        out = tmp_path / f"requests_{rnd}.jsonl"
        res = invoke("batch", "export", rd, "--out", out)
        assert res.exit_code == 0, res.output
        lines = read_jsonl(out)
        if not lines:
            break
        rounds.append(len(lines))
        results = tmp_path / f"results_{rnd}.jsonl"
        results.write_text("".join(json.dumps({
            "id": f"batch_req_{rnd}_{i}", "custom_id": ln["custom_id"], "error": None,
            "response": {"status_code": 200, "request_id": f"req_{rnd}_{i}",
                         "body": online_answer(fake_openai, ln["url"], ln["body"])},
        }) + "\n" for i, ln in enumerate(lines)))
        res = invoke("batch", "ingest", rd, results, "--json")
        assert res.exit_code == 0, res.output
        assert json.loads(res.stdout)["lines"] == len(lines)
    # keywords; their re-asks and the sentences; the sentences' re-asks
    assert rounds == [TASKS * SAMPLES, 1 + TASKS * SAMPLES - 1, SAMPLES + 1]
    assert [r["mode"] for r in read_jsonl(rd / "runs.jsonl")] == ["ingest"] * 3
    check_toy_run(rd)


def test_toy_replan_keeps_its_files_to_the_current_plan(
    toy: None, tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    """The toy's options are pinned (default fingerprint: every `recipe_options.` field); a
    changed one needs --replan, which keeps the keyword sets and asks the sentences again. The
    toy's JSONL output is held to the current plan by the shared `one_plan` check."""
    fake_openai.script = lambda received, _i: (
        Reply.text("A sentence that ends loudly!")
        if "write one sentence" in str(request_messages(received.body)[0]["content"]) else None)
    opts = {"samples": 1, "max_validation_retries": 0}
    cfg = make_cfg(tmp_path, fake_openai.base_url, {"recipe": "toy", "recipe_options": opts},
                   tasks=TASKS)
    assert api.run(cfg, "R").counts == {"ok": TASKS, "invalid": TASKS}  # "!" is not "."
    rd = tmp_path / "runs" / "R"
    old = read_jsonl(rd / "datasets/humaneval/keywords.jsonl")
    loud = make_cfg(tmp_path, fake_openai.base_url,
                    {"recipe": "toy", "recipe_options": {**opts, "end": "!"}}, tasks=TASKS)
    with pytest.raises(ConfigError, match=r"recipe_options\.end: \. -> !"):
        api.run(loud, "R", resume=True)
    summary = api.run(loud, "R", resume=True, replan=True)
    # (the first plan's refused sentences stay in the ledger)
    assert summary.counts == {"ok": 2 * TASKS, "invalid": TASKS}
    assert ledger_rows(rd, "SELECT DISTINCT state FROM units WHERE plan=2") == [("ok",)]
    # the keyword sets were kept, not asked again
    assert read_jsonl(rd / "datasets/humaneval/keywords.jsonl") == old
    results = check_run(rd)
    assert all(r.ok for r in results), [(r.name, r.problems) for r in results if not r.ok]
    rows = read_jsonl(rd / toy_recipe.SENTENCES_FILE)
    assert [r["sentence"] for r in rows] == ["A sentence that ends loudly!"] * TASKS
    assert json.loads((rd / toy_recipe.SUMMARY_FILE).read_text()) == {
        f"humaneval/{r['task_id']}": {"set 0": r["sentence"]} for r in rows}

    # A row of the first plan (a sentence unit it refused) in the toy's JSONL output.
    (stale,) = ledger_rows(rd, "SELECT unit_id, parent_id FROM units WHERE stage='sentence' "
                               "AND plan=1 LIMIT 1")
    path = rd / toy_recipe.SENTENCES_FILE
    path.write_text(path.read_text() + json.dumps(
        {**rows[0], "request_ids": [stale[1], stale[0]]}) + "\n")
    bad = {r.name: r for r in check_run(rd) if not r.ok}
    assert set(bad) == {"one_plan"}, bad
    (problem,) = bad["one_plan"].problems
    assert problem.startswith(f"{toy_recipe.SENTENCES_FILE}: holds records of 2 plans (plan 1 ")


# --------------------------------------------------------------------------- entry points


def _plugin_site(tmp_path: Path) -> Path:
    """A folder that is an installed distribution: the package `toyplug` (the toy recipe's
    module, copied), a module that fails to import, and their entry points."""
    site = tmp_path / "site"
    (site / "toyplug").mkdir(parents=True)
    shutil.copy(toy_recipe.__file__, site / "toyplug" / "__init__.py")
    (site / "brokenplug.py").write_text("raise ImportError('brokenplug needs a missing lib')\n")
    info = site / "toyplug-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: toyplug\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[benchsmith.recipes]\ntoy = toyplug:SPEC\nbroken = brokenplug:SPEC\n")
    return site


def _cli(site: Path, *args: Any, **env: str) -> subprocess.CompletedProcess[str]:
    env = cli_env(PYTHONPATH=os.pathsep.join([str(site), str(SRC)]), **env)
    return subprocess.run([sys.executable, "-m", "benchsmith", *map(str, args)], env=env,
                          capture_output=True, text=True, timeout=120, cwd=site.parent)


def test_entry_point_recipe_runs_from_the_cli(
    toy: None, tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    """Another process finds the toy through its entry point alone: it plans the toy's
    requests, runs them, validates and reports the run (and this process, which registered
    the same recipe, reads the run as any of the three modes')."""
    fake_openai.script = online_script
    site = _plugin_site(tmp_path)
    toy_cfg = write_yaml(tmp_path / "toy.yaml",
                         cfg_dict(tmp_path, fake_openai.base_url, TOY, tasks=TASKS))
    res = _cli(site, "dry-run", "--config", toy_cfg, "--run-id", "T")
    assert res.returncode == 0, res.stderr
    rd = tmp_path / "runs" / "T"
    specs = ledger_rows(rd, "SELECT stage, task_id, sample_index, state FROM units ORDER BY 2, 3")
    assert specs == [("keywords", t, k, "pending") for t in (ONCE, ALWAYS) for k in range(SAMPLES)]
    assert json.loads((rd / "config/run_config.json").read_text())["recipe"] == "toy"
    assert not fake_openai.requests

    res = _cli(site, "run", "--config", toy_cfg, "--run-id", "T", "--resume", "--quiet",
               **{KEY_ENV: SECRET})
    # the exit code of a run that finished with refused answers
    assert res.returncode == 4 and f"{N_INVALID} invalid" in res.stderr, res.stderr
    res = _cli(site, "validate-run", rd, "--json")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "toy_summary" in {c["name"] for c in json.loads(res.stdout)["checks"]}
    res = _cli(site, "status", rd)
    assert res.returncode == 0 and "toy:       " in res.stdout, res.stdout + res.stderr
    check_toy_run(rd)


def test_a_broken_entry_point_breaks_no_other_recipe(tmp_path: Path) -> None:
    site = _plugin_site(tmp_path)
    url = "http://127.0.0.1:9/v1"  # a dry run sends nothing
    plans_cfg = write_yaml(tmp_path / "plans.yaml", cfg_dict(
        tmp_path, url, {"recipe_options": {"calls_per_task": 1}}, tasks=TASKS))
    res = _cli(site, "dry-run", "--config", plans_cfg, "--run-id", "P")
    assert res.returncode == 0, res.stderr
    assert ledger_rows(tmp_path / "runs" / "P", "SELECT DISTINCT stage FROM units") == [("plans",)]
    toy_cfg = write_yaml(tmp_path / "toy.yaml", cfg_dict(tmp_path, url, TOY, tasks=TASKS))
    res = _cli(site, "dry-run", "--config", toy_cfg, "--run-id", "T")
    assert res.returncode == 0, res.stderr
    # The broken one is named when its recipe is asked for, in one line.
    broken_cfg = write_yaml(tmp_path / "broken.yaml",
                            cfg_dict(tmp_path, url, {"recipe": "broken"}, tasks=TASKS))
    res = _cli(site, "dry-run", "--config", broken_cfg, "--run-id", "B")
    assert res.returncode != 0
    err = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(err) == 1 and "Traceback" not in res.stderr, res.stderr
    assert "recipe 'broken' failed to load" in err[0]
    assert "brokenplug:SPEC" in err[0] and "brokenplug needs a missing lib" in err[0]
    assert not (tmp_path / "runs" / "B").exists()


ODD_PLUGINS = '''
from pydantic import BaseModel, ConfigDict
from benchsmith.recipes.registry import CliVerb, RecipeSpec
from toyplug import SPEC, ToyOptions


class Needs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    corpus: str


def _raise(options, ctx):
    raise RuntimeError("the corpus index is missing")


NEEDY = RecipeSpec("needy", "1", Needs, SPEC.build, summary="Needs a corpus.")
RAISER = RecipeSpec("raiser", "1", ToyOptions, _raise, summary="Cannot be built.")
CLASH = RecipeSpec("plans", "9", ToyOptions, SPEC.build, summary="Another plans.")
NOWORDS = RecipeSpec("nowords", "1", ToyOptions, SPEC.build, cli=CliVerb((), "No words."))
STATUS = RecipeSpec("mystatus", "1", ToyOptions, SPEC.build, cli=CliVerb(("status",), "Mine."))
BUGFIX = RecipeSpec("aafix", "1", ToyOptions, SPEC.build, cli=CliVerb(("rollout", "bugfix"), "Mine."))
'''


def test_odd_plugins_are_listed_and_refused_in_one_line(tmp_path: Path) -> None:
    """A recipe with a required option is listed; one whose build raises is refused with the
    config, in one line; one named like a built-in is not loaded, and `recipes` says so."""
    site = _plugin_site(tmp_path)
    (site / "oddplug.py").write_text(ODD_PLUGINS)
    info = site / "toyplug-0.1.dist-info" / "entry_points.txt"
    info.write_text(info.read_text() + "needy = oddplug:NEEDY\nraiser = oddplug:RAISER\n"
                    "plans = oddplug:CLASH\n")
    res = _cli(site, "recipes", "--json")
    assert res.returncode == 0 and "Traceback" not in res.stderr, res.stderr
    rows = {r["name"]: r for r in json.loads(res.stdout)}
    assert rows["needy"]["options"] == {} and rows["needy"]["required"] == ["corpus"]
    assert rows["plans"]["version"] != "9" and rows["toy"]["required"] == []
    assert ("warning: recipe plug-in plans failed to load (oddplug:CLASH: ValueError: a recipe "
            "named 'plans' is already registered)") in res.stderr, res.stderr
    res = _cli(site, "recipes")
    assert res.returncode == 0 and "options: corpus (required)" in res.stdout, res.stdout

    url = "http://127.0.0.1:9/v1"
    raiser = write_yaml(tmp_path / "raiser.yaml",
                        cfg_dict(tmp_path, url, {"recipe": "raiser"}, tasks=TASKS))
    res = _cli(site, "dry-run", "--config", raiser, "--run-id", "X")
    err = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert res.returncode == 1 and len(err) == 1 and "Traceback" not in res.stderr, res.stderr
    assert err[0] == (f"error: {raiser}: recipe: recipe 'raiser' cannot be built "
                      "(RuntimeError: the corpus index is missing)")
    assert not (tmp_path / "runs" / "X").exists()


def test_a_plugin_command_never_breaks_or_shadows_another(tmp_path: Path) -> None:
    """A recipe command of no words, or named like a built-in command (or another recipe's),
    is left out with a warning; the recipe still runs through `run --recipe`."""
    site = _plugin_site(tmp_path)
    (site / "oddplug.py").write_text(ODD_PLUGINS)
    info = site / "toyplug-0.1.dist-info" / "entry_points.txt"
    info.write_text(info.read_text() + "nowords = oddplug:NOWORDS\nmystatus = oddplug:STATUS\n"
                    "aafix = oddplug:BUGFIX\n")
    res = _cli(site, "status", "--help")
    assert res.returncode == 0 and "Counts per state" in res.stdout, res.stdout + res.stderr
    res = _cli(site, "rollout", "bugfix", "--help")
    assert res.returncode == 0 and "Generate candidate patches" in res.stdout, res.stdout
    res = _cli(site, "recipes")
    assert res.returncode == 0, res.stderr
    warnings = sorted(ln for ln in res.stderr.splitlines() if "command" in ln)
    assert warnings == [
        "warning: recipe aafix: its command `benchsmith rollout bugfix` is taken; run it with "
        "`benchsmith run --recipe aafix`",
        "warning: recipe mystatus: its command `benchsmith status` is taken; run it with "
        "`benchsmith run --recipe mystatus`",
        "warning: recipe nowords: its command has 0 words (1 or 2 allowed); run it with "
        "`benchsmith run --recipe nowords`",
    ], res.stderr
