"""Load on ``edge-infer --serve``: many keep-alive clients beside slow ones, the queue, and what batching gains.

    python benchmarks/serve_load.py MODEL [--photos DIR] [--requests 3000] [--clients 32] [--slow 50]
        [--slow-interval 3] [--request-timeout 10] [--max-concurrent 8] [--max-queue N] [--max-batch N]
        [--threads N] [--batch-models M1,M2] [--batch-sizes 1,4,8] [--batch-seconds 8] [--batch-rounds 2]
        [--queue-sweep 0,16,64] [--sweep-requests 600] [--out reports/serve_load] [--force] [--quick]

One run, three parts, each against the real server (``python -m
edgedeploy.runtime.cli MODEL --serve --port 0 --quiet ...``) in a child process:

1. **Load** (the README figure): ``--slow`` slow-body clients (headers
   announcing 100,000 bytes, then one byte every ``--slow-interval`` s,
   reconnecting when cut off) stay open while ``--clients`` keep-alive
   clients (32 = 4x the 8 default slots) send 1,000 warm-up requests and then
   ``--requests`` POST /predict. Reported: the normal clients' statuses (0
   non-2xx is the goal: with the queue, busy slots mean waiting, not 503),
   p50/p99/max, requests/s, what the slow clients got, the server's RSS
   after warm-up and at the end, and the load generator's CPU share (it runs
   here, on the same cores: its threads' CPU seconds over the server's and
   its own).
2. **Batching**: for every ``--batch-models`` file and ``--batch-sizes``
   value, ``--max-batch B`` and about ``--batch-seconds`` of requests from
   ``--clients`` clients (no slow clients), ``--batch-rounds`` interleaved
   rounds, the best kept: requests/s, p50/p99, the mean images per runtime
   call (from /metrics) and the generator's CPU share.
3. **Queue sweep**: ``--max-queue Q`` for each ``--queue-sweep`` value at
   ``--clients`` clients: how many answers were 503 and p99; the queue
   bound that gives none is the default's evidence.

Payloads are the JPEG photos under ``--photos`` (the shared photos for the
figure), else the embedded digits as PNG and JPEG. Writes ``OUT.json`` and
``OUT.md``. Needs the edge and serve extras only (no TensorFlow).
"""
from __future__ import annotations

import http.client
import re
import sys
import time
from pathlib import Path
from typing import Any, Sequence

from edgedeploy.bench import _common as C
from edgedeploy.bench.cpu import cpu_record
from edgedeploy.bench.serve_clients import HOST, SlowClients, cpu_seconds, digit_bodies, normal_clients, photo_bodies, rss_kb, running_server  # noqa: F401
from edgedeploy.core.command import ArgumentParser, run_command
from edgedeploy.core.errors import EdgeDeployError

PROG = "serve_load.py"
REQUIRES = C.Requires("serve", "starlette", "uvicorn")  # edge-bench lists it where the serve extra is installed
# Warm-up requests before the measured load: the malloc arenas of the decode threads and the runtime's
# buffers reach their working size (with 32 clients on the photo CNN RSS rose 2 MB over the first
# 4,500 requests and then stayed within 0.1 MB to 9,000).
WARMUP = 1000


def _flags(request_timeout: float, max_concurrent: int, threads: int | None, max_queue: int | None = None,
           max_batch: int | None = None) -> list[str]:
    flags = ["--quiet", "--request-timeout", str(request_timeout), "--max-concurrent", str(max_concurrent)]
    for name, value in (("--threads", threads), ("--max-queue", max_queue), ("--max-batch", max_batch)):
        if value is not None:
            flags += [name, str(value)]
    return flags


def _metric(port: int, name: str) -> float:
    conn = http.client.HTTPConnection(HOST, port, timeout=10)
    try:
        conn.request("GET", "/metrics")
        text = conn.getresponse().read().decode()
    finally:
        conn.close()
    m = re.search(rf"^{re.escape(name)} ([0-9.e+-]+)$", text, re.M)
    return float(m.group(1)) if m else 0.0


