"""The ASGI app behind ``edge-infer --serve`` (Starlette), and its queue, decode pool and batcher.

Request life, for ``POST /predict``:

1. ``FrontDoor`` (pure ASGI middleware) starts the request's ONE deadline
   (``request_timeout``) when the headers are in; body upload, queueing and
   inference all count. Past it the answer is 408 (still receiving the body)
   or 503 + Retry-After (queued or in inference too long), with ``Connection: close``. It
   also writes the access-log line and feeds the metrics.
2. The body is read asynchronously, so a slow client costs a socket and a
   coroutine, never a thread or a slot. A Content-Length over the cap is 413
   before a byte is read; a chunked body is counted as it streams and is 413
   as soon as it passes the cap.
3. Only then does the request ask for an inference slot (``max_concurrent``):
   it waits in a bounded FIFO queue (``max_queue``) until one frees or its
   deadline passes; 503 + Retry-After only when the queue is full or the
   deadline cannot be met (batcher.py: ``Admission``).
4. In its slot, the request's images are decoded in parallel on a pool of
   ``max_concurrent`` threads, and the batcher thread, the only one that
   calls the runtime, runs them with other requests' images in one call of
   up to ``max_batch`` images (batcher.py: ``Batcher``).

Starlette, uvicorn and prometheus-client are imported inside the functions
that need them (the ``serve`` extra), never at module import.
"""
from __future__ import annotations

import asyncio
import sys
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from edgedeploy import __version__
from edgedeploy.core.errors import EdgeDeployError

from .batcher import Admission, Batcher, Job
from .errors import HTTPError, error_response

if TYPE_CHECKING:
    from ..classifier import ImageClassifier
    from . import ServeOptions
    from .metrics import ServeMetrics

PHASE_KEY = "edgedeploy.phase"  # scope key: "body" while receiving, "inference" after
DEADLINE_KEY = "edgedeploy.deadline"  # scope key: time.monotonic() when the request's time is up
MAX_FILES = 64  # files in one multipart request


# -- request parts -------------------------------------------------------------------
DRAIN_AFTER_CAP = 1024 * 1024  # bytes read and dropped past --max-body-mb before the 413 (within the request deadline)

def parse_top_k(text: str | None, default: int, num_classes: int) -> int:
    """``?top_k=`` -> an int in 1..num_classes (larger is clipped), else 400."""
    if text is None or text == "":
        return min(default, num_classes)
    try:
        k = int(text)
    except ValueError:
        k = 0
    if k < 1:
        raise HTTPError(400, f"Received top_k={text!r}, expected an integer >= 1")
    return min(k, num_classes)


async def read_body(request: Any, max_body: int) -> bytes:
    """The whole body, capped at ``max_body`` bytes (Content-Length checked first, then the streamed size)."""
    raw = request.headers.get("content-length")
    if raw is not None:
        try:
            declared = int(raw)
        except ValueError:
            raise HTTPError(400, f"Received Content-Length {raw!r}, expected a byte count", close=True) from None
        if declared > max_body:
            raise HTTPError(413, f"body of {declared} bytes exceeds the limit of {max_body} bytes", close=True)
    chunks: list[bytes] = []
    size, over = 0, False
    async for chunk in request.stream():
        size += len(chunk)
        if over:
            # Read on (and drop) a little past the cap before answering: closing with unread
            # bytes makes the kernel reset the connection, and a client still sending would
            # see "connection reset" instead of the 413 (nginx's lingering close does the same).
            if size > max_body + DRAIN_AFTER_CAP:
                break
            continue
        if size > max_body:
            over, chunks = True, []
            continue
        chunks.append(chunk)
    if over:
        raise HTTPError(413, f"body of more than {max_body} bytes exceeds the limit of {max_body} bytes", close=True)
    return b"".join(chunks)


def multipart_files(body: bytes, content_type: str) -> list[tuple[str, bytes]]:
    """The file parts of a multipart/form-data body, in order: [(filename, bytes)].

    A part is a file when it has a filename or a content type other than
    text/plain; plain form fields are ignored.
    """
    from python_multipart.multipart import MultipartParser, parse_options_header

    _, params = parse_options_header(content_type)
    boundary = params.get(b"boundary")
    if not boundary:
        raise HTTPError(400, f"Received Content-Type {content_type!r}, expected a multipart boundary")
    parts: list[tuple[dict[bytes, bytes], bytes]] = []
    cur: dict[str, Any] = {}

    def on_part_begin() -> None:
        cur.update(headers={}, field=b"", value=b"", data=[])

    def on_header_field(data: bytes, start: int, end: int) -> None:
        cur["field"] += data[start:end]

    def on_header_value(data: bytes, start: int, end: int) -> None:
        cur["value"] += data[start:end]

    def on_header_end() -> None:
        cur["headers"][cur["field"].lower()] = cur["value"]
        cur["field"], cur["value"] = b"", b""

    def on_part_data(data: bytes, start: int, end: int) -> None:
        cur["data"].append(data[start:end])

    def on_part_end() -> None:
        parts.append((cur["headers"], b"".join(cur["data"])))

    callbacks = dict(on_part_begin=on_part_begin, on_header_field=on_header_field, on_header_value=on_header_value,
                     on_header_end=on_header_end, on_part_data=on_part_data, on_part_end=on_part_end)
    try:
        parser = MultipartParser(boundary, callbacks)
        parser.write(body)
        parser.finalize()
    except Exception as exc:  # python_multipart raises its own parse errors
        raise HTTPError(400, f"multipart body could not be parsed: {exc}") from None
    files = []
    for headers, data in parts:
        _, disp = parse_options_header(headers.get(b"content-disposition", b""))
        ctype = headers.get(b"content-type", b"text/plain").split(b";")[0].strip().lower()
        filename = disp.get(b"filename")
        if filename is not None or ctype != b"text/plain":
            files.append(((filename or disp.get(b"name") or b"-").decode("utf-8", "replace"), data))
    if not files:
        raise HTTPError(400, "multipart body holds no file part")
    if len(files) > MAX_FILES:
        raise HTTPError(400, f"Received {len(files)} files in one request, expected at most {MAX_FILES}")
    return files


