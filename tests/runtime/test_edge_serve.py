"""edge-infer --serve (edge_runtime/serve, the `serve` extra): endpoints, limits, deadlines, slow clients.

Every server here listens on 127.0.0.1 with port 0. In-process servers run on a
background thread (BackgroundServer); the load test runs the real CLI in a
child process (benchmarks/serve_load.py's helpers) so its RSS can be read.
"""
from __future__ import annotations

import http.client
import io
import json
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

for _mod in ("starlette", "uvicorn", "prometheus_client", "python_multipart"):
    pytest.importorskip(_mod, reason="the serve extra is not installed: pip install 'edgedeploy[serve]'")

from edgedeploy.bench import serve_load  # noqa: E402
from edgedeploy.runtime import ImageClassifier  # noqa: E402
from edgedeploy.runtime.serve import ServeOptions  # noqa: E402
from edgedeploy.runtime.serve.app import DRAIN_AFTER_CAP  # noqa: E402
from edgedeploy.runtime.serve.server import BackgroundServer  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]

MAX_BODY = 64 * 1024
FIELDS = {"path", "label", "score", "top_k", "latency_ms"}


@pytest.fixture(scope="module")
def clf(edge_models):
    return ImageClassifier(edge_models / "model_float32.tflite", top_k=3)


@pytest.fixture(scope="module")
def server(clf):
    log = io.StringIO()
    opts = ServeOptions(port=0, max_body=MAX_BODY, request_timeout=2.0, max_concurrent=4, access_log=True)
    with BackgroundServer(clf, opts, model_load_s=0.125, log=log) as srv:
        srv.access_log = log
        yield srv


