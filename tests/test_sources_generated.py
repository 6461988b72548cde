"""The `generated` source: `count` numbered task slots with a seed each, no input file.

The same config gives the same tasks in every process (so resume and the plan pin hold), the
selection (max_tasks, task_ids_file) applies as to any source without building the slots
it drops, and a plans run over the slots works end to end against the fake server.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import benchsmith.sources.generated as generated
from benchsmith import api
from benchsmith.config import parse_config
from benchsmith.errors import ConfigError
from benchsmith.recipes.prompt import task_text
from benchsmith.records import Task
from benchsmith.sources import load_tasks
from benchsmith.validate.run_checks import check_run
from fake_openai import FakeOpenAI
from helpers import (
    KEY_ENV,
    SECRET,
    assert_terminal_invariants,
    cfg_dict,
    cli_env,
    read_json,
    read_jsonl,
    request_messages,
    run_cli,
    write_yaml,
)

SRC = Path(__file__).resolve().parents[1] / "src"


def _load(spec: dict[str, Any], tmp_path: Path | None = None, name: str = "slots") -> list[Task]:
    cfg = parse_config({"datasets": {name: spec}}, config_dir=str(tmp_path or "."))
    return load_tasks(name, cfg.datasets[name], cfg)


def _config_error(spec: dict[str, Any], name: str = "slots") -> str:
    with pytest.raises(ConfigError) as ei:
        _load(spec, name=name)
    msg = str(ei.value)
    assert "\n" not in msg
    return msg


# --------------------------------------------------------------------------- the slots


def test_slots_are_numbered_seeded_and_repeatable() -> None:
    tasks = _load({"source": "generated", "count": 12, "seed": 5})
    assert [t.id for t in tasks] == [f"slot-{i:05d}" for i in range(12)]
    assert [t.context["slot"] for t in tasks] == list(range(12))
    seeds = [t.context["seed"] for t in tasks]
    assert all(isinstance(s, int) and 0 <= s < 2**31 for s in seeds)
    assert len(set(seeds)) == 12  # neighbouring slots get unrelated seeds
    assert all(t.dataset == "slots" and t.primary == "" and not t.extras for t in tasks)
    # Loading again gives equal tasks; another seed gives other slot seeds, same ids.
    assert _load({"source": "generated", "count": 12, "seed": 5}) == tasks
    other = _load({"source": "generated", "count": 12, "seed": 6})
    assert [t.id for t in other] == [t.id for t in tasks]
    assert not {t.context["seed"] for t in other} & set(seeds)
    # A slot's seed does not depend on how many slots there are.
    assert _load({"source": "generated", "count": 3, "seed": 5}) == tasks[:3]
    # The default seed is 0; a negative seed is a seed like any other.
    assert _load({"source": "generated", "count": 2}) == _load(
        {"source": "generated", "count": 2, "seed": 0})
    neg = _load({"source": "generated", "count": 2, "seed": -1})
    assert [t.context["seed"] for t in neg] != [t.context["seed"] for t in tasks[:2]]
    # The prompt block shows the slot and its seed.
    text = task_text(tasks[3])
    assert f"slot: 3\nseed: {seeds[3]}" in text


def test_wider_ids_keep_sorting_in_slot_order() -> None:
    count = 100_001
    tasks = _load({"source": "generated", "count": count, "max_tasks": 2})
    assert [t.id for t in tasks] == ["slot-000000", "slot-000001"]
    ids = [generated.slot_id(i, count) for i in (9, 10, 99_999, 100_000)]
    assert ids == sorted(ids)


def test_slots_match_across_processes(tmp_path: Path) -> None:
    """Another interpreter (another hash seed) builds the same tasks."""
    spec = {"source": "generated", "count": 5, "seed": 1234}
    code = (
        "import json; from benchsmith.config import parse_config; "
        "from benchsmith.sources import load_tasks; "
        f"c = parse_config({{'datasets': {{'slots': {spec!r}}}}}); "
        "print(json.dumps([t.to_dict() for t in load_tasks('slots', c.datasets['slots'], c)]))"
    )
    env = cli_env(PYTHONPATH=str(SRC), PYTHONHASHSEED="12345")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True).stdout
    assert json.loads(out) == [t.to_dict() for t in _load(spec)]


def test_huge_count_builds_only_the_selected_slots(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    built: list[int] = []
    real = generated.slot_task

    def counting(dataset: str, i: int, count: int, seed: int) -> Task:
        built.append(i)
        return real(dataset, i, count, seed)

    monkeypatch.setattr(generated, "slot_task", counting)
    tasks = _load({"source": "generated", "count": 1_000_000, "max_tasks": 3})
    assert [t.id for t in tasks] == ["slot-000000", "slot-000001", "slot-000002"]
    assert built == [0, 1, 2]

    # An allowlist builds the slots it names, in slot order, then max_tasks caps them.
    ids = tmp_path / "ids.txt"
    ids.write_text("slot-999999\nslot-000007\nslot-500000\n", encoding="utf-8")
    built.clear()
    tasks = _load({"source": "generated", "count": 1_000_000, "task_ids_file": str(ids),
                   "max_tasks": 2}, tmp_path)
    assert [t.id for t in tasks] == ["slot-000007", "slot-500000"]
    assert built == [7, 500_000, 999_999]
    assert tasks[1].context == {"slot": 500_000, "seed": generated.slot_seed(0, 500_000)}


@pytest.mark.parametrize("wrong", ["slot-1000000", "slot-7", "slot-00007", "task-000007"])
def test_allowlist_id_that_is_no_slot_is_named(tmp_path: Path, wrong: str) -> None:
    ids = tmp_path / "ids.txt"
    ids.write_text(f"slot-000001\n{wrong}\n", encoding="utf-8")
    with pytest.raises(ConfigError) as ei:
        _load({"source": "generated", "count": 1_000_000, "task_ids_file": str(ids)}, tmp_path)
    msg = str(ei.value)
    assert "datasets.slots.task_ids_file" in msg and repr(wrong) in msg and "\n" not in msg


# --------------------------------------------------------------------------- config checks


@pytest.mark.parametrize(("spec", "field", "words"), [
    ({"source": "generated"}, "datasets.slots.count", "needs `count`"),
    ({"source": "generated", "count": 0}, "datasets.slots.count", "greater than or equal to 1"),
    ({"source": "generated", "count": -3}, "datasets.slots.count", "greater than or equal to 1"),
    ({"source": "generated", "count": 10**9}, "datasets.slots.count", "less than or equal"),
    ({"source": "generated", "count": True}, "datasets.slots.count", "valid integer"),
    ({"source": "generated", "count": "5"}, "datasets.slots.count", "valid integer"),
    ({"source": "generated", "count": 2, "seed": 1.5}, "datasets.slots.seed", "valid integer"),
    ({"source": "generated", "count": 2, "path": "x.jsonl"}, "datasets.slots.path", "reads no file"),
    ({"source": "generated", "count": 2, "hf_name": "x/y"}, "datasets.slots.hf_name", "not used"),
    ({"source": "generated", "count": 2, "stage": "plans"}, "datasets.slots.stage",
     "only used with source run"),
    ({"count": 2}, "datasets.slots.count", "only used with source generated"),
    ({"source": "jsonl", "path": "x.jsonl", "seed": 1}, "datasets.slots.seed",
     "only used with source generated"),
])
def test_bad_generated_settings_name_the_field(
    spec: dict[str, Any], field: str, words: str
) -> None:
    msg = _config_error(spec)
    assert f": {field}: " in msg and words in msg, msg


def test_count_on_a_known_dataset_name_is_refused() -> None:
    msg = _config_error({"count": 3}, name="humaneval")
    assert "datasets.humaneval.count" in msg and "source generated" in msg


def test_older_datasets_plan_the_same_fingerprint_fields(
    fake_openai: FakeOpenAI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The new keys stay out of the plan of a dataset that does not use them (a run planned
    before they existed resumes unrefused); a generated one pins count and seed."""
    monkeypatch.setenv(KEY_ENV, SECRET)
    data = cfg_dict(tmp_path, fake_openai.base_url, tasks=1)
    data["datasets"]["slots"] = {"source": "generated", "count": 2}
    cfg = parse_config(data, file=str(tmp_path / "c.yaml"), config_dir=str(tmp_path))
    api.dry_run(cfg, "D")
    fields = read_json(tmp_path / "runs/D/config/plan.json")["fields"]
    ds = {k: v for k, v in fields.items() if k.startswith("datasets.")}
    assert not [k for k in ds if k.startswith("datasets.humaneval.")
                and k.rsplit(".", 1)[1] in ("count", "seed", "stage", "records")]
    assert ds["datasets.slots.count"] == 2 and ds["datasets.slots.seed"] == 0
    assert ds["datasets.slots.source"] == "generated"


