"""Shared by the repo-structure tests: the git repository fixture (three commits) and the
expected spans, located in the source strings by marker comments.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from git_support import git, write

from benchsmith.sources.repo_structure import (
    RepoStructure,
)

REPO = "acme/widgets"

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
