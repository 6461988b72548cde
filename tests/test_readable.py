"""render-readable: the run's plans as Markdown, from real runs against the FakeOpenAI server.

Expectations come from the run's own JSONL exports (datasets/<ds>/plans.jsonl and
failed_plans/datasets/<ds>/plans.jsonl), the HumanEval data and the config the test sets.
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest

from benchsmith import api
from benchsmith.config import parse_config
from benchsmith.errors import BenchsmithError
from benchsmith.export.readable import render_after_run, render_readable, safe_name
from fake_openai import FakeOpenAI, Reply
from helpers import KEY_ENV, SECRET, cli_env, humaneval_problems, read_jsonl, run_cli

RUN = "R"
HOSTILE_IDS = [
    "HumanEval/12",
    "django__django-11099",
    "../../etc/passwd",
    "a/../../b",
    "..",
    ".",
    "CON",
    "con.txt",
    "name with spaces",
    "ünïcødé-タスク",
    'a:b*c?"d<e>f|g',
    "back\\slash",
    ".hidden",
    "...",
    " ",
    "",
    "tab\tnew\nline",
    "-rf",
    "Foo",
    "foo",
    "index.md",
    "x" * 300,
    "x" * 299 + "y",
    "é" * 200,
    "a|b",
    "a_b",
]


# --------------------------------------------------------------------------- helpers


def _cfg(tmp_path: Path, server: FakeOpenAI, datasets: dict[str, Any], plans: dict | None = None):
    data: dict[str, Any] = {
        "run_dir": str(tmp_path),
        "datasets": datasets,
        "openai": {"base_url": server.base_url, "api_key_env": KEY_ENV},
        "engine": {"backoff_base_s": 0.01, "backoff_max_s": 0.1, "concurrency": 8},
    }
    if plans:
        data["recipe_options"] = plans
    return parse_config(data, file=str(tmp_path / "cfg.yaml"), config_dir=str(tmp_path))


def _humaneval_run(tmp_path: Path, server: FakeOpenAI, monkeypatch, run_id: str = RUN) -> Path:
    monkeypatch.setenv(KEY_ENV, SECRET)
    server.enqueue(Reply.text({"plans": []}))  # the first answer fails validation
    cfg = _cfg(tmp_path, server, {"humaneval": {"source": "humaneval", "max_tasks": 2}})
    summary = api.run(cfg, run_id=run_id)
    assert summary.stopped is None, summary.message
    return summary.run_dir


def _hostile_run(tmp_path: Path, server: FakeOpenAI, monkeypatch) -> Path:
    monkeypatch.setenv(KEY_ENV, SECRET)
    src = tmp_path / "hostile.jsonl"
    with src.open("w", encoding="utf-8") as fh:
        for i, tid in enumerate(HOSTILE_IDS):
            row = {"id": tid, "text": f"Task number {i}: implement {tid!r}.", "answer": f"GOLD-{i}"}
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    cfg = _cfg(
        tmp_path,
        server,
        {
            "hostile-set_1": {
                "source": "jsonl",
                "path": str(src),
                "fields": {"id": "id", "primary": "text", "gold": ["answer"]},
            }
        },
        plans={"calls_per_task": 1, "plans_per_call": 2},
    )
    summary = api.run(cfg, run_id="H")
    assert summary.stopped is None, summary.message
    assert summary.counts == {"ok": len(HOSTILE_IDS)}
    return summary.run_dir


def _md_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.md") if p.is_file())


def _links(index: Path) -> list[Path]:
    """Every relative link target of a Markdown file, resolved against its folder."""
    text = index.read_text(encoding="utf-8")
    out = []
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        assert not target.startswith(("/", "http:", "https:")), target
        out.append((index.parent / unquote(target)).resolve())
    return out


def _rows_by_request(rows: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        out.setdefault(r["request_id"], []).append(r)
    return out


def _suffix(row: dict[str, Any]) -> str:
    rid = row["request_id"]
    assert rid.startswith("r1_")
    return f"_b{row['call_index'] + 1}_a{row['attempt']}_{rid[3:11]}.md"


def _field_line(text: str, name: str) -> str:
    """The value of a `- name: ...` line (code span markers removed)."""
    for line in text.splitlines():
        if line.startswith(f"- {name}: "):
            return line[len(f"- {name}: "):].strip().strip("`").strip()
    raise AssertionError(f"no {name} line")


def _task_id_of(text: str) -> str:
    """The task id a rendered file names (plain, or a JSON string for whitespace-only ids)."""
    v = _field_line(text, "task id")
    return json.loads(v) if v.startswith('"') else v


def _plan_headings(text: str) -> list[str]:
    return [m.group(1) for m in re.finditer(r"^## Plan \d+: (.*)$", text, flags=re.M)]


# --------------------------------------------------------------------------- HumanEval run


def test_render_humaneval_run(fake_openai: FakeOpenAI, tmp_path: Path, monkeypatch) -> None:
    rd = _humaneval_run(tmp_path, fake_openai, monkeypatch)
    plans = read_jsonl(rd / "datasets/humaneval/plans.jsonl")
    failed = read_jsonl(rd / "failed_plans/datasets/humaneval/plans.jsonl")
    assert len(failed) == 1 and failed[0]["raw_output"] == '{"plans":[]}'
    assert len(plans) == 2 * 3 * 4

    rep = render_readable(rd)
    root, froot = rd / "readable", rd / "failed_plans" / "readable"
    assert rep.index == root / "index.md" and rep.index.is_file()
    assert rep.failed_index == froot / "index.md" and rep.failed_index.is_file()

    # one file per accepted answer, named <task>_b<call+1>_a<attempt>_<hash>.md
    answers = _rows_by_request(plans)
    files = [p for p in _md_files(root) if p.name != "index.md"]
    assert len(files) == len(answers) == 6
    assert sorted(files) == sorted(rep.files)
    texts = {p: p.read_text(encoding="utf-8") for p in files}
    for rid, rows in answers.items():
        r0 = rows[0]
        expected = f"{safe_name(r0['task_id'])}{_suffix(r0)}"
        path = root / "humaneval" / expected
        assert path in texts, (expected, sorted(p.name for p in files))
        text = texts[path]
        assert _field_line(text, "task id") == r0["task_id"]
        assert _field_line(text, "dataset") == "humaneval"
        assert _field_line(text, "model") == r0["model"]
        assert _field_line(text, "request id") == rid
        assert [h for h in _plan_headings(text)] == [r["title"] for r in rows]
        for r in rows:
            assert f"`{r['plan_id']}`" in text
            assert r["summary"] in text
            for j, step in enumerate(r["steps"], 1):
                assert f"\n{j}. {step}\n" in text
    # the answer that replaced the invalid one is attempt 2 of its request
    assert any(r["attempt"] == 2 for r in plans)
    assert any("_a2_" in p.name for p in files)

    # every accepted plan title (and plan id) is in exactly one file
    for r in plans:
        holders = [p for p, t in texts.items() if r["title"] in _plan_headings(t)]
        assert len(holders) == 1, r["title"]
        assert sum(f"`{r['plan_id']}`" in t for t in texts.values()) == 1

    # the task text is there, the gold fields are not
    probs = humaneval_problems()
    for p, text in texts.items():
        tid = _field_line(text, "task id")
        assert "[PRIMARY_TASK]" in text and "[CONTEXT_FIELDS]" in text
        assert probs[tid]["prompt"].strip().splitlines()[0] in text
        assert probs[tid]["canonical_solution"].strip() not in text
        assert probs[tid]["test"].strip() not in text

    # the invalid attempt: its own file with the validation error and the raw output
    bad = failed[0]
    bad_files = [p for p in _md_files(froot) if p.name != "index.md"]
    assert bad_files == [froot / "humaneval" / f"{safe_name(bad['task_id'])}{_suffix(bad)}"]
    btext = bad_files[0].read_text(encoding="utf-8")
    assert bad["validation_error"] in btext
    assert "```text\n" + bad["raw_output"] + "\n```" in btext
    assert _field_line(btext, "request id") == bad["request_id"]
    assert not any(bad_files[0].resolve() == p.resolve() for p in files)

    # index links resolve, and every file is linked
    links = _links(rep.index)
    assert all(p.is_file() for p in links), [p for p in links if not p.is_file()]
    assert {p.resolve() for p in files} <= set(links)
    assert bad_files[0].resolve() in set(links)
    assert rep.failed_index.resolve() in set(links)
    flinks = _links(rep.failed_index)
    assert all(p.is_file() for p in flinks)
    assert bad_files[0].resolve() in set(flinks)
    index = rep.index.read_text(encoding="utf-8")
    for tid in {r["task_id"] for r in plans}:
        n = sum(1 for r in plans if r["task_id"] == tid)
        row = next(ln for ln in index.splitlines() if ln.startswith(f"| {tid} |"))
        assert f"| {n} |" in row
    assert f"{len(plans)} plans" in index and "1 invalid attempt" in index

    # re-rendering replaces the output: same files, stale ones removed, others kept
    stale = root / "humaneval" / "HumanEval_9_b9_a9_deadbeef.md"
    stale_failed = froot / "humaneval" / "Old_b1_a1_0123abcd.md"
    gone_ds = root / "removed_dataset" / "T_b1_a1_0123abcd.md"
    notes = root / "humaneval" / "notes.md"
    for p in (stale, stale_failed, gone_ds, notes):
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text("old", encoding="utf-8")
    planted = (stale, stale_failed, gone_ds, notes)
    before = {p: p.read_bytes() for p in _md_files(rd) if p not in planted}
    rep2 = render_readable(rd)
    assert not stale.exists() and not stale_failed.exists() and not gone_ds.exists()
    assert not gone_ds.parent.exists()
    assert notes.read_text(encoding="utf-8") == "old"
    assert set(rep2.removed) == {stale, stale_failed, gone_ds}
    after = {p: p.read_bytes() for p in _md_files(rd) if p != notes}
    assert after == before
    # no temp files left behind
    assert not [p for p in rd.rglob("*.tmp")]


def test_no_task_text_and_output_dir(fake_openai: FakeOpenAI, tmp_path: Path, monkeypatch) -> None:
    rd = _humaneval_run(tmp_path, fake_openai, monkeypatch)
    # `run` renders into the run dir itself; rendering elsewhere leaves that copy untouched.
    before = {p: p.read_bytes() for p in (rd / "readable").rglob("*.md")}
    assert before, "run should render readable output automatically"
    out = tmp_path / "review"
    rep = render_readable(rd, out, include_task_text=False)
    assert rep.index == out / "index.md" and rep.index.is_file()
    assert rep.failed_index == out / "failed_plans" / "index.md" and rep.failed_index.is_file()
    assert {p: p.read_bytes() for p in (rd / "readable").rglob("*.md")} == before
    files = [p for p in _md_files(out / "humaneval")]
    bad = [p for p in _md_files(out / "failed_plans" / "humaneval")]
    assert len(files) == 6 and len(bad) == 1
    assert sorted(files) == sorted(rep.files) and bad == list(rep.failed_files)
    for p in files + bad:
        text = p.read_text(encoding="utf-8")
        assert "[PRIMARY_TASK]" not in text and "has_close_elements" not in text
    assert all(p.is_file() for p in _links(rep.index))
    assert set(_links(rep.index)) >= {p.resolve() for p in files + bad}
    assert all(p.is_file() for p in _links(rep.failed_index))

    # the default rendering (with task text) is independent of --output-dir
    rep_default = render_readable(rd)
    assert "[PRIMARY_TASK]" in rep_default.files[0].read_text(encoding="utf-8")
    assert len(_md_files(out)) == 6 + 1 + 2  # untouched

    # refusing to render into the run directory itself
    with pytest.raises(BenchsmithError):
        render_readable(rd, rd)


def test_markdown_is_escaped(fake_openai: FakeOpenAI, tmp_path: Path, monkeypatch) -> None:
    """Model output is untrusted: it cannot break tables, headings, lists or fences."""
    hostile = {
        "plans": [
            {
                "title": "<script>alert(1)</script> | col ## [x](http://e.vil)",
                "summary": "# Not a heading\n- not a list\n```\nnot a fence\n| a | b |",
                "steps": ["1. numbered? `code` and ``double``", "> quote\nsecond line"],
            },
            {"title": "Plain", "summary": "ok", "steps": ["one", "two"]},
            {"title": "***", "summary": "---", "steps": ["===", "+ plus"]},
            {"title": "Last", "summary": "s", "steps": ["a", "b"]},
        ]
    }
    monkeypatch.setenv(KEY_ENV, SECRET)
    fake_openai.enqueue(Reply.text("not json ````` five backticks\n```\nend"))
    fake_openai.enqueue(Reply.text(hostile))
    cfg = _cfg(tmp_path, fake_openai, {"humaneval": {"source": "humaneval", "max_tasks": 1}},
               plans={"calls_per_task": 1})
    rd = api.run(cfg, run_id=RUN).run_dir
    rep = render_readable(rd)
    assert len(rep.files) == 1 and len(rep.failed_files) == 1
    text = rep.files[0].read_text(encoding="utf-8")
    assert "<script>" not in text and "\\<script\\>" in text
    headings = [ln for ln in text.splitlines() if ln.startswith("#")]
    assert headings[0].startswith("# ") and all(h.startswith(("# ", "## ")) for h in headings)
    assert len([h for h in headings if h.startswith("## Plan ")]) == 4
    body_lines = text.split("## Plan 1:", 1)[1].splitlines()[1:]
    starts = ("# ", "- not", "> ", "```", "| a", "---", "===", "+ ")
    assert not any(ln.startswith(starts) for ln in body_lines)
    assert "\\| col" in text
    # a table cell of the failed index cannot be split by the validation error
    raw = rd / "failed_plans/datasets/humaneval/plans.jsonl"
    bad_row = read_jsonl(raw)[0]
    btext = rep.failed_files[0].read_text(encoding="utf-8")
    fence = re.search(r"^(`{3,})text\n", btext.split("## Raw output", 1)[1], flags=re.M)
    assert fence and len(fence.group(1)) >= 6
    assert f"{fence.group(1)}text\n{bad_row['raw_output']}\n{fence.group(1)}\n" in btext
    for ln in rep.failed_index.read_text(encoding="utf-8").splitlines():
        if ln.startswith("| HumanEval"):
            assert len(re.findall(r"(?<!\\)\|", ln)) == 4  # three cells


# --------------------------------------------------------------------------- hostile ids


def test_safe_name_properties() -> None:
    names = [safe_name(t) for t in HOSTILE_IDS]
    assert len(set(names)) == len(names)  # case-only clashes (Foo/foo) are resolved per folder
    for tid, n in zip(HOSTILE_IDS, names):
        assert n and "/" not in n and "\\" not in n and "\x00" not in n
        assert not n.startswith((".", "-", " ")) and not n.endswith((".", " "))
        assert n not in (".", "..")
        assert len(n.encode("utf-8")) <= 140
        assert re.fullmatch(r"[\w.-]+", n), n
        assert n.split(".")[0].lower() not in {"con", "prn", "aux", "nul"}
    assert safe_name("django__django-11099") == "django__django-11099"  # unchanged when safe
    assert safe_name("HumanEval/12").startswith("HumanEval_12_")
    assert safe_name("../../etc/passwd").startswith("etc_passwd_")
    assert safe_name("x" * 300) != safe_name("x" * 299 + "y")
    assert safe_name("x" * 300).startswith("x" * 40)


def test_hostile_task_ids(fake_openai: FakeOpenAI, tmp_path: Path, monkeypatch) -> None:
    rd = _hostile_run(tmp_path, fake_openai, monkeypatch)
    ds = "hostile-set_1"
    plans = read_jsonl(rd / f"datasets/{ds}/plans.jsonl")
    assert {p["task_id"] for p in plans} == set(HOSTILE_IDS)

    for out in (None, tmp_path / "out dir"):
        rep = render_readable(rd, out)
        root = rep.index.parent
        files = list(rep.files)
        assert len(files) == len(HOSTILE_IDS)
        # every file is a direct child of <root>/<dataset>/ and really inside the output dir
        for p in files:
            assert p.is_file()
            assert p.parent == root / ds
            assert root.resolve() in p.resolve().parents
            assert not p.name.startswith(".")
            assert len(p.name.encode("utf-8")) <= 255
        names = [p.name.casefold() for p in files]
        assert len(set(names)) == len(names)
        assert set(_md_files(root)) - {rep.failed_index} == set(files) | {rep.index}
        # nothing escaped anywhere: only the expected .md files exist under tmp_path
        everything = {p.resolve() for p in tmp_path.rglob("*.md")}
        assert all(
            (rd / "readable").resolve() in p.parents
            or (rd / "failed_plans" / "readable").resolve() in p.parents
            or (tmp_path / "out dir").resolve() in p.parents
            for p in everything
        )
        assert not Path("/etc/passwd_b1_a1.md").exists()

        # every task is in the index, linked to the file holding its plans
        by_task = {_task_id_of(p.read_text(encoding="utf-8")): p.resolve() for p in files}
        assert set(by_task) == set(HOSTILE_IDS)
        index = rep.index.read_text(encoding="utf-8")
        table = [ln for ln in index.splitlines() if ln.startswith("| ") and "](" in ln]
        assert len(table) == len(HOSTILE_IDS)
        links = _links(rep.index)
        assert all(p.is_file() for p in links)
        assert set(by_task.values()) <= set(links)
        for p in plans:
            text = by_task[p["task_id"]].read_text(encoding="utf-8")
            assert p["plan_id"].split()[-1] in text
            assert p["title"] in _plan_headings(text)
            assert "GOLD-" not in text

    # a symlinked dataset folder pointing outside the output dir is refused, nothing written there
    outside = tmp_path / "outside"
    outside.mkdir()
    evil = tmp_path / "evil"
    (evil).mkdir()
    os.symlink(outside, evil / ds)
    with pytest.raises(BenchsmithError, match="outside"):
        render_readable(rd, evil)
    assert list(outside.iterdir()) == []


# --------------------------------------------------------------------------- CLI and hook


def test_cli(fake_openai: FakeOpenAI, tmp_path: Path, monkeypatch) -> None:
    rd = _humaneval_run(tmp_path, fake_openai, monkeypatch)
    env = cli_env()

    r = run_cli(["render-readable", "--run-dir", str(rd)], env=env)
    assert r.returncode == 0, r.stderr
    assert str(rd / "readable" / "index.md") in r.stdout
    assert (rd / "readable" / "index.md").is_file()
    assert "[PRIMARY_TASK]" in next((rd / "readable" / "humaneval").glob("*.md")).read_text("utf-8")

    out = tmp_path / "cli_out"
    r = run_cli(
        ["render-readable", str(rd), "--out", str(out), "--no-task-text"],
        env=env,
    )
    assert r.returncode == 0, r.stderr
    assert str(out / "index.md") in r.stdout
    files = _md_files(out / "humaneval")
    assert len(files) == 6
    assert all("[PRIMARY_TASK]" not in p.read_text("utf-8") for p in files)
    assert len(_md_files(out / "failed_plans" / "humaneval")) == 1

    # not a run directory: one line, exit 1 (the older spelling --run-dir still works)
    r = run_cli(["render-readable", "--run-dir", str(tmp_path / "nope")], env=env)
    assert r.returncode == 1
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "not a run directory" in lines[0], r.stderr
    assert not (tmp_path / "nope").exists()

    # a corrupt ledger is a one-line error too, not a traceback
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "ledger.sqlite").write_bytes(b"this is not a database" * 100)
    r = run_cli(["render-readable", "--run-dir", str(broken)], env=env)
    assert r.returncode == 1
    assert "Traceback" not in r.stderr
    assert len([ln for ln in r.stderr.splitlines() if ln.strip()]) == 1, r.stderr

    r = run_cli(["render-readable", "--help"], env=env)
    assert r.returncode == 0
    for opt in ("RUN_DIR", "--out", "--no-task-text", "Examples"):
        assert opt in r.stdout
    r = run_cli(["render-readable"], env=env)  # no run directory: one line naming it
    assert r.returncode == 1 and "RUN_DIR" in r.stderr and "Traceback" not in r.stderr


def test_render_after_run(fake_openai: FakeOpenAI, tmp_path: Path, monkeypatch) -> None:
    rd = _humaneval_run(tmp_path, fake_openai, monkeypatch)
    assert render_after_run(rd) is None
    assert (rd / "readable" / "index.md").is_file()

    (rd / "ledger.sqlite").unlink()
    for extra in ("ledger.sqlite-wal", "ledger.sqlite-shm"):
        (rd / extra).unlink(missing_ok=True)
    msg = render_after_run(rd)
    assert isinstance(msg, str) and msg.startswith("warning") and "ledger" in msg
    assert not (rd / "ledger.sqlite").exists()  # nothing created by the attempt

    (rd / "ledger.sqlite").write_bytes(b"garbage" * 1000)
    msg = render_after_run(rd)
    assert isinstance(msg, str) and msg.startswith("warning")

    assert render_after_run(tmp_path / "does-not-exist").startswith("warning")
    assert isinstance(render_after_run(None), str)  # type: ignore[arg-type]
    counts = Counter(p.suffix for p in (rd / "readable").rglob("*"))
    assert counts[".md"] == 2  # the earlier (bulk) rendering is left as it was: index + 1 part
