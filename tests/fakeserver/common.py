"""Paths, content type and the request record shared by every part of the fake server."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

_JSON = "application/json"
_RESPONSES = "/v1/responses"
_CHAT = "/v1/chat/completions"
_MODELS = "/v1/models"
_REASONING_TOKENS = 7
_FILES = "/v1/files"
_BATCHES = "/v1/batches"


class Headers(dict):
    """A plain ``dict`` of request headers (original spelling kept) whose
    lookups fall back to a case-insensitive match."""

    __slots__ = ()

    def _key(self, key: Any) -> Any:
        if isinstance(key, str):
            low = key.lower()
            for k in dict.keys(self):
                if k.lower() == low:
                    return k
        raise KeyError(key)

    def __getitem__(self, key: Any) -> Any:
        try:
            return dict.__getitem__(self, key)
        except KeyError:
            return dict.__getitem__(self, self._key(key))

    def get(self, key: Any, default: Any = None) -> Any:
        try:
            return self[key]
        except KeyError:
            return default

    def __contains__(self, key: object) -> bool:
        if dict.__contains__(self, key):
            return True
        try:
            self._key(key)
        except KeyError:
            return False
        return True


@dataclass(frozen=True)
class Received:
    """One request as the fake server saw it.

    ``t`` is ``time.monotonic()`` at arrival (compare differences only).
    ``body`` is the parsed JSON object, or ``None`` if the body was empty,
    not JSON, or not a JSON object. ``headers`` keeps every header, including
    ``Authorization``; lookups are case-insensitive. ``query`` is the raw
    query string (``"limit=2&after=batch_…"``), empty when there is none.
    """

    path: str
    headers: dict
    body: dict | None
    raw: bytes
    t: float
    method: str = "POST"
    query: str = ""