def _request(port, method, path, body=None, headers=None, refused_midway=False):
    """One request; ``refused_midway``: the server may answer and close before the body is all sent
    (an over-cap streamed body), so a reset while sending is expected and the answer is read anyway."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    try:
        headers = headers or {}
        try:
            conn.request(method, path, body=body, headers=headers, encode_chunked="Transfer-Encoding" in headers)
        except (ConnectionResetError, BrokenPipeError):
            if not refused_midway:
                raise
        resp = conn.getresponse()
        raw = resp.read()
        ctype = resp.getheader("Content-Type") or ""
        return resp.status, (json.loads(raw) if "json" in ctype else raw.decode()), dict(resp.getheaders())
    finally:
        conn.close()


def _image(edge_models, name):
    return (edge_models / "images" / name).read_bytes()


def _multipart(files, fields=()):
    boundary = uuid.uuid4().hex
    out = b""
    for name, value in fields:
        out += f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n".encode()
    for fname, data in files:
        out += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{fname}\"\r\n"
                f"Content-Type: application/octet-stream\r\n\r\n").encode() + data + b"\r\n"
    return out + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def test_health(server):
    status, body, _ = _request(server.port, "GET", "/health")
    assert status == 200 and body["status"] == "ok" and body["backend"] == "litert" and body["labels"] == 10
    assert body["model"] == "model_float32.tflite"


def test_predict_raw_body_is_the_prediction_json(server, clf, edge_models, truth):
    name = sorted(truth)[0]
    data = _image(edge_models, name)
    status, body, _ = _request(server.port, "POST", f"/predict?name={name}", data)
    assert status == 200 and FIELDS <= set(body)
    want = clf.predict(data).to_dict()
    assert body["path"] == name and body["label"] == want["label"] == str(truth[name])
    assert body["score"] == pytest.approx(want["score"], abs=1e-6)
    assert [t["label"] for t in body["top_k"]] == [t["label"] for t in want["top_k"]][:3] and len(body["top_k"]) == 3
    assert body["latency_ms"] > 0


@pytest.mark.parametrize("query, n", [("?top_k=1", 1), ("?top_k=7", 7), ("?top_k=10", 10), ("?top_k=99", 10), ("", 3)])
def test_top_k_query(server, clf, edge_models, truth, query, n):
    status, body, _ = _request(server.port, "POST", f"/predict{query}", _image(edge_models, sorted(truth)[1]))
    assert status == 200 and len(body["top_k"]) == n
    scores = [t["score"] for t in body["top_k"]]
    assert scores == sorted(scores, reverse=True) and body["top_k"][0]["label"] == body["label"]
    assert clf.top_k == 3 and len(clf.predict(edge_models / "images" / sorted(truth)[1]).top_k) == 3  # not mutated


@pytest.mark.parametrize("value", ["0", "-2", "many"])
def test_bad_top_k_is_400(server, edge_models, truth, value):
    status, body, _ = _request(server.port, "POST", f"/predict?top_k={value}", _image(edge_models, sorted(truth)[1]))
    assert status == 400 and body["error"] == f"Received top_k='{value}', expected an integer >= 1"


def test_multipart_with_several_files_answers_a_list_in_order(server, edge_models, truth):
    names = sorted(truth)[:4]
    body, ctype = _multipart([(n, _image(edge_models, n)) for n in names], fields=[("note", "hello")])
    status, out, _ = _request(server.port, "POST", "/predict?top_k=2", body, {"Content-Type": ctype})
    assert status == 200 and isinstance(out, list) and len(out) == 4
    assert [o["path"] for o in out] == names
    assert [o["label"] for o in out] == [str(truth[n]) for n in names]
    assert all(FIELDS <= set(o) and len(o["top_k"]) == 2 for o in out)


def test_multipart_with_a_bad_file_names_it(server, edge_models, truth):
    name = sorted(truth)[0]
    body, ctype = _multipart([(name, _image(edge_models, name)), ("broken.png", b"not an image")])
    status, out, _ = _request(server.port, "POST", "/predict", body, {"Content-Type": ctype})
    assert status == 400 and out["error"].startswith("broken.png: ") and "\n" not in out["error"]
    body, ctype = _multipart([("tiny.png", b"x")] * 65)
    out = _request(server.port, "POST", "/predict", body, {"Content-Type": ctype})[1]
    assert out["error"] == "Received 65 files in one request, expected at most 64"
    body, ctype = _multipart([], fields=[("note", "no files")])
    assert _request(server.port, "POST", "/predict", body, {"Content-Type": ctype})[1]["error"] == "multipart body holds no file part"


@pytest.mark.parametrize("body, status, fragment", [
    (b"definitely not an image", 400, "not a recognised image file"),
    (b"", 400, "empty"),
    (b"\x89PNG\r\n\x1a\n" + b"\0" * 40, 400, "image"),
    (b"x" * (MAX_BODY + 1), 413, f"body of {MAX_BODY + 1} bytes exceeds the limit of {MAX_BODY} bytes"),
])
def test_bad_requests_get_one_line_json_errors(server, body, status, fragment):
    got, out, _ = _request(server.port, "POST", "/predict", body)
    assert got == status and fragment in out["error"] and out["status"] == status and "\n" not in out["error"]


def test_chunked_upload_works_and_its_streamed_size_is_capped(server, edge_models, truth):
    name = sorted(truth)[2]
    data = _image(edge_models, name)
    status, out, _ = _request(server.port, "POST", "/predict", iter([data[:50], data[50:]]),
                              {"Transfer-Encoding": "chunked"})
    assert status == 200 and out["label"] == str(truth[name])
    # No Content-Length: only the streamed size can tell. A little over the cap is read to the end
    # (DRAIN_AFTER_CAP), so the client sends it all and reads a clean 413, never a reset.
    big = iter([b"x" * 16384] * (MAX_BODY // 16384 + 2))
    status, out, headers = _request(server.port, "POST", "/predict", big, {"Transfer-Encoding": "chunked"})
    assert status == 413 and f"exceeds the limit of {MAX_BODY} bytes" in out["error"]
    assert headers.get("connection") == "close"
    # Far over it, the server stops reading after DRAIN_AFTER_CAP: the client may be cut off mid-send,
    # and the 413 is still there to read.
    huge = iter([b"x" * 65536] * ((MAX_BODY + DRAIN_AFTER_CAP) // 65536 + 64))
    status, out, _ = _request(server.port, "POST", "/predict", huge, {"Transfer-Encoding": "chunked"},
                              refused_midway=True)
    assert status == 413 and f"exceeds the limit of {MAX_BODY} bytes" in out["error"]


def test_huge_declared_length_is_refused_before_reading(server):
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:
        s.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999\r\n\r\n")
        assert s.recv(4096).split(b"\r\n")[0] == b"HTTP/1.1 413 Request Entity Too Large"


def test_wrong_routes_and_methods(server):
    status, out, _ = _request(server.port, "GET", "/nope")
    assert status == 404 and out["error"].startswith("no route '/nope'")
    assert _request(server.port, "GET", "/predict")[0] == 405
    assert _request(server.port, "POST", "/elsewhere", b"x")[0] == 404
    assert _request(server.port, "DELETE", "/predict")[0] == 405


def _rest_of_reply(s: socket.socket, reply: bytes) -> bytes:
    """The whole reply: a 408 may arrive as the head and then the body, in two reads."""
    s.settimeout(5)
    while reply:
        try:
            more = s.recv(4096)
        except (socket.timeout, OSError):
            break
        if not more:
            break
        reply += more
    return reply


def test_a_trickling_body_gets_408_at_the_one_request_deadline(server, edge_models, truth):
    """One byte every 0.3 s never trips a per-read timeout; the 2 s request deadline cuts it off."""
    t0 = time.monotonic()
    reply = b""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
        s.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n")
        s.settimeout(0.3)
        for _ in range(100):  # at most 30 s; the server must answer long before
            try:
                reply = s.recv(4096)
                break
            except socket.timeout:
                try:
                    s.sendall(b"x")
                except OSError:
                    break
        reply = _rest_of_reply(s, reply)
    elapsed = time.monotonic() - t0
    assert reply.split(b"\r\n")[0] == b"HTTP/1.1 408 Request Timeout", reply[:100]
    assert b"request not received within --request-timeout 2 s" in reply
    assert elapsed < 10, f"answered after {elapsed:.1f} s"  # 100 reads at 0.3 s would be 30 s
    assert _request(server.port, "POST", "/predict", _image(edge_models, sorted(truth)[0]))[0] == 200


def test_trickled_headers_get_408_at_the_deadline(server):
    """Before the head is complete the app has not started; the protocol's own head deadline cuts it."""
    t0 = time.monotonic()
    reply = b""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
        s.sendall(b"POST /predict HTTP/1.1\r\n")
        s.settimeout(0.3)
        for i in range(100):  # at most 30 s
            try:
                reply = s.recv(4096)
                break
            except socket.timeout:
                try:
                    s.sendall(f"X-Slow-{i}: y\r\n".encode())
                except OSError:
                    break
        reply = _rest_of_reply(s, reply)
    assert reply.split(b"\r\n")[0] == b"HTTP/1.1 408 Request Timeout", reply[:100]
    assert b"request headers not received within --request-timeout 2 s" in reply
    assert time.monotonic() - t0 < 10