def _measured(port: int, pid: int, bodies: Sequence[bytes], requests: int, clients: int) -> dict[str, Any]:
    """One burst of load, with the CPU both sides used during it."""
    gen0, srv0 = cpu_seconds(), cpu_seconds(pid)
    load = normal_clients(port, bodies, requests, clients)
    gen, srv = cpu_seconds() - gen0, cpu_seconds(pid) - srv0
    lat = C.latency_stats(load["latencies"]) if load["latencies"] else {"p50_ms": 0, "p99_ms": 0, "max_ms": 0}
    ok = sum(v for k, v in load["statuses"].items() if 200 <= k < 300)
    return {"statuses": load["statuses"], "non_2xx": requests - ok, "wall_s": round(load["wall_s"], 3),
            "throughput_rps": round(ok / load["wall_s"], 1), "p50_ms": round(lat["p50_ms"], 3),
            "p99_ms": round(lat["p99_ms"], 3), "max_ms": round(lat["max_ms"], 3),
            "generator_cpu_s": round(gen, 3), "server_cpu_s": round(srv, 3),
            "generator_cpu_share": round(gen / (gen + srv), 3) if gen + srv else None}


def direct_throughput(model: str | Path, bodies: Sequence[bytes], n: int, threads: int | None) -> float:
    """Images per second of ``ImageClassifier.predict`` on the same bytes, one Python thread, this process."""
    from edgedeploy.runtime import ImageClassifier

    clf = ImageClassifier(model, threads=threads)
    for b in bodies[:20]:
        clf.predict(b)
    t0 = time.perf_counter()
    for i in range(n):
        clf.predict(bodies[i % len(bodies)])
    return n / (time.perf_counter() - t0)


def run_load(model: str | Path, requests: int = 2000, clients: int = 32, slow: int = 50, slow_interval: float = 3.0,
             request_timeout: float = 10.0, max_concurrent: int = 8, threads: int | None = None,
             bodies: Sequence[bytes] | None = None, max_queue: int | None = None, max_batch: int | None = None) -> dict:
    """Part 1 (the module docstring): the load beside slow clients; returns the report's "result" dict."""
    bodies = list(bodies or digit_bodies())
    with running_server(model, *_flags(request_timeout, max_concurrent, threads, max_queue, max_batch)) as srv:
        pid, port = srv["proc"].pid, srv["port"]
        rss_start = rss_kb(pid)
        slowc = SlowClients(port, slow, slow_interval)
        slowc.start()
        t_slow = time.monotonic()
        warm = normal_clients(port, bodies, min(WARMUP, requests), clients)
        rss_warm = rss_kb(pid)
        result = _measured(port, pid, bodies, requests, clients)
        rss_end = rss_kb(pid)
        result["mean_batch"] = round(_metric(port, "edgeinfer_batch_size_sum") / max(1.0, _metric(port, "edgeinfer_batch_size_count")), 2)
        while sum(slowc.statuses.values()) < slow and time.monotonic() - t_slow < request_timeout + 5:
            time.sleep(0.1)  # keep the slow clients on until the server has cut each one off once
        slowc.finish()
    result.update({
        "requests": requests, "clients": clients, "slow_clients": slow, "slow_interval_s": slow_interval,
        "request_timeout_s": request_timeout, "max_concurrent": max_concurrent, "max_queue": max_queue,
        "max_batch": max_batch, "threads": threads, "warmup_statuses": warm["statuses"],
        "failures_5xx_or_no_answer": sum(v for k, v in result["statuses"].items() if k >= 500 or k == 0),
        "slow_statuses": dict(sorted(slowc.statuses.items())), "slow_connections": slowc.connections,
        "slow_longest_open_s": round(slowc.longest_open_s, 2),
        "rss_kb": {"start": rss_start, "after_warmup": rss_warm, "end": rss_end}, "rss_growth_kb": rss_end - rss_warm,
        "server_exit_code": srv["returncode"], "server_traceback": "Traceback" in srv["stderr"]})
    direct = direct_throughput(model, bodies, min(requests, 1000), threads)
    result.update(direct_predict_ips=round(direct, 1), throughput_vs_direct=round(result["throughput_rps"] / direct, 3))
    return result


