"""The bulk readable layout (what `run` writes by default) and `outputs.readable`, from real runs
against the FakeOpenAI server.

Expectations come from the run's own JSONL exports (datasets/<ds>/plans.jsonl and
failed_plans/datasets/<ds>/plans.jsonl), the HumanEval data and the config the test sets.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from benchsmith import api
from benchsmith.errors import ConfigError
from benchsmith.export.readable import render_readable
from benchsmith.recipes.plans import readable_bulk
from fake_openai import FakeOpenAI, Reply
from helpers import KEY_ENV, SECRET, cli_env, humaneval_problems, read_jsonl, run_cli
from test_readable import HOSTILE_IDS, _cfg, _hostile_run, _links, _md_files

PART = re.compile(r"^.+_part\d{3}\.md$")


def _run(tmp_path: Path, server: FakeOpenAI, monkeypatch, readable: str | None = None,
         tasks: int = 3) -> Path:
    monkeypatch.setenv(KEY_ENV, SECRET)
    server.enqueue(Reply.text({"plans": []}))  # the first answer fails validation
    cfg = _cfg(tmp_path, server, {"humaneval": {"source": "humaneval", "max_tasks": tasks}})
    if readable is not None:
        cfg = cfg.model_copy(update={"outputs": cfg.outputs.model_copy(update={"readable": readable})})
    summary = api.run(cfg, run_id="R")
    assert summary.stopped is None, summary.message
    return summary.run_dir


def _plan_headings(text: str) -> list[str]:
    return [m.group(1) for m in re.finditer(r"^#### Plan \d+: (.*)$", text, flags=re.M)]


def _anchors(text: str) -> list[str]:
    return re.findall(r'<a id="([^"]+)"></a>', text)


def _fragment_links(text: str) -> list[str]:
    return re.findall(r"\]\(#([^)\s]+)\)", text)


def test_run_writes_bulk_parts(fake_openai: FakeOpenAI, tmp_path: Path, monkeypatch) -> None:
    rd = _run(tmp_path, fake_openai, monkeypatch)
    plans = read_jsonl(rd / "datasets/humaneval/plans.jsonl")
    failed = read_jsonl(rd / "failed_plans/datasets/humaneval/plans.jsonl")
    assert len(plans) == 3 * 3 * 4 and len(failed) == 1
    root, froot = rd / "readable", rd / "failed_plans" / "readable"
    model = plans[0]["model"]

    # a handful of files, not one per answer: the index and one part per tree
    assert _md_files(root) == [root / "humaneval" / f"{model}_part001.md", root / "index.md"]
    assert _md_files(froot) == [froot / "humaneval" / f"{model}_part001.md", froot / "index.md"]
    part = (root / "humaneval" / f"{model}_part001.md").read_text(encoding="utf-8")

    # every accepted plan once, under its answer; each task's text once; no gold field
    assert sorted(_plan_headings(part)) == sorted(r["title"] for r in plans)
    for r in plans:
        assert part.count(f"`{r['plan_id']}`") == 1
        assert r["summary"] in part
    probs = humaneval_problems()
    assert part.count("[PRIMARY_TASK]") == 3
    for tid in {r["task_id"] for r in plans}:
        assert part.count(f"\n## {tid}\n") == 1
        assert probs[tid]["prompt"].strip().splitlines()[0] in part
        assert probs[tid]["canonical_solution"].strip() not in part
    # one answer section per request, the retried one as attempt 2
    requests = {r["request_id"] for r in plans}
    assert part.count("\n### Answer b") == len(requests) == 9
    assert "### Answer b1 a2" in part
    # the part's table of contents links to anchors it holds, each unique
    anchors = _anchors(part)
    assert len(anchors) == len(set(anchors)) == 3 + 9
    assert set(_fragment_links(part)) == set(anchors)

    # the invalid attempt: its validation error and raw output, in the failed part
    bad = (froot / "humaneval" / f"{model}_part001.md").read_text(encoding="utf-8")
    assert failed[0]["validation_error"] in bad and '{"plans":[]}' in bad
    assert set(_fragment_links(bad)) == set(_anchors(bad))

    # the indexes: counts, parts with their tasks, links that resolve; errors ranked
    index = (root / "index.md").read_text(encoding="utf-8")
    assert f"{len(plans)} plans in 9 answers, 1 invalid attempt" in index
    assert f"{plans[0]['task_id']} … {plans[-1]['task_id']} (3)" in index  # in task order
    for p in _links(root / "index.md") + _links(froot / "index.md"):
        assert p.is_file(), p
    assert (root / "humaneval" / f"{model}_part001.md").resolve() in _links(root / "index.md")
    findex = (froot / "index.md").read_text(encoding="utf-8")
    assert f"| 1 | {failed[0]['validation_error'].replace('|', chr(92) + '|')}" in findex
    assert "render-readable" in index and "--layout bulk" in index
    assert not list(rd.rglob("*.tmp"))


def test_parts_are_capped_and_layouts_replace_each_other(
    fake_openai: FakeOpenAI, tmp_path: Path, monkeypatch
) -> None:
    rd = _run(tmp_path, fake_openai, monkeypatch)
    root = rd / "readable"
    plans = read_jsonl(rd / "datasets/humaneval/plans.jsonl")
    model = plans[0]["model"]
    notes = root / "humaneval" / "notes.md"
    notes.write_text("mine", encoding="utf-8")

    # one task per part: three parts, each with its own task, listed in the index
    monkeypatch.setattr(readable_bulk, "PART_TASKS", 1)
    rep = render_readable(rd, layout="bulk")
    names = sorted(p.name for p in rep.files)
    assert names == [f"{model}_part00{i}.md" for i in (1, 2, 3)]
    texts = [p.read_text(encoding="utf-8") for p in sorted(rep.files)]
    assert [t.count("[PRIMARY_TASK]") for t in texts] == [1, 1, 1]
    assert sorted(h for t in texts for h in _plan_headings(t)) == sorted(r["title"] for r in plans)
    index = rep.index.read_text(encoding="utf-8")
    assert all(f"[{n.replace('_', chr(92) + '_')}]" in index for n in names)

    # a size cap closes a part too, never inside a task
    monkeypatch.setattr(readable_bulk, "PART_TASKS", 500)
    monkeypatch.setattr(readable_bulk, "PART_BYTES", 1)
    assert len(render_readable(rd, layout="bulk").files) == 3

    # per_record replaces the parts with a file per answer; bulk replaces those again
    rep = render_readable(rd)
    files = [p for p in _md_files(root) if p.name not in ("index.md", "notes.md")]
    assert len(files) == 9 and not [p for p in files if PART.match(p.name)]
    rep = render_readable(rd, layout="bulk")
    files = [p for p in _md_files(root) if p.name not in ("index.md", "notes.md")]
    assert [p.name for p in files] == [f"{model}_part00{i}.md" for i in (1, 2, 3)]
    assert set(rep.removed) and all(not p.exists() for p in rep.removed)
    assert notes.read_text(encoding="utf-8") == "mine"  # not a file of ours

    with pytest.raises(ConfigError, match="--layout"):
        render_readable(rd, layout="pages")


@pytest.mark.parametrize("readable", ["per_record", "off"])
def test_outputs_readable(fake_openai: FakeOpenAI, tmp_path: Path, monkeypatch,
                          readable: str) -> None:
    rd = _run(tmp_path, fake_openai, monkeypatch, readable, tasks=2)
    if readable == "off":
        assert not (rd / "readable").exists() and not (rd / "failed_plans" / "readable").exists()
        assert (rd / "datasets/humaneval/plans.jsonl").is_file()  # the datasets still are
        return
    files = [p for p in _md_files(rd / "readable") if p.name != "index.md"]
    assert len(files) == 6 and not [p for p in files if PART.match(p.name)]


def test_hostile_ids_in_bulk(fake_openai: FakeOpenAI, tmp_path: Path, monkeypatch) -> None:
    rd = _hostile_run(tmp_path, fake_openai, monkeypatch)
    ds = "hostile-set_1"
    plans = read_jsonl(rd / f"datasets/{ds}/plans.jsonl")
    for out in (None, tmp_path / "out dir"):
        rep = render_readable(rd, out, layout="bulk")
        root = rep.index.parent
        assert len(rep.files) == 1 and rep.files[0].parent == root / ds
        assert root.resolve() in rep.files[0].resolve().parents
        text = rep.files[0].read_text(encoding="utf-8")
        anchors = _anchors(text)
        # an anchor per task and per answer: unique, and only safe characters
        assert len(anchors) == len(set(anchors)) == 2 * len(HOSTILE_IDS)
        assert all(re.fullmatch(r"[\w.-]+", a) for a in anchors), anchors
        assert set(_fragment_links(text)) == set(anchors)
        assert sorted(_plan_headings(text)) == sorted(p["title"] for p in plans)
        assert "GOLD-" not in text
        # no heading or list can be forged by a task id: each task heading is one escaped line
        assert text.count("\n## ") == len(HOSTILE_IDS)
    assert not Path("/etc/passwd_part001.md").exists()


def test_cli_layout(fake_openai: FakeOpenAI, tmp_path: Path, monkeypatch) -> None:
    rd = _run(tmp_path, fake_openai, monkeypatch, tasks=2)
    env = cli_env()
    out = tmp_path / "review"
    r = run_cli(["render-readable", str(rd), "--layout", "bulk", "--out", str(out)], env=env)
    assert r.returncode == 0, r.stderr
    assert "files:    1 parts (24 plans, 2 tasks), 1 parts of invalid attempts" in r.stdout
    assert len(_md_files(out / "humaneval")) == 1
    assert len(_md_files(out / "failed_plans" / "humaneval")) == 1
    r = run_cli(["render-readable", str(rd), "--layout", "pages"], env=env)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.returncode == 1 and len(lines) == 1 and "--layout" in lines[0], r.stderr


def test_derived_files_sync_folders_not_files(
    fake_openai: FakeOpenAI, tmp_path: Path, monkeypatch
) -> None:
    """Regenerable files get one fsync per folder, not one per file (a 5,000-answer run wrote
    5,000 fsyncs), and are still complete files in place."""
    import os

    from benchsmith.export.run_files import write_run_files
    from benchsmith.recipe_of import recipe_of_run
    from benchsmith.store import rundir
    from benchsmith.store.ledger import Ledger

    rd = _run(tmp_path, fake_openai, monkeypatch)
    synced: list[str] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}") if os.path.exists("/proc/self/fd") else "?")
        real_fsync(fd)

    monkeypatch.setattr(rundir.os, "fsync", fsync)
    rep = render_readable(rd)  # per record: 9 answer files, 1 invalid attempt, 2 indexes
    assert len(rep.files) == 9
    written = {p.parent.resolve() for p in (*rep.files, *rep.failed_files, rep.index,
                                             rep.failed_index)}
    assert len(synced) == len(written) == 4
    if synced[0] != "?":
        assert {Path(s) for s in synced} == written  # the folders, each once

    synced.clear()
    run = rundir.RunDir(rd)
    ledger = Ledger(run.ledger)
    try:
        write_run_files(ledger, run, recipe_of_run(rd))
    finally:
        ledger.close()
    # only folders (datasets/, manifests/, logs/, the run dir ...), no file of the ~13 written
    assert synced and all(Path(s).is_dir() for s in synced if s != "?"), synced
    assert len(synced) <= 8
    assert read_jsonl(rd / "datasets/humaneval/plans.jsonl")  # whole files, in place
    assert not list(rd.rglob("*.tmp"))


@pytest.mark.parametrize("readable", ["bulk", "per_record"])
def test_a_child_process_renders_a_large_run_the_same(
        fake_openai: FakeOpenAI, tmp_path: Path, monkeypatch, readable: str) -> None:
    """A large run's Markdown comes from a child process while the parent writes the run's
    files: the same files, byte for byte, as the parent renders them itself."""
    from benchsmith.export import after_run

    started: list[object] = []
    real_start = after_run.ReadableChild.start.__func__

    def spy(cls, *a):
        child = real_start(cls, *a)
        started.append(child)
        return child

    monkeypatch.setattr(after_run, "READABLE_CHILD_MIN", 1)
    monkeypatch.setattr(after_run.ReadableChild, "start", classmethod(spy))
    rd = _run(tmp_path / "child", fake_openai, monkeypatch, readable)
    assert started and started[0] is not None and started[0].proc.returncode == 0
    by_child = {p.relative_to(rd): p.read_bytes() for p in _md_files(rd / "readable")}
    assert len(by_child) >= 2
    # the same run rendered again by this process
    render_readable(rd, layout=readable)
    assert {p.relative_to(rd): p.read_bytes() for p in _md_files(rd / "readable")} == by_child


def test_a_child_that_dies_leaves_the_rendering_to_the_parent(
        fake_openai: FakeOpenAI, tmp_path: Path, monkeypatch) -> None:
    from benchsmith.export import after_run

    monkeypatch.setattr(after_run, "READABLE_CHILD_MIN", 1)
    monkeypatch.setenv("PYTHONPATH", str(tmp_path / "broken"))  # the child cannot start...
    broken = tmp_path / "broken" / "benchsmith"
    broken.mkdir(parents=True)
    (broken / "__init__.py").write_text("raise SystemExit(3)\n")  # ...and exits non-zero
    from benchsmith.export import child_process

    monkeypatch.setattr(child_process, "_PKG_PARENT", str(tmp_path / "broken"))
    started: list[object] = []
    real_start = after_run.ReadableChild.start.__func__
    monkeypatch.setattr(after_run.ReadableChild, "start",
                        classmethod(lambda cls, *a: started.append(real_start(cls, *a)) or started[-1]))
    rd = _run(tmp_path, fake_openai, monkeypatch)
    assert started and started[0] is not None and started[0].proc.returncode == 3
    plans = read_jsonl(rd / "datasets/humaneval/plans.jsonl")
    part = rd / "readable" / "humaneval" / f"{plans[0]['model']}_part001.md"
    assert part.is_file() and (rd / "readable" / "index.md").is_file()


def test_a_run_that_fails_stops_its_child_without_rendering(
        fake_openai: FakeOpenAI, tmp_path: Path, monkeypatch) -> None:
    from benchsmith import api as api_mod
    from benchsmith.export import after_run

    monkeypatch.setattr(after_run, "READABLE_CHILD_MIN", 1)
    started: list[object] = []
    real_start = after_run.ReadableChild.start.__func__
    monkeypatch.setattr(after_run.ReadableChild, "start",
                        classmethod(lambda cls, *a: started.append(real_start(cls, *a)) or started[-1]))

    async def broken(*_a, **_k):
        raise RuntimeError("the engine broke")

    monkeypatch.setattr(api_mod, "execute_online", broken)
    with pytest.raises(RuntimeError, match="the engine broke"):
        _run(tmp_path, fake_openai, monkeypatch)
    child = started[0]
    assert child is not None and child.proc.poll() == 0  # exited, told to stop
    assert (tmp_path / "R" / "ledger.sqlite").is_file()  # the run was there...
    assert not (tmp_path / "R" / "readable").exists()  # ...and nothing rendered it