# -- inference ------------------------------------------------------------------------
class Predictor:
    """Admission (slots + the bounded queue), the decode pool and the batcher around one classifier.

    Args:
        clf: the opened classifier (left as it is: ``?top_k=`` applies per request).
        options: the server's options (slots, queue, batch).
        metrics: where queue, batch, inference time and image counts go.
    """

    def __init__(self, clf: "ImageClassifier", options: "ServeOptions", metrics: "ServeMetrics"):

        self.clf = clf
        self.default_top_k = int(getattr(clf, "top_k", 5))
        self.num_classes = clf.manifest.num_classes
        self.max_concurrent = options.max_concurrent
        self.admission = Admission(options.max_concurrent, options.max_queue, metrics)
        self.batcher = Batcher(clf, options.max_batch, options.batch_timeout_ms / 1000.0, metrics)
        self.pool = ThreadPoolExecutor(max_workers=options.max_concurrent, thread_name_prefix="edge-infer-decode")
        self.metrics = metrics

    def _decode(self, name: str, data: bytes, deadline: float) -> Future:
        """Decode-pool thread: one image -> the batcher; its future gives the row of probabilities."""

        try:
            if time.monotonic() > deadline:
                raise HTTPError(503, "the request's deadline passed before decoding", {"Retry-After": "1"})
            try:
                x = self.clf.prepare(data)
            except EdgeDeployError as exc:
                raise HTTPError(400, str(exc) if name == "-" else f"{name}: {exc}") from None
        except BaseException:
            self.batcher.decoded(None)
            raise
        job = Job(x, deadline, Future())
        self.batcher.decoded(job)
        return job.future

    async def predict(self, items: list[tuple[str, bytes]], top_k: int, deadline: float) -> list[dict]:
        """Decode every image on the pool, let the batcher run them, answer in order (the slot is held)."""
        t0 = time.perf_counter()
        self.batcher.expect(len(items))
        decodes = []
        for name, data in items:
            cf = self.pool.submit(self._decode, name, data, deadline)
            cf.add_done_callback(self._never_ran)
            decodes.append(asyncio.wrap_future(cf))
        done = await asyncio.gather(*decodes, return_exceptions=True)
        failed = next((r for r in done if isinstance(r, BaseException)), None)
        if failed is not None:
            for r in done:
                if isinstance(r, Future):
                    r.cancel()  # the batcher skips the request's other images
            raise failed
        rows = await asyncio.gather(*(asyncio.wrap_future(f) for f in done))
        seconds = time.perf_counter() - t0
        self.metrics.inference.observe(seconds)
        ms = seconds * 1000 / len(items)
        return [self.clf.prediction(row, top_k=top_k).to_dict(path=name, latency_ms=ms) for (name, _), row in zip(items, rows)]

    def _never_ran(self, cf: Future) -> None:
        if cf.cancelled():  # cancelled in the pool's queue (deadline, shutdown): it will not decode
            self.batcher.decoded(None)

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)
        self.batcher.close()


