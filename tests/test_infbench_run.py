"""`benchsmith infbench run` through the fake server: layout, lines, resume-by-append
(including a file the user already has, and a crash before the append), failed requests
asked again, context trimming per model limit, several choices, batch mode."""

from __future__ import annotations

import json
from typing import Any

import yaml

from benchsmith.recipes.edit_predict.stages import request_tokens
from benchsmith.sources.editbench.prompt import render_file, render_prompt
from fake_openai import Reply
from helpers import ledger_rows
from infbench_run_support import (
    answer_by_instance,
    asked,
    fenced,
    infbench_row,
    instance_of,
    invoke,
    read_lines,
    run_args,
)

FIELDS = {"instance_id", "model_name", "prompt", "full_output", "model_patch", "cost",
          "response_time", "status", "error", "patch_source", "dropped_files"}
FILES = ["all-task-instances_0.2.jsonl", "all-task-instances_0.5.jsonl"]


def test_two_models_two_run_ids_online(ib: dict[str, Any]) -> None:
    first = ib["ids"][0]
    truth = infbench_row(ib["rows"][0], 0.2)["ground_truth"]
    ib["server"].script = answer_by_instance({first: fenced(truth)})
    res = invoke(*run_args(ib, "--model", "gpt-4.1", "gpt-4o", "--dataset-name", "all",
                           "--run-id", "0.2", "0.5"))
    assert res.exit_code == 0, res.output
    prompts = {}
    for name in FILES:
        for line in (ib["infbench"] / name).read_text().splitlines():
            row = json.loads(line)
            prompts[(name, row["instance_id"])] = row["prompt"]
    for model in ("gpt-4.1", "gpt-4o"):
        folder = ib["results"] / model / "T=0" / "n=1"
        assert sorted(p.name for p in folder.iterdir()) == FILES
        for name in FILES:
            lines = read_lines(folder / name)
            assert [ln["instance_id"] for ln in lines] == sorted(ib["ids"])
            for ln in lines:
                assert set(ln) == FIELDS and ln["model_name"] == model
                assert ln["status"] == "ok" and ln["error"] is None
                assert ln["prompt"] == prompts[(name, ln["instance_id"])]  # nothing trimmed
                assert ln["cost"] > 0 and ln["response_time"] >= 0
                assert ln["dropped_files"] == []
                if ln["instance_id"] == first:
                    assert ln["full_output"] == fenced(truth)
                    assert ln["patch_source"] == "fence"
                    if name.endswith("0.2.jsonl"):
                        assert ln["model_patch"] == truth
                else:
                    assert ln["model_patch"] == "" and ln["patch_source"] == "none"
    # each instance asked once per model and run id, through the Chat API
    assert sorted(asked(ib["server"])) == sorted(ib["ids"] * 4)
    assert {r.path for r in ib["server"].requests} == {"/v1/chat/completions"}
    assert "gpt-4.1: completed; appended all-task-instances_0.2.jsonl: +3" in res.stdout


def test_a_users_file_is_continued_never_rewritten(ib: dict[str, Any]) -> None:
    """Its lines (other fields, a line cut short by a crash) stay byte for byte; its ids are
    not asked; the cut line's instance is asked again."""
    a, b, c = sorted(ib["ids"])
    folder = ib["results"] / "gpt-4.1" / "T=0" / "n=1"
    folder.mkdir(parents=True)
    mine = (json.dumps({"instance_id": a, "model_patch": "x", "note": "from the old tool"})
            + "\n" + '{"instance_id": "' + b + '", "model_pa')
    path = folder / FILES[0]
    path.write_text(mine)
    res = invoke(*run_args(ib, "--model", "gpt-4.1", "--dataset-name", "all", "--run-id", "0.2"))
    assert res.exit_code == 0, res.output
    assert "last line cut short" in res.output
    assert sorted(asked(ib["server"])) == [b, c]
    data = path.read_text()
    assert data.startswith(mine + "\n")
    new = [json.loads(x) for x in data[len(mine) + 1:].splitlines()]
    assert [x["instance_id"] for x in new] == [b, c]
    # again: nothing left to ask, nothing written
    res = invoke(*run_args(ib, "--model", "gpt-4.1", "--dataset-name", "all", "--run-id", "0.2"))
    assert res.exit_code == 0 and "nothing_to_do" in res.stdout, res.output
    assert path.read_text() == data and len(asked(ib["server"])) == 2


def test_a_crash_before_the_append_resumes_the_same_run(ib: dict[str, Any]) -> None:
    args = run_args(ib, "--model", "gpt-4.1", "--dataset-name", "all", "--run-id", "0.2")
    assert invoke(*args).exit_code == 0
    path = ib["results"] / "gpt-4.1" / "T=0" / "n=1" / FILES[0]
    first = path.read_text()
    path.unlink()  # as if the process died after the answers were recorded
    res = invoke(*args)
    assert res.exit_code == 0 and "(resumed)" in res.output, res.output
    assert len(asked(ib["server"])) == 3  # nothing sent twice
    assert path.read_text() == first
    assert len(list(ib["runs"].glob("infbench-*"))) == 1


def test_failed_requests_get_no_line_and_are_asked_next_time(ib: dict[str, Any]) -> None:
    bad = ib["ids"][1]
    ib["server"].script = lambda rec, _i: (
        Reply.error(400, "bad request") if instance_of(rec.body) == bad else None)
    args = run_args(ib, "--model", "gpt-4o", "--dataset-name", "all", "--run-id", "0.2")
    res = invoke(*args)
    assert res.exit_code == 4, res.output
    assert "run the same command again" in res.output
    path = ib["results"] / "gpt-4o" / "T=0" / "n=1" / FILES[0]
    assert sorted(x["instance_id"] for x in read_lines(path)) == sorted(set(ib["ids"]) - {bad})
    ib["server"].script = None
    res = invoke(*args)
    assert res.exit_code == 0, res.output
    assert asked(ib["server"]).count(bad) == 2
    assert sorted(x["instance_id"] for x in read_lines(path)) == sorted(ib["ids"])


