"""Latency, load time, memory and achieved GMAC/s of exported models, each in a fresh process.

    python benchmarks/latency.py MODEL_OR_EXPORT_DIR... [--warmup N] [--runs N]
        [--threads 1,2,4] [--backend auto|litert|tflite-runtime|onnxruntime[,...]]
        [--batch-size 1] [--peak-gflops G] [--json OUT] [--quick]

For every model x backend x thread count a new Python process imports the
runtime, opens the model, runs one first inference, ``--warmup`` untimed
runs and ``--runs`` timed runs, and reports:

- file size (bytes on disk), runtime import time, load time (open to ready),
  first-inference time;
- latency mean, std, min, max, p50, p90, p99 (ms) of ``predict_tensor`` on a
  batch (quantization of integer models included, image decoding not);
- throughput (images/s = batch size / mean latency);
- peak RSS of that process (its own ``VmHWM`` from /proc; ``getrusage``'s
  ``ru_maxrss`` is carried across fork and exec on Linux, so it would show the
  parent's peak), and RSS before/after the load;
- achieved GMAC/s = manifest ``macs`` x batch / p50 latency ("n/a" when the
  manifest has no ``macs``), and the % of ``--peak-gflops`` when given
  (1 MAC = 2 FLOPs);
- whether the XNNPACK delegate was applied (TFLite).

Every variant gets the same input: uniform random uint8 pixels of the
model's input size from ``--seed`` (default 0), normalized as the manifest
says. Each row records the seed and the SHA-256 of those pixels, so equal
hashes prove equal inputs.
"""
from __future__ import annotations

import hashlib
import importlib
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

from edgedeploy.bench import _common as C
from edgedeploy.bench.records import LatencyRow
from edgedeploy.core.errors import EdgeDeployError

PROG = "latency.py"
DEFAULT_WARMUP, DEFAULT_RUNS = 10, 100
QUICK_WARMUP, QUICK_RUNS = 3, 20
INPUT_POOL = 32  # distinct synthetic images cycled through the timed runs


# -- the worker: one model, one backend, one thread count, in its own process ------
def synthetic_pixels(seed: int, n: int, height: int, width: int, channels: int):
    """The benchmark input: uniform random uint8 pixels, a pure function of (seed, shape)."""
    from edgedeploy.core.timing import synthetic_pixels as pixels  # shared with export-model --select

    return pixels(seed, n, height, width, channels)


