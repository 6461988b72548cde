"""A run id is a name, never a path; a folder that is not a run is never written into.

Every way a run id enters (CLI flags, section commands, the Python API) is tried with ids
that are paths (`../../escape`, an absolute path, `..`, `.`), hold a newline or are too
long: each is refused with a one-line error and nothing is created anywhere. A folder that
exists but is not a benchsmith run is refused and left byte-identical. Hypothesis fuzzes run
ids, dataset names and the id-to-file-name mappings against path containment.
"""

from __future__ import annotations

import os
import string
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from benchsmith import api
from benchsmith.cli.app import app
from benchsmith.config import parse_config
from benchsmith.errors import ConfigError
from benchsmith.export.markdown import safe_name
from benchsmith.planner import open_run
from benchsmith.sources.repo_structure.lookup import check_iid
from benchsmith.store.names import check_run_id
from benchsmith.store.rundir import RunDir
from benchsmith.sections import merge_sections, prepare_sections
from fake_openai import FakeOpenAI
from helpers import KEY_ENV, SECRET, cli_env, run_cli

RULE = "a run id is a name, not a path"


def bad_ids(tmp_path: Path) -> list[str]:
    return [
        "../../escape",
        str(tmp_path / "abs_run"),
        "..",
        ".",
        "nl\nid",
        "trailing\n",
        "a" * 129,
        "sub/dir",
        ".hidden",
        "",
    ]


def tree(root: Path) -> dict[str, Any]:
    """Every path under `root` with its bytes (files), `<dir>` or its link target."""
    out: dict[str, Any] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            rel = str(p.relative_to(root))
            if p.is_symlink():
                out[rel] = ("link", os.readlink(p))
            elif p.is_dir():
                out[rel] = "<dir>"
            else:
                out[rel] = p.read_bytes()
    return out


def write_config(tmp_path: Path, base_url: str = "http://127.0.0.1:9/v1") -> Path:
    """A one-task HumanEval config in `<tmp>/cfg/`, run_dir `runs` (relative to it)."""
    cfg = {
        "run_dir": "runs",
        "datasets": {"humaneval": {"source": "humaneval", "max_tasks": 1}},
        "recipe": "plans",  # the rollout commands run their own recipe with its defaults
        "recipe_options": {"calls_per_task": 1, "plans_per_call": 2},
        "openai": {"base_url": base_url, "api_key_env": KEY_ENV},
        "engine": {"concurrency": 2, "max_retries": 1, "timeout_s": 5, "backoff_base_s": 0.01},
    }
    path = tmp_path / "cfg" / "c.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
    return path


def one_line_error(output: str) -> str:
    """The error line; warnings about the config (a rollout command given a plans config
    says its options are not used) may come before it."""
    lines = [ln for ln in output.splitlines() if ln.strip() and not ln.startswith("warning:")]
    assert len(lines) == 1, output
    assert "Traceback" not in output
    return lines[0]


def inside(path: Path, root: Path) -> bool:
    """`path` (resolved) lies strictly inside `root` (resolved)."""
    p, r = path.resolve(), root.resolve()
    return p != r and r in p.parents


@pytest.fixture
def key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, SECRET)


# --------------------------------------------------------------------------- CLI flags


@pytest.mark.parametrize(
    "command",
    [["dry-run"], ["run", "--quiet"], ["run", "--quiet", "--resume"], ["rollout", "bugfix", "-q"]],
    ids=["dry-run", "run", "run-resume", "rollout"],
)
def test_cli_refuses_run_ids_that_are_not_names(
    command: list[str], tmp_path: Path, fake_openai: FakeOpenAI, key: None
) -> None:
    cfg = write_config(tmp_path, fake_openai.base_url)
    before = tree(tmp_path)
    for bad in bad_ids(tmp_path):
        res = CliRunner().invoke(app, [*command, "--config", str(cfg), "--run-id", bad])
        assert res.exit_code == 1, (bad, res.output)
        line = one_line_error(res.output)
        assert "--run-id" in line, (bad, line)
        if bad or "--resume" not in command:  # `--resume --run-id ''`: "needs the id" instead
            assert RULE in line, (bad, line)
        assert tree(tmp_path) == before, f"{bad!r} created or changed files"
    assert not fake_openai.requests


def test_binary_refuses_an_escaping_run_id(tmp_path: Path) -> None:
    cfg = write_config(tmp_path)
    before = tree(tmp_path)
    res = run_cli(["dry-run", "--config", str(cfg), "--run-id", "../../escape"])
    assert res.returncode == 1, res.stderr
    line = one_line_error(res.stderr)
    assert "--run-id" in line and "'../../escape'" in line and RULE in line
    assert tree(tmp_path) == before
    assert not (tmp_path / "escape").exists()


