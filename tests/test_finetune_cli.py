"""`benchsmith finetune build / stats / check` as a user runs them: summaries, one-line
errors, token counts with the real GPT-2 tokenizer, and the OpenAI format check on good and
bad files."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from finetune_support import TOKENIZER, attempt, lite_rows, read_jsonl, scenario, write_jsonl
from helpers import one_error_line, run_cli

from benchsmith.finetune.tokens import row_strings


def _trajs(tmp_path: Path) -> Path:
    dicts, _ = scenario()
    d = tmp_path / "trajs"
    d.mkdir()
    write_jsonl(d / "a.jsonl", dicts[:9])
    write_jsonl(d / "b.jsonl.gz", dicts[9:])
    return d


def test_build_prints_the_summary_and_writes_one_folder_per_format(tmp_path: Path) -> None:
    trajs, out = _trajs(tmp_path), tmp_path / "ft"
    r = run_cli(["finetune", "build", "--trajectories", str(trajs), "--out", str(out),
                 "--format", "openai", "--format", "dpo", "--seed", "42", "--quiet"])
    assert r.returncode == 0, r.stderr
    s = json.loads((out / "dataset_stats.json").read_text())
    sp = s["split"]
    assert r.stdout.splitlines() == [
        "read:      17 entries, 8 instance(s), from 2 source(s)",
        "filtered:  6 (unknown_failure_category 2, empty_patch 1, not_a_unified_diff 1, "
        "patch_too_long 1, problem_statement_too_short 1)",
        "kept:      11: 6 resolved, 5 failed (assertion_failure 2, exception:TypeError 1, "
        "syntax_error 1, timeout 1)",
        "pairs:     positive 5, reflection 2, preference 3",
        f"split:     train {sp['train_instances']} instance(s), val {sp['val_instances']} "
        "(seed 42, val fraction 0.1)",
        f"openai:    train {s['formats']['openai']['train']}, val "
        f"{s['formats']['openai']['val']} -> {out / 'openai'}",
        f"dpo:       train {s['formats']['dpo']['train']}, val {s['formats']['dpo']['val']} "
        f"-> {out / 'dpo'}",
        f"stats:     {out / 'dataset_stats.json'}",
    ]
    assert s["sources"] == {"a.jsonl": 9, "b.jsonl.gz": 8}
    assert s["formats"]["openai"]["train"] + s["formats"]["openai"]["val"] == 7
    assert s["formats"]["dpo"]["train"] + s["formats"]["dpo"]["val"] == 3
    ok = run_cli(["finetune", "check", str(out / "openai" / "train.jsonl")])
    assert ok.returncode == 0 and ok.stdout.startswith("ok: ")


def test_build_json_and_single_format_layout(tmp_path: Path) -> None:
    trajs, out = _trajs(tmp_path), tmp_path / "ft"
    r = run_cli(["finetune", "build", "--trajectories", str(trajs), "--out", str(out),
                 "-f", "chatml", "--no-reflection", "--val-fraction", "0", "--json", "--quiet"])
    assert r.returncode == 0, r.stderr
    s = json.loads(r.stdout)
    assert s["pairs"]["reflection"] == 0 and s["formats"]["chatml"]["val"] == 0
    assert s["formats"]["chatml"]["train_file"] == str(out / "train.jsonl")
    assert len(read_jsonl(out / "train.jsonl")) == 5


def test_build_bound_flags_reach_the_filters_and_prompts(tmp_path: Path) -> None:
    trajs, out = _trajs(tmp_path), tmp_path / "ft"
    r = run_cli(["finetune", "build", "--trajectories", str(trajs), "--out", str(out),
                 "-f", "alpaca", "--min-problem-words", "5", "--max-patch-chars", "100000",
                 "--max-issue-chars", "30", "--val-fraction", "0", "--json", "--quiet"])
    assert r.returncode == 0, r.stderr
    s = json.loads(r.stdout)
    assert s["filter_reasons"]["patch_too_long"] == 0
    assert s["filter_reasons"]["problem_statement_too_short"] == 0
    assert (s["options"]["max_issue_chars"], s["options"]["min_problem_words"]) == (30, 5)
    for row in read_jsonl(out / "train.jsonl"):
        issue = row["instruction"].split("<issue>\n", 1)[1].split("\n</issue>")[0]
        assert len(issue.split("\n[... ")[0]) <= 30


def test_skip_bad_lines_prints_them_and_counts_them(tmp_path: Path) -> None:
    trajs = _trajs(tmp_path)
    with (trajs / "a.jsonl").open("a") as fh:
        fh.write("{broken\n")
    r = run_cli(["finetune", "build", "--trajectories", str(trajs), "--out",
                 str(tmp_path / "ft"), "-f", "trl", "--skip-bad-lines", "--json", "--quiet"])
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["bad_lines_skipped"] == 1
    assert r.stderr.startswith(f"skipped: {trajs / 'a.jsonl'}: line 10: not valid JSON")
    bad = run_cli(["finetune", "build", "--trajectories", str(trajs), "--out",
                   str(tmp_path / "ft2"), "-f", "trl", "--quiet"])
    assert one_error_line(bad).startswith(f"error: {trajs / 'a.jsonl'}: line 10: not valid JSON")


@pytest.mark.parametrize("args,expect", [
    ([], "error: finetune build: give exactly one of --trajectories, --run-dir, --swe-agent"),
    (["--trajectories", "T", "--run-dir", "R"],
     "error: finetune build: give exactly one of --trajectories, --run-dir, --swe-agent (got "
     "--trajectories, --run-dir)"),
    (["--trajectories", "T", "--report", "r.json"], "error: --report: goes with --run-dir"),
    (["--run-dir", "R"], "error: --run-dir: needs --report FILE"),
    (["--swe-agent", "S"], "error: --swe-agent: needs --report FILE"),
    (["--trajectories", "nope"], "error: nope: --trajectories: does not exist"),
    (["--trajectories", "T", "-f", "csv"], "error: --format: unknown format 'csv'"),
    (["--trajectories", "T", "--no-format"], "error: --format: give at least one of chatml, "
                                             "alpaca, sharegpt, openai, trl, dpo"),
    (["--trajectories", "T", "--eval-dir", "E"], "error: --eval-dir: goes with --run-dir"),
    (["--trajectories", "T", "--val-fraction", "1"], "error: --val-fraction: 1.0 is outside"),
    (["--trajectories", "T", "--max-patch-chars", "0"], "error: --max-patch-chars: 0 is too "
                                                          "small: give a number >= 1"),
    (["--trajectories", "T", "--min-problem-words", "-1"],
     "error: --min-problem-words: -1 is too small: give a number >= 0"),
])
def test_build_bad_input_is_one_line(tmp_path: Path, args: list[str], expect: str) -> None:
    trajs = _trajs(tmp_path)
    args = [str(trajs) if a == "T" else a for a in args]
    fmt = [] if "-f" in args or "--no-format" in args else ["-f", "chatml"]
    args = [a for a in args if a != "--no-format"]
    r = run_cli(["finetune", "build", *args, *fmt, "--out", str(tmp_path / "o"), "--quiet"],
                cwd=tmp_path)
    assert one_error_line(r).startswith(expect)


def test_a_build_without_any_row_says_so(tmp_path: Path) -> None:
    (row,) = lite_rows(1)
    trajs = tmp_path / "t"
    trajs.mkdir()
    write_jsonl(trajs / "t.jsonl", [attempt(row, 1, True, patch="please fix it")])
    r = run_cli(["finetune", "build", "--trajectories", str(trajs), "--out",
                 str(tmp_path / "o"), "-f", "openai", "--quiet"])
    assert r.returncode == 1
    assert r.stderr.strip() == (
        "error: no training row written: no attempt made a pair for openai (filter reasons "
        f"and counts in {tmp_path / 'o' / 'dataset_stats.json'})")
    assert "filtered:  1 (not_a_unified_diff 1)" in r.stdout


def test_stats_counts_with_the_real_tokenizer(tmp_path: Path) -> None:
    tokenizers = pytest.importorskip("tokenizers")
    if not TOKENIZER.is_file():
        pytest.skip(f"tokenizer not found at {TOKENIZER}")
    trajs, out = _trajs(tmp_path), tmp_path / "ft"
    assert run_cli(["finetune", "build", "--trajectories", str(trajs), "--out", str(out),
                    "-f", "openai", "--val-fraction", "0", "--quiet"]).returncode == 0
    train = out / "train.jsonl"
    rows = read_jsonl(train)
    tok = tokenizers.Tokenizer.from_file(str(TOKENIZER))
    assert row_strings(rows[0]) == [m["content"] for m in rows[0]["messages"]]
    # each message content counted alone, as a chat template separates them
    counts = [sum(len(tok.encode(m["content"], add_special_tokens=False).ids)
                  for m in r["messages"]) for r in rows]
    r = run_cli(["finetune", "stats", str(train), "--tokenizer", str(TOKENIZER),
                 "--price-per-1m", "8", "--epochs", "2", "--json"])
    assert r.returncode == 0, r.stderr
    s = json.loads(r.stdout)
    assert (s["rows"], s["tokens_total"], s["tokens_max"]) == (7, sum(counts), max(counts))
    assert s["tokens_mean"] == round(sum(counts) / 7, 1)
    assert s["exact"] and s["counter"] == f"tokenizer: {TOKENIZER}"
    assert s["cost_usd"] == round(sum(counts) * 2 * 8 / 1e6, 4)
    text = run_cli(["finetune", "stats", str(train), "--tokenizer", str(TOKENIZER)])
    assert f"tokens:    {sum(counts):,} total" in text.stdout
    assert f"counted:   tokenizer: {TOKENIZER}" in text.stdout


def test_stats_without_a_tokenizer_is_a_labelled_estimate(tmp_path: Path) -> None:
    f = tmp_path / "dpo.jsonl"
    row = {"prompt": [{"role": "user", "content": "abcdefgh"}],
           "chosen": [{"role": "assistant", "content": "é"}],
           "rejected": [{"role": "assistant", "content": "xyz"}],
           "metadata": {"instance_id": "a long id that is not counted"}}
    write_jsonl(f, [row, row])
    r = run_cli(["finetune", "stats", str(f)])
    assert r.returncode == 0, r.stderr
    per_row = sum(math.ceil(len(t.encode()) / 4) for t in ("abcdefgh", "é", "xyz"))  # 2+1+1
    assert r.stdout.splitlines() == [
        f"file:      {f}",
        "rows:      2",
        f"tokens:    ~{2 * per_row:,} total, ~{per_row:.1f} mean, ~{per_row} max per row",
        "counted:   estimate: UTF-8 bytes / 4 per string (no --tokenizer given)",
        f"cost:      ~${2 * per_row * 3 * 3 / 1e6:,.4f} for 3 epoch(s) at $3.00 per 1M "
        "training tokens",
    ]


def test_stats_bad_input_is_one_line(tmp_path: Path) -> None:
    f = write_jsonl(tmp_path / "t.jsonl", [{"text": "a"}])
    (tmp_path / "bad.jsonl").write_text('{"text": "a"}\nnope\n')
    (tmp_path / "tok.json").write_text("{}")
    for args, expect in [
        ([str(tmp_path / "none.jsonl")], f"error: {tmp_path / 'none.jsonl'}: file not found"),
        ([str(tmp_path / "bad.jsonl")], f"error: {tmp_path / 'bad.jsonl'}: line 2: not valid"),
        ([str(f), "--tokenizer", str(tmp_path / "x.json")],
         f"error: {tmp_path / 'x.json'}: --tokenizer: file not found"),
        ([str(f), "--tokenizer", str(tmp_path / "tok.json")],
         f"error: {tmp_path / 'tok.json'}: --tokenizer: not a tokenizers tokenizer.json"),
        ([str(f), "--epochs", "0"], "error: --epochs: 0: give at least 1"),
    ]:
        assert one_error_line(run_cli(["finetune", "stats", *args])).startswith(expect)


def test_check_reports_each_bad_line(tmp_path: Path) -> None:
    good = {"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "u"},
                         {"role": "assistant", "content": "a", "weight": 1}]}
    tool_call = {"messages": [{"role": "user", "content": "u"},
                              {"role": "assistant", "content": None, "tool_calls": [{}]},
                              {"role": "tool", "content": "42"},
                              {"role": "assistant", "content": "done"}]}
    m = good["messages"]
    lines = [json.dumps(good), json.dumps(tool_call),
             json.dumps({"messages": m[:2]}),
             json.dumps({"messages": [m[0], {"role": "bot", "content": "x"}, m[2]]}),
             json.dumps({"messages": [m[0], {"role": "user", "content": "  "}, m[2]]}),
             json.dumps({"messages": [m[0], m[1], {"role": "assistant"}]}),
             json.dumps({**good, "metadata": {"id": 1}}),
             "", "not json", json.dumps([good]), json.dumps({"messages": []}),
             json.dumps({"messages": [m[0], {**m[1], "weight": 0}, m[2]]}),
             json.dumps({"messages": [m[0], m[1], {**m[2], "weight": 2}]}),
             json.dumps({"messages": [m[0], m[1]] + [m[2], m[1]]})]
    f = tmp_path / "ft.jsonl"
    f.write_text("\n".join(lines) + "\n")
    r = run_cli(["finetune", "check", str(f)])
    assert r.returncode == 1, r.stdout
    out = r.stdout.splitlines()
    assert [line.split(": ", 1)[0] for line in out[:-1]] == [f"{f}:{n}" for n in range(3, 15)]
    assert [line.split(": ", 1)[1] for line in out[:-1]] == [
        "no assistant message: nothing to train on",
        "messages[1]: role 'bot' is not one of system, user, assistant, tool",
        "messages[1] (user): empty or missing content",
        "messages[2] (assistant): empty or missing content",
        "unexpected key(s) metadata: a line holds only functions, messages, "
        "parallel_tool_calls, tools",
        "empty line (each line must be one JSON object)",
        out[6].split(": ", 1)[1],  # orjson's message
        "not a JSON object",
        "no `messages` list (or an empty one)",
        "messages[1] (user): weight is allowed on assistant messages only",
        "messages[2]: weight must be 0 or 1, got 2",
        "the last message is user, not assistant",
    ]
    assert out[6].split(": ", 1)[1].startswith("not valid JSON")
    assert out[-1] == f"FAIL: 12 problem(s) in 14 line(s) of {f}"
    (tmp_path / "empty.jsonl").write_text("")
    r = run_cli(["finetune", "check", str(tmp_path / "empty.jsonl")])
    assert r.returncode == 1 and "no lines: the file is empty" in r.stdout
    assert one_error_line(run_cli(["finetune", "check", str(tmp_path / "none.jsonl")])) == (
        f"error: {tmp_path / 'none.jsonl'}: file not found: give an OpenAI fine-tuning .jsonl")


def test_run_dir_and_swe_agent_go_through_the_adapters_and_the_same_checks(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The adapters are faked at their seam (their own tests run them on real runs): what the
    CLI passes them, and that their dicts are checked like file lines."""
    import sys
    import types

    import benchsmith.finetune
    from typer.testing import CliRunner

    from benchsmith.cli.app import app

    dicts, _ = scenario()
    calls = []

    def from_run(run_dir: Path, report: Path, eval_dir: Path | None = None) -> list[dict]:
        calls.append(("run", run_dir, report, eval_dir))
        return [{**d, "source": f"benchsmith-run:{run_dir}"} for d in dicts]

    def from_swe_agent(traj_dir: Path, report: Path, eval_dir: Path | None = None) -> list:
        calls.append(("swe-agent", traj_dir, report, eval_dir))
        return [{**dicts[0], "resolved": "maybe"}]

    stub = types.ModuleType("benchsmith.finetune.adapters")
    stub.entries_from_run = from_run  # type: ignore[attr-defined]
    stub.entries_from_swe_agent = from_swe_agent  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "benchsmith.finetune.adapters", stub)
    monkeypatch.setattr(benchsmith.finetune, "adapters", stub, raising=False)
    run, report, logs = tmp_path / "runs" / "r1", tmp_path / "report.json", tmp_path / "logs"
    out = tmp_path / "ft"
    res = CliRunner().invoke(app, ["finetune", "build", "--run-dir", str(run), "--report",
                                   str(report), "--eval-dir", str(logs), "--out", str(out),
                                   "-f", "trl", "--json", "--quiet"])
    assert res.exit_code == 0, res.output
    assert calls == [("run", run, report, logs)]
    s = json.loads((out / "dataset_stats.json").read_text())
    assert s["sources"] == {f"benchsmith-run:{run}": 17} and s["files"] == [str(run)]
    assert s["pairs"] == {"positive": 5, "reflection": 2, "preference": 3}
    res = CliRunner().invoke(app, ["finetune", "build", "--swe-agent", str(tmp_path / "trajs"),
                                   "--report", str(report), "--out", str(out), "-f", "trl"])
    assert res.exit_code == 1 and calls[-1] == ("swe-agent", tmp_path / "trajs", report, None)
    assert res.output.strip() == (f"error: {tmp_path / 'trajs'}: entry 1 "
                                  f"({dicts[0]['instance_id']}): resolved: must be true or "
                                  "false, got 'maybe'")
