"""OpenAI-style error responses of the Files and Batches API."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from .common import _JSON


def _line_error(code: str, line: int | None, message: str, param: str | None = None) -> dict:
    return {"code": code, "line": line, "message": message, "param": param}


def _api_error(
    status: int,
    message: str,
    *,
    type_: str = "invalid_request_error",
    code: str | None = None,
    param: str | None = None,
) -> web.Response:
    body = {"error": {"message": message, "type": type_, "param": param, "code": code}}
    return web.Response(status=status, body=orjson.dumps(body), content_type=_JSON)


def _missing(param: str) -> web.Response:
    message = f"Missing required parameter: '{param}'."
    return _api_error(400, message, code="missing_required_parameter", param=param)


def _invalid(param: str, detail: str) -> web.Response:
    message = f"Invalid value for '{param}': {detail}"
    return _api_error(400, message, code="invalid_value", param=param)


def _missing_line(no: int, param: str) -> dict:
    message = f"Missing required parameter: '{param}'."
    return _line_error("missing_required_parameter", no, message, param)


def _json_response(obj: Any) -> web.Response:
    return web.Response(body=orjson.dumps(obj), content_type=_JSON)
