"""The HTTP layer: one aiohttp session per run, raw bytes in and out.

aiohttp rather than httpx or the openai SDK: measured on this class of machine, the SDK's
async client reached ~210 req/s and efficiency 0.06 at concurrency 500, a bare aiohttp loop
~3,900 req/s and 0.67 (see benchmarks/README.md).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

import aiohttp


@dataclass(frozen=True)
class HttpResult:
    status: int
    body: bytes
    retry_after: float | None
    latency_s: float


def parse_retry_after(headers: Any) -> float | None:
    """`retry-after-ms` first, then `retry-after` in seconds or as an HTTP date."""
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000.0)
        except ValueError:
            pass
    ra = headers.get("retry-after")
    if not ra:
        return None
    try:
        return max(0.0, float(ra))
    except ValueError:
        try:
            return max(0.0, parsedate_to_datetime(ra).timestamp() - time.time())
        except (TypeError, ValueError):
            return None


class HttpClient:
    def __init__(self, base_url: str, concurrency: int, timeout_s: float):
        self.base_url = base_url.rstrip("/")
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self.concurrency = concurrency
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> HttpClient:
        connector = aiohttp.TCPConnector(limit=self.concurrency, limit_per_host=0, ttl_dns_cache=300)
        self._session = aiohttp.ClientSession(
            connector=connector, timeout=self.timeout, skip_auto_headers=("User-Agent",)
        )
        return self

    async def __aexit__(self, *_: Any) -> None:
        if self._session is not None:
            await self._session.close()

    async def post(self, path: str, payload: bytes, api_key: str | None) -> HttpResult:
        assert self._session is not None
        headers = {"Content-Type": "application/json", "User-Agent": "benchsmith"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        t0 = time.perf_counter()
        async with self._session.post(self.base_url + path, data=payload, headers=headers) as r:
            body = await r.read()
            return HttpResult(r.status, body, parse_retry_after(r.headers), time.perf_counter() - t0)


TRANSIENT_EXC = (aiohttp.ClientError, asyncio.TimeoutError, OSError)
