"""prepare-sections / merge-sections on real SWE-bench Verified and RefactorBench data.

The main config sections 10 SWE-bench Verified tasks and 6 RefactorBench tasks (plus a
humaneval dataset that is not sectioned) in sections of 4; the three sections run against
the FakeOpenAI server and are merged. Expected ids come straight from the data files; expected
totals come from the section ledgers.
"""

from __future__ import annotations

import gzip
import json
import sqlite3
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from benchsmith import api
from benchsmith.cli.app import app
from benchsmith.config import load_config
from benchsmith.sources import load_tasks
from fake_openai import FakeOpenAI
from helpers import KEY_ENV, SECRET, cli_env, ledger_of, read_json, read_jsonl, run_cli

SWE = Path("/work/shared/data/swebench_verified/swebench_verified_test.jsonl.gz")
RB_SRC = Path("/work/shared/data/refactorbench/refactorbench_tasks.jsonl")
PRICE = {"input": 0.25, "cached_input": 0.025, "output": 2.0}
SIZE = 4
N_SWE, N_RB = 10, 6

pytestmark = pytest.mark.skipif(
    not (SWE.is_file() and RB_SRC.is_file()), reason="shared benchmark data not available"
)


# --------------------------------------------------------------------------- data


def swe_ids() -> list[str]:
    with gzip.open(SWE, "rt", encoding="utf-8") as fh:
        return sorted(json.loads(line)["instance_id"] for line in fh if line.strip())


def rb_rows() -> list[dict[str, Any]]:
    rows = []
    for line in RB_SRC.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        r = json.loads(line)
        rows.append(
            {
                "task_id": r["task_id"],
                "instruction": r["base_instruction"],
                "repo_dir": r["repo_dir"],
                "upstream_repo": r["upstream_repo"],
                "variant": "base",
                "files": [],
                "test_file": r["test_file"],
            }
        )
    return rows


def chunks(ids: list[str], size: int) -> list[list[str]]:
    return [ids[i:i + size] for i in range(0, len(ids), size)]


# --------------------------------------------------------------------------- set-up


class World:
    """Main config, prepared sections and their finished runs (built once per module)."""

    root: Path
    main_cfg: Path
    run_root: Path
    out: Path
    server: FakeOpenAI
    prepare_output: str
    swe: list[str]
    rb: list[str]
    section_cfgs: list[Path]
    section_runs: list[Path]


def write_main_config(root: Path, base_url: str) -> Path:
    data_dir = root / "main" / "data"
    data_dir.mkdir(parents=True)
    with (data_dir / "refactorbench_small.jsonl").open("w", encoding="utf-8") as fh:
        for r in rb_rows():
            fh.write(json.dumps(r) + "\n")
    cfg = {
        "run_dir": "runs",  # relative: must stay the main config's run dir in the sections
        "datasets": {
            "swebench_verified": {"path": str(SWE), "max_tasks": N_SWE},
            "refactorbench_py": {
                "source": "refactorbench_py",
                "path": "data/refactorbench_small.jsonl",  # relative to the main config
                "max_tasks": N_RB,
            },
            "humaneval": {"source": "humaneval", "max_tasks": 2},
        },
        "recipe_options": {"calls_per_task": 1, "plans_per_call": 2, "max_validation_retries": 1},
        "openai": {"base_url": base_url, "api_key_env": KEY_ENV},
        "engine": {"concurrency": 4, "max_retries": 2, "timeout_s": 10,
                   "backoff_base_s": 0.01, "backoff_max_s": 0.5},
        "prices": {"gpt-5-mini": PRICE, "gpt-5-nano": PRICE},
    }
    path = root / "main" / "main.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Any:
    mp = pytest.MonkeyPatch()
    mp.setenv(KEY_ENV, SECRET)
    server = FakeOpenAI().start()
    try:
        w = World()
        w.root = tmp_path_factory.mktemp("sections")
        w.server = server
        w.main_cfg = write_main_config(w.root, server.base_url)
        w.run_root = w.root / "main" / "runs"
        w.out = w.root / "work" / "section_runs"
        w.swe = swe_ids()[:N_SWE]
        w.rb = sorted(r["task_id"] for r in rb_rows())[:N_RB]
        res = CliRunner().invoke(
            app,
            ["prepare-sections", "--config", str(w.main_cfg), "--section-size", str(SIZE),
             "--sections", "4", "--output-dir", str(w.out), "--run-prefix", "full_system"],
        )
        assert res.exit_code == 0, res.output
        w.prepare_output = res.stdout
        w.section_cfgs = [w.out / f"section_{i:02d}" / "section_config.yaml" for i in (1, 2, 3)]
        w.section_runs = []
        for i, c in enumerate(w.section_cfgs, 1):
            summary = api.run(load_config(c), run_id=f"full_system_section_{i:02d}")
            assert summary.stopped is None, summary.message
            w.section_runs.append(summary.run_dir)
        yield w
    finally:
        server.stop()
        mp.undo()


