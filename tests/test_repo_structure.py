"""Repository structures at a commit: from a real git clone (never checked out) and from
Agentless repo-structure files; the cache; `structure_for`; `repo-structure build`.

The fixture builds a real git repository with three commits (add a function, rename a
file, add a method). Expected line numbers and texts come from the source strings written
here, located by marker comments, never from `ast`.
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest
import typer
from typer.testing import CliRunner

from benchsmith.cli.repo_structure import register
from benchsmith.errors import ConfigError
from benchsmith.records import Task
from benchsmith.sources.repo_structure import (
    RepoStructure,
    build_structure,
    cache_path,
    default_cache_dir,
    load_structure_file,
    structure_for,
)

REPO = "acme/widgets"
GIT_ENV = {
    **os.environ,
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_AUTHOR_NAME": "Test",
    "GIT_AUTHOR_EMAIL": "test@example.com",
    "GIT_COMMITTER_NAME": "Test",
    "GIT_COMMITTER_EMAIL": "test@example.com",
}

PKG_INIT = '"""Widgets package."""\n\nfrom .core import Widget\n'
SUB_INIT = ""
SETUP = "from setuptools import setup\n\nsetup(name=\"widgets\")\n"
TEST_CORE = "def test_area():\n    assert True  # end test_area\n"
README = "# Widgets\n"
CONFIG = "size: 3\n"

CORE_V1 = '''"""Core widgets."""

import functools

VERSION = "1.0"


def make_widget(size):
    """Build a widget."""
    return Widget(size)  # end make_widget


class Widget:
    """A widget."""

    class Meta:
        ordering = ["size"]  # end Meta

    def __init__(self, size):
        self.size = size  # end __init__

    @functools.lru_cache(maxsize=None)
    def area(self):
        return self.size * self.size  # end area

    async def refresh(self):
        return None  # end refresh

    if VERSION:
        def describe(self):
            return f"widget {self.size}"  # end describe


if True:
    def conditional():
        return 1  # end conditional


async def fetch_widget():
    def inner():
        return 2

    return inner()  # end fetch_widget
'''

# commit 3 adds a method at the end of Widget
CORE_V3 = CORE_V1.replace(
    '            return f"widget {self.size}"  # end describe\n',
    '            return f"widget {self.size}"  # end describe\n\n'
    "    def grow(self, by):\n"
    "        self.size += by  # end grow\n",
)

HELPERS_V1 = "def clamp(value, low, high):\n    return max(low, min(value, high))  # end clamp\n"
# commit 2 adds a function
HELPERS_V2 = HELPERS_V1 + "\n\ndef scale(value, factor):\n    return value * factor  # end scale\n"

LEGACY = 'print "hello"\n'  # Python 2: does not parse, text is kept
LATIN = b'# -*- coding: latin-1 -*-\nNAME = "caf\xe9"\n'
CRLF = b"def f():\r\n    return 1\r\n\r\nclass C:\r\n    pass"  # CRLF, no final newline

FILES_V1 = {
    "README.md": README,
    "setup.py": SETUP,
    "data/config.yaml": CONFIG,
    "pkg/__init__.py": PKG_INIT,
    "pkg/core.py": CORE_V1,
    "pkg/sub/__init__.py": SUB_INIT,
    "pkg/sub/helpers.py": HELPERS_V1,
    "tests/test_core.py": TEST_CORE,
    "weird/legacy.py": LEGACY,
    "weird/latin.py": LATIN,
    "weird/crlf.py": CRLF,
}
ALL_V1 = sorted(FILES_V1)
ALL_V3 = sorted([p for p in FILES_V1 if p != "pkg/sub/helpers.py"] + ["pkg/sub/utils.py"])
NON_PY = {"README.md", "data/config.yaml"}


def git(cwd: Path, *args: str) -> str:
    r = subprocess.run(["git", *args], cwd=cwd, env=GIT_ENV, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def write(root: Path, rel: str, content: str | bytes) -> None:
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        p.write_bytes(content)
    else:
        p.write_bytes(content.encode("utf-8"))


@dataclass(frozen=True)
class Clone:
    path: Path
    commits: tuple[str, str, str]


@pytest.fixture(scope="module")
def origin(tmp_path_factory: pytest.TempPathFactory) -> Clone:
    """The user's clone of acme/widgets: three commits, HEAD at the last."""
    root = tmp_path_factory.mktemp("repos") / "acme__widgets"
    root.mkdir()
    git(root, "-c", "init.defaultBranch=main", "init", "-q")
    for rel, content in FILES_V1.items():
        write(root, rel, content)
    git(root, "add", "-A")
    git(root, "commit", "-qm", "first")
    c1 = git(root, "rev-parse", "HEAD")
    write(root, "pkg/sub/helpers.py", HELPERS_V2)
    git(root, "commit", "-qam", "add scale()")
    c2 = git(root, "rev-parse", "HEAD")
    git(root, "mv", "pkg/sub/helpers.py", "pkg/sub/utils.py")
    write(root, "pkg/core.py", CORE_V3)
    git(root, "commit", "-qam", "rename helpers, add Widget.grow")
    c3 = git(root, "rev-parse", "HEAD")
    return Clone(root, (c1, c2, c3))


