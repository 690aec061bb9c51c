"""uvicorn around the app: bind, serve in the foreground or on a background thread, stop cleanly.

``serve_forever`` is what ``edge-infer --serve`` runs: SIGTERM or Ctrl-C ends
it gracefully (in-flight requests get up to ``request_timeout`` to finish; a
second signal stops at once), and it returns normally, so the exit code is 0.
``BackgroundServer`` runs the same server on a thread, for tests and
benchmarks. uvicorn is imported inside the functions.
"""
from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import sys
import threading
import time
from typing import TYPE_CHECKING, Any

from edgedeploy.core.errors import EdgeDeployError

if TYPE_CHECKING:
    from ..classifier import ImageClassifier
    from . import ServeOptions

STARTUP_TIMEOUT_S = 30.0


def bind(host: str, port: int) -> socket.socket:
    """A listening socket (port 0 picks a free one); a one-line error when it cannot be bound."""
    try:
        family, kind, proto, _, addr = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
        sock = socket.socket(family, kind, proto)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # restart right after a stop; never steals a live port
            sock.bind(addr)
            sock.listen(1024)
        except OSError:
            sock.close()
            raise
    except OSError as exc:
        raise EdgeDeployError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return sock


def head_deadline_protocol(timeout: float) -> type:
    """uvicorn's h11 protocol with a deadline on the request head.

    The app's deadline (app.FrontDoor) starts once the headers are in; this
    covers the part before: a client that starts a request and has not
    finished its headers ``timeout`` seconds later gets a 408 and is
    disconnected, so trickled headers cannot hold a connection forever.
    """
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    body = (f'{{"error": "request headers not received within --request-timeout {timeout:g} s", "status": 408}}\n').encode()
    reply = (b"HTTP/1.1 408 Request Timeout\r\nContent-Type: application/json\r\nConnection: close\r\n"
             b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)

    class HeadDeadlineH11(H11Protocol):
        head_timer: Any = None

        def data_received(self, data: bytes) -> None:
            if self.head_timer is None and self.conn.their_state is h11.IDLE:
                self.head_timer = self.loop.call_later(timeout, self.head_expired)
            super().data_received(data)
            if self.head_timer is not None and self.conn.their_state is not h11.IDLE:
                self.head_timer.cancel()
                self.head_timer = None

        def head_expired(self) -> None:
            self.head_timer = None
            if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
                self.transport.write(reply)
                self.transport.close()

        def connection_lost(self, exc: Exception | None) -> None:
            if self.head_timer is not None:
                self.head_timer.cancel()
                self.head_timer = None
            super().connection_lost(exc)

    return HeadDeadlineH11


def _server(app: Any, options: "ServeOptions") -> Any:
    import uvicorn

    class Server(uvicorn.Server):
        """uvicorn's Server, but a stop signal ends ``serve`` normally instead of being re-raised."""

        stop_signal: int | None = None

        @contextlib.contextmanager
        def capture_signals(self):  # type: ignore[override]
            if threading.current_thread() is not threading.main_thread():
                yield
                return

            def handle(sig: int, frame: Any) -> None:
                self.force_exit = self.should_exit  # a second signal: stop now
                self.should_exit = True
                self.stop_signal = sig

            old = {s: signal.signal(s, handle) for s in (signal.SIGINT, signal.SIGTERM)}
            try:
                yield
            finally:
                for s, h in old.items():
                    signal.signal(s, h)

    config = uvicorn.Config(app, http=head_deadline_protocol(options.request_timeout), loop="asyncio", lifespan="off", log_config=None, log_level="warning",
                            access_log=False, server_header=False, timeout_keep_alive=5,
                            timeout_graceful_shutdown=max(1, int(options.request_timeout + 0.999)))
    return Server(config)


def serve_forever(clf: "ImageClassifier", options: "ServeOptions", model_load_s: float | None = None,
                  err: Any = None) -> int:
    """Serve until SIGTERM or Ctrl-C; returns 0 after a clean stop."""
    from .app import make_app
    from .metrics import ServeMetrics

    err = err or sys.stderr
    metrics = ServeMetrics(clf.path.name, clf.backend.name, clf.backend.threads, model_load_s)
    app, predictor = make_app(clf, options, metrics)
    sock = bind(options.host, options.port)
    server = _server(app, options)
    host, port = sock.getsockname()[:2]
    print(f"edge-infer: serving {clf.path.name} on http://{host}:{port} (POST /predict; GET /health /info /metrics; "
          f"{options.max_concurrent} slots, queue {options.max_queue}, batches of up to {predictor.batcher.max_batch}; Ctrl-C stops)", file=err, flush=True)
    try:
        asyncio.run(server.serve(sockets=[sock]))
    finally:
        sock.close()
        predictor.close()
    print(f"edge-infer: stopped after {metrics.counts['requests']} requests", file=err, flush=True)
    return 0


class BackgroundServer:
    """The same server on a background thread (tests, benchmarks)::

        with BackgroundServer(clf, ServeOptions(port=0)) as srv:
            http.client.HTTPConnection("127.0.0.1", srv.port) ...
    """

    def __init__(self, clf: "ImageClassifier", options: "ServeOptions", model_load_s: float | None = None, log: Any = None):
        from .app import make_app
        from .metrics import ServeMetrics

        self.metrics = ServeMetrics(clf.path.name, clf.backend.name, clf.backend.threads, model_load_s)
        self.app, self.predictor = make_app(clf, options, self.metrics)
        if log is not None:
            self.app.log = log
        self.options = options
        self.sock = bind(options.host, options.port)
        self.host, self.port = self.sock.getsockname()[:2]
        self.server = _server(self.app, options)
        self.thread = threading.Thread(target=asyncio.run, args=(self.server.serve([self.sock]),),
                                       name="edge-infer-serve", daemon=True)

    def __enter__(self) -> "BackgroundServer":
        self.thread.start()
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while not self.server.started and self.thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.01)
        if not self.server.started:
            self.close()
            raise RuntimeError("the background server did not start")
        return self

    def close(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=self.options.request_timeout + 10)
        self.sock.close()
        self.predictor.close()

    def __exit__(self, *exc: Any) -> None:
        self.close()
