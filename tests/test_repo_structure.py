"""Repository structures at a commit: from a real git clone (never checked out) and from
Agentless repo-structure files; the cache; `structure_for`; `repo-structure build`.

The fixture builds a real git repository with three commits (add a function, rename a
file, add a method). Expected line numbers and texts come from the source strings written
here, located by marker comments, never from `ast`.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import orjson
import pytest
from git_support import git, write
from repo_structure_support import (
    ALL_V1,
    ALL_V3,
    CORE_V1,
    CORE_V3,
    CRLF,
    HELPERS_V1,
    HELPERS_V2,
    LATIN,
    LEGACY,
    NON_PY,
    PKG_INIT,
    REPO,
    SETUP,
    Clone,
    check_core,
    expect_span,
)

from benchsmith.errors import ConfigError
from benchsmith.sources.repo_structure import (
    RepoStructure,
    build_structure,
    cache_path,
    default_cache_dir,
    load_structure_file,
    structure_for,
    structure_from_json,
    structure_to_json,
)

# --------------------------------------------------------------------------- from git


def test_build_at_first_and_last_commit(origin: Clone, tmp_path: Path):
    c1, c2, c3 = origin.commits
    cache = tmp_path / "cache"
    st1 = build_structure(origin.path, c1, repo=REPO, cache_dir=cache)
    assert (st1.repo, st1.base_commit) == (REPO, c1)
    assert st1.files() == ALL_V1
    assert st1.python_files() == [p for p in ALL_V1 if p not in NON_PY]
    check_core(st1, CORE_V1, with_grow=False)
    helpers = st1.file("pkg/sub/helpers.py")
    assert [f.name for f in helpers.functions] == ["clamp"] and helpers.classes == ()
    expect_span(helpers.functions[0], HELPERS_V1, "clamp", "def clamp", "# end clamp")
    assert st1.file_text("pkg/sub/helpers.py") == HELPERS_V1
    assert st1.file_text("./pkg/__init__.py") == PKG_INIT
    assert st1.file_text("pkg/sub/__init__.py") == ""
    assert st1.file_text("README.md") is None  # non-Python: listed, text not kept
    assert st1.file_text("no/such.py") is None

    st2 = build_structure(origin.path, c2, repo=REPO, cache_dir=cache)
    helpers2 = st2.file("pkg/sub/helpers.py")
    assert [f.name for f in helpers2.functions] == ["clamp", "scale"]
    expect_span(helpers2.functions[1], HELPERS_V2, "scale", "def scale", "# end scale")

    st3 = build_structure(origin.path, c3, repo=REPO, cache_dir=cache)
    assert st3.files() == ALL_V3
    assert "pkg/sub/helpers.py" not in st3.files()
    assert st3.file_text("pkg/sub/utils.py") == HELPERS_V2
    check_core(st3, CORE_V3, with_grow=True)


def test_odd_files(origin: Clone, tmp_path: Path):
    st = build_structure(origin.path, origin.commits[0], repo=REPO, cache_dir=tmp_path)
    legacy = st.file("weird/legacy.py")
    assert legacy.text == LEGACY and legacy.classes == () and legacy.functions == ()
    assert "weird/legacy.py" in st.python_files()
    assert st.file_text("weird/latin.py") == LATIN.decode("latin-1")  # coding cookie honoured
    crlf = st.file("weird/crlf.py")
    assert crlf.text == CRLF.decode()
    assert [(f.name, f.start_line, f.end_line) for f in crlf.functions] == [("f", 1, 2)]
    assert [(c.name, c.start_line, c.end_line) for c in crlf.classes] == [("C", 4, 5)]
    assert crlf.classes[0].text == "class C:\r\n    pass"


def test_checkout_untouched(user_clone: Clone, tmp_path: Path):
    root = user_clone.path
    # the user has work in progress: a modified tracked file, an untracked one, a staged one
    dirty = CORE_V3 + "\n# my local edit\n"
    write(root, "pkg/core.py", dirty)
    write(root, "scratch.py", "x = 1\n")
    write(root, "setup.py", SETUP + "# staged\n")
    git(root, "add", "setup.py")

    def snapshot() -> tuple:
        return (
            git(root, "status", "--porcelain=v1", "-uall"),
            git(root, "rev-parse", "HEAD"),
            git(root, "symbolic-ref", "HEAD"),
            git(root, "diff"),
            git(root, "diff", "--cached"),
            (root / "pkg/core.py").read_text(encoding="utf-8"),
            sorted(str(p.relative_to(root)) for p in root.rglob("*") if ".git" not in p.parts),
        )

    before = snapshot()
    assert "pkg/core.py" in before[0] and "scratch.py" in before[0]
    st1 = build_structure(root, user_clone.commits[0], repo=REPO, cache_dir=tmp_path / "c")
    st3 = build_structure(root, user_clone.commits[2], repo=REPO, cache_dir=tmp_path / "c")
    assert snapshot() == before
    # the committed text, not the working tree's
    assert st3.file_text("pkg/core.py") == CORE_V3
    assert st3.file_text("setup.py") == SETUP
    assert "scratch.py" not in st3.files()
    assert st1.files() == ALL_V1


def test_cache_hit_needs_no_git(origin: Clone, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    cache = tmp_path / "cache"
    c1 = origin.commits[0]
    first = build_structure(origin.path, c1, repo=REPO, cache_dir=cache)
    path = cache / "acme__widgets" / f"{c1}.json"
    assert path.is_file() and cache_path(REPO, c1, cache) == path
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]

    def no_subprocess(*a, **k):
        raise AssertionError("git was called on a cache hit")

    monkeypatch.setattr(subprocess, "run", no_subprocess)
    monkeypatch.setattr(subprocess, "Popen", no_subprocess)
    again = build_structure(origin.path, c1, repo=REPO, cache_dir=cache)
    assert again == first
    # the cache alone serves structure_for, even without the clone
    got = structure_for({"instance_id": "acme__widgets-1", "repo": REPO, "base_commit": c1},
                        repos_dir=tmp_path / "nothing-here", cache_dir=cache)
    assert got == RepoStructure(REPO, c1, first.entries, instance_id="acme__widgets-1")
    monkeypatch.undo()

    # a damaged cache file is rebuilt
    path.write_text("{not json", encoding="utf-8")
    assert build_structure(origin.path, c1, repo=REPO, cache_dir=cache) == first
    assert orjson.loads(path.read_bytes())["base_commit"] == c1


def test_default_cache_dir(origin: Clone, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_cache_dir() == tmp_path / "home/.cache/benchsmith/repo_structure"
    c3 = origin.commits[2]
    build_structure(origin.path, c3, repo=REPO)
    assert (tmp_path / f"home/.cache/benchsmith/repo_structure/acme__widgets/{c3}.json").is_file()
    # repo=None: named after the clone folder (owner__name)
    st = build_structure(origin.path, c3, cache_dir=tmp_path / "c2")
    assert st.repo == REPO and (tmp_path / f"c2/acme__widgets/{c3}.json").is_file()


def test_missing_commit_and_not_a_clone(origin: Clone, tmp_path: Path):
    ghost = "0123456789abcdef0123456789abcdef01234567"
    with pytest.raises(ConfigError) as ei:
        build_structure(origin.path, ghost, repo=REPO, cache_dir=tmp_path)
    msg = str(ei.value)
    assert "\n" not in msg and ghost in msg and "git fetch" in msg and str(origin.path) in msg
    with pytest.raises(ConfigError, match="not a git clone"):
        build_structure(tmp_path, origin.commits[0], cache_dir=tmp_path / "c")
    with pytest.raises(ConfigError, match="no such folder"):
        build_structure(tmp_path / "nope", origin.commits[0], cache_dir=tmp_path / "c")


def test_short_commit_and_ref_resolve(origin: Clone, tmp_path: Path):
    c1, _, c3 = origin.commits
    assert build_structure(origin.path, c1[:10], cache_dir=tmp_path).base_commit == c1
    assert build_structure(origin.path, "HEAD", cache_dir=tmp_path).base_commit == c3


# --------------------------------------------------------------------------- JSON


def test_json_round_trip(origin: Clone, tmp_path: Path):
    for commit in (origin.commits[0], origin.commits[2]):
        st = build_structure(origin.path, commit, repo=REPO, cache_dir=tmp_path / "c")
        data = structure_to_json(st)
        assert set(data) == {"repo", "base_commit", "structure", "files_without_final_newline"}
        assert data["files_without_final_newline"] == ["weird/crlf.py"]
        # Agentless layout: nested folders, file text as lines, non-Python files as {}
        core = data["structure"]["pkg"]["core.py"]
        assert set(core) == {"classes", "functions", "text"}
        assert core["text"] == st.file_text("pkg/core.py").split("\n")[:-1]
        assert data["structure"]["README.md"] == {}
        assert data["structure"]["data"]["config.yaml"] == {}
        back = structure_from_json(orjson.loads(orjson.dumps(data)))
        assert back == st
        for p in st.files():
            assert back.file_text(p) == st.file_text(p)
        f = tmp_path / "s.json"
        f.write_bytes(orjson.dumps(data))
        assert load_structure_file(f) == st


AGENTLESS = {
    "repo": "acme/gadgets",
    "base_commit": "a" * 40,
    "instance_id": "acme__gadgets-7",
    "structure": {
        "gadgets": {
            "__init__.py": {"classes": [], "functions": [], "text": []},
            "gadget.py": {
                "classes": [{
                    "name": "Gadget", "start_line": 1, "end_line": 3,
                    "text": ["class Gadget:", "    def spin(self):", "        return 1"],
                    "methods": [{"name": "spin", "start_line": 2, "end_line": 3,
                                 "text": ["    def spin(self):", "        return 1"]}],
                }],
                "functions": [{"name": "make", "start_line": 6, "end_line": 7,
                               "text": ["def make():", "    return Gadget()"]}],
                "text": ["class Gadget:", "    def spin(self):", "        return 1", "", "",
                         "def make():", "    return Gadget()"],
            },
            "io": {
                "reader.py": {"classes": [], "functions": [],
                              "text": "import os\n\nREAD = True\n"},  # a string, not lines
            },
        },
        "docs": {"index.rst": {}, "conf.py": {"classes": [], "functions": [], "text": ["x = 1"]}},
        "Makefile": {},
        ".git": {"HEAD": {}, "refs": {"heads": {}}},  # Agentless walked its checkout's .git
    },
}


def test_agentless_file(tmp_path: Path):
    f = tmp_path / "acme__gadgets-7.json"
    f.write_text(json.dumps(AGENTLESS), encoding="utf-8")
    st = load_structure_file(f)
    assert (st.repo, st.base_commit) == ("acme/gadgets", "a" * 40)
    assert st.instance_id == "acme__gadgets-7"
    assert st.files() == ["Makefile", "docs/conf.py", "docs/index.rst", "gadgets/__init__.py",
                          "gadgets/gadget.py", "gadgets/io/reader.py"]
    assert st.python_files() == ["docs/conf.py", "gadgets/__init__.py", "gadgets/gadget.py",
                                 "gadgets/io/reader.py"]
    assert st.file_text("gadgets/gadget.py") == (
        "class Gadget:\n    def spin(self):\n        return 1\n\n\n"
        "def make():\n    return Gadget()\n"
    )
    assert st.file_text("gadgets/io/reader.py") == "import os\n\nREAD = True\n"
    assert st.file_text("gadgets/__init__.py") == ""
    assert st.file_text("docs/index.rst") is None
    g = st.file("gadgets/gadget.py")
    (cls,) = g.classes
    assert (cls.name, cls.start_line, cls.end_line) == ("Gadget", 1, 3)
    assert cls.text == "class Gadget:\n    def spin(self):\n        return 1"
    assert [(m.name, m.start_line, m.end_line, m.text) for m in cls.methods] == [
        ("spin", 2, 3, "    def spin(self):\n        return 1")]
    assert [(x.name, x.start_line, x.end_line) for x in g.functions] == [("make", 6, 7)]
    # and back to the same layout (minus .git)
    again = structure_to_json(st)
    gadget = AGENTLESS["structure"]["gadgets"]["gadget.py"]
    assert again["structure"]["gadgets"]["gadget.py"] == gadget
    assert ".git" not in again["structure"]
    assert structure_from_json(again) == st


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"repo": "a/b"}, "structure"),
        ({"structure": {"x.py": {"classes": [{"name": "A", "start_line": "1", "end_line": 2}],
                                 "functions": [], "text": []}}},
         "structure/x.py.classes[0].start_line"),
        ({"structure": {"x.py": {"classes": [], "functions": [], "text": 3}}},
         "structure/x.py.text"),
        ({"structure": {"pkg": {"x.py": []}}}, "structure/pkg/x.py"),
        ({"structure": {}, "repo": 5}, "repo"),
    ],
)
def test_agentless_file_errors(tmp_path: Path, data: dict, field: str):
    f = tmp_path / "bad.json"
    f.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(ConfigError) as ei:
        load_structure_file(f)
    assert ei.value.file == str(f) and ei.value.field == field and "\n" not in str(ei.value)


def test_agentless_file_unreadable(tmp_path: Path):
    with pytest.raises(ConfigError, match="file not found"):
        load_structure_file(tmp_path / "none.json")
    (tmp_path / "x.json").write_text("{oops", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_structure_file(tmp_path / "x.json")


# --------------------------------------------------------------------------- tree text


def test_tree_text(origin: Clone, tmp_path: Path):
    st = build_structure(origin.path, origin.commits[2], repo=REPO, cache_dir=tmp_path)
    assert st.tree_text() == "\n".join([
        "setup.py",
        "pkg/",
        "    __init__.py",
        "    core.py",
        "    sub/",
        "        __init__.py",
        "        utils.py",
        "tests/",
        "    test_core.py",
        "weird/",
        "    crlf.py",
        "    latin.py",
        "    legacy.py",
    ])
    assert st.tree_text(max_files=3) == "\n".join([
        "setup.py", "pkg/", "    __init__.py", "    core.py", "... (6 more files)",
    ])
    assert st.tree_text(max_files=0) == "... (9 more files)"
    assert st.tree_text(max_files=100) == st.tree_text()
    everything = st.tree_text(python_only=False)
    assert everything.splitlines()[:3] == ["README.md", "setup.py", "data/"]
    assert "    config.yaml" in everything.splitlines()
    assert "tests/" not in st.tree_text(exclude_tests=True)
    # the same tree from the Agentless JSON
    assert structure_from_json(structure_to_json(st)).tree_text() == st.tree_text()
