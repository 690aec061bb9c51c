"""edge-infer --serve: the HTTP endpoint answers, refuses bad input politely, and never falls over."""
from __future__ import annotations

import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

from edge_fixtures import edge_models, truth  # noqa: F401  (pytest fixtures)
from edge_runtime import ImageClassifier
from edge_runtime.serve import make_server

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def server(edge_models):
    clf = ImageClassifier(edge_models / "model_float32.tflite", top_k=3)
    srv = make_server(clf, "127.0.0.1", 0, max_body=64 * 1024, request_timeout=1.0)
    t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    t.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def _request(srv_or_port, method, path, body=None, headers=None):
    port = srv_or_port if isinstance(srv_or_port, int) else srv_or_port.server_address[1]
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read() or b"null")
    finally:
        conn.close()


def test_health(server):
    status, body = _request(server, "GET", "/health")
    assert status == 200 and body["status"] == "ok" and body["backend"] == "litert" and body["labels"] == 10


def test_predict_raw_body_matches_the_cli_json(server, edge_models, truth):
    name = sorted(truth)[0]
    status, body = _request(server, "POST", f"/predict?name={name}", (edge_models / "images" / name).read_bytes())
    assert status == 200
    assert set(body) == {"path", "label", "score", "top_k", "latency_ms"}
    assert body["path"] == name and body["label"] == str(truth[name]) and len(body["top_k"]) == 3


def test_predict_multipart_upload(server, edge_models, truth):
    name = sorted(truth)[1]
    boundary = uuid.uuid4().hex
    data = (edge_models / "images" / name).read_bytes()
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhello\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"{name}\"\r\n"
            f"Content-Type: application/octet-stream\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
    status, out = _request(server, "POST", "/predict", body, {"Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert status == 200 and out["path"] == name and out["label"] == str(truth[name])


@pytest.mark.parametrize("body, status, fragment", [
    (b"definitely not an image", 400, "not a recognised image file"),
    (b"", 400, "empty"),
    (b"\x89PNG\r\n\x1a\n" + b"\0" * 40, 400, "image"),
    (b"x" * (64 * 1024 + 1), 413, "exceeds the limit of 65536 bytes"),
])
def test_bad_requests_get_clear_json_errors(server, body, status, fragment):
    got, out = _request(server, "POST", "/predict", body)
    assert got == status and fragment in out["error"] and out["status"] == status


def test_wrong_routes_and_methods(server):
    assert _request(server, "GET", "/nope")[0] == 404
    assert _request(server, "GET", "/predict")[0] == 405
    assert _request(server, "POST", "/elsewhere", b"x")[0] == 404
    assert _request(server, "DELETE", "/predict")[0] == 405
    assert _request(server, "BREW", "/predict")[0] == 501  # unknown method: http.server answers, in JSON


def test_missing_length_and_huge_declared_length(server):
    port = server.server_address[1]
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        assert b" 411 " in s.recv(4096).split(b"\r\n")[0]
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999\r\n\r\n")
        assert b" 413 " in s.recv(4096).split(b"\r\n")[0]


def test_slow_client_times_out_and_the_server_keeps_serving(server, edge_models, truth):
    port = server.server_address[1]
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nonly a little")
        reply = s.recv(4096)  # the 1 s request timeout fires
        assert reply == b"" or b" 408 " in reply.split(b"\r\n")[0]
    name = sorted(truth)[0]
    assert _request(server, "POST", "/predict", (edge_models / "images" / name).read_bytes())[0] == 200


def test_concurrent_requests_are_all_answered(server, edge_models, truth):
    images = [(edge_models / "images" / n).read_bytes() for n in sorted(truth)]
    results: list[int] = []

    def client(i):
        for j in range(10):
            results.append(_request(server, "POST", "/predict", images[(i + j) % len(images)])[0])

    threads = [threading.Thread(target=client, args=(i,)) for i in range(6)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert len(results) == 60 and set(results) <= {200, 503} and results.count(200) >= 50


def _rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc to read RSS")
def test_cli_serve_load_2000_requests_no_5xx_flat_rss(edge_models, truth):
    """Issue 8: >= 2,000 requests on loopback, zero 5xx, flat RSS; SIGTERM stops it cleanly."""
    proc = subprocess.Popen([sys.executable, "-m", "edge_runtime.cli", str(edge_models / "model_float32.tflite"),
                             "--serve", "--port", "0", "--threads", "1"], stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        line = proc.stderr.readline()
        port = int(re.search(r"http://127\.0\.0\.1:(\d+)", line).group(1))
        good = [(edge_models / "images" / n).read_bytes() for n in sorted(truth)]
        bad = [b"garbage", b"", b"\xff\xd8\xff" + b"\0" * 100]
        statuses: dict[int, int] = {}
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        rss = []
        for i in range(2000):
            body = bad[i % 3] if i % 10 == 0 else good[i % len(good)]
            conn.request("POST", "/predict", body=body)
            resp = conn.getresponse()
            resp.read()
            statuses[resp.status] = statuses.get(resp.status, 0) + 1
            if resp.getheader("Connection", "").lower() == "close":
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            if i in (300, 1999):
                rss.append(_rss_kb(proc.pid))
        conn.close()
        assert sum(statuses.values()) == 2000
        assert not any(s >= 500 for s in statuses), statuses
        assert statuses[200] == 1800 and statuses[400] == 200
        assert rss[1] - rss[0] < 5 * 1024, f"RSS grew from {rss[0]} kB to {rss[1]} kB"
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0 and "stopped after 2000 requests" in err and "Traceback" not in err


def test_serve_refuses_inputs_and_a_busy_port(edge_models, capsys):
    from edge_runtime.cli import main

    assert main([str(edge_models / "model_float32.tflite"), "x.png", "--serve"]) == 2
    assert "--serve takes no INPUT" in capsys.readouterr().err
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        assert main([str(edge_models / "model_float32.tflite"), "--serve", "--port", str(port)]) == 2
        assert f"cannot listen on 127.0.0.1:{port}" in capsys.readouterr().err