def _label(model: str | Path) -> str:
    """'vgg16 model_int8.tflite': the manifest's model name, then the file."""
    from edgedeploy.runtime.classifier import load_manifest_for

    try:
        name = getattr(load_manifest_for(model), "model_name", None)
    except EdgeDeployError:
        name = None
    return f"{name or Path(model).parent.name} {Path(model).name}"


def run_burst(model: str | Path, bodies: Sequence[bytes], requests: int | None, clients: int, request_timeout: float,
              max_concurrent: int, threads: int | None, max_queue: int | None = None, max_batch: int | None = None,
              seconds: float = 8.0) -> dict[str, Any]:
    """Parts 2 and 3: one server, a warm-up, then ``requests`` from ``clients`` clients (no slow ones).

    ``requests`` None: as many as the warm-up's rate gets through in about ``seconds`` (a big model gets fewer).
    """
    with running_server(model, *_flags(request_timeout, max_concurrent, threads, max_queue, max_batch)) as srv:
        pid, port = srv["proc"].pid, srv["port"]
        warm = normal_clients(port, bodies, 2 * clients, clients)
        if requests is None:
            requests = max(2 * clients, int(2 * clients / warm["wall_s"] * seconds))
        calls0, imgs0 = _metric(port, "edgeinfer_batch_size_count"), _metric(port, "edgeinfer_batch_size_sum")
        out = _measured(port, pid, bodies, requests, clients)
        calls, imgs = _metric(port, "edgeinfer_batch_size_count") - calls0, _metric(port, "edgeinfer_batch_size_sum") - imgs0
    out.update(model=_label(model), max_batch=max_batch, max_queue=max_queue, requests=requests, clients=clients,
               runtime_calls=int(calls), mean_batch=round(imgs / calls, 2) if calls else None)
    return out


def batching_rounds(models: Sequence[str], sizes: Sequence[int], rounds: int, **kw: Any) -> list[dict[str, Any]]:
    """Every (model, --max-batch) ``rounds`` times, interleaved; the best round of each is kept (the others listed)."""
    best: dict[tuple[str, int], dict[str, Any]] = {}
    for _ in range(rounds):
        for m in models:
            for b in sizes:
                r = run_burst(m, max_batch=b, **kw)
                prev = best.get((m, b))
                all_rps = (prev["all_rps"] if prev else []) + [r["throughput_rps"]]
                if prev is None or r["throughput_rps"] > prev["throughput_rps"]:
                    best[(m, b)] = r
                best[(m, b)]["all_rps"] = all_rps
                print(f"  {r['model']} --max-batch {b}: {r['throughput_rps']:.1f} requests/s", file=sys.stderr)
    return [best[(m, b)] for m in models for b in sizes]


