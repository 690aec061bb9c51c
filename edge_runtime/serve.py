"""A small HTTP endpoint for a classifier, standard library only.

    edge-infer MODEL --serve [--host 127.0.0.1] [--port 8080]

``POST /predict`` takes the image as the raw request body (any format Pillow
reads) or as the first file of a ``multipart/form-data`` upload, and answers
the same JSON as ``edge-infer --json``: path, label, score, top_k,
latency_ms. ``GET /health`` answers ``{"status": "ok", ...}``.

Safety, by default:
  * binds 127.0.0.1: only this machine can reach it until ``--host`` says otherwise;
  * the body is capped (``--max-body-mb``, default 20): larger is 413, read
    never; a missing Content-Length is 411;
  * every socket read has a timeout (``--request-timeout``), so a slow or
    silent client cannot hold a thread;
  * a bad image is 400 with ``{"error": "..."}``; any other failure is a 500
    with a JSON body, and the server keeps running;
  * at most ``max_concurrent`` requests are decoded at once (else 503), and
    the runtime is called under a lock, since interpreters are not thread-safe.
"""
from __future__ import annotations

import json
import signal
import socket
import sys
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from .errors import EdgeDeployError

if TYPE_CHECKING:
    from .classifier import ImageClassifier

DEFAULT_MAX_BODY = 20 * 1024 * 1024


def _multipart_file(body: bytes, content_type: str) -> tuple[bytes, str]:
    """The first file part of a multipart/form-data body: (bytes, filename)."""
    from email.parser import BytesParser
    from email.policy import HTTP

    msg = BytesParser(policy=HTTP).parsebytes(b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body)
    if not msg.is_multipart():
        raise EdgeDeployError("multipart body could not be parsed")
    for part in msg.iter_parts():
        payload = part.get_payload(decode=True)
        if payload is not None and (part.get_filename() or part.get_content_type() != "text/plain"):
            return payload, part.get_filename() or "-"
    raise EdgeDeployError("multipart body holds no file part")