def test_context_is_trimmed_to_the_model_tables_limit(ib: dict[str, Any]) -> None:
    rows = [json.loads(x) for x in (ib["infbench"] / FILES[1]).read_text().splitlines()]
    out = 4000  # the base config's max_output_tokens (default)

    def tokens(row: dict[str, Any], files: list[dict[str, Any]]) -> int:
        prompt = render_prompt(row["requirement"], row["pre_edits"], files)
        return request_tokens("tiny", [{"role": "user", "content": prompt}],
                              {"max_output_tokens": out, "temperature": 0.0, "top_p": 0.95}, 1)

    limit = max(tokens(r, []) for r in rows) + 60
    table = ib["tmp"] / "models.yaml"
    table.write_text(yaml.safe_dump({"tiny": {"context_limit": limit},
                                     "tinier": {"context_limit": 100}}))
    res = invoke(*run_args(ib, "--model", "tiny", "tinier", "--dataset-name",
                           ib["infbench"] / FILES[1], "--model-table", table))
    assert res.exit_code == 0, res.output
    by_id = {r["instance_id"]: r for r in rows}
    lines = read_lines(ib["results"] / "tiny" / "T=0" / "n=1" / FILES[1])
    assert len(lines) == 3 and all(ln["status"] == "ok" for ln in lines)
    assert any(ln["dropped_files"] for ln in lines)
    for ln in lines:
        files = by_id[ln["instance_id"]]["context_files"]
        keep = len(files) - len(ln["dropped_files"])
        assert ln["dropped_files"] == [f["path"] for f in files[keep:]]  # from the end
        kept = files[:keep]
        assert ln["prompt"] == render_prompt(by_id[ln["instance_id"]]["requirement"],
                                             by_id[ln["instance_id"]]["pre_edits"], kept)
        assert all(render_file(f["path"], f["content"]) in ln["prompt"] for f in kept)
        assert tokens(by_id[ln["instance_id"]], kept) <= limit
        if keep < len(files):  # one more file would not have fit
            assert tokens(by_id[ln["instance_id"]], files[:keep + 1]) > limit
    # a limit nothing fits: a skipped line each, nothing sent for that model
    tinier = read_lines(ib["results"] / "tinier" / "T=0" / "n=1" / FILES[1])
    assert [ln["status"] for ln in tinier] == ["skipped"] * 3
    assert all(ln["error"].startswith("prompt_too_long") for ln in tinier)
    assert len(asked(ib["server"])) == 3


def test_several_choices_and_the_temperature_folder(ib: dict[str, Any]) -> None:
    table = ib["tmp"] / "models.yaml"
    table.write_text(yaml.safe_dump({"gpt-4o": {"n": 2, "temperature": 0.7}}))
    res = invoke(*run_args(ib, "--model", "gpt-4o", "--dataset-name", "all", "--run-id", "0.2",
                           "--model-table", table, "--sampled-ids-file", _ids(ib, 1)))
    assert res.exit_code == 0, res.output
    (line,) = read_lines(ib["results"] / "gpt-4o" / "T=0.7" / "n=2" / FILES[0])
    assert line["instance_id"] == ib["ids"][1]
    assert len(line["full_output"]) == 2 and line["model_patch"] == ["", ""]
    (req,) = ib["server"].requests
    assert req.body["n"] == 2 and req.body["temperature"] == 0.7


def _ids(ib: dict[str, Any], *which: int) -> Any:
    path = ib["tmp"] / "ids.json"
    path.write_text(json.dumps({"sampled_instance_ids": [ib["ids"][i] for i in which]}))
    return path


def test_batch_mode(ib: dict[str, Any]) -> None:
    res = invoke(*run_args(ib, "--model", "gpt-4.1", "--dataset-name", "all", "--run-id", "0.5",
                           "--mode", "batch"))
    assert res.exit_code == 0, res.output
    lines = read_lines(ib["results"] / "gpt-4.1" / "T=0" / "n=1" / FILES[1])
    assert sorted(ln["instance_id"] for ln in lines) == sorted(ib["ids"])
    assert all(ln["status"] == "ok" and ln["full_output"] for ln in lines)
    assert len(ib["server"].batches) == 1
    assert not [r for r in ib["server"].requests if r.path.endswith("/chat/completions")]
    (run_dir,) = ib["runs"].glob("infbench-*")
    assert ledger_rows(run_dir, "SELECT DISTINCT mode FROM invocations") == [("batch",)]


def test_ctrl_c_still_appends_what_was_answered(ib: dict[str, Any], monkeypatch: Any) -> None:
    """Answers recorded before an interrupt are appended on the way out (here: a run whose
    answers are all in its ledger, interrupted as it resumes), and the exit code is 130."""
    from benchsmith import api

    args = run_args(ib, "--model", "gpt-4.1", "--dataset-name", "all", "--run-id", "0.2")
    assert invoke(*args).exit_code == 0
    path = ib["results"] / "gpt-4.1" / "T=0" / "n=1" / FILES[0]
    first = path.read_text()
    path.unlink()

    def interrupted(*_a: Any, **_k: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(api, "run", interrupted)
    res = invoke(*args)
    assert res.exit_code == 130, res.output
    assert "interrupted; finished instances were appended; continue with: benchsmith" in (
        res.output)
    assert path.read_text() == first and len(asked(ib["server"])) == 3