# -- the app -------------------------------------------------------------------------
def make_app(clf: "ImageClassifier", options: "ServeOptions", metrics: "ServeMetrics") -> tuple[Any, Predictor]:
    """The ASGI app (Starlette wrapped in ``FrontDoor``) and its ``Predictor`` (close it after serving)."""
    from starlette.applications import Starlette
    from starlette.exceptions import HTTPException
    from starlette.requests import ClientDisconnect
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route


    predictor = Predictor(clf, options, metrics)
    started = time.time()

    async def predict(request):
        try:
            top_k = parse_top_k(request.query_params.get("top_k"), predictor.default_top_k, predictor.num_classes)
            body = await read_body(request, options.max_body)
            ctype = request.headers.get("content-type", "")
            multi = ctype.lower().startswith("multipart/form-data")
            items = multipart_files(body, ctype) if multi else [(request.query_params.get("name") or "-", body)]
            deadline = request.scope.get(DEADLINE_KEY, float("inf"))
            request.scope[PHASE_KEY] = "queue"
            await predictor.admission.acquire(deadline)
            request.scope[PHASE_KEY] = "inference"
            t0 = time.monotonic()
            try:
                results = await predictor.predict(items, top_k, deadline)
            except RuntimeError as exc:  # the pool is shut down: the server is stopping
                if "shutdown" not in str(exc):
                    raise
                raise HTTPError(503, "the server is shutting down", headers={"Retry-After": "1"}, close=True) from None
            finally:
                predictor.admission.release(time.monotonic() - t0)
            return JSONResponse(results if multi else results[0])
        except HTTPError as err:
            return error_response(err)
        except ClientDisconnect:
            return Response(status_code=499)  # nobody reads it; FrontDoor counts 499
        except Exception as exc:  # a bug, not the client's fault: one line, keep serving
            print(f"edge-infer: internal error: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
            return error_response(HTTPError(500, f"internal error: {type(exc).__name__}"))

    async def health(request):
        return JSONResponse({"status": "ok", "model": clf.path.name, "backend": clf.backend.name,
                             "labels": predictor.num_classes, "counts": dict(metrics.counts)})

    async def info(request):
        return JSONResponse({
            "model": str(clf.path), "manifest": clf.manifest.to_dict(), "backend": clf.describe(),
            "threads": clf.backend.threads, "version": __version__, "uptime_s": round(time.time() - started, 3),
            "model_load_s": metrics.model_load_s,
            "limits": {"max_body_bytes": options.max_body, "request_timeout_s": options.request_timeout,
                       "max_concurrent": options.max_concurrent, "max_queue": options.max_queue,
                       "max_batch": predictor.batcher.max_batch, "batch_timeout_ms": options.batch_timeout_ms,
                       "default_top_k": predictor.default_top_k}})

    async def prometheus(request):
        body, ctype = metrics.render()
        return Response(body, media_type=ctype)

    async def http_error(request, exc):
        hint = "routes: POST /predict, GET /health, GET /info, GET /metrics"
        msg = f"no route {request.url.path!r}; {hint}" if exc.status_code == 404 else f"{exc.detail}; {hint}"
        return error_response(HTTPError(exc.status_code, msg, headers=dict(exc.headers or {})))

    app = Starlette(routes=[Route("/predict", predict, methods=["POST"]), Route("/health", health, methods=["GET"]),
                            Route("/info", info, methods=["GET"]), Route("/metrics", prometheus, methods=["GET"])],
                    exception_handlers={HTTPException: http_error})
    return FrontDoor(app, options, metrics), predictor


class FrontDoor:
    """Pure ASGI middleware: one deadline per request, the access log, the metrics."""

    def __init__(self, app: Any, options: "ServeOptions", metrics: "ServeMetrics", log: Any = None):
        self.app, self.options, self.metrics = app, options, metrics
        self.log = log or sys.stderr

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        state = {"status": None, "bytes": 0}
        scope[PHASE_KEY] = "body"
        scope[DEADLINE_KEY] = time.monotonic() + self.options.request_timeout

        async def send_counted(message: dict) -> None:
            if message["type"] == "http.response.start":
                state["status"] = message["status"]
            elif message["type"] == "http.response.body":
                state["bytes"] += len(message.get("body", b""))
            await send(message)

        try:
            await asyncio.wait_for(self.app(scope, receive, send_counted), self.options.request_timeout)
        except asyncio.TimeoutError:
            if state["status"] is None:
                limit = f"--request-timeout {self.options.request_timeout:g} s"
                if scope.get(PHASE_KEY) == "queue":
                    err = HTTPError(503, f"no inference slot came free within {limit}", {"Retry-After": "1"}, close=True)
                elif scope.get(PHASE_KEY) == "inference":
                    err = HTTPError(503, f"inference did not finish within {limit}", {"Retry-After": "1"}, close=True)
                else:
                    err = HTTPError(408, f"request not received within {limit}", close=True)
                try:
                    await error_response(err)(scope, receive, send_counted)
                except OSError:
                    pass
        finally:
            status = state["status"] or 499
            seconds = time.perf_counter() - t0
            self.metrics.observe(scope["method"], scope["path"], status, seconds)
            if self.options.access_log:
                self._log(scope, status, state["bytes"], seconds)

    def _log(self, scope: dict, status: int, nbytes: int, seconds: float) -> None:
        client = scope.get("client") or ("-", 0)
        target = scope["path"] + ("?" + scope["query_string"].decode("latin-1") if scope.get("query_string") else "")
        line = (f'edge-infer: {client[0]}:{client[1]} "{scope["method"]} {target} HTTP/{scope.get("http_version", "1.1")}"'
                f" {status} {nbytes}B {seconds * 1000:.1f}ms\n")
        try:
            self.log.write(line)
            self.log.flush()
        except (OSError, ValueError):
            pass
