"""Unified diffs in memory (benchsmith.sources.editbench.diffs): parse, apply with offset and
fuzz, fragments with real line numbers. Diffs are made with difflib from known texts, so the
expected results are the texts themselves."""

from __future__ import annotations

import difflib

import pytest

from benchsmith.sources.editbench import diffs

BASE = "".join(f"line {i}\n" for i in range(1, 41))


def udiff(old: str, new: str, path: str = "pkg/mod.py", n: int = 3) -> str:
    a = old.splitlines(keepends=True)
    b = new.splitlines(keepends=True)
    body = "".join(difflib.unified_diff(a, b, f"a/{path}", f"b/{path}", n=n))
    return f"diff --git a/{path} b/{path}\n{body}"


def edit(text: str, **lines: str) -> str:
    """`text` with line N replaced (`l5="x"`; "" deletes it; "a\\nb" inserts)."""
    out = text.split("\n")
    for key, val in sorted(lines.items(), key=lambda kv: -int(kv[0][1:])):
        i = int(key[1:]) - 1
        out[i:i + 1] = val.split("\n") if val else []
    return "\n".join(out)


def test_parse_paths_hunks_and_counts() -> None:
    new = edit(BASE, l5="five", l30="thirty\nthirty-bis")
    [fd] = diffs.parse(udiff(BASE, new))
    assert (fd.old_path, fd.new_path, fd.path) == ("pkg/mod.py", "pkg/mod.py", "pkg/mod.py")
    assert [(h.old_start, h.old_len, h.new_start, h.new_len) for h in fd.hunks] == [
        (2, 7, 2, 7), (27, 7, 27, 8)]
    assert fd.hunks[0].old_lines()[3] == "line 5" and fd.hunks[0].new_lines()[3] == "five"


def test_parse_new_and_deleted_files_and_plain_headers() -> None:
    created = "diff --git a/n.py b/n.py\nnew file mode 100644\n--- /dev/null\n+++ b/n.py\n" \
        "@@ -0,0 +1,2 @@\n+a\n+b\n"
    deleted = "--- a/old.py\n+++ /dev/null\n@@ -1 +0,0 @@\n-x\n"
    [c], [d] = diffs.parse(created), diffs.parse(deleted)
    assert c.is_new and c.path == "n.py" and not c.is_deleted
    assert d.is_deleted and d.path == "old.py"
    assert diffs.apply_file(None, c) == "a\nb\n"
    assert diffs.apply_file("x\n", d) is None


def test_removed_line_starting_with_dashes_is_not_a_header() -> None:
    old, new = "a\n-- sql comment\nb\n", "a\nb\n"
    [fd] = diffs.parse(udiff(old, new))
    assert fd.hunks[0].lines == ((" ", "a"), ("-", "-- sql comment"), (" ", "b"))
    assert diffs.apply_file(old, fd) == new


def test_a_cut_hunk_is_an_error_naming_file_and_hunk() -> None:
    text = udiff(BASE, edit(BASE, l5="five"))
    with pytest.raises(diffs.DiffError, match=r"pkg/mod.py: hunk @@ -2,7 \+2,7 @@ is cut short"):
        diffs.parse("\n".join(text.split("\n")[:8]))  # ends after "-line 5"


def test_apply_exact_shifted_and_fuzzed() -> None:
    new = edit(BASE, l10="ten", l25="")
    d = udiff(BASE, new)
    assert diffs.apply({"pkg/mod.py": BASE}, [d])["pkg/mod.py"] == new
    # Five lines more at the top: the hunks are found 5 lines further down (offset search).
    shifted = "".join(f"top {i}\n" for i in range(5)) + BASE
    assert diffs.apply({"pkg/mod.py": shifted}, [d])["pkg/mod.py"] == \
        "".join(f"top {i}\n" for i in range(5)) + new
    # The first context line of the first hunk changed: fuzz 1 drops it and applies.
    fuzzed = BASE.replace("line 7\n", "line seven\n")
    got = diffs.apply({"pkg/mod.py": fuzzed}, [d])["pkg/mod.py"]
    assert got == new.replace("line 7\n", "line seven\n")


def test_apply_failure_names_file_and_hunk() -> None:
    d = udiff(BASE, edit(BASE, l10="ten"))
    broken = BASE.replace("line 10\n", "line X\n")
    with pytest.raises(diffs.DiffError, match=r"^pkg/mod.py: hunk 1 \(@@ -7,7 \+7,7 @@\) does "
                       r"not apply"):
        diffs.apply({"pkg/mod.py": broken}, [d])
    with pytest.raises(diffs.DiffError, match="not read"):
        diffs.apply({}, [d])