def test_metrics_and_info(server, edge_models, truth):
    from prometheus_client.parser import text_string_to_metric_families

    for _ in range(3):
        _request(server.port, "POST", "/predict", _image(edge_models, sorted(truth)[0]))
    _request(server.port, "POST", "/predict", b"garbage")
    status, text, headers = _request(server.port, "GET", "/metrics")
    assert status == 200 and headers["content-type"].startswith("text/plain")
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for fam in text_string_to_metric_families(text) for s in fam.samples}
    ok = samples[("edgeinfer_requests_total", (("code", "200"), ("method", "POST"), ("route", "/predict")))]
    assert ok >= 3
    assert samples[("edgeinfer_errors_total", (("code", "400"),))] >= 1
    assert samples[("edgeinfer_request_duration_seconds_count", (("route", "/predict"),))] >= ok + 1
    assert samples[("edgeinfer_model_load_seconds", ())] == pytest.approx(0.125)
    assert samples[("edgeinfer_images_total", ())] >= 3
    assert ("edgeinfer_model_info", (("backend", "litert"), ("model", "model_float32.tflite"), ("threads", str(server.predictor.clf.backend.threads)))) in samples

    status, info, _ = _request(server.port, "GET", "/info")
    assert status == 200 and info["manifest"]["labels"] == [str(i) for i in range(10)]
    assert info["backend"]["backend"] == "litert" and info["threads"] == info["backend"]["threads"] >= 1
    assert info["limits"] == {"max_body_bytes": MAX_BODY, "request_timeout_s": 2.0, "max_concurrent": 4, "max_queue": 64,
                              "max_batch": 4, "batch_timeout_ms": 2.0, "default_top_k": 3}
    for name in ("edgeinfer_queue_depth", "edgeinfer_queue_wait_seconds_count", "edgeinfer_batch_size_count"):
        assert any(key[0] == name for key in samples), name
    assert samples[("edgeinfer_batch_size_sum", ())] >= 3 and samples[("edgeinfer_queue_wait_seconds_count", ())] >= 3
    assert info["model_load_s"] == pytest.approx(0.125)