def invoke(args: list[str]) -> Any:
    return CliRunner().invoke(app, args)


def merge(world: World, pairs: list[tuple[str, Path]], out_id: str, *extra: str) -> Any:
    args = ["merge-sections"]
    for name, path in pairs:
        args += ["--section-run", f"{name}={path}"]
    return invoke([*args, "--output-run-id", out_id, *extra])


def plan_set(run_dir: Path, dataset: str) -> set[str]:
    """Plans as canonical JSON (plan id and content); request ids included."""
    path = Path(run_dir) / "datasets" / dataset / "plans.jsonl"
    return {json.dumps(r, sort_keys=True) for r in read_jsonl(path)} if path.exists() else set()


def ledger_totals(run_dir: Path) -> tuple[dict[str, int], float]:
    with ledger_of(run_dir) as led:
        settled, unsettled = led.spend()
        return led.usage_totals(), settled + unsettled


def totals_excluding(run_dir: Path, drop: set[tuple[str, str]]) -> tuple[dict[str, int], float]:
    """Usage and spend of the attempts whose task is not in `drop`, straight from SQL."""
    db = sqlite3.connect(f"file:{Path(run_dir) / 'ledger.sqlite'}?mode=ro", uri=True)
    try:
        rows = db.execute(
            "SELECT u.dataset, u.task_id, a.input_tokens, a.cached_input_tokens, a.output_tokens,"
            " a.reasoning_tokens, COALESCE(a.cost_usd, 0), a.status, a.reserved_usd"
            " FROM attempts a JOIN units u USING (unit_id)"
        ).fetchall()
    finally:
        db.close()
    usage = Counter()
    spent = 0.0
    for ds, tid, i, c, o, r, cost, status, reserved in rows:
        if (ds, tid) in drop:
            continue
        usage.update(api_calls=1, input_tokens=i, cached_input_tokens=c, output_tokens=o,
                     reasoning_tokens=r)
        spent += cost + (reserved if status == "sent" else 0.0)
    return dict(usage), spent


def add_usage(*us: dict[str, int]) -> dict[str, int]:
    out: Counter[str] = Counter()
    for u in us:
        out.update(u)
    return dict(out)


def error_lines(res: Any) -> list[str]:
    return [ln for ln in res.output.splitlines() if ln.strip()]


# --------------------------------------------------------------------------- prepare


def test_prepare_writes_sections_with_expected_tasks(world: World) -> None:
    swe_chunks, rb_chunks = chunks(world.swe, SIZE), chunks(world.rb, SIZE)
    assert [len(c) for c in swe_chunks] == [4, 4, 2] and [len(c) for c in rb_chunks] == [4, 2]
    man = read_json(world.out / "sections_manifest.json")
    assert man["run_prefix"] == "full_system" and man["section_size"] == SIZE
    assert man["sections_written"] == 3 and man["sections_needed"] == 3
    assert man["leftover"] == {"swebench_verified": 0, "refactorbench_py": 0}
    assert "humaneval" in man["excluded_datasets"]
    assert [s["name"] for s in man["sections"]] == ["section_01", "section_02", "section_03"]
    main_runs = world.run_root.resolve()
    for k, s in enumerate(man["sections"]):
        name = f"section_{k + 1:02d}"
        sdir = world.out / name
        exp_swe = swe_chunks[k]
        exp_rb = rb_chunks[k] if k < len(rb_chunks) else []
        assert s["run_id"] == f"full_system_{name}"
        assert s["config"] == f"{name}/section_config.yaml"
        assert s["datasets"]["swebench_verified"]["count"] == len(exp_swe)
        assert s["datasets"]["swebench_verified"]["first_id"] == exp_swe[0]
        assert s["datasets"]["swebench_verified"]["last_id"] == exp_swe[-1]
        assert s["datasets"]["refactorbench_py"]["count"] == len(exp_rb)
        assert s["datasets"]["refactorbench_py"]["first_id"] == (exp_rb[0] if exp_rb else None)
        assert read_json(sdir / "swebench_verified_task_ids.json") == exp_swe
        assert read_json(sdir / "refactorbench_py_task_ids.json") == exp_rb

        # The section config loads from anywhere and yields exactly the section's tasks.
        cfg = load_config(sdir / "section_config.yaml")
        assert Path(cfg.resolve(cfg.run_dir)).resolve() == main_runs
        assert "humaneval" not in cfg.datasets
        assert ("refactorbench_py" in cfg.datasets) == bool(exp_rb)
        for ds in cfg.datasets.values():
            assert ds.max_tasks is None
        got = {n: [t.id for t in load_tasks(n, d, cfg)] for n, d in cfg.datasets.items()}
        assert got["swebench_verified"] == exp_swe
        assert got.get("refactorbench_py", []) == exp_rb
        raw = yaml.safe_load((sdir / "section_config.yaml").read_text(encoding="utf-8"))
        assert Path(raw["run_dir"]).is_absolute()
        assert all(Path(d["path"]).is_absolute() for d in raw["datasets"].values())
        # The run command is printed for every section.
        cmd = (f"benchsmith run --config {sdir / 'section_config.yaml'} "
               f"--run-id full_system_{name}")
        assert cmd in world.prepare_output