def test_no_newline_at_end_of_file_both_ways() -> None:
    old, new = "a\nb", "a\nb\nc\n"
    d = "diff --git a/f b/f\n--- a/f\n+++ b/f\n@@ -1,2 +1,3 @@\n a\n-b\n" \
        "\\ No newline at end of file\n+b\n+c\n"
    [fd] = diffs.parse(d)
    assert fd.hunks[0].old_no_eol and not fd.hunks[0].new_no_eol
    assert diffs.apply_file(old, fd) == new
    back = "diff --git a/f b/f\n--- a/f\n+++ b/f\n@@ -1,2 +1,2 @@\n a\n-b\n+b\n" \
        "\\ No newline at end of file\n"
    assert diffs.apply_file("a\nb\n", diffs.parse(back)[0]) == "a\nb"


def test_files_touched_first_touch_order() -> None:
    d1, d2 = udiff("x\n", "y\n", "b.py"), udiff("x\n", "y\n", "a.py")
    assert diffs.files_touched([d1, d2, d1]) == ["b.py", "a.py"]


def test_fragments_real_numbers_through_earlier_diffs() -> None:
    s1 = edit(BASE, l3="three\nthree-bis\nthree-ter")  # +2 lines near the top
    s2 = edit(s1, l32="thirty (was line 30)")  # line 30 of BASE is line 32 now
    d1, d2 = udiff(BASE, s1, n=1), udiff(s1, s2, n=1)
    fr = diffs.fragments("pkg/mod.py", [d1, d2])
    # d1 shows lines 2-4 of BASE; d2 shows 31-33 of s1 = lines 29-31 of BASE.
    assert fr.lines == {2: "line 2", 3: "line 3", 4: "line 4",
                        29: "line 29", 30: "line 30", 31: "line 31"}
    assert diffs.render_fragments(fr).split("\n") == [
        "...", "2 line 2", "3 line 3", "4 line 4", "...", "29 line 29", "30 line 30",
        "31 line 31", "..."]
    # Every shown line is the base text at that number.
    base_lines = BASE.split("\n")
    assert all(base_lines[n - 1] == t for n, t in fr.lines.items())


def test_fragments_skip_lines_earlier_diffs_added() -> None:
    s1 = edit(BASE, l20="new twenty\nnew twenty-one")
    s2 = edit(s1, l21="changed the added line")
    fr = diffs.fragments("pkg/mod.py", [udiff(BASE, s1, n=0), udiff(s1, s2, n=0)])
    assert fr.lines == {20: "line 20"}  # line 21 of s1 did not exist before d1


def test_fragments_of_a_new_file_say_so() -> None:
    created = "diff --git a/n.py b/n.py\n--- /dev/null\n+++ b/n.py\n@@ -0,0 +1 @@\n+a\n"
    fr = diffs.fragments("n.py", [created])
    assert fr.new_file and "new file" in diffs.render_fragments(fr)


def test_trailing_blank_context_lost_at_a_boundary_is_restored() -> None:
    """Stored diffs lose a last blank context line (" \\n" stripped to nothing); a hunk
    short of context lines only, at the end or before the next file, gets them back."""
    old, new = "a\nb\n\nc\n", "a\nB\n\nc\n"
    d = udiff(old, new, n=1)  # ends with the blank context line " "
    stripped = d[: -len(" \n")]
    assert stripped.endswith("+B\n")
    [fd] = diffs.parse(stripped + udiff("x\n", "y\n", "other.py"))[:1]
    assert fd.hunks[0].lines[-1] == (" ", "") and diffs.apply_file(old, fd) == new


def test_git_headers_without_hunks_empty_new_file_deletion_and_rename() -> None:
    empty = "diff --git a/e.py b/e.py\nnew file mode 100644\nindex 0000000..e69de29\n"
    gone = "diff --git a/g.py b/g.py\ndeleted file mode 100644\nindex e69de29..0000000\n"
    moved = "diff --git a/old.py b/new.py\nsimilarity index 100%\nrename from old.py\n" \
        "rename to new.py\n"
    [e], [g], [m] = diffs.parse(empty), diffs.parse(gone), diffs.parse(moved)
    assert (e.old_path, e.new_path) == (None, "e.py") and diffs.apply_file(None, e) == ""
    assert (g.old_path, g.new_path) == ("g.py", None) and diffs.apply_file("", g) is None
    assert (m.old_path, m.new_path) == ("old.py", "new.py")
    assert diffs.apply({"old.py": "x\n"}, [moved]) == {"old.py": None, "new.py": "x\n"}
    assert diffs.files_touched([empty, gone, moved]) == ["e.py", "g.py", "new.py"]
