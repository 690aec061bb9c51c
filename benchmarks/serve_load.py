"""Load on ``edge-infer --serve`` while slow clients trickle their bodies.

    python benchmarks/serve_load.py MODEL [--requests 2000] [--clients 8] [--slow 50]
        [--slow-interval 3] [--request-timeout 10] [--max-concurrent 8] [--threads 1]
        [--out reports/serve_load] [--force] [--quick]

Starts the real server (``python -m edge_runtime.cli MODEL --serve --port 0
--quiet``) in a child process, opens ``--slow`` slow-body clients (each sends
headers announcing 100,000 bytes, then one byte every ``--slow-interval``
seconds; when the server cuts it off at its deadline it reconnects), sends
200 warm-up requests, then ``--requests`` POST /predict requests from
``--clients`` concurrent keep-alive clients. It reports the normal clients'
status counts (no 5xx is the goal), p50/p99 latency and throughput, what the
slow clients got (408s, longest time a slow connection stayed open), the
server's RSS after warm-up and at the end, and the throughput of calling
``ImageClassifier.predict`` directly in one thread on the same images.
Writes ``OUT.json`` and ``OUT.md``. Needs the edge and serve extras only (no TensorFlow).
The images are the embedded digits' test set as PNG and JPEG bytes.
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

from edgedeploy.bench import _common as C
from edgedeploy.core.command import ArgumentParser, run_command
from edgedeploy.core.errors import EdgeDeployError

PROG = "serve_load.py"
REQUIRES = C.Requires("serve", "starlette", "uvicorn")  # edge-bench lists it where the serve extra is installed
HOST = "127.0.0.1"
WARMUP = 200
SLOW_DECLARED = 100_000
STARTUP_TIMEOUT_S = 120.0


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


def direct_throughput(model: str | os.PathLike, bodies: Sequence[bytes], n: int, threads: int | None) -> float:
    """Images per second of ``ImageClassifier.predict`` on the same bytes, one thread, this process."""
    from edgedeploy.runtime import ImageClassifier

    clf = ImageClassifier(model, threads=threads)
    for b in bodies[:20]:
        clf.predict(b)
    t0 = time.perf_counter()
    for i in range(n):
        clf.predict(bodies[i % len(bodies)])
    return n / (time.perf_counter() - t0)


def run_load(model: str | os.PathLike, requests: int = 2000, clients: int = 8, slow: int = 50,
             slow_interval: float = 3.0, request_timeout: float = 10.0, max_concurrent: int = 8,
             threads: int | None = 1, bodies: Sequence[bytes] | None = None) -> dict:
    """The whole measurement (see the module docstring); returns the report's "result" dict."""
    bodies = list(bodies or digit_bodies())
    flags = ["--quiet", "--request-timeout", str(request_timeout), "--max-concurrent", str(max_concurrent)]
    if threads:
        flags += ["--threads", str(threads)]
    with running_server(model, *flags) as srv:
        pid, port = srv["proc"].pid, srv["port"]
        rss_start = rss_kb(pid)
        slowc = SlowClients(port, slow, slow_interval)
        slowc.start()
        t_slow = time.monotonic()
        warm = normal_clients(port, bodies, WARMUP, clients)
        rss_warm = rss_kb(pid)
        load = normal_clients(port, bodies, requests, clients)
        rss_end = rss_kb(pid)
        # Keep the slow clients on until the server has cut each one off once (bounded wait).
        while sum(slowc.statuses.values()) < slow and time.monotonic() - t_slow < request_timeout + 5:
            time.sleep(0.1)
        slowc.finish()
    lat = C.latency_stats(load["latencies"])
    five = sum(v for k, v in load["statuses"].items() if k >= 500 or k == 0)
    direct = direct_throughput(model, bodies, min(requests, 1000), threads)
    served = load["statuses"].get(200, 0) / load["wall_s"]
    return {
        "requests": requests, "clients": clients, "slow_clients": slow, "slow_interval_s": slow_interval,
        "request_timeout_s": request_timeout, "max_concurrent": max_concurrent, "threads": threads,
        "warmup_statuses": warm["statuses"], "statuses": load["statuses"], "failures_5xx_or_no_answer": five,
        "p50_ms": round(lat["p50_ms"], 3), "p99_ms": round(lat["p99_ms"], 3), "max_ms": round(lat["max_ms"], 3),
        "wall_s": round(load["wall_s"], 3), "throughput_rps": round(served, 1),
        "direct_predict_ips": round(direct, 1), "throughput_vs_direct": round(served / direct, 3),
        "slow_statuses": dict(sorted(slowc.statuses.items())), "slow_connections": slowc.connections,
        "slow_longest_open_s": round(slowc.longest_open_s, 2),
        "rss_kb": {"start": rss_start, "after_warmup": rss_warm, "end": rss_end},
        "rss_growth_kb": rss_end - rss_warm, "server_exit_code": srv["returncode"],
        "server_traceback": "Traceback" in srv["stderr"],
    }


