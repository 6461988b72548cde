"""The patch in a model's answer: a unified diff, or SEARCH/REPLACE edits made into one.

Looked for in this order (the first that gives a patch wins), named by `source`:
- `tag`: the text of `<patch>...</patch>` or `<diff>...</diff>` (a fence inside is unwrapped);
- `fence`: ```diff / ```patch blocks, joined in order;
- `search_replace`: SEARCH/REPLACE blocks (agentless/edits.py) applied to the context files
  whose content is complete (every line numbered 1..N; a fragment with gaps is not), then
  rendered as a git diff;
- `fence_other`: any other fenced block that holds a diff;
- `bare`: the answer from its first `diff --git` or `--- a/` line, up to the first line that
  cannot belong to a diff;
- `none`: nothing found (`patch` is "").
Pure functions; problems are returned as issue strings.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from benchsmith.recipes.agentless.edits import apply_edits, parse_edits, unified_diff

_TAG = re.compile(r"<(patch|diff)>\s*\n?(.*?)</\1>", re.DOTALL | re.IGNORECASE)
_FENCE = re.compile(r"^[ \t]*```[ \t]*([\w+-]*)[^\n]*\n(.*?)^[ \t]*```[ \t]*$",
                    re.DOTALL | re.MULTILINE)
_DIFF_LANGS = {"diff", "patch", "udiff"}
_START = re.compile(r"^(diff --git |--- a/|--- /dev/null)", re.MULTILINE)
# Lines a diff may hold (besides hunk lines), so the prose after a bare diff is cut off.
_HEADERS = ("diff --git ", "index ", "--- ", "+++ ", "@@", "new file mode", "deleted file mode",
            "old mode", "new mode", "similarity index", "rename from", "rename to",
            "copy from", "copy to", "Binary files", "\\ No newline")
_NUMBERED = re.compile(r"^(\d+)(?: (.*))?$", re.DOTALL)


@dataclass(frozen=True)
class Extracted:
    patch: str
    source: str
    issues: tuple[str, ...] = field(default_factory=tuple)


def _ending(text: str) -> str:
    text = text.strip("\n")
    return text + "\n" if text.strip() else ""


def _looks_like_diff(text: str) -> bool:
    return bool(_START.search(text)) or ("\n+++ " in text and "@@" in text)


def _unfence(text: str) -> str:
    m = _FENCE.search(text)
    return m.group(2) if m else text


def bare_diff(text: str) -> str:
    """The diff starting at the first `diff --git` / `--- a/` line, without trailing prose."""
    m = _START.search(text)
    if not m:
        return ""
    out = []
    for line in text[m.start():].split("\n"):
        if not (line.startswith(_HEADERS) or line[:1] in (" ", "+", "-") or line == ""):
            break  # prose (or a closing fence) after the diff
        out.append(line)
    return _ending("\n".join(out))


def file_text(content: str) -> str | None:
    """The original text of a line-numbered context file, or None when it is a fragment (its
    numbers do not run 1, 2, ... N, e.g. `...` gaps between pieces)."""
    lines = content.split("\n")
    out = []
    for i, line in enumerate(lines, 1):
        m = _NUMBERED.match(line)
        if not m or int(m.group(1)) != i:
            return None
        out.append(m.group(2) or "")
    return "\n".join(out)


def files_in_prompt(prompt: str, paths: Sequence[str]) -> dict[str, str]:
    """path -> text of the complete context files among `paths`, read back from the prompt."""
    out = {}
    for path in paths:
        start, end = f"[start of {path}]\n", f"\n[end of {path}]"
        i = prompt.find(start)
        j = prompt.find(end, i + len(start)) if i >= 0 else -1
        if j < 0:
            continue
        text = file_text(prompt[i + len(start):j])
        if text is not None:
            out[path] = text
    return out


def _search_replace(answer: str, files: Mapping[str, str]) -> Extracted | None:
    if "<<<<<<< SEARCH" not in answer:
        return None
    parsed = parse_edits(answer)
    issues = list(parsed.issues)
    if not parsed.edits:
        return Extracted("", "none", tuple(issues or ["no usable SEARCH/REPLACE edit"]))
    applied = apply_edits(dict(files), parsed.edits)
    issues.extend(applied.issues)
    patch = unified_diff(dict(files), applied.new_files)
    if not patch:
        return Extracted("", "none", tuple(issues or ["the edits change nothing"]))
    return Extracted(patch, "search_replace", tuple(issues))


def extract_patch(answer: str, files: Mapping[str, str] | None = None) -> Extracted:
    """The patch of `answer` (see the module docstring); `files`: path -> complete text of
    the context files, for SEARCH/REPLACE edits."""
    text = answer.replace("\r\n", "\n")
    tags = [_ending(_unfence(m.group(2))) for m in _TAG.finditer(text)]
    tags = [t for t in tags if t]
    if tags:
        return Extracted("".join(tags), "tag")
    fences = [(m.group(1).lower(), m.group(2)) for m in _FENCE.finditer(text)]
    diffs = [_ending(body) for lang, body in fences if lang in _DIFF_LANGS and body.strip()]
    if diffs:
        return Extracted("".join(diffs), "fence")
    sr = _search_replace(text, files or {})
    if sr is not None:
        return sr
    other = [_ending(body) for lang, body in fences
             if lang not in _DIFF_LANGS and _looks_like_diff(body)]
    if other:
        return Extracted("".join(other), "fence_other")
    bare = bare_diff(text)
    if bare:
        return Extracted(bare, "bare")
    return Extracted("", "none", ("no diff or SEARCH/REPLACE edit found in the answer",))


def changed_lines(patch: str) -> list[str]:
    """The +/- lines of a patch (headers left out), whitespace-normalised, for scoring."""
    out = []
    for line in patch.split("\n"):
        if line.startswith(("+++ ", "--- ")) or line[:1] not in ("+", "-"):
            continue
        out.append(line[0] + " ".join(line[1:].split()))
    return out


def normalised(patch: str) -> str:
    """The patch with runs of whitespace made one space and blank lines dropped."""
    return "\n".join(" ".join(ln.split()) for ln in patch.split("\n") if ln.strip())

