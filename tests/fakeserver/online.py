"""Online endpoints of the fake server: models, errors for unknown routes, rendering a Reply."""

from __future__ import annotations

import asyncio
from typing import Callable, Mapping

import orjson
from aiohttp import web

from .common import _CHAT, _JSON, _MODELS, _RESPONSES, Received
from .replies import Reply, _error_body


class _OnlineAPI:
    """The online endpoints of :class:`FakeOpenAI` (a mixin): ``/v1/models``, 404/405
    answers, and rendering a ``Reply`` for ``/v1/responses`` and ``/v1/chat/completions``."""

    models: list[str]
    _payload: Callable[..., dict | None]

    def _other(self, received: Received) -> web.Response:
        path, method = received.path, received.method
        if path == _MODELS and method == "GET":
            data = [{"id": m, "object": "model", "created": 1700000000, "owned_by": "fake-openai"} for m in self.models]
            return web.Response(body=orjson.dumps({"object": "list", "data": data}), content_type=_JSON)
        if path in (_RESPONSES, _CHAT, _MODELS):
            return web.Response(
                status=405,
                body=_error_body(405, f"Method {method} not allowed for {path}", None, None),
                content_type=_JSON,
            )
        return web.Response(
            status=404,
            body=_error_body(404, f"Invalid URL ({method} {path})", "invalid_request_error", None),
            content_type=_JSON,
        )

    async def _render(self, reply: Reply | None, received: Received) -> web.Response:
        while reply is not None and reply.kind == "delay":
            if reply.seconds > 0:
                await asyncio.sleep(reply.seconds)
            reply = reply.inner
        if reply is None:
            return self._answer(received, None, None, incomplete=False)
        kind = reply.kind
        if kind == "text":
            return self._answer(received, reply.content, reply.usage, incomplete=False,
                                choices=reply.choices)
        if kind == "incomplete":
            return self._answer(received, reply.content, reply.usage, incomplete=True)
        if kind == "error":
            return web.Response(
                status=reply.status,
                body=_error_body(reply.status, reply.message or "fake error", reply.err_type,
                                 reply.code, reply.param),
                headers=reply.headers,
                content_type=_JSON,
            )
        if kind == "raw":
            return web.Response(
                status=reply.status, body=reply.body, headers=reply.headers, content_type=reply.content_type
            )
        raise ValueError(f"unknown Reply kind {kind!r}")

    def _answer(
        self, received: Received, text: str | None, usage: Mapping[str, int] | None, incomplete: bool,
        choices: tuple | None = None,
    ) -> web.Response:
        payload = self._payload(received, text, usage, incomplete, choices)
        if payload is None:
            return web.Response(
                status=400,
                body=_error_body(400, "We could not parse the JSON body of your request.", None, None),
                content_type=_JSON,
            )
        return web.Response(body=orjson.dumps(payload), content_type=_JSON)