class PredictServer(ThreadingHTTPServer):
    """ThreadingHTTPServer carrying the classifier and the limits."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], clf: "ImageClassifier", max_body: int = DEFAULT_MAX_BODY,
                 request_timeout: float = 10.0, max_concurrent: int = 8, log: bool = False):
        self.clf = clf
        self.max_body = max_body
        self.request_timeout = request_timeout
        self.log = log
        self.infer_lock = threading.Lock()
        self.slots = threading.BoundedSemaphore(max_concurrent)
        self.counts = {"requests": 0, "2xx": 0, "4xx": 0, "5xx": 0}
        self._count_lock = threading.Lock()
        super().__init__(address, PredictHandler)

    def count(self, status: int) -> None:
        with self._count_lock:
            self.counts["requests"] += 1
            self.counts[f"{status // 100}xx"] = self.counts.get(f"{status // 100}xx", 0) + 1


class PredictHandler(BaseHTTPRequestHandler):
    server: PredictServer
    server_version = "edge-infer"
    sys_version = ""
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        self.timeout = self.server.request_timeout  # socket timeout for every read and write
        super().setup()
        try:  # headers and body go out in two writes: without this, Nagle + delayed ACK add 40 ms
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass

    # -- responses ----------------------------------------------------------------
    def _send(self, status: int, obj: Any, close: bool = False) -> None:
        body = (json.dumps(obj) + "\n").encode()
        self.server.count(status)  # before the write: a client that has its answer sees it counted
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            if close:
                self.send_header("Connection", "close")
                self.close_connection = True
            self.end_headers()
            self.wfile.write(body)
        except OSError:  # the client left; nothing to tell it
            self.close_connection = True

    def _error(self, status: int, message: str, close: bool = False) -> None:
        self._send(status, {"error": message, "status": status}, close=close)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """http.server's own errors (bad request line, huge headers, unknown method) as JSON too."""
        self._error(code, message or HTTPStatus(code).phrase, close=True)

    def _method_not_allowed(self) -> None:
        self._error(405, f"method {self.command} not allowed; use POST /predict or GET /health", close=True)

    do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _method_not_allowed

    def log_message(self, fmt: str, *args: Any) -> None:
        if self.server.log:
            sys.stderr.write(f"edge-infer serve: {self.address_string()} {fmt % args}\n")

    # -- routes -------------------------------------------------------------------
    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        if path == "/health":
            clf = self.server.clf
            self._send(200, {"status": "ok", "model": clf.path.name, "backend": clf.backend.name,
                             "labels": clf.manifest.num_classes, "counts": dict(self.server.counts)})
        elif path == "/predict":
            self._error(405, "use POST /predict with the image as the request body")
        else:
            self._error(404, f"no route {path!r}; use POST /predict or GET /health")

    def do_POST(self) -> None:
        url = urlsplit(self.path)
        if url.path != "/predict":
            self._error(404, f"no route {url.path!r}; use POST /predict or GET /health", close=True)
            return
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            self._error(411, "chunked bodies are not accepted; send Content-Length", close=True)
            return
        raw_len = self.headers.get("Content-Length")
        try:
            length = int(raw_len) if raw_len is not None else -1
        except ValueError:
            length = -1
        if length < 0:
            self._error(411, f"a valid Content-Length is required, got {raw_len!r}", close=True)
            return
        if length > self.server.max_body:
            # Never kept: a body up to twice the cap is read and dropped so that
            # simple clients see the 413 rather than a reset; a larger one is not read.
            if length <= 2 * self.server.max_body and not self._expecting_continue():
                self._discard(length)
            self._error(413, f"body of {length} bytes exceeds the limit of {self.server.max_body} bytes", close=True)
            return
        if not self.server.slots.acquire(blocking=False):
            self._error(503, "too many requests in flight; retry shortly", close=True)
            return
        try:
            self._predict(url, length)
        finally:
            self.server.slots.release()

    def _expecting_continue(self) -> bool:
        return (self.headers.get("Expect") or "").lower() == "100-continue"

    def handle_expect_100(self) -> bool:
        """Send 100 Continue only for a body we will take; else the 413 goes out first."""
        try:
            length = int(self.headers.get("Content-Length") or -1)
        except ValueError:
            length = -1
        if 0 <= length <= self.server.max_body:
            return super().handle_expect_100()
        return True  # do_POST answers (413/411) without reading the body

    def _discard(self, length: int) -> None:
        try:
            while length > 0:
                chunk = self.rfile.read(min(length, 1 << 16))
                if not chunk:
                    break
                length -= len(chunk)
        except OSError:
            pass

    def _predict(self, url, length: int) -> None:
        try:
            body = self.rfile.read(length)
        except OSError:  # timeout or reset mid-body
            self.close_connection = True
            self._error(408, f"request body not received within {self.server.request_timeout} s", close=True)
            return
        if len(body) < length:
            self._error(400, f"body ended after {len(body)} of {length} bytes", close=True)
            return
        name = (parse_qs(url.query).get("name") or ["-"])[0]
        t0 = time.perf_counter()
        try:
            ctype = self.headers.get("Content-Type") or ""
            if ctype.lower().startswith("multipart/form-data"):
                body, name = _multipart_file(body, ctype)
            clf = self.server.clf
            x = clf.preprocess(body)
            with self.server.infer_lock:
                probs = clf.predict_tensor(x[None])[0]
            pred = clf.prediction(probs)
        except EdgeDeployError as exc:
            self._error(400, str(exc))
            return
        except Exception as exc:  # a bug, not the client's fault: report it, keep serving
            sys.stderr.write(f"edge-infer serve: internal error: {type(exc).__name__}: {exc}\n")
            self._error(500, f"internal error: {type(exc).__name__}")
            return
        self._send(200, pred.to_dict(path=name, latency_ms=(time.perf_counter() - t0) * 1000))


def make_server(clf: "ImageClassifier", host: str = "127.0.0.1", port: int = 8080, max_body: int = DEFAULT_MAX_BODY,
                request_timeout: float = 10.0, max_concurrent: int = 8, log: bool = False) -> PredictServer:
    """Bind the server (port 0 picks a free port; see ``server.server_address``).

    Raises:
        EdgeDeployError: the address cannot be bound (in use, not permitted).
    """
    try:
        return PredictServer((host, port), clf, max_body, request_timeout, max_concurrent, log)
    except OSError as exc:
        raise EdgeDeployError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


def serve(clf: "ImageClassifier", host: str = "127.0.0.1", port: int = 8080, max_body: int = DEFAULT_MAX_BODY,
          request_timeout: float = 10.0, log: bool = False) -> int:
    """Serve until Ctrl-C or SIGTERM; returns the exit code (0).

    Args:
        clf: the opened classifier.
        host, port: where to listen.
        max_body: largest accepted body in bytes.
        request_timeout: socket timeout in seconds.
        log: one stderr line per request.

    Returns:
        0 after a clean shutdown.
    """
    server = make_server(clf, host, port, max_body, request_timeout, log=log)
    bound_host, bound_port = server.server_address[:2]
    print(f"edge-infer: serving {clf.path.name} on http://{bound_host}:{bound_port} "
          f"(POST /predict, GET /health; Ctrl-C stops)", file=sys.stderr, flush=True)

    def _term(signum, frame):  # SIGTERM (systemd stop) ends it like Ctrl-C
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGTERM, _term) if threading.current_thread() is threading.main_thread() else None
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        if old is not None:
            signal.signal(signal.SIGTERM, old)
        print(f"edge-infer: stopped after {server.counts['requests']} requests", file=sys.stderr, flush=True)
    return 0
