"""SEARCH/REPLACE repairs and reproduction scripts, checked against a real git repository."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from benchsmith.recipes.agentless.edits import (
    Edit,
    apply_edits,
    parse_edits,
    split_lines,
    unified_diff,
)
from benchsmith.recipes.agentless.testscript import check_script, extract_script

GIT = shutil.which("git")
needs_git = pytest.mark.skipif(GIT is None, reason="git is not installed")

CORE = '''\
"""Core helpers."""


def add(a, b):
    return a - b


def mean(values):
    total = 0
    for v in values:
        total += v
    return total / len(values)


def clamp(x, lo, hi):
    if x < lo:
        return lo
    if x > hi:
        return lo
    return x
'''

UTIL = '''\
import os


def join(*parts):
    return os.sep.join(parts)   
'''

README = "Demo\n====\n\nNo final newline"

FILES = {"pkg/core.py": CORE, "pkg/util.py": UTIL, "README.md": README}

ANSWER = '''\
The bug is in `add`, which subtracts, and `clamp`, which returns `lo` for large values.
`mean` also fails on an empty list. Here are the fixes:

```python
### pkg/core.py
<<<<<<< SEARCH
def add(a, b):
    return a - b
=======
def add(a, b):
    return a + b
>>>>>>> REPLACE
```

```python
### pkg/core.py
<<<<<<< SEARCH
    if x > hi:
        return lo
=======
    if x > hi:
        return hi
>>>>>>> REPLACE
<<<<<<< SEARCH
def mean(values):
    total = 0
=======
def mean(values):
    if not values:
        return 0.0
    total = 0
>>>>>>> REPLACE
```

The util module should use forward slashes:

```
### pkg/util.py
<<<<<<< SEARCH
def join(*parts):
    return os.sep.join(parts)
=======
def join(*parts):
    return "/".join(parts)
>>>>>>> REPLACE
```

That should do it.
'''

NEW_CORE = CORE.replace("return a - b", "return a + b").replace(
    "        return lo\n    return x", "        return hi\n    return x"
).replace("    total = 0\n", "    if not values:\n        return 0.0\n    total = 0\n")

NEW_UTIL = UTIL.replace('    return os.sep.join(parts)   \n', '    return "/".join(parts)\n')


def git(repo: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [GIT or "git", "-c", "core.autocrlf=false", *args],
        cwd=repo, input=stdin, capture_output=True, text=True, check=False,
    )


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    for path, text in FILES.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_bytes(text.encode())
    assert git(root, "init", "-q").returncode == 0
    git(root, "add", "-A")
    r = git(root, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qm", "init")
    assert r.returncode == 0, r.stderr
    return root


def apply_in_git(repo: Path, old: dict[str, str], new: dict[str, str]) -> None:
    """`git apply --check` accepts the diff, and `git apply` gives exactly ``new``."""
    patch = unified_diff(old, new)
    assert patch.startswith("diff --git ")
    check = git(repo, "apply", "--check", "-", stdin=patch)
    assert check.returncode == 0, check.stderr + "\n" + patch
    done = git(repo, "apply", "-", stdin=patch)
    assert done.returncode == 0, done.stderr
    for path, text in new.items():
        assert (repo / path).read_bytes() == text.encode(), path
    for path in set(old) - set(new):
        assert (repo / path).read_bytes() == old[path].encode(), path


# ---------------------------------------------------------------- parsing


def test_parse_several_blocks_and_files() -> None:
    result = parse_edits(ANSWER)
    assert result.issues == []
    assert [e.path for e in result.edits] == ["pkg/core.py"] * 3 + ["pkg/util.py"]
    assert result.edits[0] == Edit(
        "pkg/core.py", "def add(a, b):\n    return a - b\n", "def add(a, b):\n    return a + b\n"
    )
    assert result.edits[2].replace.startswith("def mean(values):\n    if not values:\n")


def test_parse_crlf_answer_matches_lf() -> None:
    assert parse_edits(ANSWER.replace("\n", "\r\n")) == parse_edits(ANSWER)


def test_parse_header_variants_and_content_lookalikes() -> None:
    answer = (
        "### Fix for the bug\n"  # prose heading, not a path
        "### `./docs/index.rst`\n"
        "~~~\n"
        "<<<<<<< SEARCH\n"
        "Title\n"
        "=====\n"
        "### not a header inside a block\n"
        "=======\n"
        "Better title\n"
        "============\n"
        ">>>>>>> REPLACE\n"
        "~~~\n"
    )
    result = parse_edits(answer)
    assert result.issues == []
    assert result.edits == [
        Edit(
            "docs/index.rst",
            "Title\n=====\n### not a header inside a block\n",
            "Better title\n============\n",
        )
    ]


def test_parse_empty_replace_is_a_deletion() -> None:
    result = parse_edits("### a.py\n<<<<<<< SEARCH\nx = 1\n=======\n>>>>>>> REPLACE\n")
    assert result.edits == [Edit("a.py", "x = 1\n", "")]
    assert result.issues == []


def test_parse_malformed_blocks_are_reported() -> None:
    answer = (
        "<<<<<<< SEARCH\n"  # line 1: no path yet
        "a = 1\n"
        "=======\n"
        "a = 2\n"
        ">>>>>>> REPLACE\n"
        "### pkg/a.py\n"
        "<<<<<<< SEARCH\n"  # line 7: no divider
        "b = 1\n"
        ">>>>>>> REPLACE\n"
        "<<<<<<< SEARCH\n"  # line 10: no end marker, next block follows
        "c = 1\n"
        "=======\n"
        "c = 2\n"
        "### pkg/b.py\n"
        "<<<<<<< SEARCH\n"  # line 15: good, and its path comes from inside the broken block
        "d = 1\n"
        "=======\n"
        "d = 2\n"
        ">>>>>>> REPLACE\n"
        ">>>>>>> REPLACE\n"  # line 20: stray
        "### pkg/c.py\n"
        "<<<<<<< SEARCH\n"  # line 22: cut off
        "e = 1\n"
        "=======\n"
        "e = 2\n"
    )
    result = parse_edits(answer)
    assert result.edits == [Edit("pkg/b.py", "d = 1\n", "d = 2\n")]
    assert result.issues == [
        "malformed edit block at line 1: no file path (expected a '### path/to/file.py' line "
        "before it)",
        "malformed edit block at line 7: missing =======",
        "malformed edit block at line 10: missing >>>>>>> REPLACE",
        "malformed edit block at line 20: >>>>>>> REPLACE without <<<<<<< SEARCH",
        "malformed edit block at line 22: missing >>>>>>> REPLACE",
    ]


def test_parse_no_blocks() -> None:
    result = parse_edits("I think the bug is in add(), but I am not sure.")
    assert result.edits == []
    assert result.issues == ["no SEARCH/REPLACE edit blocks found"]


# ---------------------------------------------------------------- applying + git


@needs_git
def test_apply_and_git_apply(repo: Path) -> None:
    parsed = parse_edits(ANSWER)
    result = apply_edits(FILES, parsed.edits)
    assert result.issues == []
    # util.py matched only through the trailing-whitespace fallback
    assert result.new_files == {"pkg/core.py": NEW_CORE, "pkg/util.py": NEW_UTIL}
    apply_in_git(repo, FILES, result.new_files)
    assert git(repo, "status", "--porcelain").stdout.split() == ["M", "pkg/core.py",
                                                                  "M", "pkg/util.py"]


@needs_git
def test_crlf_answer_applies_the_same(repo: Path) -> None:
    result = apply_edits(FILES, parse_edits(ANSWER.replace("\n", "\r\n")).edits)
    assert result.issues == []
    assert result.new_files == {"pkg/core.py": NEW_CORE, "pkg/util.py": NEW_UTIL}
    apply_in_git(repo, FILES, result.new_files)


def test_later_edits_see_earlier_changes() -> None:
    edits = [
        Edit("pkg/core.py", "    return a - b\n", "    return a + b\n"),
        Edit("pkg/core.py", "    return a + b\n", "    return b + a\n"),
    ]
    result = apply_edits(FILES, edits)
    assert result.issues == []
    assert "    return b + a\n" in result.new_files["pkg/core.py"]


def test_exact_match_only_at_line_start_and_first_occurrence() -> None:
    files = {"a.py": "xa = 1\na = 1\na = 1\n"}
    result = apply_edits(files, [Edit("a.py", "a = 1\n", "a = 2\n")])
    assert result.new_files == {"a.py": "xa = 1\na = 2\na = 1\n"}


@needs_git
def test_no_final_newline_and_crlf_files(repo: Path) -> None:
    files = dict(FILES, **{"win.py": "a = 1\r\nb = 2\r\nc = 3\r\n"})
    (repo / "win.py").write_bytes(files["win.py"].encode())
    git(repo, "add", "win.py")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qm", "win")
    edits = [
        Edit("README.md", "No final newline\n", "Still no final newline\n"),
        Edit("win.py", "b = 2\n", "b = 20\nb2 = 21\n"),
    ]
    result = apply_edits(files, edits)
    assert result.issues == []
    assert result.new_files == {
        "README.md": "Demo\n====\n\nStill no final newline",
        "win.py": "a = 1\r\nb = 20\r\nb2 = 21\r\nc = 3\r\n",
    }
    patch = unified_diff(files, result.new_files)
    assert "\\ No newline at end of file\n" in patch
    apply_in_git(repo, files, result.new_files)


@needs_git
def test_adding_a_final_newline_and_a_new_file(repo: Path) -> None:
    new = {"README.md": README + "\n", "pkg/new.py": "X = 1\n"}
    apply_in_git(repo, FILES, new)


def test_diff_shape() -> None:
    old = {"m.py": "".join(f"line{i}\n" for i in range(1, 21))}
    new = {"m.py": old["m.py"].replace("line10\n", "ten\n")}
    assert unified_diff(old, new) == (
        "diff --git a/m.py b/m.py\n--- a/m.py\n+++ b/m.py\n@@ -7,7 +7,7 @@\n"
        " line7\n line8\n line9\n-line10\n+ten\n line11\n line12\n line13\n"
    )
    assert unified_diff(old, dict(old)) == ""


def test_split_lines_keeps_form_feeds() -> None:
    assert split_lines("a\x0cb\nc") == ["a\x0cb\n", "c"]
    assert split_lines("") == []


# ---------------------------------------------------------------- broken edits


def test_search_not_found() -> None:
    result = apply_edits(FILES, [Edit("pkg/core.py", "\ndef sub(a, b):\n    pass\n", "x\n")])
    assert result.new_files == {}
    assert result.issues == ["search text not found in pkg/core.py: def sub(a, b):"]


def test_file_not_provided() -> None:
    edits = [Edit("pkg/missing.py", "a\n", "b\n"), Edit("pkg/core.py", "    return a - b\n",
                                                        "    return a + b\n")]
    result = apply_edits(FILES, edits)
    assert result.issues == ["file not provided: pkg/missing.py"]
    assert list(result.new_files) == ["pkg/core.py"]  # the good edit still applies


def test_no_op_edits() -> None:
    same = Edit("pkg/core.py", "    return x\n", "    return x\n")
    result = apply_edits(FILES, [same])
    assert result.new_files == {}
    assert result.issues == ["edit makes no change in pkg/core.py: return x"]

    there_and_back = [
        Edit("pkg/core.py", "    return x\n", "    return y\n"),
        Edit("pkg/core.py", "    return y\n", "    return x\n"),
    ]
    result = apply_edits(FILES, there_and_back)
    assert result.new_files == {}
    assert result.issues == ["edit makes no change: the edits leave every file as it was"]


def test_empty_search_is_an_issue() -> None:
    result = apply_edits(FILES, parse_edits(
        "### pkg/core.py\n<<<<<<< SEARCH\n=======\nimport sys\n>>>>>>> REPLACE\n").edits)
    assert result.new_files == {}
    assert [i.split(" (")[0] for i in result.issues] == ["empty search text in pkg/core.py"]


def test_malformed_answer_end_to_end() -> None:
    answer = ANSWER.replace(">>>>>>> REPLACE\n```\n\nThe util", "```\n\nThe util", 1)
    parsed = parse_edits(answer)
    # the mean() block lost its end marker; the util.py header inside it still counts
    assert parsed.issues == ["malformed edit block at line 24: missing >>>>>>> REPLACE"]
    result = apply_edits(FILES, parsed.edits)
    assert result.issues == []
    assert set(result.new_files) == {"pkg/core.py", "pkg/util.py"}
    assert "if not values" not in result.new_files["pkg/core.py"]
    assert result.new_files["pkg/util.py"] == NEW_UTIL


# ---------------------------------------------------------------- reproduction scripts

SCRIPT = "from pkg.core import add\n\nassert add(2, 2) == 4, add(2, 2)\nprint('ok')\n"


def test_script_fenced() -> None:
    answer = f"Save this as reproduce_bug.py:\n\n```python\n{SCRIPT}```\n\nRun it."
    result = extract_script(answer)
    assert (result.script, result.issues, result.source) == (SCRIPT, [], "fenced")


def test_script_crlf_and_untagged_fence() -> None:
    answer = f"Script:\n```\n{SCRIPT}```\n".replace("\n", "\r\n")
    result = extract_script(answer)
    assert (result.script, result.issues, result.source) == (SCRIPT, [], "fenced")


def test_script_unfenced_whole_answer() -> None:
    result = extract_script(SCRIPT.replace("\n", "\r\n"))
    assert (result.script, result.issues, result.source) == (SCRIPT, [], "whole")


def test_script_several_fences_takes_largest_python() -> None:
    answer = (
        "First the failing call:\n```py\nadd(2, 2)\n```\n"
        f"Full script:\n```python\n{SCRIPT}```\n"
        "Run with:\n```bash\npython reproduce_bug.py && echo this bash block is the longest one\n"
        "```\n"
        "Output:\n```\nAssertionError: 0\n```\n"
    )
    result = extract_script(answer)
    assert (result.script, result.issues, result.source) == (SCRIPT, [], "fenced")


def test_script_untagged_fence_when_no_python_fence() -> None:
    answer = f"```bash\npython reproduce_bug.py\n```\n```\n{SCRIPT}```\n"
    assert extract_script(answer).script == SCRIPT


def test_script_syntax_error_reports_line() -> None:
    bad = "import sys\n\ndef main(:\n    pass\n"
    result = extract_script(f"```python\n{bad}```")
    assert result.script == bad
    assert len(result.issues) == 1
    assert result.issues[0].startswith("does not compile: ")
    assert result.issues[0].endswith("(line 3)")
    assert check_script(bad) == result.issues


def test_script_prose_only_and_empty() -> None:
    prose = extract_script("The bug happens when adding two numbers.")
    assert (prose.script, prose.source) == (None, "none")
    assert prose.issues == ["no python code block found and the answer is not valid python"]
    assert extract_script("  \r\n").issues == ["script is empty"]
    assert extract_script("```python\n```").issues == ["script is empty"]
    assert check_script("") == ["script is empty"]
    assert check_script("# only a comment\n") == ["script is empty"]


def test_script_unclosed_fence() -> None:
    result = extract_script(f"```python\n{SCRIPT}")
    assert result.script == SCRIPT
    assert result.issues == ["code block is not closed (answer cut off?)"]


def test_script_indented_fence_is_dedented() -> None:
    body = "".join("    " + line + "\n" if line else "\n" for line in SCRIPT.splitlines())
    result = extract_script(f"1. Save:\n\n   ```python\n{body}   ```\n")
    assert (result.script, result.issues) == (SCRIPT, [])
