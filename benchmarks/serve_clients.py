"""The load generator's parts for benchmarks/serve_load.py: the server process, normal and slow clients, CPU and RSS.

- ``running_server(model, *flags)``: the real CLI server (``python -m
  edgedeploy.runtime.cli MODEL --serve --port 0 ...``) in a child process;
- ``normal_clients``: keep-alive clients sending POST /predict as fast as
  they get answers;
- ``SlowClients``: connections that send headers, then one body byte every
  few seconds, reconnecting when the server cuts them off;
- ``cpu_seconds(pid)``, ``rss_kb(pid)``: from /proc, for the load
  generator's CPU share and the server's memory.
"""
from __future__ import annotations

import contextlib
import http.client
import io
import os
import re
import selectors
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any, Iterator, Sequence

from edgedeploy.core.errors import EdgeDeployError

HOST = "127.0.0.1"
SLOW_DECLARED = 100_000
STARTUP_TIMEOUT_S = 120.0


def photo_bodies(folder: str | os.PathLike, n: int = 64) -> list[bytes]:
    """The bytes of the first ``n`` JPEG photos under ``folder`` (sorted), as clients would upload them."""
    paths = sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in (".jpg", ".jpeg"))[:n]
    if not paths:
        raise EdgeDeployError(f"Received --photos {str(folder)!r}, expected a folder holding JPEG photos")
    return [p.read_bytes() for p in paths]


def cpu_seconds(pid: int | None = None) -> float:
    """User + system CPU seconds of a process (this one by default), every thread, from /proc (Linux)."""
    if pid is None:
        t = os.times()
        return t.user + t.system
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return 0.0


def digit_bodies(n: int = 40, size: int = 40) -> list[bytes]:
    """``n`` digit images encoded alternately as PNG and JPEG."""
    from PIL import Image

    from edgedeploy.runtime.datasets import load_digits

    ds = load_digits("test")
    out = []
    for i in range(n):
        buf = io.BytesIO()
        Image.fromarray(ds.images[i]).resize((size, size), Image.NEAREST).save(buf, "PNG" if i % 2 == 0 else "JPEG", quality=95)
        out.append(buf.getvalue())
    return out


def rss_kb(pid: int) -> int:
    """VmRSS of a process in kB (Linux /proc); 0 where unavailable."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


@contextlib.contextmanager
def running_server(model: str | os.PathLike, *flags: str) -> Iterator[dict]:
    """The real CLI server in a child process: yields {"proc", "port", "log"}; SIGTERM on exit.

    After the block, the dict also holds "returncode" and "stderr" (the log's text).
    """
    log = tempfile.NamedTemporaryFile("w+", prefix="serve-load-", suffix=".log", delete=False)
    env = dict(os.environ)
    proc = subprocess.Popen([sys.executable, "-m", "edgedeploy.runtime.cli", str(model), "--serve", "--port", "0", *flags],
                            stdout=subprocess.DEVNULL, stderr=log, stdin=subprocess.DEVNULL, env=env)
    info: dict[str, Any] = {"proc": proc, "port": None, "log": log.name}
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while info["port"] is None and time.monotonic() < deadline and proc.poll() is None:
            m = re.search(r"http://[^\s:]+:(\d+)", Path(log.name).read_text())
            if m:
                info["port"] = int(m.group(1))
            else:
                time.sleep(0.05)
        if info["port"] is None:
            raise EdgeDeployError(f"the server did not start: {Path(log.name).read_text().strip()[-300:]}")
        yield info
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            info["returncode"] = proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            info["returncode"] = proc.wait()
        log.close()
        info["stderr"] = Path(log.name).read_text()
        os.unlink(log.name)


class SlowClients(threading.Thread):
    """``n`` connections that send headers, then one body byte every ``interval`` s; reconnect when cut off."""

    def __init__(self, port: int, n: int, interval: float = 3.0, host: str = HOST):
        super().__init__(name="slow-clients", daemon=True)
        self.port, self.n, self.interval, self.host = port, n, interval, host
        self.stop = threading.Event()
        self.statuses: Counter = Counter()
        self.connections = 0
        self.longest_open_s = 0.0
        self._sel = selectors.DefaultSelector()

    def _open(self) -> None:
        s = socket.create_connection((self.host, self.port), timeout=5)
        s.sendall(f"POST /predict HTTP/1.1\r\nHost: {self.host}\r\nContent-Length: {SLOW_DECLARED}\r\n\r\n".encode())
        s.setblocking(False)
        now = time.monotonic()
        self._sel.register(s, selectors.EVENT_READ, {"opened": now, "next": now + self.interval})
        self.connections += 1

    def _closed(self, key: Any, reply: bytes) -> None:
        m = re.match(rb"HTTP/1\.1 (\d{3})", reply)
        self.statuses[int(m.group(1)) if m else 0] += 1
        self.longest_open_s = max(self.longest_open_s, time.monotonic() - key.data["opened"])
        self._sel.unregister(key.fileobj)
        key.fileobj.close()

    def run(self) -> None:
        for _ in range(self.n):
            self._open()
        while not self.stop.is_set():
            for key, _ in self._sel.select(timeout=0.05):  # the server answered (408) or closed
                try:
                    reply = key.fileobj.recv(4096)
                except OSError:
                    reply = b""
                self._closed(key, reply)
                if not self.stop.is_set():
                    self._open()
            now = time.monotonic()
            for key in list(self._sel.get_map().values()):
                if now >= key.data["next"]:
                    key.data["next"] = now + self.interval
                    try:
                        key.fileobj.send(b"x")
                    except OSError:
                        pass  # the read side reports the close
        for key in list(self._sel.get_map().values()):
            self._sel.unregister(key.fileobj)
            key.fileobj.close()

    def finish(self) -> None:
        self.stop.set()
        self.join(timeout=10)


def normal_clients(port: int, bodies: Sequence[bytes], requests: int, clients: int, host: str = HOST) -> dict:
    """``requests`` POST /predict from ``clients`` keep-alive clients; statuses, latencies, wall time."""
    statuses: Counter = Counter()
    latencies: list[float] = []
    lock = threading.Lock()
    per = [requests // clients + (1 if i < requests % clients else 0) for i in range(clients)]

    def client(i: int) -> None:
        conn = http.client.HTTPConnection(host, port, timeout=30)
        mine, lat = Counter(), []
        for j in range(per[i]):
            body = bodies[(i * 7 + j) % len(bodies)]
            t0 = time.perf_counter()
            try:
                conn.request("POST", "/predict", body=body, headers={"Content-Type": "application/octet-stream"})
                resp = conn.getresponse()
                resp.read()
                status = resp.status
                if (resp.getheader("Connection") or "").lower() == "close":
                    conn.close()
            except (OSError, http.client.HTTPException):
                status = 0  # no answer at all: counted as a failure
                conn.close()
            lat.append(time.perf_counter() - t0)
            mine[status] += 1
        conn.close()
        with lock:
            statuses.update(mine)
            latencies.extend(lat)

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    return {"statuses": dict(sorted(statuses.items())), "latencies": latencies, "wall_s": wall}