def test_prepare_sections_cap_reports_leftover(world: World, tmp_path: Path) -> None:
    out = tmp_path / "capped"
    res = invoke(["prepare-sections", "-c", str(world.main_cfg), "--section-size", "4",
                  "--sections", "2", "--output-dir", str(out), "--json"])
    assert res.exit_code == 0, res.output
    man = json.loads(res.stdout)
    assert man["sections_written"] == 2 and man["sections_needed"] == 3
    assert man["leftover"] == {"swebench_verified": N_SWE - 8, "refactorbench_py": 0}
    assert man["datasets"]["swebench_verified"]["leftover_first_id"] == world.swe[8]
    assert sorted(p.name for p in out.iterdir()) == [
        "section_01", "section_02", "sections_manifest.json"]
    # Preparing into the same folder again needs --force.
    again = invoke(["prepare-sections", "-c", str(world.main_cfg), "--section-size", "4",
                    "--output-dir", str(out)])
    assert again.exit_code == 1 and len(error_lines(again)) == 1
    assert "--force" in again.output and "Traceback" not in again.output
    forced = invoke(["prepare-sections", "-c", str(world.main_cfg), "--section-size", "8",
                     "--output-dir", str(out), "--force"])
    assert forced.exit_code == 0, forced.output
    assert sorted(p.name for p in out.iterdir()) == [
        "section_01", "section_02", "sections_manifest.json"]
    assert read_json(out / "section_02" / "swebench_verified_task_ids.json") == world.swe[8:]


def test_prepare_applies_the_datasets_own_allowlist_first(world: World, tmp_path: Path) -> None:
    """Sections cut the list the main config selects: its task_ids_file, then max_tasks."""
    all_rb = sorted(r["task_id"] for r in rb_rows())
    allow = all_rb[::7]  # every 7th id, written unsorted
    main = tmp_path / "m"
    main.mkdir()
    (main / "allow.txt").write_text("\n".join(reversed(allow)) + "\n", encoding="utf-8")
    raw = yaml.safe_load(world.main_cfg.read_text(encoding="utf-8"))
    raw["datasets"] = {
        "refactorbench_py": {
            "path": str(world.root / "main" / "data" / "refactorbench_small.jsonl"),
            "task_ids_file": "allow.txt",
            "max_tasks": 5,
        }
    }
    (main / "cfg.yaml").write_text(yaml.safe_dump(raw), encoding="utf-8")
    res = invoke(["prepare-sections", "-c", str(main / "cfg.yaml"), "--section-size", "2",
                  "-o", str(tmp_path / "o")])
    assert res.exit_code == 0, res.output
    want = chunks(sorted(allow)[:5], 2)
    man = read_json(tmp_path / "o" / "sections_manifest.json")
    assert man["run_prefix"] == "cfg" and man["sections_written"] == len(want) == 3
    for k, ids in enumerate(want, 1):
        c = load_config(tmp_path / "o" / f"section_{k:02d}" / "section_config.yaml")
        ds = c.datasets["refactorbench_py"]
        assert [t.id for t in load_tasks("refactorbench_py", ds, c)] == ids