def measure(job: dict[str, Any]) -> dict[str, Any]:
    """Measure one configuration in this process (called in a fresh subprocess)."""
    rss_start = C.current_rss_bytes()
    import numpy as np

    from edgedeploy.runtime.classifier import ImageClassifier
    from edgedeploy.runtime.preprocess import normalize

    backend, threads, batch = job["backend"], int(job["threads"]), int(job["batch_size"])
    t0 = time.perf_counter()
    module = C.runtime_modules().get(backend)
    if module:
        try:
            importlib.import_module(module)
        except ImportError:
            pass  # the backend raises its own one-line install hint below
    import_s = time.perf_counter() - t0
    rss_before_load = C.current_rss_bytes()

    t0 = time.perf_counter()
    clf = ImageClassifier(job["model"], threads=threads, backend=backend, xnnpack=job.get("xnnpack", True))
    load_s = time.perf_counter() - t0
    rss_after_load = C.current_rss_bytes()

    m = clf.manifest
    n_batches = max(1, math.ceil(INPUT_POOL / batch))
    pixels = synthetic_pixels(int(job["seed"]), n_batches * batch, m.input_height, m.input_width, m.input_channels)
    x = clf.to_model_layout(normalize(pixels.astype(np.float32), m))
    batches = [np.ascontiguousarray(x[i * batch:(i + 1) * batch]) for i in range(n_batches)]

    t0 = time.perf_counter()
    clf.predict_tensor(batches[0], batch_size=batch)
    first_s = time.perf_counter() - t0

    warmup, runs = int(job["warmup"]), int(job["runs"])
    bar = C.Progress(warmup + runs, f"  {Path(job['model']).name} {backend} x{threads}", enabled=sys.stderr.isatty())
    from edgedeploy.core.timing import time_calls  # the timed loop export-model --select uses too

    times = time_calls(lambda b: clf.predict_tensor(b, batch_size=batch), batches, warmup, runs, on_step=bar.update)
    bar.close()

    stats = C.latency_stats(times)
    mean_s = stats["mean_ms"] / 1e3
    macs = m.macs if clf.manifest_found else None
    p50_s = stats["p50_ms"] / 1e3
    gmacs = (macs * batch / p50_s / 1e9) if macs and p50_s > 0 else None  # at the typical (p50) latency
    peak_gflops = job.get("peak_gflops")
    row = LatencyRow(
        model=str(job["model"]),
        backend=clf.backend.name,
        threads=clf.backend.threads,
        batch_size=batch,
        xnnpack=clf.backend.xnnpack,
        delegate_applied=clf.backend.delegate_applied,
        accelerator=clf.backend.accelerator,  # what the runtime really used: XNNPACK, built-in kernels, ORT providers
        dynamic_batch=clf.backend.dynamic_batch,
        input_dtype=str(np.dtype(clf.backend.input.dtype)),
        import_ms=import_s * 1e3,
        load_ms=load_s * 1e3,
        first_inference_ms=first_s * 1e3,
        cold_start_ms=(import_s + load_s + first_s) * 1e3,
        **stats,
        throughput_ips=batch / mean_s if mean_s > 0 else None,
        peak_rss_mb=C.mb(C.peak_rss_bytes()),
        rss_start_mb=C.mb(rss_start),
        rss_before_load_mb=C.mb(rss_before_load),
        rss_after_load_mb=C.mb(rss_after_load),
        macs=macs,
        gmacs_per_s=gmacs,
        pct_of_peak=(100.0 * 2 * gmacs / peak_gflops) if gmacs and peak_gflops else None,
        warmup=warmup,
        runs=runs,
        seed=int(job["seed"]),
        input_images=int(pixels.shape[0]),
        input_shape=list(pixels.shape[1:]),
        input_sha256=hashlib.sha256(pixels.tobytes()).hexdigest(),
        pid=os.getpid(),
    )
    return row.to_dict()


def _worker(job_path: str, out_path: str) -> int:
    job = json.loads(Path(job_path).read_text())
    try:
        result = measure(job)
    except EdgeDeployError as exc:
        result = {"error": str(exc)}
    Path(out_path).write_text(json.dumps(result))
    return 0


# -- the parent: plans the runs and starts one process for each --------------------
def plan(models: Sequence[Path], backends: Sequence[str], threads: Sequence[int]) -> list[tuple[Path, str, int]]:
    """(model, backend, threads) for every model a requested backend reads.

    With a mixed folder and ``--backend tflite-runtime`` the .onnx files are
    skipped with a note; when no model at all can be measured, that is the error.
    """
    C.check_backend_names(backends)
    jobs, skipped = [], []
    for m in models:
        try:
            chosen = C.backends_for(m, backends)
        except EdgeDeployError as exc:
            if len(models) == 1 or "none of the backends" not in str(exc):
                raise
            skipped.append(str(exc))
            continue
        for b in chosen:
            for t in threads:
                jobs.append((m, b, t))
    if not jobs:
        raise EdgeDeployError(skipped[0] if skipped else "no model to measure")
    for msg in skipped:
        print(f"{PROG}: skipped: {msg}", file=sys.stderr)
    return jobs


class Failure(dict):
    """A configuration whose subprocess failed or crashed: model, backend, threads, error."""


