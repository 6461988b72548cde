"""The OpenAI Files + Batches endpoints: upload, create, retrieve, cancel, list, download.

Transient failures (429/5xx, connection errors) are retried with backoff; 401/403 raise
AuthError; other errors raise BenchsmithError with the server's message.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from benchsmith.engine.http import TRANSIENT_EXC
from benchsmith.engine.unit_machine import classify_status
from benchsmith.engine.wire import error_message
from benchsmith.errors import AuthError, BenchsmithError
from benchsmith.store.io_errors import StorageError, file_error


class BatchApi:
    def __init__(self, base_url: str, api_key: str | None, timeout_s: float = 300.0,
                 max_retries: int = 6):
        self.base = base_url.rstrip("/")
        self.key = api_key
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self.max_retries = max_retries
        self._s: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> BatchApi:
        self._s = aiohttp.ClientSession(timeout=self.timeout)
        return self

    async def __aexit__(self, *_: Any) -> None:
        if self._s is not None:
            await self._s.close()

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"} if self.key else {}

    async def _call(self, method: str, path: str, **kw: Any) -> Any:
        assert self._s is not None
        for k in range(self.max_retries + 1):
            try:
                async with self._s.request(method, self.base + path, headers=self._headers(), **kw) as r:
                    body = await r.read()
                    if r.status == 200:
                        return orjson.loads(body) if body else None
                    try:
                        msg = error_message(orjson.loads(body), body.decode("utf-8", "replace"))
                    except orjson.JSONDecodeError:
                        msg = body.decode("utf-8", "replace")[:300]
                    kind = classify_status(r.status, msg)
                    if kind == "stop":
                        raise AuthError(f"{method} {path}: HTTP {r.status}: {msg}")
                    if kind == "fatal" or k == self.max_retries:
                        raise BenchsmithError(f"{method} {path}: HTTP {r.status}: {msg}")
            except TRANSIENT_EXC as e:
                if k == self.max_retries:
                    raise BenchsmithError(f"{method} {path}: {e!r}") from None
            await asyncio.sleep(min(30.0, 0.5 * 2**k) * (0.5 + random.random() / 2))
        raise AssertionError("unreachable")

    async def upload(self, path: Path) -> dict[str, Any]:
        """Upload a batch input file (streamed from disk)."""
        assert self._s is not None
        for k in range(self.max_retries + 1):
            form = aiohttp.FormData()
            form.add_field("purpose", "batch")
            with path.open("rb") as fh:
                form.add_field("file", fh, filename=path.name, content_type="application/jsonl")
                try:
                    return await self._call_once_form(form)
                except _Retry:
                    if k == self.max_retries:
                        raise BenchsmithError(f"upload of {path.name} failed after retries") from None
            await asyncio.sleep(min(30.0, 0.5 * 2**k))
        raise AssertionError("unreachable")

    async def _call_once_form(self, form: aiohttp.FormData) -> dict[str, Any]:
        assert self._s is not None
        try:
            async with self._s.post(self.base + "/files", data=form, headers=self._headers()) as r:
                body = await r.read()
                if r.status == 200:
                    return orjson.loads(body)
                msg = body.decode("utf-8", "replace")[:300]
                kind = classify_status(r.status, msg)
                if kind == "stop":
                    raise AuthError(f"POST /files: HTTP {r.status}: {msg}")
                if kind == "fatal":
                    raise BenchsmithError(f"POST /files: HTTP {r.status}: {msg}")
                raise _Retry()
        except TRANSIENT_EXC:
            raise _Retry() from None

    async def create(self, input_file_id: str, endpoint: str, metadata: dict[str, str]) -> dict[str, Any]:
        return await self._call(
            "POST", "/batches",
            json={"input_file_id": input_file_id, "endpoint": endpoint,
                  "completion_window": "24h", "metadata": metadata},
        )

    async def retrieve(self, batch_id: str) -> dict[str, Any]:
        return await self._call("GET", f"/batches/{batch_id}")

    async def cancel(self, batch_id: str) -> dict[str, Any]:
        return await self._call("POST", f"/batches/{batch_id}/cancel")

    async def list_all(self) -> AsyncIterator[dict[str, Any]]:
        after: str | None = None
        while True:
            q = "?limit=100" + (f"&after={after}" if after else "")
            page = await self._call("GET", f"/batches{q}")
            data = page.get("data") or []
            for b in data:
                yield b
            if not page.get("has_more") or not data:
                return
            after = data[-1]["id"]

    async def download(self, file_id: str, dest: Path) -> Path:
        """Stream a file's content to `dest` (never held whole in memory)."""
        assert self._s is not None
        for k in range(self.max_retries + 1):
            try:
                async with self._s.get(
                    f"{self.base}/files/{file_id}/content", headers=self._headers()
                ) as r:
                    if r.status == 200:
                        dest.parent.mkdir(parents=True, exist_ok=True)
                        tmp = dest.with_suffix(dest.suffix + ".part")
                        try:
                            with tmp.open("wb") as fh:
                                async for block in r.content.iter_chunked(1 << 20):
                                    fh.write(block)
                        except OSError as e:  # a full disk is not a network error: no retry
                            err = file_error(dest, e)
                            if err is None:
                                raise
                            raise err from e
                        tmp.replace(dest)
                        return dest
                    msg = (await r.read()).decode("utf-8", "replace")[:300]
                    if classify_status(r.status, msg) != "transient":
                        raise BenchsmithError(f"GET /files/{file_id}/content: HTTP {r.status}: {msg}")
            except StorageError:
                raise
            except TRANSIENT_EXC:
                pass
            await asyncio.sleep(min(30.0, 0.5 * 2**k))
        raise BenchsmithError(f"download of {file_id} failed after retries")


class _Retry(Exception):
    pass