# --------------------------------------------------------------------------- a run over slots


def test_plans_run_over_generated_slots(
    fake_openai: FakeOpenAI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_ENV, SECRET)
    data = cfg_dict(tmp_path, fake_openai.base_url, {
        "recipe_options": {"calls_per_task": 2, "diversity": False}})
    data["datasets"] = {"slots": {"source": "generated", "count": 50, "seed": 9, "max_tasks": 3}}
    conf = write_yaml(tmp_path / "slots.yaml", data)
    cfg = parse_config(data, file=str(conf), config_dir=str(tmp_path))
    want = _load({"source": "generated", "count": 50, "seed": 9, "max_tasks": 3})

    summary = api.run(cfg, "G")
    assert summary.stopped is None, summary.message
    assert summary.counts == {"ok": 2 * 3}
    rd = tmp_path / "runs" / "G"
    assert [Task.from_dict(t) for t in read_jsonl(rd / "datasets/slots/tasks.jsonl")] == want
    assert {p["task_id"] for p in read_jsonl(rd / "datasets/slots/plans.jsonl")} == {
        t.id for t in want}
    # Each slot's seed reaches its prompts.
    prompts = ["\n".join(str(m.get("content")) for m in request_messages(r.body))
               for r in fake_openai.requests]
    for t in want:
        assert sum(f"seed: {t.context['seed']}" in p for p in prompts) == 2
    assert_terminal_invariants(rd)
    assert not [r for r in check_run(rd) if not r.ok]  # validate-run passes on it

    # Another process plans the same requests: its dry-run on the run is not refused and
    # asks nothing new.
    before = len(fake_openai.requests)
    res = run_cli(["dry-run", "--config", str(conf), "--run-id", "G", "--json"],
                  env=cli_env(**{KEY_ENV: SECRET}))
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["requests"] == 0 and out["tasks"] == {"slots": 3}
    assert len(fake_openai.requests) == before

    # Another seed is another plan: refused on resume, naming the seed.
    data["datasets"]["slots"]["seed"] = 10
    with pytest.raises(ConfigError) as ei:
        api.run(parse_config(data, file=str(conf), config_dir=str(tmp_path)), "G", resume=True)
    assert "datasets.slots.seed: 9 -> 10" in str(ei.value)
