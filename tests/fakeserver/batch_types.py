"""Batch scripting (``BatchScript``) and the server-side state of files and batches."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Collection, Mapping, Sequence

import orjson

from .replies import Reply

_BATCH_STATUSES = (
    "validating", "failed", "in_progress", "finalizing",
    "completed", "expired", "cancelling", "cancelled",
)
_TERMINAL = ("failed", "completed", "expired", "cancelled")
_WITH_RESULTS = ("completed", "expired", "cancelled")
_TIMESTAMP_OF = {
    "in_progress": "in_progress_at", "finalizing": "finalizing_at", "completed": "completed_at",
    "failed": "failed_at", "expired": "expired_at", "cancelling": "cancelling_at",
    "cancelled": "cancelled_at",
}
_TIMESTAMPS = ("in_progress_at", "expires_at", "finalizing_at", "completed_at", "failed_at",
               "expired_at", "cancelling_at", "cancelled_at")
_MAX_REPORTED_ERRORS = 100
_EXPIRED_MSG = "This request could not be executed before the completion window expired."
_CANCELLED_MSG = "This request was cancelled before it could be executed."
_DUPLICATE_MSG = (
    "The custom_id for this request is a duplicate of another request. "
    "The custom_id parameter must be unique for each request in a batch."
)


@dataclass(frozen=True, eq=False)
class BatchScript:
    """How one batch behaves. Every field is optional; ``BatchScript()`` is
    the default batch (``validating -> in_progress -> finalizing -> completed``,
    every line answered by the default answerer).

    ``states``
        Statuses walked through, one per ``GET /v1/batches/{id}`` (the create
        call answers ``states[0]``). The walk stops at the first terminal
        status (``failed``, ``completed``, ``expired``, ``cancelled``) and
        stays on the last entry if there is none (a stuck batch). Repeat an
        entry to make it last several polls. Default: see above, or
        ``validating -> in_progress -> expired`` when ``expire_after`` is set.
        A batch whose input fails validation always goes ``validating ->
        failed`` (leading ``validating`` entries and a ``failed`` entry in
        ``states`` are honoured).
    ``fail_validation``
        ``True``: fail at validation (with the input's real line errors if it
        has any, else one error on line 1). A sequence of line numbers
        (1-based) or of error dicts (``code``/``line``/``message``/``param``,
        missing keys become ``None``): fail with exactly those errors.
    ``expire_after``
        Complete only the first N requests (input order); the rest become
        ``batch_expired`` error lines. Applies when the walk ends in
        ``expired`` (the default walk when ``states`` is not given); with
        ``states`` ending in ``expired`` but no ``expire_after``, whatever ran
        by the last ``in_progress`` poll is kept.
    ``cancel``
        What ``POST /v1/batches/{id}/cancel`` does. ``True``: status
        ``cancelling`` at once, ``cancelled`` on the next poll; requests
        processed so far keep their results, the rest become
        ``batch_cancelled`` error lines. An ``int`` N: as ``True`` but exactly
        the first N requests finish. ``False``: the cancel is refused (409).
        The same N applies when ``states`` itself walks into ``cancelling``.
    ``shuffle``
        Write output and error lines in random order (``True`` = seed 0, an
        ``int`` = that seed).
    ``drop``
        custom_ids omitted from both result files (their request still counts
        in ``request_counts`` as if it had run).
    ``http_errors``
        ``{custom_id: status | Reply.error(...)}``: error-file line with
        ``response: {status_code, request_id, body: {"error": {...}}}`` and
        ``error: null``.
    ``result_lines``
        ``{custom_id: line}``: the result line written for that request (to the
        error file, in place of its outcome), as given: a dict is written as
        JSON (it may lack ``custom_id``, or name another one), ``bytes``/``str``
        verbatim (e.g. not JSON). Shapes other runners write, for the client's
        parser. The request counts as failed.
    ``answer``
        ``fn(custom_id, body)`` returning the answer for a line: ``None``
        (default answer), a ``str``/``dict``/``list`` (answer text, like
        ``Reply.text``), or a ``Reply`` (``text``/``json``/``incomplete``/
        ``error``/``raw``; delays are ignored). Raising records the exception
        in ``server.errors`` and yields a 500 error line.
    ``usage_on_batch``
        Whether the batch object carries ``usage`` (default ``True``).

    Progress: with K ``in_progress`` entries, the k-th shows
    ``floor(N * k / (K + 1))`` requests processed (N = all requests, or the
    expire/cancel count); ``finalizing``/``completed`` show all. Result files
    are written when ``completed``/``expired``/``cancelled`` is reached (only
    non-empty ones get an id). ``request_counts``: ``total`` is 0 until the
    input passed validation; an HTTP-error line counts as failed, a dropped one
    as completed, an expired/cancelled one as failed. ``usage`` is all zeros
    until the result files exist, then the sum over the output-file lines.
    """

    states: Sequence[str] | None = None
    fail_validation: bool | Sequence[int | Mapping[str, Any]] = False
    expire_after: int | None = None
    cancel: bool | int = True
    shuffle: bool | int = False
    drop: Collection[str] = ()
    http_errors: Mapping[str, "int | Reply"] = field(default_factory=dict)
    result_lines: Mapping[str, "dict | bytes | str"] = field(default_factory=dict)
    answer: Callable[[str, dict], Any] | None = None
    usage_on_batch: bool = True

    def __post_init__(self) -> None:
        if self.states is not None:
            if isinstance(self.states, str) or not self.states:
                raise ValueError("BatchScript.states must be a non-empty sequence of statuses")
            bad = [s for s in self.states if s not in _BATCH_STATUSES]
            if bad:
                raise ValueError(
                    f"BatchScript.states: unknown status(es) {bad}; use {_BATCH_STATUSES}"
                )
        if self.expire_after is not None and self.expire_after < 0:
            raise ValueError("BatchScript.expire_after must be >= 0")


@dataclass(eq=False)
class FakeFile:
    """An uploaded or generated file (``server.files[file_id]``)."""

    id: str
    filename: str
    purpose: str
    content: bytes
    created_at: int

    @property
    def bytes(self) -> int:  # noqa: A003 - mirrors the OpenAI field name
        return len(self.content)

    def jsonl(self) -> list[Any]:
        """Parsed non-blank lines (unparseable lines come back as ``None``)."""
        out: list[Any] = []
        for raw in self.content.split(b"\n"):
            if raw.strip():
                try:
                    out.append(orjson.loads(raw))
                except orjson.JSONDecodeError:
                    out.append(None)
        return out

    def as_object(self) -> dict:
        expires = self.created_at + 30 * 86400 if self.purpose == "batch" else None
        return {
            "id": self.id,
            "object": "file",
            "bytes": len(self.content),
            "created_at": self.created_at,
            "expires_at": expires,
            "filename": self.filename,
            "purpose": self.purpose,
            "status": "processed",
            "status_details": None,
        }


@dataclass(eq=False)
class FakeBatch:
    """Server-side state of one batch (``server.batches[batch_id]``).

    ``lines`` are the parsed non-blank input lines (``None`` for a line that
    is not JSON), ``line_numbers`` their 1-based physical line numbers.
    ``status`` / ``states`` / ``pos`` show where the walk is; ``processed`` is
    how many requests (in input order) have run; ``validated`` whether the
    input passed validation (and ``request_counts.total`` is set); ``polls``
    counts ``GET /v1/batches/{id}`` calls; ``cancel_requested`` whether the
    client called cancel. ``outputs`` / ``error_lines`` are the result lines
    as written to the output / error file (after ``drop`` and ``shuffle``; a
    ``result_lines`` entry as given)."""

    id: str
    endpoint: str
    input_file_id: str
    completion_window: str
    metadata: dict | None
    created_at: int
    script: BatchScript
    lines: list[Any]
    line_numbers: list[int]
    model: str | None
    validation_errors: list[dict]
    states: list[str]
    status: str = "validating"
    pos: int = 0
    processed: int = 0
    validated: bool = False
    polls: int = 0
    cancel_requested: bool = False
    results_written: bool = False
    errors: list[dict] | None = None
    output_file_id: str | None = None
    error_file_id: str | None = None
    timestamps: dict = field(default_factory=dict)
    request_counts: dict = field(default_factory=lambda: {"total": 0, "completed": 0, "failed": 0})
    usage: dict = field(default_factory=lambda: _usage_sum([]))
    outcomes: dict = field(default_factory=dict)  # line index -> (status_code, body, request_id)
    outputs: list[dict] = field(default_factory=list)
    error_lines: list[Any] = field(default_factory=list)

    @property
    def custom_ids(self) -> list[Any]:
        """custom_id of every parsed input line (input order, duplicates kept)."""
        return [ln.get("custom_id") for ln in self.lines if isinstance(ln, dict)]

    @property
    def n(self) -> int:
        return len(self.lines)

    def as_object(self) -> dict:
        obj: dict[str, Any] = {
            "id": self.id,
            "object": "batch",
            "endpoint": self.endpoint,
            "errors": (
                None
                if self.errors is None
                else {"object": "list", "data": [dict(e) for e in self.errors]}
            ),
            "input_file_id": self.input_file_id,
            "completion_window": self.completion_window,
            "status": self.status,
            "output_file_id": self.output_file_id,
            "error_file_id": self.error_file_id,
            "created_at": self.created_at,
        }
        for key in _TIMESTAMPS:
            obj[key] = self.timestamps.get(key)
        obj["request_counts"] = dict(self.request_counts)
        obj["metadata"] = None if self.metadata is None else dict(self.metadata)
        obj["model"] = self.model
        if self.script.usage_on_batch:
            obj["usage"] = orjson.loads(orjson.dumps(self.usage))
        return obj


def _usage_sum(bodies: list[Any]) -> dict:
    """Batch ``usage`` summed over result bodies (Responses or Chat shape)."""
    tot = {"in": 0, "cached": 0, "out": 0, "reason": 0, "total": 0}
    for b in bodies:
        u = b.get("usage") if isinstance(b, dict) else None
        if not isinstance(u, dict):
            continue
        if "input_tokens" in u or "output_tokens" in u:
            in_d = u.get("input_tokens_details") or {}
            out_d = u.get("output_tokens_details") or {}
            n_in, n_out = u.get("input_tokens", 0), u.get("output_tokens", 0)
        else:
            in_d = u.get("prompt_tokens_details") or {}
            out_d = u.get("completion_tokens_details") or {}
            n_in, n_out = u.get("prompt_tokens", 0), u.get("completion_tokens", 0)
        tot["in"] += int(n_in or 0)
        tot["out"] += int(n_out or 0)
        tot["cached"] += int(in_d.get("cached_tokens") or 0)
        tot["reason"] += int(out_d.get("reasoning_tokens") or 0)
        tot["total"] += int(u.get("total_tokens", (n_in or 0) + (n_out or 0)) or 0)
    return {
        "input_tokens": tot["in"],
        "input_tokens_details": {"cached_tokens": tot["cached"]},
        "output_tokens": tot["out"],
        "output_tokens_details": {"reasoning_tokens": tot["reason"]},
        "total_tokens": tot["total"],
    }
