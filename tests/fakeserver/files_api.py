"""The Files API of the fake server: upload, list, get, content, delete."""

from __future__ import annotations

import re
import threading
import time
import urllib.parse
from typing import Callable

from aiohttp import web

from .api_errors import _api_error, _invalid, _json_response, _missing
from .batch_types import FakeFile
from .common import Received

_FILE_PURPOSES = ("assistants", "batch", "fine-tune", "vision", "user_data", "evals")


_CD_NAME = re.compile(r'(?:^|;)\s*name="([^"]*)"', re.I)
_CD_FILENAME = re.compile(r'(?:^|;)\s*filename="([^"]*)"', re.I)
_CD_FILENAME_STAR = re.compile(r"(?:^|;)\s*filename\*=([^;]+)", re.I)


def _parse_multipart(raw: bytes, content_type: str) -> dict[str, tuple[str | None, bytes]] | None:
    """``{field: (filename_or_None, data)}`` of a ``multipart/form-data``
    body, or ``None`` if it is not one. Small and fast: splits on the
    boundary; enough for what HTTP clients send."""
    ctype, _, params = content_type.partition(";")
    if ctype.strip().lower() != "multipart/form-data":
        return None
    m = re.search(r'boundary=(?:"([^"]+)"|([^;\s]+))', params, re.I)
    if not m:
        return None
    delim = b"--" + (m.group(1) or m.group(2)).encode("latin-1")
    fields: dict[str, tuple[str | None, bytes]] = {}
    for part in raw.split(delim)[1:]:
        if part.startswith(b"--"):
            break
        if part.startswith(b"\r\n"):
            part = part[2:]
        head, sep, data = part.partition(b"\r\n\r\n")
        if not sep:
            continue
        if data.endswith(b"\r\n"):
            data = data[:-2]
        disposition = ""
        for hline in head.decode("utf-8", "replace").split("\r\n"):
            hname, _, hval = hline.partition(":")
            if hname.strip().lower() == "content-disposition":
                disposition = hval
        name_m = _CD_NAME.search(disposition)
        if not name_m:
            continue
        filename: str | None = None
        star = _CD_FILENAME_STAR.search(disposition)
        plain = _CD_FILENAME.search(disposition)
        if star:
            value = star.group(1).strip().strip('"')
            _, _, value = value.rpartition("'")  # charset'lang'value
            filename = urllib.parse.unquote(value)
        elif plain:  # aiohttp and httpx percent-escape (some) characters
            filename = urllib.parse.unquote(plain.group(1))
        fields[name_m.group(1)] = (filename, data)
    return fields


class _FilesAPI:
    """Files endpoints of :class:`FakeOpenAI` (a mixin; state set up by ``_init_batches``)."""

    _new_id: Callable[[], str]
    _files: dict[str, FakeFile]
    _batch_lock: threading.RLock

    @property
    def files(self) -> dict[str, FakeFile]:
        """Snapshot ``{file_id: FakeFile}`` of live (not deleted) files,
        uploads and generated result files alike."""
        with self._batch_lock:
            return dict(self._files)

    def _store_file(self, filename: str, purpose: str, content: bytes) -> FakeFile:
        f = FakeFile("file-" + self._new_id(), filename, purpose, content, int(time.time()))
        with self._batch_lock:
            self._files[f.id] = f
        return f

    def _file_upload(self, received: Received) -> web.Response:
        fields = _parse_multipart(received.raw, received.headers.get("Content-Type", ""))
        if fields is None:
            return _api_error(400, "Expected a multipart/form-data body with 'file' and 'purpose'.")
        for key in ("file", "purpose"):
            if key not in fields:
                return _missing(key)
        purpose = fields["purpose"][1].decode("utf-8", "replace").strip()
        if purpose not in _FILE_PURPOSES:
            return _invalid("purpose", f"{purpose!r}; expected one of {list(_FILE_PURPOSES)}.")
        filename, content = fields["file"]
        f = self._store_file(filename or "upload", purpose, content)
        return _json_response(f.as_object())

    def _file_list(self, received: Received) -> web.Response:
        query = urllib.parse.parse_qs(received.query)
        purpose = (query.get("purpose") or [None])[0]
        with self._batch_lock:
            files = [f for f in self._files.values() if purpose is None or f.purpose == purpose]
        data = [f.as_object() for f in reversed(files)]
        return _json_response({
            "object": "list",
            "data": data,
            "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None,
            "has_more": False,
        })

    def _lookup_file(self, file_id: str) -> FakeFile | None:
        with self._batch_lock:
            return self._files.get(file_id)

    @staticmethod
    def _no_file(file_id: str) -> web.Response:
        return _api_error(404, f"No such File object: {file_id}", param="id")

    def _file_get(self, file_id: str) -> web.Response:
        f = self._lookup_file(file_id)
        return self._no_file(file_id) if f is None else _json_response(f.as_object())

    def _file_content(self, file_id: str) -> web.Response:
        f = self._lookup_file(file_id)
        if f is None:
            return self._no_file(file_id)
        return web.Response(body=f.content, content_type="application/octet-stream")

    def _file_delete(self, file_id: str) -> web.Response:
        with self._batch_lock:
            f = self._files.pop(file_id, None)
        if f is None:
            return self._no_file(file_id)
        return _json_response({"id": file_id, "object": "file", "deleted": True})
