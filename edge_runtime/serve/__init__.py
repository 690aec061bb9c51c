"""``edge-infer MODEL --serve``: an HTTP endpoint for a classifier (the ``serve`` extra).

    pip install 'edgedeploy[serve]'
    edge-infer model_int8.tflite --serve [--host 127.0.0.1] [--port 8080] [--max-concurrent 4]
               [--max-body-mb 20] [--request-timeout 10] [--quiet]

Endpoints:
  * ``POST /predict``: the image as the raw body (any format Pillow reads) ->
    one JSON object, ``Prediction.to_dict()`` plus ``path`` (``?name=`` or
    "-") and ``latency_ms``; or ``multipart/form-data`` with one or more
    files -> a JSON list, one object per file, in order. ``?top_k=K`` sets
    the labels per answer (default: ``--top-k``).
  * ``GET /health``: ``{"status": "ok", "model", "backend", "labels", "counts"}``.
  * ``GET /info``: the manifest, the backend's description, threads, limits.
  * ``GET /metrics``: Prometheus text (prometheus-client): requests, errors by
    code, a latency histogram, the model load time (see metrics.py).

Errors are JSON with one line: ``{"error": "...", "status": N}``: 400 a bad
image or request, 404/405 a wrong route or method, 408 the request missed its
deadline while sending, 413 a body over ``--max-body-mb``, 503 +
``Retry-After`` every inference slot busy, 500 a bug (the server keeps going).

Why this stack (Starlette + uvicorn, h11): measured on top of the edge
install's imports (numpy, Pillow, edge_runtime.classifier; Python 3.11,
x86-64, a shared 2-core machine, so wall times are noisy;
one run on one machine: ``python benchmarks/serve_stack.py``, 11 fresh
interpreters per row, reports/serve_stack.md/json; both rows include
prometheus_client)::

    added to the edge core          wall (min)   -X importtime (min)   peak RSS
    starlette + uvicorn + multipart  +0.40 s      +25 ms                +14.8 MB
    aiohttp.web                      +0.72 s      +336 ms               +22.0 MB

Starlette + uvicorn start faster and add less memory than aiohttp (RSS is
the steadiest figure on a busy machine: 7 MB less), and every package of
that stack is pure Python (h11, anyio, click, idna, python-multipart), so
the same wheels install on any Pi without a compiler; aiohttp needs compiled
wheels of aiohttp, multidict, yarl, frozenlist and propcache for the Pi's
platform. Nothing of it is imported by ``edge-infer --help`` or a
non-serving run: the modules here import it inside functions.

The design (app.py): async I/O, so a slow client holds a socket, never a
thread; ONE deadline per request, body upload included; an inference slot is
taken only after the whole body is in; the runtime call is under a lock.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from edgedeploy.core.errors import EdgeDeployError
from edgedeploy.core.flags import flag, int_at_least, positive_float

if TYPE_CHECKING:
    from ..classifier import ImageClassifier

__all__ = ["ServeOptions", "serve", "require_serve_extra", "SERVE_MODULES", "INSTALL_HINT"]

SERVE_MODULES = ("starlette", "uvicorn", "prometheus_client", "python_multipart")
INSTALL_HINT = "pip install 'edgedeploy[serve]'"
DEFAULT_MAX_BODY = 20 * 1024 * 1024


def megabytes(text: str) -> int:
    """``--max-body-mb 20`` -> 20 MiB in bytes (the field holds bytes)."""
    return int(positive_float(text) * 1024 * 1024)


@dataclass(frozen=True)
class ServeOptions:
    """How the server listens and what it allows; validates itself.

    Attributes:
        host, port: where to listen (port 0 picks a free port).
        max_body: largest request body in bytes (413 above).
        request_timeout: seconds from the headers to the answer, body upload included (408/503 after).
        max_concurrent: inference slots (= worker threads); over the limit is 503 + Retry-After.
        access_log: one stderr line per request.
    """

    host: str = flag("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    port: int = flag("--port", default=8080, type=int_at_least(0), help="port (default 8080; 0 picks a free one)")
    max_body: int = flag("--max-body-mb", default=DEFAULT_MAX_BODY, type=megabytes, metavar="MB",
                         help="largest request body in MB (default 20)")
    request_timeout: float = flag("--request-timeout", default=10.0, type=positive_float, metavar="S",
                                  help="one deadline per request, body upload included (default 10)")
    max_concurrent: int = flag("--max-concurrent", default=8, type=int_at_least(1), metavar="N",
                               help="requests in inference at once; more get 503 + Retry-After (default 8)")
    access_log: bool = flag("--quiet", default=True, action="store_false", help="no access-log line per request")

    def __post_init__(self) -> None:
        checks = (("port", self.port, isinstance(self.port, int) and 0 <= self.port <= 65535, "an integer 0..65535"),
                  ("max_body", self.max_body, isinstance(self.max_body, int) and self.max_body >= 1, "an integer >= 1"),
                  ("request_timeout", self.request_timeout,
                   isinstance(self.request_timeout, (int, float)) and self.request_timeout > 0, "a number > 0"),
                  ("max_concurrent", self.max_concurrent,
                   isinstance(self.max_concurrent, int) and self.max_concurrent >= 1, "an integer >= 1"))
        for name, value, ok, expected in checks:
            if not ok:
                raise EdgeDeployError(f"Received {name}={value!r}, expected {expected}")
        if not isinstance(self.host, str) or not self.host:
            raise EdgeDeployError(f"Received host={self.host!r}, expected an address such as 127.0.0.1")


def require_serve_extra() -> None:
    """Raise a one-line error naming the install command when the serve extra is missing."""
    import importlib.util

    def absent(module: str) -> bool:
        try:
            return importlib.util.find_spec(module) is None
        except (ImportError, ValueError):
            return True

    missing = [m for m in SERVE_MODULES if absent(m)]
    if missing:
        raise EdgeDeployError(f"--serve needs the serve extra ({', '.join(missing)} not installed): {INSTALL_HINT}")


def serve(clf: "ImageClassifier", options: ServeOptions, *, model_load_s: float | None = None) -> int:
    """Serve ``clf`` until SIGTERM or Ctrl-C; returns 0 after a clean stop.

    Args:
        clf: the opened classifier.
        options: a ``ServeOptions`` (``ServeOptions()`` for the defaults).
        model_load_s: seconds the model took to open, for ``/metrics`` and ``/info``.

    Raises:
        EdgeDeployError: the serve extra is missing, or the address cannot be bound.
    """
    require_serve_extra()
    from .server import serve_forever

    return serve_forever(clf, options, model_load_s)
