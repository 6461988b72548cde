"""Batch logic of the fake server: input validation, the state walk, line outcomes, result files."""

from __future__ import annotations

import random
import time
from typing import Any, Callable

import orjson

from .api_errors import _line_error, _missing_line
from .batch_types import (
    _CANCELLED_MSG,
    _DUPLICATE_MSG,
    _EXPIRED_MSG,
    _MAX_REPORTED_ERRORS,
    _TERMINAL,
    _TIMESTAMP_OF,
    _WITH_RESULTS,
    BatchScript,
    FakeBatch,
    FakeFile,
    _usage_sum,
)
from .common import Headers, Received
from .replies import Reply, _error_body, refusal


class _BatchWalk:
    """How a batch is validated, walks its states and gets its results (a mixin of
    :class:`FakeOpenAI`)."""

    # Provided by FakeOpenAI and the other mixins:
    errors: list[BaseException]
    max_batch_bytes: int
    max_batch_lines: int
    reject_params: tuple[str, ...]
    _new_id: Callable[[], str]
    _payload: Callable[..., dict | None]
    _store_file: Callable[..., FakeFile]

    def _parse_batch_input(
        self, data: bytes, endpoint: str
    ) -> tuple[list[Any], list[int], list[dict], str | None]:
        """(parsed lines, their line numbers, validation errors, model)."""
        if len(data) > self.max_batch_bytes:
            return [], [], [_line_error(
                "file_too_large", None,
                f"The input file is {len(data)} bytes; "
                f"the maximum for a batch is {self.max_batch_bytes} bytes.",
            )], None
        lines: list[Any] = []
        numbers: list[int] = []
        errors: list[dict] = []
        seen: set[str] = set()
        model: str | None = None
        for no, raw in enumerate(data.split(b"\n"), 1):
            if not raw.strip():
                continue
            try:
                obj = orjson.loads(raw)
            except orjson.JSONDecodeError:
                obj = None
                err: dict | None = _line_error(
                    "invalid_json_line", no, "This line is not parseable as valid JSON."
                )
            else:
                err = self._check_line(obj, no, endpoint, seen)
                if err is None:
                    line_model = obj["body"]["model"]
                    if model is None:
                        model = line_model
                    elif line_model != model:
                        err = _line_error(
                            "model_mismatch", no,
                            f"The model {line_model!r} does not match the model {model!r} of the "
                            "other requests in the batch. A batch may use a single model only.",
                            "body.model",
                        )
            lines.append(obj)
            numbers.append(no)
            if err is not None:
                errors.append(err)
        if not lines:
            errors.append(_line_error("empty_file", None, "The batch input file is empty."))
        elif len(lines) > self.max_batch_lines:
            errors.insert(0, _line_error(
                "too_many_tasks", None,
                f"The batch has {len(lines)} requests; the maximum is {self.max_batch_lines}.",
            ))
        return lines, numbers, errors[:_MAX_REPORTED_ERRORS], model

    @staticmethod
    def _check_line(obj: Any, no: int, endpoint: str, seen: set[str]) -> dict | None:
        if not isinstance(obj, dict):
            return _line_error("invalid_json_line", no, "This line is not a JSON object.")
        cid = obj.get("custom_id")
        if cid is None:
            return _missing_line(no, "custom_id")
        if not isinstance(cid, str) or not cid:
            return _line_error(
                "invalid_type", no, "'custom_id' must be a non-empty string.", "custom_id"
            )
        method = obj.get("method")
        if method != "POST":
            return _line_error(
                "invalid_value", no, f"Invalid 'method': {method!r}; only 'POST' is supported.",
                "method",
            )
        url = obj.get("url")
        if url != endpoint:
            return _line_error(
                "url_mismatch", no,
                f"The URL {url!r} of this request does not match the batch endpoint {endpoint!r}.",
                "url",
            )
        body = obj.get("body")
        if body is None:
            return _missing_line(no, "body")
        if not isinstance(body, dict):
            return _line_error("invalid_type", no, "'body' must be a JSON object.", "body")
        if not isinstance(body.get("model"), str) or not body["model"]:
            return _missing_line(no, "body.model")
        if cid in seen:
            return _line_error("duplicate_custom_id", no, _DUPLICATE_MSG, "custom_id")
        seen.add(cid)
        return None

    @staticmethod
    def _effective_states(script: BatchScript, invalid: bool) -> list[str]:
        given = list(script.states) if script.states is not None else None
        if invalid:
            if given and "failed" in given:
                states = given[: given.index("failed") + 1]
                # Walking "in_progress" etc. before failing makes no sense: keep
                # the leading validating entries only.
                lead = [s for s in states[:-1] if s == "validating"]
                return (lead or ["validating"]) + ["failed"]
            lead = []
            for s in given or ["validating"]:
                if s != "validating":
                    break
                lead.append(s)
            return (lead or ["validating"]) + ["failed"]
        if given is None:
            if script.expire_after is not None:
                return ["validating", "in_progress", "expired"]
            return ["validating", "in_progress", "finalizing", "completed"]
        for i, s in enumerate(given):
            if s in _TERMINAL:
                return given[: i + 1]
        return given

    def _advance(self, batch: FakeBatch, steps: int) -> None:
        for _ in range(max(0, steps)):
            if batch.pos + 1 >= len(batch.states):
                return
            batch.pos += 1
            self._enter(batch, batch.states[batch.pos])

    def _cancel_count(self, batch: FakeBatch) -> int:
        c = batch.script.cancel
        if isinstance(c, int) and not isinstance(c, bool):
            return c
        return batch.processed

    def _enter(self, batch: FakeBatch, status: str) -> None:
        """Make ``status`` current: timestamps, progress, counts, results."""
        previous = batch.status
        batch.status = status
        n = batch.n
        script = batch.script
        terminal = batch.states[-1]
        now = int(time.time())
        key = _TIMESTAMP_OF.get(status)
        if key and key not in batch.timestamps:
            batch.timestamps[key] = now
        if status in ("in_progress", "finalizing", "completed", "expired"):
            # cancelling/cancelled keep the previous value
            batch.validated = not batch.validation_errors

        if status == "validating":
            processed = 0
        elif status == "failed":
            processed = 0
        elif status == "in_progress":
            k = batch.states[: batch.pos + 1].count("in_progress")
            big_k = batch.states.count("in_progress")
            cap = n
            if terminal == "expired" and script.expire_after is not None:
                cap = min(n, script.expire_after)
            elif terminal in ("cancelling", "cancelled") and not isinstance(script.cancel, bool):
                cap = min(n, int(script.cancel))
            processed = max(batch.processed, cap * k // (big_k + 1))
        elif status in ("finalizing", "completed"):
            if terminal == "expired" and script.expire_after is not None:
                processed = script.expire_after
            elif terminal in ("expired", "cancelling", "cancelled") and status == "finalizing":
                processed = batch.processed
            else:
                processed = n
        elif status == "expired":
            processed = script.expire_after if script.expire_after is not None else batch.processed
        else:  # cancelling / cancelled
            if previous in ("cancelling", "cancelled"):
                processed = batch.processed
            else:
                processed = self._cancel_count(batch)
        batch.processed = processed = max(0, min(n, processed)) if batch.validated else 0

        if status == "failed":
            batch.errors = list(batch.validation_errors) or [
                _line_error("batch_failed", None, "The batch failed (scripted by fake_openai).")
            ]
            batch.request_counts = {"total": 0, "completed": 0, "failed": 0}
            return
        if not batch.validated:
            return
        self._ensure_outcomes(batch, processed)
        ok = sum(1 for i in range(processed) if batch.outcomes[i][0] == 200)
        failed = processed - ok
        if status in ("expired", "cancelled"):
            failed += n - processed
        batch.request_counts = {"total": n, "completed": ok, "failed": failed}
        if status in _WITH_RESULTS and not batch.results_written:
            batch.results_written = True
            self._write_results(batch, status)

    def _ensure_outcomes(self, batch: FakeBatch, upto: int) -> None:
        for i in range(upto):
            if i not in batch.outcomes:
                batch.outcomes[i] = self._line_outcome(batch, i)

    def _line_outcome(self, batch: FakeBatch, i: int) -> tuple[int, Any, str]:
        line = batch.lines[i]
        cid, body = line["custom_id"], line["body"]
        script = batch.script
        request_id = "req_" + self._new_id()
        reply: Reply | None = refusal(body, self.reject_params)
        if reply is not None:  # refused before anything else is looked at
            pass
        elif cid in script.result_lines:  # written as given by `_write_results`
            return 500, None, request_id
        if cid in script.http_errors:
            spec = script.http_errors[cid]
            reply = spec if isinstance(spec, Reply) else Reply.error(int(spec))
        elif script.answer is not None:
            try:
                got = script.answer(cid, body)
            except Exception as exc:
                self.errors.append(exc)
                got = Reply.error(
                    500, f"fake_openai batch answer raised {exc!r}", type="server_error"
                )
            if got is not None:
                reply = got if isinstance(got, Reply) else Reply.text(got)
        while reply is not None and reply.kind == "delay":
            reply = reply.inner
        received = Received(
            batch.endpoint, Headers(), body, orjson.dumps(body), time.monotonic(), "POST"
        )
        if reply is None or reply.kind in ("text", "incomplete"):
            text = None if reply is None else reply.content
            usage = None if reply is None else reply.usage
            incomplete = reply is not None and reply.kind == "incomplete"
            return 200, self._payload(received, text, usage, incomplete), request_id
        if reply.kind == "error":
            message = reply.message or "fake error"
            err = orjson.loads(
                _error_body(reply.status, message, reply.err_type, reply.code, reply.param))
            return reply.status, err, request_id
        if reply.kind == "raw":
            raw = reply.body or b""
            try:
                parsed: Any = orjson.loads(raw)
            except orjson.JSONDecodeError:
                parsed = raw.decode("utf-8", "replace")
            return reply.status, parsed, request_id
        raise ValueError(f"unknown Reply kind {reply.kind!r}")

    def _write_results(self, batch: FakeBatch, status: str) -> None:
        script = batch.script
        drop = set(script.drop)
        outputs: list[dict] = []
        error_lines: list[Any] = []
        ok_bodies: list[Any] = []
        for i, line in enumerate(batch.lines):
            cid = line["custom_id"]
            if i < batch.processed:
                code, body, request_id = batch.outcomes[i]
                row = {
                    "id": "batch_req_" + self._new_id(),
                    "custom_id": cid,
                    "response": {"status_code": code, "request_id": request_id, "body": body},
                    "error": None,
                }
                if cid in drop:
                    continue
                if cid in script.result_lines:
                    given = script.result_lines[cid]
                    error_lines.append(given.encode() if isinstance(given, str) else given)
                    continue
                if code == 200:
                    outputs.append(row)
                    ok_bodies.append(body)
                else:
                    error_lines.append(row)
            elif cid not in drop:
                expired = status == "expired"
                error_lines.append({
                    "id": "batch_req_" + self._new_id(),
                    "custom_id": cid,
                    "response": None,
                    "error": {
                        "code": "batch_expired" if expired else "batch_cancelled",
                        "message": _EXPIRED_MSG if expired else _CANCELLED_MSG,
                    },
                })
        if script.shuffle is not False:
            seed = 0 if script.shuffle is True else int(script.shuffle)
            rng = random.Random(seed)
            rng.shuffle(outputs)
            rng.shuffle(error_lines)
        batch.outputs, batch.error_lines = outputs, error_lines
        batch.usage = _usage_sum(ok_bodies)

        def jsonl(rows: list[Any]) -> bytes:
            return b"".join((r if isinstance(r, bytes) else orjson.dumps(r)) + b"\n" for r in rows)

        if outputs:
            name = f"{batch.id}_output.jsonl"
            batch.output_file_id = self._store_file(name, "batch_output", jsonl(outputs)).id
        if error_lines:
            name = f"{batch.id}_error.jsonl"
            batch.error_file_id = self._store_file(name, "batch_output", jsonl(error_lines)).id