@pytest.fixture
def user_clone(origin: Clone, tmp_path: Path) -> Clone:
    """A fresh clone a test may dirty."""
    dst = tmp_path / "repos" / "acme__widgets"
    dst.parent.mkdir()
    git(tmp_path, "clone", "-q", str(origin.path), str(dst))
    return Clone(dst, origin.commits)


def line_of(src: str, needle: str) -> int:
    """1-based number of the only line holding `needle`."""
    hits = [i for i, line in enumerate(src.split("\n"), 1) if needle in line]
    assert len(hits) == 1, (needle, hits)
    return hits[0]


def lines(src: str, start: int, end: int) -> str:
    return "\n".join(src.split("\n")[start - 1 : end])


def expect_span(span, src: str, name: str, start_needle: str, end_needle: str) -> None:
    start, end = line_of(src, start_needle), line_of(src, end_needle)
    assert (span.name, span.start_line, span.end_line) == (name, start, end)
    assert span.text == lines(src, start, end)


def check_core(st: RepoStructure, src: str, with_grow: bool) -> None:
    core = st.file("pkg/core.py")
    assert core is not None and core.text == src
    assert [c.name for c in core.classes] == ["Widget", "Meta"]
    widget, meta = core.classes
    last = "# end grow" if with_grow else "# end describe"
    expect_span(widget, src, "Widget", "class Widget:", last)
    expect_span(meta, src, "Meta", "class Meta:", "# end Meta")
    assert meta.methods == ()
    names = ["__init__", "area", "refresh", "describe"] + (["grow"] if with_grow else [])
    assert [m.name for m in widget.methods] == names
    expect_span(widget.methods[0], src, "__init__", "def __init__", "# end __init__")
    # like Agentless: a decorated method starts at its `def` line
    expect_span(widget.methods[1], src, "area", "def area", "# end area")
    expect_span(widget.methods[2], src, "refresh", "async def refresh", "# end refresh")
    expect_span(widget.methods[3], src, "describe", "def describe", "# end describe")
    if with_grow:
        expect_span(widget.methods[4], src, "grow", "def grow", "# end grow")
    # module-level functions, also under a module-level `if`; nested `inner` is not one
    assert [f.name for f in core.functions] == ["make_widget", "conditional", "fetch_widget"]
    expect_span(core.functions[0], src, "make_widget", "def make_widget", "# end make_widget")
    expect_span(core.functions[1], src, "conditional", "def conditional", "# end conditional")
    expect_span(core.functions[2], src, "fetch_widget", "async def fetch_widget",
                "# end fetch_widget")


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
        data = st.to_json()
        assert set(data) == {"repo", "base_commit", "structure", "files_without_final_newline"}
        assert data["files_without_final_newline"] == ["weird/crlf.py"]
        # Agentless layout: nested folders, file text as lines, non-Python files as {}
        core = data["structure"]["pkg"]["core.py"]
        assert set(core) == {"classes", "functions", "text"}
        assert core["text"] == st.file_text("pkg/core.py").split("\n")[:-1]
        assert data["structure"]["README.md"] == {}
        assert data["structure"]["data"]["config.yaml"] == {}
        back = RepoStructure.from_json(orjson.loads(orjson.dumps(data)))
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
    again = st.to_json()
    gadget = AGENTLESS["structure"]["gadgets"]["gadget.py"]
    assert again["structure"]["gadgets"]["gadget.py"] == gadget
    assert ".git" not in again["structure"]
    assert RepoStructure.from_json(again) == st


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
    assert RepoStructure.from_json(st.to_json()).tree_text() == st.tree_text()


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


def test_cli_help_documents_every_option():
    cmd = typer.main.get_command(cli_app()).commands["repo-structure"].commands["build"]
    assert "Examples:" in cmd.help
    assert cmd.help.count("benchsmith repo-structure build") >= 2
    for p in cmd.params:
        if p.param_type_name == "option" and p.name != "help":
            assert p.help, p.opts
    res = CliRunner().invoke(cli_app(), ["repo-structure", "build", "--help"])
    assert res.exit_code == 0 and "Example" in res.output