def test_prepare_errors_are_one_line(world: World, tmp_path: Path) -> None:
    cases = [
        (["--config", str(tmp_path / "missing.yaml"), "--section-size", "4"], "not found"),
        (["--config", str(world.main_cfg), "--section-size", "0"], "--section-size"),
        (["--config", str(world.main_cfg), "--section-size", "4", "--dataset", "nope"], "nope"),
    ]
    for args, needle in cases:
        res = invoke(["prepare-sections", *args, "--output-dir", str(tmp_path / "o")])
        assert res.exit_code == 1, res.output
        assert len(error_lines(res)) == 1 and needle in res.output, res.output
        assert "Traceback" not in res.output


# --------------------------------------------------------------------------- merge


def test_merge_all_sections(world: World) -> None:
    pairs = [(f"s{i}", p) for i, p in enumerate(world.section_runs, 1)]
    res = merge(world, pairs, "merged_all")
    assert res.exit_code == 0, res.output
    merged = world.run_root / "merged_all"
    assert f"run dir:   {merged.resolve()}" in res.stdout or str(merged) in res.stdout

    # Same layout as any run.
    for rel in ["ledger.sqlite", "runs.jsonl", "logs/batch_calls.jsonl",
                "prompts/plan_prompt_template.txt", "config/run_config.json",
                "config/merge_manifest.json", "config/merge_attempt_ids.jsonl",
                "config/sections/s1.json", "config/sections/s2.json", "config/sections/s3.json"]:
        assert (merged / rel).is_file(), rel
    for ds in ("swebench_verified", "refactorbench_py"):
        for rel in [f"datasets/{ds}/tasks.jsonl", f"datasets/{ds}/plans.jsonl",
                    f"manifests/{ds}_task_ids.json", f"manifests/{ds}_complete_task_ids.json",
                    f"manifests/{ds}_incomplete_task_ids.json",
                    f"failed_plans/datasets/{ds}/plans.jsonl"]:
            assert (merged / rel).is_file(), rel
    assert not list(merged.parent.glob(".merged_all.merging-*"))

    # Every task exactly once.
    expected = {"swebench_verified": world.swe, "refactorbench_py": world.rb}
    for ds, ids in expected.items():
        rows = read_jsonl(merged / "datasets" / ds / "tasks.jsonl")
        assert [r["task_id"] for r in rows] == ids
        assert read_json(merged / "manifests" / f"{ds}_task_ids.json") == ids
        # Manifests are the union of the sections'.
        for kind in ("task_ids", "complete_task_ids", "incomplete_task_ids"):
            union: set[str] = set()
            for rd in world.section_runs:
                p = rd / "manifests" / f"{ds}_{kind}.json"
                if p.exists():
                    union |= set(read_json(p))
            got = read_json(merged / "manifests" / f"{ds}_{kind}.json")
            assert sorted(got) == sorted(union) and len(got) == len(set(got)), (ds, kind)
        # Plans are the sections' plans, nothing more or less.
        union_plans: set[str] = set()
        for rd in world.section_runs:
            union_plans |= plan_set(rd, ds)
        assert union_plans and plan_set(merged, ds) == union_plans
        plan_ids = [r["plan_id"] for r in read_jsonl(merged / "datasets" / ds / "plans.jsonl")]
        assert len(plan_ids) == len(set(plan_ids))
    with ledger_of(merged) as led:
        keys = [(t.dataset, t.id) for t in led.tasks()]
        assert len(keys) == len(set(keys)) == N_SWE + N_RB

    # Totals add up.
    parts = [ledger_totals(rd) for rd in world.section_runs]
    usage, spent = ledger_totals(merged)
    assert usage == add_usage(*(u for u, _ in parts))
    assert spent == pytest.approx(sum(s for _, s in parts), rel=1e-9, abs=1e-12)
    assert spent > 0
    man = read_json(merged / "config" / "merge_manifest.json")
    assert [s["name"] for s in man["sections"]] == ["s1", "s2", "s3"]
    assert man["totals"]["usage"] == usage
    assert man["totals"]["spent_usd"] == pytest.approx(spent)
    assert man["totals"]["tasks"] == {"swebench_verified": N_SWE, "refactorbench_py": N_RB}
    for s, (u, sp) in zip(man["sections"], parts):
        assert s["usage"] == u and s["spent_usd"] == pytest.approx(sp)
        assert s["dropped"]["usage"]["api_calls"] == 0

    # Calls log and runs.jsonl: one line per section attempt / invocation, ids renumbered.
    calls = read_jsonl(merged / "logs" / "batch_calls.jsonl")
    assert len(calls) == usage["api_calls"]
    assert [c["id"] for c in calls] == list(range(1, len(calls) + 1))
    section_calls = Counter()
    for rd in world.section_runs:
        for c in read_jsonl(rd / "logs" / "batch_calls.jsonl"):
            section_calls[(c["request_id"], c["attempt"], c["status"])] += 1
    assert Counter((c["request_id"], c["attempt"], c["status"]) for c in calls) == section_calls
    runs = read_jsonl(merged / "runs.jsonl")
    assert len(runs) == sum(len(read_jsonl(rd / "runs.jsonl")) for rd in world.section_runs)
    heads = [r["message"].split(",")[0] for r in runs]
    assert heads == ["[section s1", "[section s2", "[section s3"]
    assert sum(r["api_calls"] for r in runs) == usage["api_calls"]
    amap = read_jsonl(merged / "config" / "merge_attempt_ids.jsonl")
    assert sorted(m["merged_attempt_id"] for m in amap) == [c["id"] for c in calls]

    # The merged run reads like any run.
    st = api.run_status(merged)
    assert st["usage"] == usage
    assert st["datasets"]["swebench_verified"]["tasks"] == N_SWE
    assert read_json(merged / "config" / "run_config.json") == read_json(
        world.section_runs[0] / "config" / "run_config.json")

    # The output run now exists: merging into it again is a one-line error.
    again = merge(world, pairs, "merged_all")
    assert again.exit_code == 1 and len(error_lines(again)) == 1
    assert "already exists" in again.output and "Traceback" not in again.output


