"""``edge-infer MODEL --serve``: an HTTP endpoint for a classifier (the ``serve`` extra).

    pip install 'edgedeploy[serve]'
    edge-infer model_int8.tflite --serve [--host 127.0.0.1] [--port 8080] [--max-concurrent 8]
               [--max-queue 64] [--max-batch 4] [--batch-timeout-ms 2] [--max-body-mb 20]
               [--request-timeout 10] [--quiet]

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
``Retry-After`` the queue is full, the deadline cannot be met, or it passed
while queued or in inference, 500 a bug (the server keeps going).

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

The design (app.py, batcher.py): async I/O, so a slow client holds a socket,
never a thread; ONE deadline per request, body upload included; a slot is
asked for only after the whole body is in, and a request waits for one in a
bounded queue; images are decoded in parallel and batched into one runtime
call by the one thread that calls the runtime.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from edgedeploy.core.errors import EdgeDeployError
from edgedeploy.core.flags import flag, int_at_least, non_negative_float, positive_float

from .server import serve_forever

if TYPE_CHECKING:
    from ..classifier import ImageClassifier

__all__ = ["ServeOptions", "serve", "require_serve_extra", "SERVE_MODULES", "INSTALL_HINT"]

SERVE_MODULES = ("starlette", "uvicorn", "prometheus_client", "python_multipart")
INSTALL_HINT = "pip install 'edgedeploy[serve]'"
DEFAULT_MAX_BODY = 20 * 1024 * 1024
# Chosen by measurement on the shared 2-core EPYC (reports/serve_load.md):
# - max_queue 64: 32 clients on 8 slots leave 24 waiting; queues of 0 and 16 answered 503s, 64 none (and it
#   admits up to 72 concurrent clients; the deadline check still refuses a wait that cannot finish in time).
# - max_batch 4, half the slots: one batch runs while the other half decode the next, so batches arrive full;
#   the small CNN served 11% more than at batch 1, VGG16-160 int8 was within noise of batch 1 (XNNPACK's cost
#   per image does not fall with the batch on this CPU), and 8 lost for both (half-full batches, padded).
# - batch_timeout_ms 2: the batcher waits only while more images are decoding, so a lone request never waits.
DEFAULT_MAX_CONCURRENT = 8
DEFAULT_MAX_QUEUE = 64
DEFAULT_MAX_BATCH = 4
DEFAULT_BATCH_TIMEOUT_MS = 2.0


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
        max_concurrent: inference slots: requests decoding or in inference at once (= decode threads).
        access_log: one stderr line per request.
        max_queue: requests that may wait for a slot (FIFO, up to their deadline); one more is 503.
        max_batch: most images in one runtime call (dynamic-batch models; a fixed-batch file uses its own).
        batch_timeout_ms: longest wait for a batch to fill, only while other images are being decoded.
    """

    host: str = flag("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    port: int = flag("--port", default=8080, type=int_at_least(0), help="port (default 8080; 0 picks a free one)")
    max_body: int = flag("--max-body-mb", default=DEFAULT_MAX_BODY, type=megabytes, metavar="MB",
                         help="largest request body in MB (default 20)")
    request_timeout: float = flag("--request-timeout", default=10.0, type=positive_float, metavar="S",
                                  help="one deadline per request, body upload included (default 10)")
    max_concurrent: int = flag("--max-concurrent", default=DEFAULT_MAX_CONCURRENT, type=int_at_least(1), metavar="N",
                               help=f"requests decoding or in inference at once; more wait in the queue "
                                    f"(default {DEFAULT_MAX_CONCURRENT})")
    access_log: bool = flag("--quiet", default=True, action="store_false", help="no access-log line per request")
    max_queue: int = flag("--max-queue", default=DEFAULT_MAX_QUEUE, type=int_at_least(0), metavar="N",
                          help=f"requests that may wait for a slot, FIFO, up to their deadline; one more gets 503 + "
                               f"Retry-After (default {DEFAULT_MAX_QUEUE}; 0: refuse when every slot is busy)")
    max_batch: int = flag("--max-batch", default=DEFAULT_MAX_BATCH, type=int_at_least(1), metavar="N",
                          help=f"most queued images in one runtime call, on dynamic-batch models (default {DEFAULT_MAX_BATCH})")
    batch_timeout_ms: float = flag("--batch-timeout-ms", default=DEFAULT_BATCH_TIMEOUT_MS, type=non_negative_float, metavar="MS",
                                   help=f"longest wait for a batch to fill, only while other images are decoding "
                                        f"(default {DEFAULT_BATCH_TIMEOUT_MS:g})")

    def __post_init__(self) -> None:
        def whole(v: Any, low: int) -> bool:
            return isinstance(v, int) and not isinstance(v, bool) and v >= low

        def number(v: Any) -> bool:
            return isinstance(v, (int, float)) and not isinstance(v, bool)

        checks = (("port", self.port, whole(self.port, 0) and self.port <= 65535, "an integer 0..65535"),
                  ("max_body", self.max_body, whole(self.max_body, 1), "an integer >= 1"),
                  ("request_timeout", self.request_timeout, number(self.request_timeout) and self.request_timeout > 0,
                   "a number > 0"),
                  ("max_concurrent", self.max_concurrent, whole(self.max_concurrent, 1), "an integer >= 1"),
                  ("max_queue", self.max_queue, whole(self.max_queue, 0), "an integer >= 0"),
                  ("max_batch", self.max_batch, whole(self.max_batch, 1), "an integer >= 1"),
                  ("batch_timeout_ms", self.batch_timeout_ms, number(self.batch_timeout_ms) and self.batch_timeout_ms >= 0,
                   "a number >= 0"))
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

    return serve_forever(clf, options, model_load_s)
