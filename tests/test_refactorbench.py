"""`benchsmith convert refactorbench` and the `refactorbench_py` source, on the real task texts.

The fixture builds a RefactorBench-shaped checkout in a temp dir from the 100 real tasks in
/work/shared/data/refactorbench/refactorbench_tasks.jsonl: every variant's instruction at its
real problem path, the real task<->test pairing as scripts/<variant>_mapping.py dicts, a
placeholder test file per task (the real test code is not in the shared data) and a few
source files named after files that real descriptive instructions mention.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from benchsmith.cli.app import app
from benchsmith.config import parse_config
from benchsmith.errors import ConfigError
from benchsmith.recipes.prompt import task_text
from benchsmith.sources import load_tasks
from benchsmith.sources.refactorbench_convert import convert_refactorbench, write_rows

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
TASKS_FILE = DATA / "refactorbench" / "refactorbench_tasks.jsonl"
VARIANTS = ("base", "descriptive", "lazy")
BIN = Path(sys.executable).with_name("benchsmith")

# Source files (relative to repositories/<repo_dir>/) named after files that the real
# descriptive instructions mention, plus decoys that share a name but not a directory.
REPO_FILES = {
    "ansible_refactor": [
        "lib/ansible/__init__.py",
        "lib/ansible/inventory/helpers.py",
        "lib/ansible/inventory/data.py",
        "lib/ansible/vars/manager.py",
        "lib/ansible/cli/helpers.py",  # decoy: same name, directory not mentioned
    ],
    "celery_refactor": [
        "celery/__init__.py",
        "celery/utils/__init__.py",
        "celery/utils/objects.py",
    ],
    "scrapy_refactor": [
        "scrapy/__init__.py",
        "scrapy/commands/genspider.py",
        "scrapy/spiders/sitemap.py",
        "scrapy/utils/url.py",
    ],
}


def _rows() -> list[dict[str, Any]]:
    with TASKS_FILE.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


REAL = _rows()
BY_ID = {r["task_id"]: r for r in REAL}


def placeholder_test(task_id: str) -> str:
    return f"# test for {task_id}\nimport unittest\n"


def build_checkout(root: Path, rows: list[dict[str, Any]] = REAL) -> Path:
    """A RefactorBench-shaped directory holding the given real task rows."""
    for r in rows:
        for v in VARIANTS:
            p = root / r[f"{v}_problem_file"]
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(r[f"{v}_instruction"], encoding="utf-8")
        t = root / r["test_file"]
        t.parent.mkdir(parents=True, exist_ok=True)
        t.write_text(placeholder_test(r["task_id"]), encoding="utf-8")
    (root / "scripts").mkdir(parents=True, exist_ok=True)
    for v in VARIANTS:
        mapping = {"../" + r["test_file"]: "../" + r[f"{v}_problem_file"] for r in rows}
        body = "".join(f"    {k!r}: {val!r},\n" for k, val in mapping.items())
        (root / "scripts" / f"{v}_mapping.py").write_text(
            "file_mapping = {\n" + body + "}\n", encoding="utf-8"
        )
    for repo_dir, files in REPO_FILES.items():
        for f in files:
            p = root / "repositories" / repo_dir / f
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text("# placeholder\n", encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def rb_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_checkout(tmp_path_factory.mktemp("RefactorBench"))


def test_shared_data_shape():
    assert len(REAL) == 100
    assert len(BY_ID) == 100
    assert all(r["test_file"].startswith(f"tests/{r['repo_dir']}/") for r in REAL)
    # some test files do not follow the <task>-test.py convention: only the mapping knows them
    assert any(not r["test_file"].endswith(f"{r['task_id']}-test.py") for r in REAL)


# --------------------------------------------------------------------------- library


@pytest.mark.parametrize("variant", VARIANTS)
def test_all_tasks_per_variant(rb_root: Path, variant: str):
    rows = convert_refactorbench(rb_root, variant)
    ids = [r["task_id"] for r in rows]
    assert len(rows) == 100
    assert ids == sorted(BY_ID)
    assert len(set(ids)) == len(ids)
    for r in rows:
        real = BY_ID[r["task_id"]]
        assert r["variant"] == variant
        assert r["instruction"] == real[f"{variant}_instruction"].strip()
        assert r["problem_file"] == real[f"{variant}_problem_file"]
        assert r["test_file"] == real["test_file"]
        assert r["repo_dir"] == real["repo_dir"]
        assert r["upstream_repo"] == real["upstream_repo"]
        assert "test_source" not in r
        assert list(r) == [
            "task_id", "repo_dir", "upstream_repo", "variant", "instruction",
            "problem_file", "test_file", "files",
        ]


def test_test_files_off_convention_come_from_the_mapping(rb_root: Path):
    rows = {r["task_id"]: r for r in convert_refactorbench(rb_root, "descriptive")}
    odd = [r for r in REAL if not r["test_file"].endswith(f"{r['task_id']}-test.py")]
    assert any(r["repo_dir"] == "django_refactor" for r in odd)
    for r in odd:
        assert rows[r["task_id"]]["test_file"] == r["test_file"]


def test_limit_takes_first_n_after_sorting(rb_root: Path):
    rows = convert_refactorbench(rb_root, "lazy", limit=5)
    assert [r["task_id"] for r in rows] == sorted(BY_ID)[:5]
    assert len(convert_refactorbench(rb_root, "lazy", limit=1000)) == 100


def test_files_found_from_the_instruction(rb_root: Path):
    rows = {r["task_id"]: r for r in convert_refactorbench(rb_root, "descriptive")}

    def files(task_id: str) -> list[str]:
        return rows[task_id]["files"]

    a = "repositories/ansible_refactor/lib/ansible/"
    text = BY_ID["add-log-parameter-get-group-vars"]["descriptive_instruction"]
    assert "`helpers.py`" in text and "`manager.py`" in text
    # the decoy lib/ansible/cli/helpers.py shares the name but not the mentioned directory
    assert files("add-log-parameter-get-group-vars") == [
        a + "inventory/helpers.py", a + "vars/manager.py"
    ]
    s = "repositories/scrapy_refactor/scrapy/"
    assert files("sitemap-url-to-url") == [s + "spiders/sitemap.py", s + "utils/url.py"]
    assert files("genspider-functions-to-utils-url") == [
        s + "commands/genspider.py", s + "utils/url.py"
    ]
    # found by its dotted module path `celery.utils.objects`
    assert "objects.py" not in BY_ID["object-mro-lookup"]["descriptive_instruction"]
    assert files("object-mro-lookup") == ["repositories/celery_refactor/celery/utils/objects.py"]
    for r in rows.values():
        assert r["files"] == sorted(r["files"]) and len(r["files"]) <= 20
        assert all((rb_root / f).is_file() for f in r["files"])
    lazy = {r["task_id"]: r for r in convert_refactorbench(rb_root, "lazy")}
    assert lazy["add-log-parameter-get-group-vars"]["files"] == []


def test_files_capped_at_20(tmp_path: Path):
    root = tmp_path / "rb"
    p = root / "problems/base_problems/x_refactor/edit-utils-task.txt"
    p.parent.mkdir(parents=True)
    p.write_text("Change every utils.py in the repository.\n", encoding="utf-8")
    for i in range(25):
        f = root / f"repositories/x_refactor/pkg{i:02d}/utils.py"
        f.parent.mkdir(parents=True)
        f.write_text("", encoding="utf-8")
    [row] = convert_refactorbench(root, "base")
    assert row["files"] == [f"repositories/x_refactor/pkg{i:02d}/utils.py" for i in range(20)]
    assert row["upstream_repo"] is None and row["test_file"] is None


def test_test_source_only_with_flag(rb_root: Path):
    with_src = convert_refactorbench(rb_root, "base", include_test_source=True)
    assert all(r["test_source"] == placeholder_test(r["task_id"]) for r in with_src)
    assert all("test_source" not in r for r in convert_refactorbench(rb_root, "base"))


def test_mapping_is_parsed_never_executed(tmp_path: Path):
    root = build_checkout(tmp_path / "rb", REAL[:3])
    sentinel = tmp_path / "executed"
    m = root / "scripts" / "base_mapping.py"
    m.write_text(
        f"import pathlib\npathlib.Path({str(sentinel)!r}).touch()\n"
        + m.read_text(encoding="utf-8"),
        encoding="utf-8",
    )
    rows = convert_refactorbench(root, "base")
    expected = sorted(REAL[:3], key=lambda r: r["task_id"])
    assert [r["test_file"] for r in rows] == [r["test_file"] for r in expected]
    assert not sentinel.exists()


def test_no_mapping_entry_falls_back_to_convention(tmp_path: Path):
    rows = [r for r in REAL if r["repo_dir"] in ("ansible_refactor", "django_refactor")]
    root = build_checkout(tmp_path / "rb", rows)
    (root / "scripts" / "lazy_mapping.py").write_text("file_mapping = {}\n", encoding="utf-8")
    (root / "scripts" / "base_mapping.py").unlink()
    for variant in ("lazy", "base"):
        out = {r["task_id"]: r for r in convert_refactorbench(root, variant)}
        for r in rows:
            conventional = r["test_file"] == f"tests/{r['repo_dir']}/{r['task_id']}-test.py"
            assert out[r["task_id"]]["test_file"] == (r["test_file"] if conventional else None)
        assert any(v["test_file"] is None for v in out.values())
        assert any(v["test_file"] is not None for v in out.values())


@pytest.mark.parametrize(
    "text",
    [
        "file_mapping = {'../tests/a.py': \n",  # syntax error
        "mapping = {}\n",  # no file_mapping
        "file_mapping = dict(a='b')\n",  # not a literal
        "file_mapping = {'../tests/a.py': 3}\n",  # not str -> str
        "file_mapping = ['../tests/a.py']\n",  # not a dict
        "file_mapping = {'../../etc/passwd': '../problems/x-task.txt'}\n",  # outside root
    ],
)
def test_bad_mapping_is_one_line_config_error(tmp_path: Path, text: str):
    root = build_checkout(tmp_path / "rb", REAL[:2])
    mapping = root / "scripts" / "descriptive_mapping.py"
    mapping.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as ei:
        convert_refactorbench(root, "descriptive")
    msg = str(ei.value)
    assert "\n" not in msg and str(mapping) in msg


def test_errors_are_one_line_config_errors(tmp_path: Path, rb_root: Path):
    cases = [
        (lambda: convert_refactorbench(tmp_path / "missing", "base"), "missing"),
        (lambda: convert_refactorbench(rb_root, "verbose"), "--variant"),
        (lambda: convert_refactorbench(rb_root, "base", limit=0), "--limit"),
        (lambda: convert_refactorbench(tmp_path, "base"), "base_problems"),
    ]
    for call, needle in cases:
        with pytest.raises(ConfigError) as ei:
            call()
        assert "\n" not in str(ei.value) and needle in str(ei.value)


def test_duplicate_task_id_across_repos(tmp_path: Path):
    a, b = REAL[0], next(r for r in REAL if r["repo_dir"] != REAL[0]["repo_dir"])
    root = build_checkout(tmp_path / "rb", [a, b])
    dup = root / "problems" / "base_problems" / b["repo_dir"] / f"{a['task_id']}-task.txt"
    dup.write_text("another task with the same name", encoding="utf-8")
    with pytest.raises(ConfigError) as ei:
        convert_refactorbench(root, "base")
    assert "duplicate task id" in str(ei.value) and "\n" not in str(ei.value)


def test_write_rows_is_atomic_and_jsonl(tmp_path: Path, rb_root: Path):
    out = tmp_path / "data" / "rb.jsonl"
    rows = convert_refactorbench(rb_root, "descriptive", limit=4)
    assert write_rows(out, rows) == 4
    assert [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()] == rows
    assert sorted(os.listdir(out.parent)) == ["rb.jsonl"]
    with pytest.raises(ConfigError, match="is a directory"):
        write_rows(tmp_path, rows)


# --------------------------------------------------------------------------- CLI


def _invoke(*args: str):
    return CliRunner().invoke(app, ["convert", "refactorbench", *args])


def test_cli_end_to_end(tmp_path: Path, rb_root: Path):
    out = tmp_path / "data" / "refactorbench_py.jsonl"
    res = _invoke(
        "--refactorbench-root", str(rb_root), "--variant", "descriptive", "--output", str(out),
        "--include-test-source",
    )
    assert res.exit_code == 0, res.output
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "100" in lines[0] and "with test source" in lines[0]
    assert str(out) in lines[0]
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert rows == convert_refactorbench(rb_root, "descriptive", include_test_source=True)

    out2 = tmp_path / "lazy.jsonl"
    res = _invoke(
        "--refactorbench-root", str(rb_root), "--variant", "lazy", "-o", str(out2), "--limit", "3"
    )
    assert res.exit_code == 0, res.output
    assert "without test source" in res.stderr and "3 rows" in res.stderr
    rows = [json.loads(line) for line in out2.read_text(encoding="utf-8").splitlines()]
    assert [r["task_id"] for r in rows] == sorted(BY_ID)[:3]
    assert all("test_source" not in r for r in rows)


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--variant", "base", "--refactorbench-root", "{tmp}/no-such-dir"], "no-such-dir"),
        (["--variant", "verbose", "--refactorbench-root", "{rb}"], "--variant"),
        (["--variant", "base", "--refactorbench-root", "{tmp}/[/x]"], "[/x]"),  # rich markup chars
        (["--variant", "base", "--refactorbench-root", "{rb}", "--limit", "0"], "--limit"),
    ],
)
def test_cli_errors_one_line_exit_1(tmp_path: Path, rb_root: Path, args: list[str], needle: str):
    out = tmp_path / "out.jsonl"
    out.write_text("previous\n", encoding="utf-8")
    args = [a.format(tmp=tmp_path, rb=rb_root) for a in args]
    res = _invoke(*args, "--output", str(out))
    assert res.exit_code == 1
    assert isinstance(res.exception, SystemExit)
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and needle in lines[0]
    assert "Traceback" not in res.output
    assert out.read_text(encoding="utf-8") == "previous\n"  # untouched on error


def test_cli_subprocess(tmp_path: Path, rb_root: Path):
    out = tmp_path / "rb.jsonl"
    ok = subprocess.run(
        [str(BIN), "convert", "refactorbench", "--refactorbench-root", str(rb_root),
         "--variant", "base", "--output", str(out), "--limit", "2"],
        capture_output=True, text=True, timeout=60,
    )
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout == "" and len(ok.stderr.strip().splitlines()) == 1
    assert len(out.read_text(encoding="utf-8").splitlines()) == 2
    bad = subprocess.run(
        [str(BIN), "convert", "refactorbench", "--refactorbench-root", str(tmp_path / "nope"),
         "--variant", "base", "--output", str(out)],
        capture_output=True, text=True, timeout=60,
    )
    assert bad.returncode == 1
    assert len(bad.stderr.strip().splitlines()) == 1 and "Traceback" not in bad.stderr


def test_cli_help_has_examples():
    for args in (["convert", "--help"], ["convert", "refactorbench", "--help"]):
        res = CliRunner().invoke(app, args)
        assert res.exit_code == 0 and "Example" in res.output


# --------------------------------------------------------------------------- the source


def test_output_loads_through_refactorbench_py_source(tmp_path: Path, rb_root: Path):
    out = tmp_path / "refactorbench_py.jsonl"
    write_rows(out, convert_refactorbench(rb_root, "descriptive", include_test_source=True))
    cfg = parse_config(
        {"datasets": {"refactorbench_py": {"path": str(out), "max_tasks": 7}}},
        config_dir=str(tmp_path),
    )
    tasks = load_tasks("refactorbench_py", cfg.datasets["refactorbench_py"], cfg)
    assert [t.id for t in tasks] == sorted(BY_ID)[:7]
    for t in tasks:
        real = BY_ID[t.id]
        assert t.dataset == "refactorbench_py"
        assert t.primary_field == "instruction"
        assert t.primary == real["descriptive_instruction"].strip()
        assert t.extras["test_source"] == placeholder_test(t.id)
        assert t.extras["test_file"] == real["test_file"]
        assert "test_source" not in t.context and "test_file" not in t.context
        assert t.context["repo_dir"] == real["repo_dir"]
        assert t.context["upstream_repo"] == real["upstream_repo"]
        assert t.context["variant"] == "descriptive"
        assert "files" in t.context
        text = task_text(t)
        assert placeholder_test(t.id) not in text
        assert "# test for" not in text and real["test_file"] not in text
        assert t.primary in text


def test_relative_output_path_resolves_against_config_dir(tmp_path: Path, rb_root: Path):
    write_rows(tmp_path / "data" / "refactorbench_py.jsonl", convert_refactorbench(rb_root, "lazy"))
    cfg = parse_config(
        {"datasets": {"refactorbench_py": {"path": "data/refactorbench_py.jsonl"}}},
        config_dir=str(tmp_path),
    )
    tasks = load_tasks("refactorbench_py", cfg.datasets["refactorbench_py"], cfg)
    assert len(tasks) == 100 and all(t.context["variant"] == "lazy" for t in tasks)
