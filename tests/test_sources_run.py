"""The `run` source: the valid records of an earlier benchsmith run become tasks.

The earlier run is a real plans (or toy) run against the fake server. Reading it leaves its
files byte for byte as they were; a path that is no run, a damaged ledger, an unknown stage
and the run being planned itself are one-line errors naming the field; a changed source run
is a changed plan.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import orjson
import pytest

import benchsmith.recipes.registry as registry
import toy_recipe
from benchsmith import api
from benchsmith.config import RunConfig, parse_config
from benchsmith.errors import ConfigError
from benchsmith.recipes.prompt import task_text
from benchsmith.sources import load_tasks
from benchsmith.validate.run_checks import check_run
from fake_openai import FakeOpenAI
from helpers import (
    KEY_ENV,
    SECRET,
    assert_terminal_invariants,
    cfg_dict,
    deep_merge,
    files_under,
    read_jsonl,
    request_messages,
)

SOURCE_TASKS = 2
PLANS = {"recipe_options": {"calls_per_task": 2, "plans_per_call": 2, "diversity": False}}
ORIGIN = ("dataset", "task_id", "request_id", "model")


@pytest.fixture
def source_run(fake_openai: FakeOpenAI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A finished plans run over 2 HumanEval tasks: 2 calls x 2 plans each (8 records)."""
    monkeypatch.setenv(KEY_ENV, SECRET)
    cfg = _cfg(tmp_path, fake_openai.base_url, cfg_dict(
        tmp_path, fake_openai.base_url, PLANS, tasks=SOURCE_TASKS))
    summary = api.run(cfg, "A")
    assert summary.stopped is None and summary.counts == {"ok": 4}, summary.message
    return tmp_path / "runs" / "A"


def _cfg(tmp_path: Path, base_url: str, data: dict[str, Any]) -> RunConfig:
    return parse_config(data, file=str(tmp_path / "b.yaml"), config_dir=str(tmp_path))


def _reader(tmp_path: Path, base_url: str, ds: dict[str, Any],
            over: dict[str, Any] | None = None) -> RunConfig:
    """A config whose one dataset, `prior`, is `ds`."""
    data = cfg_dict(tmp_path, base_url, deep_merge(PLANS, over or {}))
    data["datasets"] = {"prior": ds}
    return _cfg(tmp_path, base_url, data)


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in files_under(root)}


def _one_line_error(fn: Any, *args: Any, **kw: Any) -> str:
    with pytest.raises(ConfigError) as ei:
        fn(*args, **kw)
    msg = str(ei.value)
    assert "\n" not in msg and "Traceback" not in msg
    return msg


# --------------------------------------------------------------------------- reading a run