def render_md(report: dict) -> str:
    r, env = report["result"], report["environment"]
    rows = [["normal requests (clients)", f"{r['requests']} ({r['clients']} concurrent, keep-alive)"],
            ["slow-body clients", f"{r['slow_clients']} (1 byte every {r['slow_interval_s']:g} s)"],
            ["--request-timeout / --max-concurrent / --threads", f"{r['request_timeout_s']:g} s / {r['max_concurrent']} / {r['threads']}"],
            ["normal clients' statuses", ", ".join(f"{k}: {v}" for k, v in r["statuses"].items())],
            ["5xx or no answer", r["failures_5xx_or_no_answer"]],
            ["p50 / p99 / max latency", f"{r['p50_ms']:.1f} / {r['p99_ms']:.1f} / {r['max_ms']:.1f} ms"],
            ["throughput through the server", f"{r['throughput_rps']:.0f} requests/s"],
            ["ImageClassifier.predict directly (1 thread)", f"{r['direct_predict_ips']:.0f} images/s"],
            ["server / direct", f"{r['throughput_vs_direct']:.2f}"],
            ["slow clients' answers", ", ".join(f"{k}: {v}" for k, v in r["slow_statuses"].items()) or "none yet"],
            ["longest a slow connection stayed open", f"{r['slow_longest_open_s']:.1f} s"],
            ["server RSS start / after warm-up / end", f"{r['rss_kb']['start'] / 1024:.1f} / {r['rss_kb']['after_warmup'] / 1024:.1f} / {r['rss_kb']['end'] / 1024:.1f} MB"],
            ["RSS growth during the load", f"{r['rss_growth_kb'] / 1024:+.2f} MB"],
            ["server exit code after SIGTERM", r["server_exit_code"]]]
    return (f"# Serve load: normal clients while slow clients trickle\n\n"
            f"One run on one machine ({env['device']}, Python {env['python']}), {report['created']}. "
            f"Model: `{Path(report['model']).name}`. Command: `{report['command']}`.\n\n"
            + C.table(["what", "value"], rows, markdown=True) + "\n")


def build_parser() -> ArgumentParser:
    p = ArgumentParser(prog=PROG, description="Load edge-infer --serve while slow-body clients are open.")
    p.add_argument("model", help="a .tflite or .onnx model")
    p.add_argument("--requests", type=C.positive_int("--requests"), default=2000)
    p.add_argument("--clients", type=C.positive_int("--clients"), default=8)
    p.add_argument("--slow", type=C.positive_int("--slow", 0), default=50)
    p.add_argument("--slow-interval", type=float, default=3.0, metavar="S")
    p.add_argument("--request-timeout", type=float, default=10.0, metavar="S")
    p.add_argument("--max-concurrent", type=C.positive_int("--max-concurrent"), default=8)
    p.add_argument("--threads", type=C.positive_int("--threads"), default=1)
    p.add_argument("--out", default="reports/serve_load", help="writes OUT.json and OUT.md (default reports/serve_load)")
    C.add_common_args(p)
    return p


def run(args: Any) -> int:
    if not Path(args.model).is_file():
        raise EdgeDeployError(f"Received model {args.model!r}, expected an existing .tflite or .onnx file")
    from edgedeploy.runtime.serve import require_serve_extra

    require_serve_extra()
    out_json, out_md = Path(args.out + ".json"), Path(args.out + ".md")
    C.check_outputs([out_json, out_md], args.force)
    requests, slow = (300, min(args.slow, 10)) if args.quick else (args.requests, args.slow)
    result = run_load(args.model, requests, args.clients, slow, args.slow_interval, args.request_timeout,
                      args.max_concurrent, args.threads)
    report = {"tool": "serve_load", "schema": C.REPORT_SCHEMA, "created": C.now_iso(), "model": str(args.model),
              "command": " ".join(["python benchmarks/serve_load.py", *sys.argv[1:]]) if sys.argv[1:] else PROG,
              "environment": C.environment(), "result": result}
    C.write_json(out_json, report, args.force)
    C.write_text(out_md, render_md(report), args.force)
    print(render_md(report))
    return 1 if result["failures_5xx_or_no_answer"] else 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_command(PROG, build_parser, run, argv)


if __name__ == "__main__":
    sys.exit(main())
