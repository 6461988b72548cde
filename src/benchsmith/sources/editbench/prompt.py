"""The prompt of an infbench row, built from its parts so that a prediction run can drop
code-context files (whole files, from the end) to fit a model's context and render it again.

An infbench row keeps the parts next to `prompt`:
- `requirement`: PR title/body and issue text (may be empty);
- `pre_edits`: k steps, each a list of unified diffs (as in the bench);
- `context_files`: [{"path", "content"}] in prompt order; `content` is what goes between the
  file's markers, already line-numbered (`render_file`), so fragments rebuilt from diffs keep
  their real line numbers.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

PATCH_EXAMPLE = """<patch>
diff --git a/pkg/cache.py b/pkg/cache.py
--- a/pkg/cache.py
+++ b/pkg/cache.py
@@ -3,6 +3,7 @@
 import pickle
 import re
 import time
+import warnings

 from pkg.base import BaseCache

@@ -164,6 +165,10 @@ class MemcachedCache(BaseCache):
     def __init__(self, server, params):
+        warnings.warn(
+            "MemcachedCache is deprecated in favor of PyMemcacheCache.",
+            DeprecationWarning, stacklevel=2,
+        )
         import memcache
</patch>"""

_ASK = (
    "recommend all the remaining edits to address the editing objective the developer intends "
    "to accomplish by generating a single patch file that can be directly applied to this "
    "repository using git apply. Do not edit test files. Respond only with a single patch "
    "file in the following format.\n"
    "Here is an example of a patch file. It specifies the file names, the line numbers of "
    "each change, and the removed and added lines. A single patch file can change several "
    "files.\n" + PATCH_EXAMPLE
)

HEAD_FULL = (
    "You will be provided with 1) a partial code base, 2) a code editing requirement "
    "describing the target modification, and 3) an ordered history of prior code edits "
    "(Git diffs) made to progress toward solving the task."
)
HEAD_CHANGES = (
    "You will be provided with 1) a partial code base and 2) an ordered history of prior code "
    "edits (Git diffs) made to progress toward solving the task."
)
HEAD_CODE = "You will be provided with a partial code base."
HEAD_ISSUE = (
    "You will be provided with 1) a partial code base and 2) a code editing requirement "
    "describing the target modification."
)


def number_lines(text: str, start: int = 1) -> str:
    """`text` with each line prefixed by its number and a space (as the original tool)."""
    return "\n".join(f"{i} {line}" for i, line in enumerate(text.split("\n"), start))


def render_file(path: str, content: str) -> str:
    return f"[start of {path}]\n{content}\n[end of {path}]"


def step_text(step: Sequence[str]) -> str:
    """One history step: its diffs joined by newlines."""
    joined = "\n".join(step)
    return joined + "\n" if len(step) == 1 and not joined.endswith("\n") else joined


def render_history(pre_edits: Sequence[Sequence[str]]) -> str:
    return "\n".join(
        f"[start of step {i}]\n{step_text(step)}\n[end of step {i}]"
        for i, step in enumerate(pre_edits, 1)
    )


def render_code(files: Iterable[Mapping[str, Any]]) -> str:
    return "\n".join(render_file(f["path"], f["content"]) for f in files)


def render_prompt(
    requirement: str, pre_edits: Sequence[Sequence[str]], context_files: Sequence[Mapping[str, Any]]
) -> str:
    """The prompt: requirement (when not blank), code context, change history (when k > 0)."""
    has_req, has_hist = bool(requirement.strip()), bool(pre_edits)
    if has_hist:
        head = HEAD_FULL if has_req else HEAD_CHANGES
    else:  # no history: the requirement alone, or (no text either) the code alone
        head = HEAD_ISSUE if has_req else HEAD_CODE
    parts = [head]
    if has_req:
        parts.append(f"<requirement>\n{requirement.strip()}\n</requirement>")
    parts.append(f"<code>\n{render_code(context_files)}\n</code>")
    if has_hist:
        parts.append(f"<change_history>\n{render_history(pre_edits)}\n</change_history>")
        lead = ("Understand the content and purpose of the historical code changes above in "
                "relation to the requirement. Based on this, " if has_req else
                "Understand the content and purpose of the historical code changes above. "
                "Based on this, ")
    elif has_req:
        lead = "Solve the requirement above: "
    else:
        lead = "Read the code above and "
    parts.append(lead + _ASK)
    return "\n".join(parts)
