"""`structure_for` (lookup order and errors) and the `repo-structure build` command.
See test_repo_structure.py for the fixture.
"""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

import pytest
import typer
from git_support import git
from repo_structure_support import ALL_V1, ALL_V3, REPO, Clone
from typer.testing import CliRunner

from benchsmith.cli.repo_structure import register
from benchsmith.errors import ConfigError
from benchsmith.records import Task
from benchsmith.sources.repo_structure import (
    build_structure,
    load_structure_file,
    structure_for,
)

# --------------------------------------------------------------------------- structure_for


def test_structure_for_lookup_order(user_clone: Clone, tmp_path: Path):
    c1 = user_clone.commits[0]
    repos = user_clone.path.parent
    inst = {"instance_id": "acme__widgets-1", "repo": REPO, "base_commit": c1,
            "problem_statement": "Widgets are too small."}
    cache = tmp_path / "cache"

    # 1. no structure file yet: built from the <owner>__<name> clone
    sdir = tmp_path / "structures"
    sdir.mkdir()
    st = structure_for(inst, structure_dir=sdir, repos_dir=repos, cache_dir=cache)
    assert st.instance_id == "acme__widgets-1" and st.base_commit == c1 and st.files() == ALL_V1

    # 2. a structure file wins over the clone
    marker = {"repo": REPO, "base_commit": c1,
              "structure": {"only.py": {"classes": [], "functions": [], "text": ["x = 1"]}}}
    (sdir / "acme__widgets-1.json").write_text(json.dumps(marker), encoding="utf-8")
    st = structure_for(inst, structure_dir=sdir, repos_dir=repos, cache_dir=cache)
    assert st.files() == ["only.py"] and st.instance_id == "acme__widgets-1"

    # a structure file of another commit is an error, not a silent mismatch
    other = {**inst, "base_commit": user_clone.commits[2]}
    with pytest.raises(ConfigError) as ei:
        structure_for(other, structure_dir=sdir, repos_dir=repos, cache_dir=cache)
    assert ei.value.field == "base_commit" and "repo-structure build" in str(ei.value)

    # 3. a clone named <name> is found too; a benchsmith Task works as the instance
    plain = tmp_path / "plain"
    plain.mkdir()
    user_clone.path.rename(plain / "widgets")
    task = Task(id="acme__widgets-3", dataset="swebench_lite", primary_field="problem_statement",
                primary="p", context={"repo": REPO, "base_commit": user_clone.commits[2]})
    st = structure_for(task, repos_dir=plain, cache_dir=tmp_path / "cache2")
    assert st.files() == ALL_V3 and st.instance_id == "acme__widgets-3"


def test_structure_for_errors(user_clone: Clone, tmp_path: Path):
    inst = {"instance_id": "acme__gizmos-9", "repo": "acme/gizmos", "base_commit": "b" * 40}
    sdir, repos = tmp_path / "structures", tmp_path / "repos"
    with pytest.raises(ConfigError) as ei:
        structure_for(inst, structure_dir=sdir, repos_dir=repos, cache_dir=tmp_path / "c")
    msg = str(ei.value)
    assert "\n" not in msg and msg.startswith("acme__gizmos-9: ")
    for looked in (sdir / "acme__gizmos-9.json", repos / "acme__gizmos", repos / "gizmos"):
        assert str(looked) in msg
    assert f"git clone https://github.com/acme/gizmos.git {repos / 'acme__gizmos'}" in msg

    with pytest.raises(ConfigError, match="pass structure_dir .* or repos_dir"):
        structure_for(inst)

    # the clone exists but lacks the commit
    ghost = {"instance_id": "acme__widgets-9", "repo": REPO, "base_commit": "c" * 40}
    with pytest.raises(ConfigError) as ei:
        structure_for(ghost, repos_dir=repos, cache_dir=tmp_path / "c")
    assert "git fetch" in str(ei.value) and "\n" not in str(ei.value)

    with pytest.raises(ConfigError, match="owner/name"):
        structure_for({**ghost, "repo": "../etc"}, repos_dir=repos)
    with pytest.raises(ConfigError, match="instance_id"):
        structure_for({"repo": REPO}, repos_dir=repos)