@pytest.fixture(scope="module")
def dup_run(world: World) -> Path:
    """A run that repeats 2 SWE-bench tasks of section 2 with another model (other plans)."""
    ids = chunks(world.swe, SIZE)[1][:2]
    d = world.root / "work" / "dup"
    d.mkdir(parents=True)
    (d / "ids.json").write_text(json.dumps(ids), encoding="utf-8")
    raw = yaml.safe_load(world.section_cfgs[1].read_text(encoding="utf-8"))
    raw["datasets"] = {"swebench_verified": {**raw["datasets"]["swebench_verified"],
                                             "task_ids_file": "ids.json"}}
    raw["model"] = {"name": "gpt-5-nano"}
    (d / "dup.yaml").write_text(yaml.safe_dump(raw), encoding="utf-8")
    summary = api.run(load_config(d / "dup.yaml"), run_id="dup_run")
    assert summary.stopped is None
    return summary.run_dir


def test_merge_duplicate_task_is_an_error_without_prefer(world: World, dup_run: Path) -> None:
    s1, s2, _ = world.section_runs
    res = merge(world, [("s1", s1), ("s2", s2), ("dup", dup_run)], "merged_dup_err")
    assert res.exit_code == 1
    lines = error_lines(res)
    assert len(lines) == 1, res.output
    dup_ids = chunks(world.swe, SIZE)[1][:2]
    assert "s2" in lines[0] and "dup" in lines[0] and dup_ids[0] in lines[0]
    assert "--prefer" in lines[0] and "Traceback" not in res.output
    assert not (world.run_root / "merged_dup_err").exists()
    assert not list(world.run_root.glob(".merged_dup_err.merging-*"))