def test_records_of_a_finished_run_become_tasks(
    source_run: Path, fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    before = _snapshot(source_run)
    cfg = _reader(tmp_path, fake_openai.base_url, {"source": "run", "path": "runs/A"})
    tasks = load_tasks("prior", cfg.datasets["prior"], cfg)

    rows = read_jsonl(source_run / "datasets/humaneval/plans.jsonl")
    assert len(rows) == 8 and list(api.read_records(source_run)) == rows
    # One task per record, named by the record's own id (the plans stage's plan_id).
    by_id = {r["plan_id"]: r for r in rows}
    assert [t.id for t in tasks] == sorted(by_id)
    for t in tasks:
        row = by_id[t.id]
        record = {k: v for k, v in row.items() if k not in (*ORIGIN, "attempt", "gold_leak")}
        assert t.dataset == "prior" and t.primary_field == "record"
        assert orjson.loads(t.primary) == record
        assert t.context == {**{k: row[k] for k in ORIGIN}, "record": record}
        text = task_text(t)  # the record once, as the primary text; where it came from after
        assert text.count(row["title"]) == 1
        assert f"dataset: humaneval\ntask_id: {row['task_id']}" in text
    assert _snapshot(source_run) == before  # the source run's files, byte for byte

    # max_tasks applies as to any source.
    cfg = _reader(tmp_path, fake_openai.base_url,
                  {"source": "run", "path": "runs/A", "max_tasks": 3})
    assert [t.id for t in load_tasks("prior", cfg.datasets["prior"], cfg)] == sorted(by_id)[:3]


def test_plans_run_over_another_runs_records(
    source_run: Path, fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    before = _snapshot(source_run)
    asked = len(fake_openai.requests)
    cfg = _reader(tmp_path, fake_openai.base_url,
                  {"source": "run", "path": "runs/A", "max_tasks": 3})
    summary = api.run(cfg, "B")
    assert summary.stopped is None and summary.counts == {"ok": 2 * 3}, summary.message
    rd = tmp_path / "runs" / "B"
    plans = read_jsonl(rd / "datasets/prior/plans.jsonl")
    wanted = sorted(r["plan_id"] for r in read_jsonl(source_run / "datasets/humaneval/plans.jsonl"))
    assert sorted({p["task_id"] for p in plans}) == wanted[:3]
    # The earlier record is what the model is shown.
    first = read_jsonl(rd / "datasets/prior/tasks.jsonl")[0]
    prompts = ["\n".join(str(m.get("content")) for m in request_messages(r.body))
               for r in fake_openai.requests[asked:]]
    assert sum(first["primary"] in p for p in prompts) == 2
    assert_terminal_invariants(rd)
    assert _snapshot(source_run) == before
    assert not [r for r in check_run(rd) if not r.ok]  # validate-run passes on it
    # The plan pins what the source run held.
    fields = orjson.loads((rd / "config/plan.json").read_bytes())["fields"]
    assert fields["datasets.prior.records"].startswith("8 records, sha256:")


def test_changed_source_run_is_a_changed_plan(
    source_run: Path, fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    cfg = _reader(tmp_path, fake_openai.base_url, {"source": "run", "path": "runs/A"})
    api.dry_run(cfg, "B")
    # Someone edits a record of the source run (as a replan of it would change them).
    db = sqlite3.connect(source_run / "ledger.sqlite")
    uid, result = db.execute(
        "SELECT unit_id, result_json FROM units WHERE state='ok' ORDER BY unit_id").fetchone()
    recs = orjson.loads(result)
    recs[0]["title"] = "an edited title"
    db.execute("UPDATE units SET result_json=? WHERE unit_id=?", (orjson.dumps(recs), uid))
    db.commit()
    db.close()
    msg = _one_line_error(api.run, cfg, "B", resume=True)
    assert "planned with other settings" in msg and "--replan" in msg
    assert "datasets.prior.records: 8 records, sha256:" in msg, msg


def test_stage_is_read_from_the_setting_and_ids_fall_back_to_the_request(
    fake_openai: FakeOpenAI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The toy recipe: two stages, records labelled by a title that may repeat; `stage`
    picks the first stage, and the ids fall back to request id + index."""
    monkeypatch.setenv(KEY_ENV, SECRET)
    registry.names()
    monkeypatch.setattr(registry, "_registry", {**registry._registry})
    registry.register(toy_recipe.SPEC)
    toy = {"recipe": "toy", "recipe_options": {"samples": 2, "keywords": 4}}
    cfg = _cfg(tmp_path, fake_openai.base_url, cfg_dict(tmp_path, fake_openai.base_url, toy,
                                                       tasks=2))
    assert api.run(cfg, "T").stopped is None
    src = tmp_path / "runs" / "T"

    for stage, default in (("keywords", False), ("sentence", True)):
        ds = {"source": "run", "path": "runs/T"} | ({} if default else {"stage": stage})
        cfg = _reader(tmp_path, fake_openai.base_url, ds)
        tasks = load_tasks("prior", cfg.datasets["prior"], cfg)
        rows = read_jsonl(src / f"datasets/humaneval/{stage}.jsonl")
        assert len(tasks) == len(rows) == 4
        assert [t.id for t in tasks] == sorted(f"{r['task_id']}#{r['request_id']}.0" for r in rows)
        assert {t.context["record"]["set"] for t in tasks} == {0, 1}
        assert all(("sentence" in t.context["record"]) == default for t in tasks)

    cfg = _reader(tmp_path, fake_openai.base_url,
                  {"source": "run", "path": "runs/T", "stage": "repair"})
    msg = _one_line_error(load_tasks, "prior", cfg.datasets["prior"], cfg)
    assert ": datasets.prior.stage: " in msg and "'repair'" in msg
    assert "keywords, sentence" in msg


# --------------------------------------------------------------------------- refusals


def test_path_that_is_no_run_is_named(fake_openai: FakeOpenAI, tmp_path: Path) -> None:
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "a.txt").write_text("x", encoding="utf-8")
    (tmp_path / "file.jsonl").write_text("{}\n", encoding="utf-8")
    for path, words in (("runs/missing", "not found"), ("notes", "not a benchsmith run"),
                        ("file.jsonl", "is not a folder")):
        cfg = _reader(tmp_path, fake_openai.base_url, {"source": "run", "path": path})
        msg = _one_line_error(load_tasks, "prior", cfg.datasets["prior"], cfg)
        assert ": datasets.prior.path: " in msg and words in msg and "runs/<run id>" in msg, msg
    assert sorted(p.name for p in (tmp_path / "notes").iterdir()) == ["a.txt"]


@pytest.mark.parametrize("damage", ["garbage", "empty", "no_snapshot"])
def test_damaged_source_run_is_one_line(
    source_run: Path, fake_openai: FakeOpenAI, tmp_path: Path, damage: str
) -> None:
    ledger = source_run / "ledger.sqlite"
    if damage == "garbage":
        ledger.write_bytes(b"this is not a database" * 100)
    elif damage == "empty":
        ledger.write_bytes(b"")
    else:
        (source_run / "config/run_config.json").unlink()
    before = _snapshot(source_run)
    cfg = _reader(tmp_path, fake_openai.base_url, {"source": "run", "path": "runs/A"})
    msg = _one_line_error(api.run, cfg, "B")
    assert ": datasets.prior.path: " in msg and "not a readable run" in msg, msg
    assert _snapshot(source_run) == before


def test_a_run_cannot_read_itself(fake_openai: FakeOpenAI, tmp_path: Path,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, SECRET)
    cfg = _reader(tmp_path, fake_openai.base_url, {"source": "run", "path": "runs/S"})
    for fn in (api.dry_run, api.run):
        msg = _one_line_error(fn, cfg, "S")
        assert ": datasets.prior.path: " in msg and "cannot read its own records" in msg, msg
    assert fake_openai.requests == []


def test_a_run_being_written_is_refused(
    source_run: Path, fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    """A live writer of the source run (another thread here, another process in use):
    its records are not final."""
    import threading

    from benchsmith.store.lock import run_lock

    held, done = threading.Event(), threading.Event()

    def writer() -> None:
        with run_lock(source_run, "run"):
            held.set()
            done.wait(30)

    t = threading.Thread(target=writer)
    t.start()
    try:
        assert held.wait(10)
        cfg = _reader(tmp_path, fake_openai.base_url, {"source": "run", "path": "runs/A"})
        msg = _one_line_error(load_tasks, "prior", cfg.datasets["prior"], cfg)
    finally:
        done.set()
        t.join()
    assert "datasets.prior.path" in msg, msg


@pytest.mark.parametrize(("spec", "field", "words"), [
    ({"source": "run"}, "datasets.prior.path", "needs `path`"),
    ({"source": "run", "path": "runs/A", "hf_name": "x/y"}, "datasets.prior.hf_name", "not used"),
    ({"source": "run", "path": "runs/A", "fields": {"id": "x"}}, "datasets.prior.fields",
     "not used"),
    ({"source": "run", "path": "runs/A", "count": 3}, "datasets.prior.count",
     "only used with source generated"),
    ({"source": "jsonl", "path": "a.jsonl", "stage": "plans"}, "datasets.prior.stage",
     "only used with source run"),
])
def test_bad_run_settings_name_the_field(
    tmp_path: Path, spec: dict[str, Any], field: str, words: str
) -> None:
    msg = _one_line_error(parse_config, {"datasets": {"prior": spec}}, file="c.yaml")
    assert f"c.yaml: {field}: " in msg and words in msg, msg
