"""A local, scriptable OpenAI-compatible HTTP test double.

Used by the test suite (in-process, background thread) and by the throughput
benchmark (as a separate process through the CLI below) instead of a hosted
LLM.

In-process use::

    from fake_openai import FakeOpenAI, Reply   # or: from fakeserver import ...

    with FakeOpenAI(latency=0.0) as server:
        server.enqueue(Reply.error(429, headers={"Retry-After": "0.1"}))
        server.script = lambda received, index: Reply.text("hi") if index == 3 else None
        server.reject_params = ("reasoning",)  # 400 "Unsupported parameter: 'reasoning.effort'"
        ...  # point a client at server.base_url
        assert server.requests[0].headers["Authorization"] == "Bearer sk-test"

Out of process::

    python tests/fake_openai.py --port 0 --latency 0.2 [--force-output-tokens 50000]
    # prints "READY http://127.0.0.1:PORT/v1" and serves until killed

Endpoints: ``POST /v1/responses``, ``POST /v1/chat/completions``,
``GET /v1/models``, and the Files + Batches API below. Anything else answers
404 (wrong method: 405) with an OpenAI-style error body. Every request is
recorded.

Reply resolution order per request: ``enqueue``d replies (FIFO), then
``server.script(received, index)`` (``None`` falls through), then the default
answerer. The default answerer returns a schema-valid JSON instance when the
request asks for structured output, otherwise a short text.

Files and Batches API (see ``BatchScript`` for every knob)::

    POST /v1/files (multipart: file, purpose)   GET /v1/files[?purpose=]
    GET /v1/files/{id}   GET /v1/files/{id}/content   DELETE /v1/files/{id}
    POST /v1/batches   GET /v1/batches?limit=&after=
    GET /v1/batches/{id}   POST /v1/batches/{id}/cancel

A batch walks its states one per ``GET /v1/batches/{id}`` (default
``validating -> in_progress -> finalizing -> completed``; the create call
answers ``validating``). Its lines are answered by the same default answerer
as the online endpoints (not by ``enqueue``/``script``), each wrapped as
``{"id": "batch_req_…", "custom_id", "response": {"status_code": 200,
"request_id": "req_…", "body": <Response | ChatCompletion>}, "error": null}``.
Per batch, the first ``enqueue_batch``ed script (FIFO) is used, else
``server.batch_plan(batch_id, input_lines)`` (``None`` falls through), else
``BatchScript()``::

    server.enqueue_batch(BatchScript(expire_after=3, shuffle=True))
    server.batch_plan = lambda bid, lines: BatchScript(drop={"c2"}) if len(lines) > 5 else None
    server.max_batch_lines = 10          # validation limits (also max_batch_bytes)
    server.batches[bid].lines            # parsed input lines; .processed, .status, .outputs ...
    server.files[fid].content            # raw bytes of any file
    server.custom_id_counts()            # Counter of custom_ids over all batches
    server.advance_batch(bid) / server.finish_batch(bid)   # move without polling
    server.batch_advance_on_get = False  # polls no longer advance a batch

File and batch endpoints answer at once (``latency`` does not apply) and are
recorded in ``server.requests`` like the rest (multipart uploads have
``body=None``; ``raw`` keeps the bytes).

Modules (one job each): ``common`` (paths, ``Received``), ``replies`` (``Reply``,
error bodies), ``schema_gen`` (``generate_instance``), ``answerer`` (the default
answer object), ``online`` (online endpoints), ``files_api``, ``batches_api``
(routes), ``batch_types`` (``BatchScript``, ``FakeFile``, ``FakeBatch``),
``batch_walk`` (validation, state walk, result files), ``server``
(``FakeOpenAI``: lifecycle, request log, dispatch), ``cli`` (``main``).
``tests/fake_openai.py`` re-exports the public names and runs ``main``.
"""

from .batch_types import BatchScript, FakeBatch, FakeFile
from .cli import main
from .common import Headers, Received
from .replies import Reply
from .schema_gen import generate_instance
from .server import FakeOpenAI

__all__ = [
    "BatchScript", "FakeBatch", "FakeFile", "FakeOpenAI", "Headers", "Received", "Reply",
    "generate_instance", "main",
]