def test_access_log_has_one_line_per_request(server):
    time.sleep(0.2)  # lines of earlier tests' requests are written just after their answers
    before = server.access_log.getvalue().count("\n")
    _request(server.port, "GET", "/health")
    _request(server.port, "GET", "/nope")
    for _ in range(100):  # the line follows the answer; wait for it (at most 5 s)
        if server.access_log.getvalue().count("\n") >= before + 2:
            break
        time.sleep(0.05)
    time.sleep(0.1)
    lines = server.access_log.getvalue().splitlines()[before:]
    assert len(lines) == 2
    assert '"GET /health HTTP/1.1" 200 ' in lines[0] and lines[0].startswith("edge-infer: 127.0.0.1:")
    assert '"GET /nope HTTP/1.1" 404 ' in lines[1]


class SlowClassifier:
    """A real classifier whose runtime call takes ``delay`` seconds (a stand-in for a big model); counts the calls."""

    def __init__(self, clf, delay: float):
        self._clf, self.delay, self.calls = clf, delay, []

    def __getattr__(self, name):
        return getattr(self._clf, name)

    def predict_prepared(self, xs):
        self.calls.append(len(xs))
        time.sleep(self.delay)
        return self._clf.predict_prepared(xs)


def _sample(srv, name, **labels):
    return srv.metrics.registry.get_sample_value(name, labels or None) or 0.0


def _concurrently(port, n, body, stagger=0.0):
    """``n`` requests at once (each on its own connection): [(status, body, headers, seconds)] in start order."""
    out = [None] * n

    def one(i):
        t0 = time.monotonic()
        out[i] = (*_request(port, "POST", "/predict", body), time.monotonic() - t0)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
        time.sleep(stagger)
    for t in threads:
        t.join(timeout=60)
    return out


def _wait_for(srv, name, value, timeout=10.0):
    deadline = time.monotonic() + timeout
    while _sample(srv, name) < value and time.monotonic() < deadline:
        time.sleep(0.02)
    assert _sample(srv, name) >= value, f"{name} never reached {value}"


def test_four_times_the_slots_wait_in_the_queue_instead_of_503(edge_models, truth):
    clf = SlowClassifier(ImageClassifier(edge_models / "model_float32.tflite"), delay=0.15)
    opts = ServeOptions(port=0, request_timeout=20.0, max_concurrent=2, max_queue=16, access_log=False)
    with BackgroundServer(clf, opts) as srv:
        got = _concurrently(srv.port, 8, _image(edge_models, sorted(truth)[0]))
        assert [g[0] for g in got] == [200] * 8
        waits = _sample(srv, "edgeinfer_queue_wait_seconds_count")
        zero = _sample(srv, "edgeinfer_queue_wait_seconds_bucket", le="0.0")
        assert waits == 8 and zero < 8  # every request was admitted; some of them after a wait
        assert _sample(srv, "edgeinfer_busy_rejections_total", reason="queue_full") == 0
        assert _sample(srv, "edgeinfer_queue_depth") == 0 and _sample(srv, "edgeinfer_inference_in_flight") == 0


