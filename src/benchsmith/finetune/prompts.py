"""The prompt of a training pair: one system prompt (minimal unified-diff fixes) and a user
part with the issue, the relevant files and, for reflection, the failed attempt. Every part
is bounded (PromptBounds); a cut part says how much was cut.

Files: the attempt's `localised_files` in order, then any other path of its `file_contents`,
at most `max_files`. A file whose text is in `file_contents` is shown (bounded); the others
are listed by path only (trajectories rarely carry file text).
"""

from __future__ import annotations

from dataclasses import dataclass

from benchsmith.finetune.failures import error_context
from benchsmith.finetune.trajectories import Entry

SYSTEM_PROMPT = (
    "You are an expert software engineer. You are given an issue from a repository and the "
    "files relevant to it. Write the minimal patch that resolves the issue: change only what "
    "the fix needs, keep the code style, and do not add unrelated edits. Answer with a "
    "unified diff only (`diff --git a/path b/path`, `--- a/path`, `+++ b/path` and `@@` "
    "hunks), with no explanation before or after it."
)


@dataclass(frozen=True)
class PromptBounds:
    max_issue_chars: int = 6000
    max_files: int = 8
    max_file_chars: int = 4000
    max_failed_patch_chars: int = 4000
    max_error_chars: int = 2000


def bounded(text: str, limit: int) -> str:
    """`text`, or its first `limit` characters and a line saying how many were cut."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}\n[... {len(text) - limit} more characters cut]"


def relevant_files(e: Entry, max_files: int) -> list[tuple[str, str | None]]:
    """(path, text or None), the localised files first, at most `max_files`."""
    texts = dict(e.file_contents)
    paths = list(dict.fromkeys([*e.localised_files, *texts]))
    return [(p, texts.get(p)) for p in paths[:max_files]]


def _files_section(e: Entry, b: PromptBounds) -> str:
    files = relevant_files(e, b.max_files)
    if not files:
        return ""
    parts = []
    for path, text in files:
        if text is None:
            parts.append(f"- {path}")
        else:
            parts.append(f'<file path="{path}">\n{bounded(text, b.max_file_chars)}\n</file>')
    sep = "\n" if all(t is None for _, t in files) else "\n\n"
    return "Relevant files:\n" + sep.join(parts)


def failed_section(failed: Entry, b: PromptBounds) -> str:
    """What a reflection prompt shows of the failed attempt."""
    parts = [
        f"A previous attempt (attempt {failed.attempt}) did not resolve the issue.",
        f"Failure category: {failed.failure_category}",
        f"<failed_patch>\n{bounded(failed.patch.strip(), b.max_failed_patch_chars)}\n"
        "</failed_patch>",
    ]
    context = error_context(failed.test_stdout)
    if context.strip():
        parts.append(f"<error>\n{bounded(context.strip(), b.max_error_chars)}\n</error>")
    parts.append("Write a corrected patch.")
    return "\n\n".join(parts)


def user_prompt(e: Entry, b: PromptBounds, failed: Entry | None = None) -> str:
    """The issue of `e` with its files; with `failed`, the failed-attempt section too."""
    where = f" in the repository {e.repo}" if e.repo else ""
    issue = e.problem_statement.replace("\r\n", "\n").strip()  # issues often come with CRLF
    parts = [f"Resolve the following issue{where}.",
             f"<issue>\n{bounded(issue, b.max_issue_chars)}\n</issue>"]
    files = _files_section(e, b)
    if files:
        parts.append(files)
    if failed is not None:
        parts.append(failed_section(failed, b))
    parts.append("Answer with the patch as a unified diff.")
    return "\n\n".join(parts)