def test_a_good_run_id_still_works(tmp_path: Path) -> None:
    cfg = write_config(tmp_path)
    res = CliRunner().invoke(app, ["dry-run", "--config", str(cfg), "--run-id", "v1.2_final-A"])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "cfg" / "runs" / "v1.2_final-A" / "ledger.sqlite").is_file()


# --------------------------------------------------------------------------- Python API


def test_api_refuses_run_ids_that_are_not_names(tmp_path: Path, key: None) -> None:
    cfg = api.load_config(write_config(tmp_path))
    before = tree(tmp_path)
    calls = [
        lambda rid: api.dry_run(cfg, rid),
        lambda rid: api.run(cfg, rid),
        lambda rid: api.run(cfg, rid, resume=True),
        lambda rid: open_run(cfg, rid, resume=False, create=True),
    ]
    for bad in [*bad_ids(tmp_path), Path("x/../y"), 7]:
        for call in calls:
            with pytest.raises(ConfigError) as e:
                call(bad)  # type: ignore[arg-type]
            assert e.value.field == "--run-id", (bad, str(e.value))
            assert RULE in str(e.value) or "needs the id" in str(e.value), (bad, str(e.value))
            assert "\n" not in str(e.value)
        assert tree(tmp_path) == before, f"{bad!r} created or changed files"


# --------------------------------------------------------------------------- section commands


def test_merge_sections_refuses_output_run_ids_that_are_not_names(tmp_path: Path) -> None:
    (tmp_path / "runs").mkdir()
    before = tree(tmp_path)
    for bad in ["m\n", "a" * 129, "../m", ".m", "/tmp/m"]:
        res = CliRunner().invoke(app, [
            "merge-sections", "--section-run", f"s1={tmp_path / 'runs' / 's1'}",
            "--output-run-id", bad, "--run-dir", str(tmp_path / "runs"),
        ])
        assert res.exit_code == 1, (bad, res.output)
        line = one_line_error(res.output)
        assert "--output-run-id" in line and RULE in line, (bad, line)
        with pytest.raises(ConfigError, match="--output-run-id"):
            merge_sections([("s1", tmp_path / "runs" / "s1")], bad, run_dir=tmp_path / "runs")
        assert tree(tmp_path) == before


def test_prepare_sections_refuses_a_prefix_that_makes_too_long_run_ids(tmp_path: Path) -> None:
    cfg = write_config(tmp_path)
    before = tree(tmp_path)
    with pytest.raises(ConfigError) as e:
        prepare_sections(cfg, section_size=1, output_dir=tmp_path / "sec",
                         run_prefix="p" * 128, datasets=["humaneval"])
    assert e.value.field == "--run-prefix" and RULE in str(e.value)
    res = CliRunner().invoke(app, [
        "prepare-sections", "-c", str(cfg), "--section-size", "1", "--dataset", "humaneval",
        "--output-dir", str(tmp_path / "sec"), "--run-prefix", "../up",
    ])
    assert res.exit_code == 1 and "--run-prefix" in one_line_error(res.output)
    assert tree(tmp_path) == before


# --------------------------------------------------------------------------- existing folders


def user_folder(tmp_path: Path, name: str = "mine") -> Path:
    """A folder the user made under run_dir, with a `runs.jsonl` of their own."""
    d = tmp_path / "cfg" / "runs" / name
    d.mkdir(parents=True)
    (d / "runs.jsonl").write_bytes(b'{"mine": true}\n')
    (d / "notes.txt").write_bytes(b"do not touch\n")
    return d


def test_cli_refuses_a_folder_that_is_not_a_run(
    tmp_path: Path, fake_openai: FakeOpenAI, key: None
) -> None:
    cfg = write_config(tmp_path, fake_openai.base_url)
    user_folder(tmp_path)
    before = tree(tmp_path)
    for command in (["dry-run"], ["run", "-q"], ["rollout", "testgen", "-q"]):
        res = CliRunner().invoke(app, [*command, "--config", str(cfg), "--run-id", "mine"])
        assert res.exit_code == 1, res.output
        line = one_line_error(res.output)
        assert "not a benchsmith run" in line and "mine" in line, line
        assert tree(tmp_path) == before
    assert not fake_openai.requests


def test_api_refuses_a_folder_that_is_not_a_run(tmp_path: Path, key: None) -> None:
    cfg = api.load_config(write_config(tmp_path))
    user_folder(tmp_path)
    (tmp_path / "cfg" / "runs" / "afile").write_bytes(b"a file, not a folder\n")
    before = tree(tmp_path)
    for rid, needle in (("mine", "not a benchsmith run"), ("afile", "not a folder")):
        for call in (lambda: api.dry_run(cfg, rid), lambda: api.run(cfg, rid)):
            with pytest.raises(ConfigError, match=needle):
                call()
            assert tree(tmp_path) == before