def build_parser() -> ArgumentParser:
    p = ArgumentParser(prog=PROG, description="Load edge-infer --serve: 4x-slots clients beside slow ones, batching, the queue.")
    p.add_argument("model", help="a .tflite or .onnx model")
    p.add_argument("--photos", metavar="DIR", help="JPEG payloads from this folder (default: the embedded digits)")
    p.add_argument("--requests", type=C.positive_int("--requests"), default=3000)
    p.add_argument("--clients", type=C.positive_int("--clients"), default=32)
    p.add_argument("--slow", type=C.positive_int("--slow", 0), default=50)
    p.add_argument("--slow-interval", type=float, default=3.0, metavar="S")
    p.add_argument("--request-timeout", type=float, default=10.0, metavar="S")
    p.add_argument("--max-concurrent", type=C.positive_int("--max-concurrent"), default=8)
    p.add_argument("--max-queue", type=C.positive_int("--max-queue", 0), default=None, help="default: the server's")
    p.add_argument("--max-batch", type=C.positive_int("--max-batch"), default=None, help="default: the server's")
    p.add_argument("--threads", type=C.positive_int("--threads"), default=None, help="runtime threads (default: the server's)")
    p.add_argument("--batch-models", metavar="M1,M2", help="models for the batching part (default: MODEL)")
    p.add_argument("--batch-sizes", default="1,4,8", help="--max-batch values compared (default 1,4,8)")
    p.add_argument("--batch-seconds", type=float, default=8.0, metavar="S",
                   help="each batching burst sends about S seconds of requests (default 8)")
    p.add_argument("--batch-rounds", type=C.positive_int("--batch-rounds"), default=2,
                   help="interleaved rounds of the batching part; the best is kept (default 2)")
    p.add_argument("--queue-sweep", default="0,16,64", help="--max-queue values tried at --clients (default 0,16,64; '' skips)")
    p.add_argument("--sweep-requests", type=C.positive_int("--sweep-requests"), default=600)
    p.add_argument("--out", default="reports/serve_load", help="writes OUT.json and OUT.md (default reports/serve_load)")
    C.add_common_args(p)
    return p


def run(args: Any) -> int:
    from edgedeploy.bench.serve_report import render_md
    from edgedeploy.runtime.serve import ServeOptions, require_serve_extra

    models = [args.model] + (args.batch_models.split(",") if args.batch_models else [])
    for m in dict.fromkeys(models):
        if not Path(m).is_file():
            raise EdgeDeployError(f"Received model {m!r}, expected an existing .tflite or .onnx file")
    require_serve_extra()
    out_json, out_md = Path(args.out + ".json"), Path(args.out + ".md")
    C.check_outputs([out_json, out_md], args.force)
    bodies = photo_bodies(args.photos) if args.photos else digit_bodies()
    q = args.quick
    requests, slow = (300, min(args.slow, 10)) if q else (args.requests, args.slow)
    seconds, rounds, sweep_n = (1.0, 1, 60) if q else (args.batch_seconds, args.batch_rounds, args.sweep_requests)
    common = dict(request_timeout=args.request_timeout, max_concurrent=args.max_concurrent, threads=args.threads)
    result = run_load(args.model, requests, args.clients, slow, args.slow_interval, bodies=bodies,
                      max_queue=args.max_queue, max_batch=args.max_batch, **common)
    models = args.batch_models.split(",") if args.batch_models else [args.model]
    batching = batching_rounds(models, C.parse_int_list(args.batch_sizes, "--batch-sizes"), rounds, bodies=bodies,
                               requests=None, clients=args.clients, max_queue=args.max_queue, seconds=seconds, **common)
    sweep = [run_burst(args.model, bodies, sweep_n, args.clients, max_queue=v, max_batch=args.max_batch, **common)
             for v in (C.parse_int_list(args.queue_sweep, "--queue-sweep", 0) if args.queue_sweep else [])]
    d = ServeOptions()
    report = {"tool": "serve_load", "schema": C.REPORT_SCHEMA, "created": C.now_iso(), "model": str(args.model),
              "command": " ".join(["python benchmarks/serve_load.py", *sys.argv[1:]]) if sys.argv[1:] else PROG,
              "environment": C.environment(), "cpu": cpu_record(), "payloads": f"{len(bodies)} "
              + (f"JPEG photos from {args.photos}" if args.photos else "digits (PNG and JPEG)"),
              "server_defaults": {"max_concurrent": d.max_concurrent, "max_queue": d.max_queue, "max_batch": d.max_batch,
                                  "batch_timeout_ms": d.batch_timeout_ms},
              "result": result, "batching": batching, "queue_sweep": sweep}
    C.write_json(out_json, report, args.force)
    C.write_text(out_md, render_md(report), args.force)
    print(render_md(report))
    return 1 if result["non_2xx"] else 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_command(PROG, build_parser, run, argv)


if __name__ == "__main__":
    sys.exit(main())