# --------------------------------------------------------------------------- CLI


def cli_app() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def main() -> None:
        """benchsmith (test)."""

    register(app)
    return app


def swe_row(iid: str, repo: str, commit: str) -> dict:
    return {
        "repo": repo, "instance_id": iid, "base_commit": commit,
        "patch": "diff --git a/pkg/core.py b/pkg/core.py\n", "test_patch": "",
        "problem_statement": f"Problem of {iid}", "hints_text": "",
        "created_at": "2024-01-01T00:00:00Z", "version": "1.0",
        "FAIL_TO_PASS": "[]", "PASS_TO_PASS": "[]", "environment_setup_commit": commit,
    }


def test_cli_build(user_clone: Clone, tmp_path: Path):
    c1, _, c3 = user_clone.commits
    repos = user_clone.path.parent
    dataset = tmp_path / "swe.jsonl.gz"
    rows = [swe_row("acme__widgets-2", REPO, c3), swe_row("acme__widgets-1", REPO, c1),
            swe_row("other__missing-5", "other/missing", "d" * 40)]
    with gzip.open(dataset, "wt", encoding="utf-8") as fh:
        fh.write("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "structures"
    status_before = git(user_clone.path, "status", "--porcelain=v1", "-uall")
    runner = CliRunner()
    app = cli_app()
    args = ["repo-structure", "build", "--repos-dir", str(repos), "--dataset", str(dataset),
            "--out", str(out)]

    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in out.iterdir()) == ["acme__widgets-1.json", "acme__widgets-2.json"]
    assert "skipped other__missing-5: no clone of other/missing at" in res.stderr
    assert "built 2, already there 0, skipped 1 of 3 instance(s)" in res.stdout
    assert git(user_clone.path, "status", "--porcelain=v1", "-uall") == status_before

    for iid, commit, files in (("acme__widgets-1", c1, ALL_V1), ("acme__widgets-2", c3, ALL_V3)):
        f = out / f"{iid}.json"
        raw = json.loads(f.read_text(encoding="utf-8"))
        assert (raw["instance_id"], raw["repo"], raw["base_commit"]) == (iid, REPO, commit)
        assert isinstance(raw["structure"]["pkg"]["core.py"]["text"], list)
        st = load_structure_file(f)
        assert st.files() == files
        assert st == structure_for({"instance_id": iid, "repo": REPO, "base_commit": commit},
                                   structure_dir=out)
        fresh = build_structure(user_clone.path, commit, repo=REPO, use_cache=False)
        assert st.entries == fresh.entries

    # again: kept, nothing rebuilt; --force rebuilds; --json summary
    res = runner.invoke(app, [*args, "--json"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    assert (summary["built"], summary["already_there"]) == (0, 2)
    assert summary["skipped"][0]["instance_id"] == "other__missing-5"
    res = runner.invoke(app, [*args, "--force", "--quiet"])
    assert res.exit_code == 0 and "built 2, already there 0" in res.stdout

    # --instance-ids and --limit
    ids = tmp_path / "ids.txt"
    ids.write_text("acme__widgets-2\nother__missing-5\n", encoding="utf-8")
    out2 = tmp_path / "structures2"
    res = runner.invoke(app, ["repo-structure", "build", "--repos-dir", str(repos), "--dataset",
                              str(dataset), "--out", str(out2), "--instance-ids", str(ids),
                              "--limit", "1"])
    assert res.exit_code == 0, res.output
    assert [p.name for p in out2.iterdir()] == ["acme__widgets-2.json"]


def test_cli_errors(tmp_path: Path):
    runner = CliRunner()
    app = cli_app()
    dataset = tmp_path / "swe.jsonl"
    dataset.write_text(json.dumps(swe_row("other__missing-5", "other/missing", "d" * 40)) + "\n",
                       encoding="utf-8")
    base = ["repo-structure", "build", "--repos-dir", str(tmp_path / "repos"), "--out",
            str(tmp_path / "out")]

    res = runner.invoke(app, [*base, "--dataset", str(dataset)])
    assert res.exit_code == 1
    err = [line for line in res.stderr.splitlines() if line.startswith("error:")]
    assert len(err) == 1 and "no repo structure built: 1 instance(s) skipped" in err[0]

    res = runner.invoke(app, [*base, "--dataset", str(tmp_path / "none.jsonl")])
    assert res.exit_code == 1 and "none.jsonl: --dataset: file not found" in res.stderr

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"instance_id": "x", "repo": "a/b"}\n', encoding="utf-8")
    res = runner.invoke(app, [*base, "--dataset", str(bad)])
    assert res.exit_code == 1 and "line 1: missing field 'base_commit'" in res.stderr

    ids = tmp_path / "ids.json"
    ids.write_text('["nope-1"]', encoding="utf-8")
    res = runner.invoke(app, [*base, "--dataset", str(dataset), "--instance-ids", str(ids)])
    assert res.exit_code == 1 and "1 id(s) not in" in res.stderr

    # The id list is read like a dataset's task_ids_file; errors name the option.
    ids.write_bytes(b"\xff\xfe")
    res = runner.invoke(app, [*base, "--dataset", str(dataset), "--instance-ids", str(ids)])
    assert res.exit_code == 1 and "ids.json: --instance-ids: not UTF-8 text" in res.stderr
    res = runner.invoke(app, [*base, "--dataset", str(dataset),
                              "--instance-ids", str(tmp_path / "gone.txt")])
    assert res.exit_code == 1 and "gone.txt: --instance-ids: file not found" in res.stderr


def test_cli_help_documents_every_option():
    cmd = typer.main.get_command(cli_app()).commands["repo-structure"].commands["build"]
    assert "Examples:" in cmd.help
    assert cmd.help.count("benchsmith repo-structure build") >= 2
    for p in cmd.params:
        if p.param_type_name == "option" and p.name != "help":
            assert p.help, p.opts
    res = CliRunner().invoke(cli_app(), ["repo-structure", "build", "--help"])
    assert res.exit_code == 0 and "Example" in res.output


def test_cli_build_progress_on_a_terminal(user_clone: Clone, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch):
    """The shared bar at 80 columns: instances done of the total, skipped ones as failed."""
    import io

    from rich.console import Console

    import benchsmith.cli.repo_structure as cmd

    c1, _, c3 = user_clone.commits
    dataset = tmp_path / "swe.jsonl.gz"
    rows = [swe_row("acme__widgets-2", REPO, c3), swe_row("acme__widgets-1", REPO, c1),
            swe_row("other__missing-5", "other/missing", "d" * 40)]
    with gzip.open(dataset, "wt", encoding="utf-8") as fh:
        fh.write("".join(json.dumps(r) + "\n" for r in rows))
    term = Console(file=io.StringIO(), width=80, force_terminal=True, record=True)
    monkeypatch.setattr(cmd, "err_console", lambda: term)
    res = CliRunner().invoke(cli_app(), ["repo-structure", "build", "--repos-dir",
                                         str(user_clone.path.parent), "--dataset", str(dataset),
                                         "--out", str(tmp_path / "out")])
    assert res.exit_code == 0, res.output
    shown = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", term.file.getvalue())  # type: ignore[attr-defined]
    lines = [ln for ln in re.split(r"[\r\n]", shown) if "/3 " in ln]  # each frame
    assert lines and "3/3 100% 1 failed" in lines[-1] and "ETA 0:00:00" in lines[-1]
    assert all(len(ln) <= 80 and "…" not in ln for ln in lines), lines