def test_an_existing_empty_folder_may_be_used(tmp_path: Path) -> None:
    cfg = api.load_config(write_config(tmp_path))
    (tmp_path / "cfg" / "runs" / "empty").mkdir(parents=True)
    rep = api.dry_run(cfg, "empty")
    assert rep.run_dir == tmp_path / "cfg" / "runs" / "empty"
    assert (rep.run_dir / "ledger.sqlite").is_file()
    assert api.dry_run(cfg, "empty").units_pending == rep.units_pending  # a run: reusable


@pytest.mark.parametrize(
    "args",
    [
        ["status", "{d}"],
        ["validate-run", "{d}"],
        ["batch", "status", "{d}"],
        ["batch", "cancel", "{d}"],
        ["batch", "export", "{d}", "--out", "{d}/requests.jsonl"],
        ["batch", "ingest", "{d}", "{d}/runs.jsonl"],
        ["render-readable", "--run-dir", "{d}"],
    ],
    ids=lambda a: " ".join(a[:2]),
)
def test_run_dir_commands_leave_a_non_run_folder_alone(args: list[str], tmp_path: Path) -> None:
    d = user_folder(tmp_path)
    before = tree(tmp_path)
    res = CliRunner().invoke(app, [a.format(d=d) for a in args], env=cli_env())
    assert res.exit_code == 1, res.output
    assert "no ledger.sqlite" in one_line_error(res.output)
    assert tree(tmp_path) == before


# --------------------------------------------------------------------------- fuzzing

FUZZ = settings(max_examples=300, deadline=None, database=None)
NAME_CHARS = string.ascii_letters + string.digits + "._-/\\\n\0 :~"
ids = st.one_of(
    st.text(max_size=140),
    st.text(alphabet=NAME_CHARS, max_size=140),
    st.text(alphabet=string.ascii_letters + string.digits + "._-", min_size=1, max_size=140),
    st.sampled_from(
        ["..", ".", "../x", "/abs", "x/..", "a\n", "~", "-", "_", "a" * 128, "a" * 129]
    ),
)


@FUZZ
@given(rid=ids)
def test_fuzz_run_id_is_refused_or_one_folder_inside_run_dir(rid: str) -> None:
    root = Path("/srv/runs")
    try:
        check_run_id(rid)
    except ConfigError as e:
        assert "\n" not in str(e)
        return
    rd = RunDir(root / rid)
    assert rd.root.resolve().parent == root.resolve()
    for p in (rd.ledger, rd.runs_jsonl, rd.calls_log, rd.config_json, rd.prompts / "t.txt",
              rd.manifest("humaneval", "all"), rd.dataset_file("humaneval", "plans.jsonl")):
        assert inside(p, rd.root)


@settings(max_examples=120, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(rid=ids)
def test_fuzz_open_run_creates_nothing_outside_run_dir(rid: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        sandbox = Path(tmp)
        cfg_dir = sandbox / "a" / "b"
        cfg_dir.mkdir(parents=True)
        cfg = parse_config({"run_dir": "runs"}, file=str(cfg_dir / "c.yaml"),
                           config_dir=str(cfg_dir))
        try:
            rd = open_run(cfg, rid, resume=False, create=False)
        except ConfigError:
            assert tree(sandbox) == {"a": "<dir>", "a/b": "<dir>"}
            return
        runs = cfg_dir / "runs"
        assert rd.root.resolve().parent == runs.resolve()
        assert (rd.root / "ledger.sqlite").is_file()
        outside = {k for k in tree(sandbox) if not k.startswith("a/b/runs/")}
        assert outside == {"a", "a/b", "a/b/runs"}


@FUZZ
@given(name=ids)
def test_fuzz_dataset_name_is_refused_or_its_files_stay_in_the_run(name: str) -> None:
    root = Path("/srv/runs/R")
    try:
        parse_config({"datasets": {name: {"source": "humaneval"}}})
        accepted = True
    except ConfigError as e:
        assert "\n" not in str(e)
        accepted = False
    rd = RunDir(root)
    try:
        paths = [rd.manifest(name, k) for k in
                 ("all", "complete", "incomplete", "first100", "similarity")]
        paths += [rd.dataset_file(name, "plans.jsonl"), rd.failed_file(name, "tasks.jsonl")]
    except ConfigError:
        assert not accepted, "the config accepts a dataset name the run dir refuses"
        return
    for p in paths:
        assert inside(p, root), p
        assert len(p.name.encode()) <= 255


@FUZZ
@given(task_id=ids)
def test_fuzz_task_and_instance_ids_map_to_file_names_inside(task_id: str) -> None:
    root = Path("/srv/runs/R")
    name = safe_name(task_id)
    assert name not in ("", ".", "..") and not name.startswith(".")
    for p in (root / "readable" / "humaneval" / f"{name}_b0_a1.md",
              root / "samples" / name / "sample_0.diff"):
        assert inside(p, root), p
    try:
        check_iid(task_id)
    except ConfigError:
        return
    assert inside(root / f"{task_id}.json", root)