def test_a_full_queue_is_503_with_retry_after(edge_models, truth):
    clf = SlowClassifier(ImageClassifier(edge_models / "model_float32.tflite"), delay=1.0)
    data = _image(edge_models, sorted(truth)[0])
    opts = ServeOptions(port=0, request_timeout=20.0, max_concurrent=1, max_queue=1, access_log=False)
    with BackgroundServer(clf, opts) as srv:
        first: list = []
        threads = [threading.Thread(target=lambda: first.append(_request(srv.port, "POST", "/predict", data)))
                   for _ in range(2)]
        threads[0].start()
        _wait_for(srv, "edgeinfer_inference_in_flight", 1)  # the first holds the only slot...
        threads[1].start()
        _wait_for(srv, "edgeinfer_queue_depth", 1)  # ...the second waits in the queue
        status, out, headers = _request(srv.port, "POST", "/predict", data)
        for t in threads:
            t.join(timeout=30)
        assert status == 503 and int(headers.get("retry-after")) >= 1
        assert out["error"] == "the queue is full (1 requests wait for 1 slots); retry shortly"
        assert [f[0] for f in first] == [200, 200]
        assert _sample(srv, "edgeinfer_busy_rejections_total", reason="queue_full") == 1
        assert _request(srv.port, "POST", "/predict", data)[0] == 200  # the slot came back


def test_max_queue_0_refuses_when_every_slot_is_busy(edge_models, truth):
    clf = SlowClassifier(ImageClassifier(edge_models / "model_float32.tflite"), delay=1.0)
    opts = ServeOptions(port=0, request_timeout=20.0, max_concurrent=1, max_queue=0, access_log=False)
    with BackgroundServer(clf, opts) as srv:
        got = _concurrently(srv.port, 2, _image(edge_models, sorted(truth)[0]), stagger=0.3)
    assert sorted(g[0] for g in got) == [200, 503]


def test_a_deadline_that_cannot_be_met_is_refused_at_once(edge_models, truth):
    clf = SlowClassifier(ImageClassifier(edge_models / "model_float32.tflite"), delay=0.6)
    data = _image(edge_models, sorted(truth)[0])
    opts = ServeOptions(port=0, request_timeout=1.0, max_concurrent=1, max_queue=8, access_log=False)
    with BackgroundServer(clf, opts) as srv:
        assert _request(srv.port, "POST", "/predict", data)[0] == 200  # the queue learns a slot is held ~0.6 s
        first: list = []
        t = threading.Thread(target=lambda: first.append(_request(srv.port, "POST", "/predict", data)))
        t.start()
        _wait_for(srv, "edgeinfer_inference_in_flight", 1)
        t0 = time.monotonic()
        status, out, headers = _request(srv.port, "POST", "/predict", data)
        elapsed = time.monotonic() - t0
        t.join(timeout=30)
    assert status == 503 and "would pass this request's deadline" in out["error"] and int(headers["retry-after"]) >= 1
    assert elapsed < 0.5  # at once, not after waiting out the deadline
    assert first[0][0] == 200
    assert _sample(srv, "edgeinfer_busy_rejections_total", reason="deadline") == 1


def test_deadline_passing_in_the_queue_or_in_inference_is_503(edge_models, truth):
    """Each request is answered at its own deadline: a slot freed by the first (cut off at its deadline) goes to
    the second, which is cut off at its own."""
    clf = SlowClassifier(ImageClassifier(edge_models / "model_float32.tflite"), delay=2.0)
    opts = ServeOptions(port=0, request_timeout=0.8, max_concurrent=1, max_queue=8, access_log=False)
    with BackgroundServer(clf, opts) as srv:
        got = _concurrently(srv.port, 2, _image(edge_models, sorted(truth)[0]), stagger=0.2)
    assert [g[0] for g in got] == [503, 503] and all(g[2].get("retry-after") == "1" for g in got)
    assert all(g[1]["error"].endswith("within --request-timeout 0.8 s") for g in got)
    assert all(g[3] < 0.8 + 1.0 for g in got)  # answered at the deadline, not when the runtime finished