def run_latency(models: Sequence[Path], backends: Sequence[str] = ("auto",), threads: Sequence[int] = (1,),
                warmup: int = DEFAULT_WARMUP, runs: int = DEFAULT_RUNS, batch_size: int = 1, seed: int = C.DEFAULT_SEED,
                peak_gflops: float | None = None, xnnpack: bool = True, progress: bool = True,
                failures: list | None = None) -> list[dict[str, Any]]:
    """Measure every model x backend x thread count, each in a fresh subprocess; one row each.

    Models are verified here first (a corrupt file is a one-line error before
    anything runs). A subprocess that still fails or crashes (a native
    segfault) is appended to ``failures`` and the others go on; without a
    ``failures`` list the first failure raises.
    """
    from edgedeploy.runtime.formats import verify_model_file

    for m in models:
        verify_model_file(m)
    jobs = plan(models, backends, threads)
    infos = {m: C.variant_info(m) for m in models}
    rows = []
    # The worker is itself the isolation edge_runtime's first-load probe provides (a
    # crash there is caught here), so it skips the probe: load time is the load alone.
    worker_env = dict(os.environ, EDGEDEPLOY_PROBE="never")
    bar = C.Progress(len(jobs), "latency", enabled=progress)
    with tempfile.TemporaryDirectory(prefix="edgedeploy-latency-") as tmp:
        for k, (model, backend, t) in enumerate(jobs):
            job = {"model": str(model), "backend": backend, "threads": t, "batch_size": batch_size, "warmup": warmup,
                   "runs": runs, "seed": seed, "peak_gflops": peak_gflops, "xnnpack": xnnpack}
            job_path, out_path = Path(tmp) / f"job{k}.json", Path(tmp) / f"out{k}.json"
            job_path.write_text(json.dumps(job))
            proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--worker", str(job_path), str(out_path)],
                                  stdout=subprocess.PIPE, stderr=None if sys.stderr.isatty() else subprocess.PIPE, text=True,
                                  env=worker_env)
            bar.update()
            if proc.returncode != 0 or not out_path.is_file():
                tail = (proc.stderr or "").strip().splitlines()
                why = f"crashed with signal {-proc.returncode}" if proc.returncode < 0 else (tail[-1] if tail else f"exit code {proc.returncode}")
                error = f"measuring {model} ({backend}, {t} threads) failed in its subprocess: {why}"
            else:
                result = json.loads(out_path.read_text())
                error = result.get("error")
            if error:
                if failures is None:
                    raise EdgeDeployError(error)
                failures.append(Failure(model=str(model), variant=infos[model]["variant"], backend=backend, threads=t, error=error))
                continue
            rows.append(LatencyRow.from_dict(result).with_variant(infos[model], t).to_dict())
    bar.close()
    return rows


def report_failures(failures: Sequence[dict], prog: str) -> None:
    """One line per failed configuration on stderr; all failed -> the first as a one-line error."""
    for f in failures:
        print(f"{prog}: failed: {f['error']}", file=sys.stderr)


