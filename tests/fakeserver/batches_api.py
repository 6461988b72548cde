"""The Batches API of the fake server (routing for Files + Batches, create/get/cancel/list)."""

from __future__ import annotations

import collections
import re
import threading
import time
import urllib.parse
from typing import Any, Callable

from aiohttp import web

from .api_errors import _api_error, _invalid, _json_response, _line_error, _missing
from .batch_types import _TERMINAL, BatchScript, FakeBatch, FakeFile
from .batch_walk import _BatchWalk
from .common import _BATCHES, _CHAT, _FILES, _RESPONSES, Received
from .files_api import _FilesAPI

_FILE_RE = re.compile(r"^/v1/files/([^/]+)(/content)?$")
_BATCH_RE = re.compile(r"^/v1/batches/([^/]+)(/cancel)?$")
# Accepted by ``batches.create`` (openai-python ``batch_create_params.py``) ...
_BATCH_ENDPOINTS = (
    "/v1/responses", "/v1/chat/completions", "/v1/embeddings", "/v1/completions",
    "/v1/moderations", "/v1/images/generations", "/v1/images/edits", "/v1/videos",
)
# ... of which the fake can answer these two.
_BATCH_SUPPORTED = (_RESPONSES, _CHAT)


class _BatchAPI(_FilesAPI, _BatchWalk):
    """Files + Batches endpoints of :class:`FakeOpenAI` (a mixin)."""

    # Provided by FakeOpenAI:
    errors: list[BaseException]
    _new_id: Callable[[], str]
    _payload: Callable[..., dict | None]

    def _init_batches(self) -> None:
        self.batch_plan: Callable[[str, list[Any]], BatchScript | None] | None = None
        self.batch_advance_on_get = True
        self.max_batch_bytes = 200 * 1024 * 1024
        self.max_batch_lines = 50_000
        self._files: dict[str, FakeFile] = {}
        self._batches: dict[str, FakeBatch] = {}
        self._batch_queue: collections.deque[BatchScript] = collections.deque()
        # Re-entrant: `batch_plan` / `answer` callbacks may read server.batches.
        self._batch_lock = threading.RLock()

    # ------------------------------------------------------------ public API

    @property
    def batches(self) -> dict[str, FakeBatch]:
        """Snapshot ``{batch_id: FakeBatch}`` in creation order."""
        with self._batch_lock:
            return dict(self._batches)

    def enqueue_batch(self, *scripts: BatchScript) -> None:
        """Scripts for the next created batches, FIFO (before ``batch_plan``)."""
        for s in scripts:
            if not isinstance(s, BatchScript):
                raise TypeError(f"enqueue_batch expects BatchScript, got {type(s).__name__}")
        with self._batch_lock:
            self._batch_queue.extend(scripts)

    @property
    def pending_batches(self) -> int:
        """Enqueued batch scripts not consumed yet."""
        with self._batch_lock:
            return len(self._batch_queue)

    def advance_batch(self, batch_id: str, steps: int = 1) -> str:
        """Move a batch ``steps`` states on without a poll; returns its status."""
        with self._batch_lock:
            batch = self._batches[batch_id]
            self._advance(batch, steps)
            return batch.status

    def finish_batch(self, batch_id: str) -> str:
        """Walk a batch to its last state; returns its status."""
        with self._batch_lock:
            batch = self._batches[batch_id]
            self._advance(batch, len(batch.states))
            return batch.status

    def custom_id_counts(self) -> "collections.Counter[Any]":
        """How often each custom_id was submitted, over all batches."""
        with self._batch_lock:
            batches = list(self._batches.values())
        counts: collections.Counter[Any] = collections.Counter()
        for b in batches:
            counts.update(b.custom_ids)
        return counts

    def _reset_batches(self) -> None:
        with self._batch_lock:
            self._files.clear()
            self._batches.clear()
            self._batch_queue.clear()
            self.batch_plan = None

    # ------------------------------------------------------------ routing

    def _batch_api(self, received: Received) -> web.Response:
        path, method = received.path, received.method
        if path == _FILES:
            if method == "POST":
                return self._file_upload(received)
            if method == "GET":
                return self._file_list(received)
            return self._not_allowed(received)
        if path == _BATCHES:
            if method == "POST":
                return self._batch_create(received)
            if method == "GET":
                return self._batch_list(received)
            return self._not_allowed(received)
        m = _FILE_RE.match(path)
        if m:
            file_id, content = m.group(1), bool(m.group(2))
            if content:
                if method == "GET":
                    return self._file_content(file_id)
                return self._not_allowed(received)
            if method == "GET":
                return self._file_get(file_id)
            if method == "DELETE":
                return self._file_delete(file_id)
            return self._not_allowed(received)
        m = _BATCH_RE.match(path)
        if m:
            batch_id, cancel = m.group(1), bool(m.group(2))
            if cancel:
                if method == "POST":
                    return self._batch_cancel(batch_id)
                return self._not_allowed(received)
            if method == "GET":
                return self._batch_get(batch_id)
            return self._not_allowed(received)
        return _api_error(404, f"Invalid URL ({method} {path})")

    @staticmethod
    def _not_allowed(received: Received) -> web.Response:
        return _api_error(405, f"Method {received.method} not allowed for {received.path}")

    # ------------------------------------------------------------ files

    def _batch_create(self, received: Received) -> web.Response:
        body = received.body
        if body is None:
            return _api_error(400, "We could not parse the JSON body of your request.")
        for key in ("input_file_id", "endpoint", "completion_window"):
            if not isinstance(body.get(key), str):
                return _missing(key)
        endpoint, window = body["endpoint"], body["completion_window"]
        if window != "24h":
            return _invalid("completion_window", f"{window!r}. Supported values are: '24h'.")
        if endpoint not in _BATCH_ENDPOINTS:
            return _invalid("endpoint", f"{endpoint!r}.")
        if endpoint not in _BATCH_SUPPORTED:
            return _invalid(
                "endpoint",
                f"{endpoint!r}: fake_openai only fakes batches for {list(_BATCH_SUPPORTED)}.",
            )
        metadata = body.get("metadata")
        if metadata is not None:
            ok = (
                isinstance(metadata, dict) and len(metadata) <= 16
                and all(isinstance(k, str) and len(k) <= 64 for k in metadata)
                and all(isinstance(v, str) and len(v) <= 512 for v in metadata.values())
            )
            if not ok:
                return _invalid(
                    "metadata", "at most 16 string pairs, keys <= 64 and values <= 512 characters."
                )
        src = self._lookup_file(body["input_file_id"])
        if src is None:
            return _invalid("input_file_id", f"{body['input_file_id']!r}: no such file.")
        if src.purpose != "batch":
            return _invalid(
                "input_file_id", f"the file must have purpose 'batch', not {src.purpose!r}."
            )

        lines, numbers, errors, model = self._parse_batch_input(src.content, endpoint)
        batch_id = "batch_" + self._new_id()
        with self._batch_lock:
            script = self._batch_queue.popleft() if self._batch_queue else None
        if script is None and self.batch_plan is not None:
            try:
                script = self.batch_plan(batch_id, list(lines))
            except Exception as exc:
                self.errors.append(exc)
                return _api_error(
                    500, f"fake_openai batch_plan raised {exc!r}", type_="server_error"
                )
            if script is not None and not isinstance(script, BatchScript):
                exc = TypeError(
                    f"batch_plan must return BatchScript or None, got {type(script).__name__}"
                )
                self.errors.append(exc)
                return _api_error(500, f"fake_openai {exc}", type_="server_error")
        script = script or BatchScript()

        forced = script.fail_validation
        if forced is not True and forced:
            errors = [
                _line_error("invalid_request", int(e), "Scripted validation failure (fake).")
                if isinstance(e, int) else {"code": e.get("code"), "line": e.get("line"),
                                            "message": e.get("message"), "param": e.get("param")}
                for e in forced
            ]
        elif forced is True and not errors:
            errors = [_line_error("invalid_request", 1, "Scripted validation failure (fake).")]
        now = int(time.time())
        batch = FakeBatch(
            id=batch_id,
            endpoint=endpoint,
            input_file_id=src.id,
            completion_window=window,
            metadata=dict(metadata) if metadata is not None else None,
            created_at=now,
            script=script,
            lines=lines,
            line_numbers=numbers,
            model=model,
            validation_errors=errors,
            states=self._effective_states(script, bool(errors)),
        )
        batch.timestamps["expires_at"] = now + 86400
        with self._batch_lock:
            self._enter(batch, batch.states[0])
            self._batches[batch_id] = batch
            obj = batch.as_object()
        return _json_response(obj)

    def _batch_get(self, batch_id: str) -> web.Response:
        with self._batch_lock:
            batch = self._batches.get(batch_id)
            if batch is None:
                return _api_error(404, f"No batch found with id '{batch_id}'.", param="batch_id")
            batch.polls += 1
            if self.batch_advance_on_get:
                self._advance(batch, 1)
            obj = batch.as_object()
        return _json_response(obj)

    def _batch_cancel(self, batch_id: str) -> web.Response:
        with self._batch_lock:
            batch = self._batches.get(batch_id)
            if batch is None:
                return _api_error(404, f"No batch found with id '{batch_id}'.", param="batch_id")
            if batch.status in _TERMINAL or batch.script.cancel is False:
                return _api_error(
                    409, f"Cannot cancel a batch with status '{batch.status}'.",
                    type_="invalid_request_error", code="batch_not_cancellable",
                )
            batch.cancel_requested = True
            if batch.status != "cancelling":
                batch.states = batch.states[: batch.pos + 1] + ["cancelling", "cancelled"]
                self._advance(batch, 1)
            obj = batch.as_object()
        return _json_response(obj)

    def _batch_list(self, received: Received) -> web.Response:
        query = urllib.parse.parse_qs(received.query)
        try:
            limit = int((query.get("limit") or ["20"])[0])
        except ValueError:
            limit = -1
        if not 1 <= limit <= 100:
            return _api_error(400, "Invalid 'limit': must be an integer between 1 and 100.",
                              code="invalid_value", param="limit")
        after = (query.get("after") or [None])[0]
        with self._batch_lock:
            ordered = list(reversed(self._batches.values()))  # newest first
            if after is not None:
                ids = [b.id for b in ordered]
                ordered = ordered[ids.index(after) + 1:] if after in ids else []
            page = [b.as_object() for b in ordered[:limit]]
            has_more = len(ordered) > limit
        return _json_response({
            "object": "list",
            "data": page,
            "first_id": page[0]["id"] if page else None,
            "last_id": page[-1]["id"] if page else None,
            "has_more": has_more,
        })

    # ------------------------------------------------------------ batches: logic