def test_admission_hands_slots_over_in_order_and_forgets_a_waiter_that_gave_up():
    import asyncio

    from edgedeploy.runtime.serve.batcher import Admission
    from edgedeploy.runtime.serve.metrics import ServeMetrics

    metrics = ServeMetrics("m", "b", 1)

    async def scenario():
        adm = Admission(slots=1, max_queue=2, metrics=metrics)
        far = time.monotonic() + 60
        assert await adm.acquire(far) == 0.0  # the one slot
        second = asyncio.ensure_future(adm.acquire(far))
        quitter = asyncio.ensure_future(asyncio.wait_for(adm.acquire(far), 0.05))
        await asyncio.sleep(0.01)
        assert len(adm.waiters) == 2 and metrics.queue_depth._value.get() == 2
        with pytest.raises(asyncio.TimeoutError):
            await quitter  # its own deadline: it leaves the queue
        assert len(adm.waiters) == 1
        adm.release(0.5)  # the slot goes to the second, not back to the pool
        assert await second > 0 and adm.free == 0 and adm.hold_s == 0.5
        adm.release(0.5)
        assert adm.free == 1 and metrics.in_flight._value.get() == 0

    asyncio.run(scenario())


def test_the_batcher_groups_queued_images_into_one_runtime_call(edge_models, truth):
    clf = SlowClassifier(ImageClassifier(edge_models / "model_float32.tflite"), delay=0.3)
    opts = ServeOptions(port=0, request_timeout=20.0, max_concurrent=8, max_batch=8, access_log=False)
    with BackgroundServer(clf, opts) as srv:
        names = sorted(truth)[:8]
        one = {n: clf._clf.predict(_image(edge_models, n)) for n in names}
        out: dict = {}

        def ask(n):
            out[n] = _request(srv.port, "POST", f"/predict?name={n}", _image(edge_models, n))

        threads = [threading.Thread(target=ask, args=(n,)) for n in names]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        calls = _sample(srv, "edgeinfer_batch_size_count")
        assert _sample(srv, "edgeinfer_batch_size_sum") == 8  # images, padding not counted
        assert calls == len(clf.calls) < 8 and max(clf.calls) > 1  # the images waiting behind the first call went in one
        assert set(clf.calls) <= {1, 8}  # the runtime sees two shapes: 1, or padded to --max-batch
    for n in names:  # batching does not change an answer
        status, body, _ = out[n]
        assert status == 200 and body["path"] == n and body["label"] == one[n].label
        assert body["score"] == pytest.approx(one[n].score, abs=1e-5)


def test_a_fixed_batch_file_is_served_one_image_per_call(edge_models, truth):
    clf = SlowClassifier(ImageClassifier(edge_models / "model_fixed1.tflite"), delay=0.05)
    assert not clf.batchable
    opts = ServeOptions(port=0, request_timeout=20.0, max_concurrent=4, max_batch=8, access_log=False)
    with BackgroundServer(clf, opts) as srv:
        got = _concurrently(srv.port, 6, _image(edge_models, sorted(truth)[0]))
        body, ctype = _multipart([(n, _image(edge_models, n)) for n in sorted(truth)[:3]])
        status, listed, _ = _request(srv.port, "POST", "/predict", body, {"Content-Type": ctype})
        _, info, _ = _request(srv.port, "GET", "/info")
    assert [g[0] for g in got] == [200] * 6 and status == 200 and len(listed) == 3
    assert clf.calls == [1] * 9 and info["limits"]["max_batch"] == 1


def test_inference_past_the_deadline_is_503(edge_models, truth):
    clf = SlowClassifier(ImageClassifier(edge_models / "model_float32.tflite"), delay=2.0)
    opts = ServeOptions(port=0, request_timeout=0.5, max_concurrent=2, access_log=False)
    with BackgroundServer(clf, opts) as srv:
        status, out, headers = _request(srv.port, "POST", "/predict", _image(edge_models, sorted(truth)[0]))
    assert status == 503 and out["error"] == "inference did not finish within --request-timeout 0.5 s"
    assert headers.get("retry-after") == "1"