@pytest.mark.parametrize("winner", ["dup", "s2"])
def test_merge_prefer_keeps_the_winner(world: World, dup_run: Path, winner: str) -> None:
    s1, s2, _ = world.section_runs
    out_id = f"merged_prefer_{winner}"
    res = merge(world, [("s1", s1), ("s2", s2), ("dup", dup_run)], out_id, "--prefer", winner)
    assert res.exit_code == 0, res.output
    merged = world.run_root / out_id
    dup_keys = {("swebench_verified", t) for t in chunks(world.swe, SIZE)[1][:2]}
    loser = {"dup": s2, "s2": dup_run}[winner]
    winner_dir = {"dup": dup_run, "s2": s2}[winner]

    # Every task once; the duplicated tasks' plans are the winner's.
    rows = read_jsonl(merged / "datasets" / "swebench_verified" / "tasks.jsonl")
    assert [r["task_id"] for r in rows] == world.swe[:8]
    plans = read_jsonl(merged / "datasets" / "swebench_verified" / "plans.jsonl")
    won = {json.dumps(p, sort_keys=True)
           for p in plans if ("swebench_verified", p["task_id"]) in dup_keys}
    want = {p for p in plan_set(winner_dir, "swebench_verified")
            if ("swebench_verified", json.loads(p)["task_id"]) in dup_keys}
    assert won and won == want
    assert {p["model"] for p in plans if ("swebench_verified", p["task_id"]) in dup_keys} == {
        "gpt-5-nano" if winner == "dup" else "gpt-5-mini"}
    ids = [p["plan_id"] for p in plans]
    assert len(ids) == len(set(ids))

    # Totals: s1 + the kept parts of s2 and dup; the loser's duplicate cost is reported.
    u1, sp1 = ledger_totals(s1)
    uw, spw = totals_excluding(winner_dir, set())
    ul, spl = totals_excluding(loser, dup_keys)
    usage, spent = ledger_totals(merged)
    assert usage == add_usage(u1, uw, ul)
    assert spent == pytest.approx(sp1 + spw + spl, rel=1e-9, abs=1e-12)
    full_loser_usage, full_loser_spent = ledger_totals(loser)
    dropped_spent = full_loser_spent - spl
    assert dropped_spent > 0
    man = read_json(merged / "config" / "merge_manifest.json")
    loser_name = "s2" if winner == "dup" else "dup"
    by_name = {s["name"]: s for s in man["sections"]}
    assert by_name[loser_name]["dropped"]["spent_usd"] == pytest.approx(dropped_spent)
    assert by_name[loser_name]["dropped"]["usage"]["api_calls"] == (
        full_loser_usage["api_calls"] - ul.get("api_calls", 0))
    assert by_name[loser_name]["dropped"]["tasks"] == {"swebench_verified": 2}
    assert {(d["dataset"], d["task_id"]) for d in man["duplicates"]} == dup_keys
    assert all(d["kept"] == winner for d in man["duplicates"])
    assert "not in the merged totals" in res.stdout and f"${dropped_spent:.4f}" in res.stdout


def test_merge_input_errors_are_one_line(world: World, tmp_path: Path) -> None:
    s1 = world.section_runs[0]
    (tmp_path / "not_a_run").mkdir()
    cases = [
        (["--section-run", f"s1{s1}"], "NAME=RUN_DIR"),
        (["--section-run", f"={s1}"], "NAME=RUN_DIR"),
        (["--section-run", f"bad/name={s1}"], "section name"),
        (["--section-run", f"s1={tmp_path / 'not_a_run'}"], "not a run directory"),
        (["--section-run", f"s1={tmp_path / 'missing'}"], "no such run directory"),
        (["--section-run", f"s1={s1}", "--section-run", f"s1={world.section_runs[1]}"], "twice"),
        (["--section-run", f"s1={s1}", "--section-run", f"s2={s1}"], "same run directory"),
        (["--section-run", f"s1={s1}", "--prefer", "s9"], "not a section"),
        (["--section-run", "[/bold]x"], "[/bold]x"),  # rich markup in a message is shown as is
    ]
    for args, needle in cases:
        res = invoke(["merge-sections", *args, "--output-run-id", "x_err",
                      "--run-dir", str(tmp_path / "runs")])
        assert res.exit_code == 1, (args, res.output)
        assert len(error_lines(res)) == 1 and needle in res.output, (args, res.output)
        assert "Traceback" not in res.output
    assert not (tmp_path / "runs" / "x_err").exists()


def test_merge_cli_binary_run_dir_and_json(world: World, tmp_path: Path) -> None:
    s1, _, s3 = world.section_runs
    out = tmp_path / "elsewhere"
    res = run_cli(["merge-sections", "--section-run", f"a={s1}", "--section-run", f"b={s3}",
                   "--output-run-id", "m1", "--run-dir", str(out), "--json"], env=cli_env())
    assert res.returncode == 0, res.stderr
    man = json.loads(res.stdout)
    assert man["run_dir"] == str(out / "m1") and (out / "m1" / "ledger.sqlite").is_file()
    assert man["totals"]["tasks"] == {
        "swebench_verified": len(chunks(world.swe, SIZE)[0]) + len(chunks(world.swe, SIZE)[2]),
        "refactorbench_py": len(chunks(world.rb, SIZE)[0]),
    }
    bad = run_cli(["merge-sections", "--section-run", "nonsense", "--output-run-id", "m2"],
                  env=cli_env())
    assert bad.returncode == 1 and len([ln for ln in bad.stderr.splitlines() if ln.strip()]) == 1
    assert "Traceback" not in bad.stderr