def table_rows(rows: Sequence[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    header = ["Variant", "Backend", "Threads", "Size KB", "Load ms", "1st ms", "Mean ms", "p50 ms", "p90 ms", "p99 ms",
              "img/s", "Peak RSS MB", "GMAC/s", "XNNPACK"]
    out = []
    for r in rows:
        out.append([r["variant"], r["backend"], r["threads"], C.fmt(r["size_bytes"] / 1024, 1), C.fmt(r["load_ms"], 1),
                    C.fmt(r["first_inference_ms"], 2), C.fmt(r["mean_ms"], 3), C.fmt(r["p50_ms"], 3), C.fmt(r["p90_ms"], 3),
                    C.fmt(r["p99_ms"], 3), C.fmt(r["throughput_ips"], 0), C.fmt(r["peak_rss_mb"], 1),
                    C.fmt(r["gmacs_per_s"], 3), C.fmt(r["delegate_applied"])])
    return header, out


def settings(args, threads, backends, warmup, runs) -> dict[str, Any]:
    return {"warmup": warmup, "runs": runs, "threads": list(threads), "backends": list(backends), "batch_size": args.batch_size,
            "seed": args.seed, "quick": args.quick, "peak_gflops": args.peak_gflops, "xnnpack": not args.no_xnnpack,
            "input": "uniform random uint8 pixels of the model's input size from the seed, normalized as the manifest says",
            "timed": "ImageClassifier.predict_tensor on one batch (input quantization included, image decoding excluded)",
            "gmacs_per_s": "manifest macs x batch / p50 latency; pct_of_peak = 2 x GMAC/s / --peak-gflops (1 MAC = 2 FLOPs)",
            "throughput_ips": "batch / mean latency",
            "subprocess_per_run": True, "gc_disabled_during_timed_runs": True,
            "load": "model open to ready in a fresh process, runtime import excluded (import_ms), edge_runtime's "
                    "one-time safety probe skipped (the process is already isolated)"}


def build_parser() -> C.ArgumentParser:
    p = C.ArgumentParser(prog=PROG, description="Latency, load time, peak memory and GMAC/s of exported models, each in a fresh process.")
    p.add_argument("models", nargs="+", metavar="MODEL", help=".tflite/.onnx files or export folders")
    p.add_argument("--warmup", type=C.positive_int("--warmup", 0), default=None, help=f"untimed runs first (default {DEFAULT_WARMUP}, --quick {QUICK_WARMUP})")
    p.add_argument("--runs", type=C.positive_int("--runs", 1), default=None, help=f"timed runs (default {DEFAULT_RUNS}, --quick {QUICK_RUNS})")
    p.add_argument("--threads", default=None, help="comma-separated thread counts (default: 1 and all cores)")
    p.add_argument("--backend", default="auto", help=f"auto or comma-separated backend names ({', '.join(C.runtime_names())})")
    p.add_argument("--batch-size", type=C.positive_int("--batch-size", 1), default=1)
    p.add_argument("--seed", type=int, default=C.DEFAULT_SEED, help="seed of the synthetic input pixels (default 0)")
    p.add_argument("--peak-gflops", type=float, default=None,
                   help="this CPU's peak GFLOP/s, to report %% of peak (e.g. about 48 for a Pi 4: 4 x A72 at 1.5 GHz x 8 FLOP/cycle)")
    p.add_argument("--no-xnnpack", action="store_true", help="TFLite without the XNNPACK delegate")
    p.add_argument("--json", metavar="OUT", default=None, help="write the report as JSON")
    p.add_argument("--device-name", default=None, help="name for this device in merged reports (default: board or CPU model)")
    C.add_common_args(p)
    return p


def _main(argv: Sequence[str]) -> int:
    if argv and argv[0] == "--worker":
        return _worker(argv[1], argv[2])
    args = build_parser().parse_args(argv)
    if args.peak_gflops is not None and args.peak_gflops <= 0:
        raise EdgeDeployError(f"Received --peak-gflops={args.peak_gflops}, expected a positive number")
    warmup = args.warmup if args.warmup is not None else (QUICK_WARMUP if args.quick else DEFAULT_WARMUP)
    runs = args.runs if args.runs is not None else (QUICK_RUNS if args.quick else DEFAULT_RUNS)
    threads = C.parse_int_list(args.threads, "--threads") if args.threads else sorted({1, C.cpu_count()})
    backends = [b.strip() for b in args.backend.split(",") if b.strip()] or ["auto"]
    C.check_outputs([args.json], args.force)
    models = C.discover_models(args.models)
    failures: list = []
    rows = run_latency(models, backends, threads, warmup, runs, args.batch_size, args.seed, args.peak_gflops, not args.no_xnnpack,
                       failures=failures)
    if not rows:
        raise EdgeDeployError(failures[0]["error"])
    from edgedeploy.bench.cpu import cpu_record

    report = {"tool": "latency", "schema": C.REPORT_SCHEMA, "created": C.now_iso(), "environment": C.environment(args.device_name),
              "cpu": cpu_record(),  # the model and the int8 flags (avx512_vnni, amx_int8, asimddp...) the figures depend on
              "settings": settings(args, threads, backends, warmup, runs), "results": rows, "failures": failures}
    header, body = table_rows(rows)
    print(C.table(header, body))
    if args.json:
        C.write_json(args.json, report, args.force)
        print(f"wrote {args.json}")
    report_failures(failures, PROG)
    return 1 if failures else 0


def main(argv: Sequence[str] | None = None) -> int:
    return C.run_main(_main, argv, PROG)


if __name__ == "__main__":
    sys.exit(main())