def test_serve_options_validate_the_queue_flags():
    from edgedeploy.core.errors import EdgeDeployError

    for bad in ({"max_queue": -1}, {"max_batch": 0}, {"batch_timeout_ms": -0.5}, {"max_batch": True}):
        with pytest.raises(EdgeDeployError, match="Received"):
            ServeOptions(**bad)
    opts = ServeOptions()
    assert (opts.max_concurrent, opts.max_queue, opts.max_batch, opts.batch_timeout_ms) == (8, 64, 4, 2.0)


def test_2000_requests_while_50_slow_clients_trickle(edge_models):
    """No 5xx for the normal clients, p99 reported, flat RSS, slow clients cut at the deadline."""
    r = serve_load.run_load(edge_models / "model_float32.tflite", requests=2000, clients=8, slow=50,
                            slow_interval=3.0, request_timeout=3.0, max_concurrent=8, threads=1)
    print(f"serve load: p50 {r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms, {r['throughput_rps']:.0f} req/s, "
          f"RSS {r['rss_kb']}, slow {r['slow_statuses']}")
    assert r["statuses"] == {200: 2000} and r["failures_5xx_or_no_answer"] == 0
    assert r["p99_ms"] > 0
    assert r["rss_growth_kb"] < 5 * 1024, r["rss_kb"]
    assert r["slow_statuses"].get(408, 0) >= 50  # every slow client was cut off at its deadline...
    assert r["slow_longest_open_s"] < 3.0 + 5  # ...not after 100,000 bytes at one per 3 s
    assert r["server_exit_code"] == 0 and not r["server_traceback"]


def test_cli_flags_quiet_and_sigterm(edge_models, truth):
    data = _image(edge_models, sorted(truth)[0])
    with serve_load.running_server(edge_models / "model_float32.tflite", "--max-concurrent", "2", "--top-k", "2") as srv:
        status, out, _ = _request(srv["port"], "POST", "/predict", data)
        _, info, _ = _request(srv["port"], "GET", "/info")
    assert status == 200 and len(out["top_k"]) == 2 and info["limits"]["max_concurrent"] == 2
    assert info["model_load_s"] > 0
    assert srv["returncode"] == 0 and srv["stderr"].count('"POST /predict HTTP/1.1" 200 ') == 1
    assert srv["stderr"].rstrip().endswith("edge-infer: stopped after 2 requests")
    with serve_load.running_server(edge_models / "model_float32.tflite", "--quiet") as srv:
        assert _request(srv["port"], "POST", "/predict", data)[0] == 200
    assert srv["returncode"] == 0 and '"POST /predict' not in srv["stderr"] and "Traceback" not in srv["stderr"]


def test_serve_refuses_inputs_and_a_busy_port(edge_models, capsys):
    from edgedeploy.runtime.cli import main

    assert main([str(edge_models / "model_float32.tflite"), "x.png", "--serve"]) == 2
    assert "--serve takes no INPUT" in capsys.readouterr().err
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        assert main([str(edge_models / "model_float32.tflite"), "--serve", "--port", str(port)]) == 2
        assert f"cannot listen on 127.0.0.1:{port}" in capsys.readouterr().err


def test_missing_serve_extra_is_one_line_naming_the_install(edge_models):
    code = ("import sys\n"
            "class Block:\n"
            "    def find_spec(self, name, path=None, target=None):\n"
            "        if name.split('.')[0] == 'starlette': raise ImportError(name)\n"
            "sys.meta_path.insert(0, Block())\n"
            "from edgedeploy.runtime.cli import main\n"
            f"sys.exit(main([{str(edge_models / 'model_float32.tflite')!r}, '--serve', '--port', '0']))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 2 and out.stderr.count("\n") == 1, out.stderr
    assert "pip install 'edgedeploy[serve]'" in out.stderr and "starlette" in out.stderr
