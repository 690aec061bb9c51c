"""The server's error answers: an ``HTTPError`` becomes one JSON line, ``{"error": ..., "status": N}``."""
from __future__ import annotations

from typing import Any


class HTTPError(Exception):
    """An answer other than 200: status, one-line message, extra headers."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None, close: bool = False):
        super().__init__(message)
        self.status, self.message, self.headers, self.close = status, " ".join(str(message).split()), headers or {}, close


def error_response(err: HTTPError) -> Any:
    from starlette.responses import JSONResponse

    headers = dict(err.headers)
    if err.close:
        headers["Connection"] = "close"
    return JSONResponse({"error": err.message, "status": err.status}, status_code=err.status, headers=headers)
