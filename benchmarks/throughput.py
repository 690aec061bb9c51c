"""End-to-end images/s of edge-infer's pipeline on a folder vs the model-only rate, per thread count.

    python benchmarks/throughput.py MODEL FOLDER [--threads 1,2] [--batch-size 8]
        [--repeats 3] [--baseline-src DIR] [--rss-files 10000] [--out reports/throughput] [--force]

For every thread count T, in a fresh process (runtime threads = T,
preprocessing workers = T):

- **end-to-end**: edge-infer's own run path (``edge_runtime.cli.Runner``:
  decode, EXIF, RGB, resize, normalize, quantize, invoke, the JSON line) over
  every image of FOLDER, lines written to /dev/null; images/s;
- **model-only**: the same model on already-preprocessed tensors of the same
  photos, ``predict_tensor`` in batches of 1 and of ``--batch-size``; images/s;
- their ratio (end-to-end / model-only, at batch 1 and at the same batch);
- **command**: wall time of ``edge-infer MODEL FOLDER --json --threads T`` as a
  user runs it (start-up and model load included).

The measurements alternate ``--repeats`` times and the best of each is kept,
which filters out other load on a shared machine. ``--baseline-src DIR``
(a folder holding an older ``edge_runtime`` package, e.g. from ``git archive``)
times that code's Runner and command the same way, in the same run.

``--rss-files N`` builds a folder of N hard links to FOLDER's photos in a
temporary directory (deleted afterwards), runs the end-to-end path over it
and samples RSS every 20 ms: the report gives the RSS before the run (model
loaded, paths listed), the peak during it, and the growth.

Writes OUT.json, OUT.md and OUT.csv. TF-free: imports only edge_runtime.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

from edgedeploy.bench import _common as C
from edgedeploy.core.errors import EdgeDeployError

PROG = "throughput.py"
WORKER_FLAG = "--_worker"


# -- the worker: one code version, one thread count, in its own process ----------------
def _worker(spec_json: str) -> int:
    spec = json.loads(spec_json)
    import importlib
    import inspect
    import threading

    import numpy as np

    # The code under test: this install's runtime, or an older one (a folder holding `edge_runtime/`),
    # imported under that folder's own top-level name.
    pkg = _runtime_package(spec.get("src"))
    ImageClassifier = importlib.import_module(f"{pkg}.classifier").ImageClassifier  # noqa: N806
    cli = importlib.import_module(f"{pkg}.cli")
    if hasattr(cli, "Runner"):  # an older tree: everything lived in its cli module
        Runner, expand_inputs = cli.Runner, cli.expand_inputs  # noqa: N806
    else:
        expand_inputs = importlib.import_module(f"{pkg}.inputs").expand_inputs
        PipelineOptions = importlib.import_module(f"{pkg}.pipeline").PipelineOptions  # noqa: N806
        _Runner = importlib.import_module(f"{pkg}.runner").Runner  # noqa: N806

        def Runner(clf, as_json, batch, out=None, err=None, workers=None):  # noqa: N802  (the old signature)
            return _Runner(clf, as_json, PipelineOptions(workers=workers, batch_size=batch), out=out, err=err)

    threads, batch = spec["threads"], spec["batch_size"]
    clf = ImageClassifier(spec["model"], threads=threads)
    paths, _ = expand_inputs([spec["folder"]])
    kwargs = {"workers": spec["workers"]} if "workers" in inspect.signature(Runner).parameters else {}
    out: dict[str, Any] = {"edge_runtime": str(Path(importlib.import_module(pkg).__file__).parent), "images": len(paths),
                           "pipelined": bool(kwargs)}
    devnull = open(os.devnull, "w")

    def e2e() -> float:
        runner = Runner(clf, True, batch, out=devnull, err=devnull, **kwargs)
        t0 = time.perf_counter()
        runner.run(paths)
        dt = time.perf_counter() - t0
        if hasattr(runner, "close"):
            runner.close()
        if runner.ok != len(paths):
            raise SystemExit(f"{runner.failed} of {len(paths)} images failed")
        return len(paths) / dt

    if spec["mode"] == "rss":
        from edgedeploy.bench._common import current_rss_bytes, peak_rss_bytes

        e2e_small = Runner(clf, True, batch, out=devnull, err=devnull, **kwargs)
        e2e_small.run(paths[:batch])  # runtime buffers allocated before the baseline is read
        if hasattr(e2e_small, "close"):
            e2e_small.close()
        before = current_rss_bytes()
        samples = [before]
        stop = threading.Event()

        def sample():
            while not stop.wait(0.02):
                samples.append(current_rss_bytes())

        t = threading.Thread(target=sample, daemon=True)
        t.start()
        rate = e2e()
        stop.set()
        t.join()
        samples.append(current_rss_bytes())
        out.update(rss_before=before, rss_peak_sampled=max(samples), rss_after=samples[-1],
                   ru_maxrss=peak_rss_bytes(), images_per_s=rate, samples=len(samples))
    else:
        n_distinct = min(64, len(paths))
        xs = np.stack([clf.preprocess(p) for p in paths[:n_distinct]])
        n_model = max(len(paths), 256)

        def model_only(bs: int) -> float:
            reps = -(-n_model // n_distinct)
            pool = np.concatenate([xs] * reps)[:n_model]
            clf.predict_tensor(pool[:bs], batch_size=bs)  # warm: the runtime resized for this batch
            t0 = time.perf_counter()
            for i in range(0, n_model, bs):
                clf.predict_tensor(pool[i:i + bs], batch_size=bs)
            return n_model / (time.perf_counter() - t0)

        e2e_rates, m1, mb = [], [], []
        e2e()  # warm-up: page cache, thread pool start, runtime resize
        for _ in range(spec["repeats"]):
            e2e_rates.append(e2e())
            m1.append(model_only(1))
            mb.append(model_only(batch))
        out.update(e2e=e2e_rates, model_b1=m1, model_batch=mb)
    print(json.dumps(out))
    return 0


def _runtime_package(src: str | None) -> str:
    """The runtime package to time: ``edgedeploy.runtime``, or ``edge_runtime`` from an older tree at ``src``."""
    if not src:
        return "edgedeploy.runtime"
    sys.path.insert(0, src)
    return "edge_runtime"


def _spawn(spec: dict[str, Any]) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, "-m", "edgedeploy.bench.throughput", WORKER_FLAG, json.dumps(spec)], capture_output=True, text=True,
                          cwd=tempfile.gettempdir())
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise EdgeDeployError(f"worker for {spec['mode']} threads={spec['threads']} failed: {tail}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _configurations(t: int, versions: list[tuple[str, str | None]]) -> list[tuple[str, str | None, int, int]]:
    """(code, src, runtime threads, workers) timed for the thread count T.

    Each code version runs with T runtime threads and T preprocessing workers
    (the baseline has no workers). For T >= 2 the pipeline also runs split: T
    threads in all, runtime ``T // 2`` and workers the rest, which is the fair
    match for the baseline's T busy threads (its main thread preprocesses,
    then joins the runtime's T threads).
    """
    out = [(code, src, t, t) for code, src in versions]
    if t >= 2:
        out.insert(1, ("split", None, t // 2, t - t // 2))
    return out


def _command_seconds(model: str, folder: str, threads: int, workers: int | None, src: str | None, repeats: int) -> float:
    """Best wall time of the real command (edge-infer, or an older tree's ``python -m edge_runtime.cli``), start-up included."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (src or "", os.environ.get("PYTHONPATH", "")) if p)}
    module = "edgedeploy.runtime.cli" if src else "edgedeploy.runtime.cli"
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        # cwd: a neutral folder, since "python -m" puts the working directory first on sys.path
        extra = ["--workers", str(workers)] if workers is not None else []
        proc = subprocess.run([sys.executable, "-m", module, model, folder, "--json", "--threads", str(threads),
                               "--no-progress", *extra], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env,
                              cwd=tempfile.gettempdir())
        dt = time.perf_counter() - t0
        if proc.returncode != 0:
            raise EdgeDeployError(f"edge-infer failed on {folder}: {(proc.stderr.strip().splitlines() or ['?'])[-1]}")
        best = min(best, dt)
    return best


def _link_folder(src_folder: str, n: int, dest: Path) -> Path:
    from edgedeploy.runtime.inputs import expand_inputs

    photos, _ = expand_inputs([src_folder])
    if not photos:
        raise EdgeDeployError(f"no images in {src_folder}")
    dest.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        src = photos[i % len(photos)]
        sub = dest / f"d{i // 1000:03d}"
        sub.mkdir(exist_ok=True)
        target = sub / f"img{i:06d}{src.suffix.lower()}"
        try:
            os.link(src, target)
        except OSError:  # another filesystem: copy
            shutil.copyfile(src, target)
    return dest


# -- the report ----------------------------------------------------------------------
def build_parser() -> C.ArgumentParser:
    p = C.ArgumentParser(prog=PROG, description="End-to-end images/s of edge-infer on a folder vs the model-only rate.")
    p.add_argument("model", help="a .tflite or .onnx model file")
    p.add_argument("folder", help="a folder of photos (searched recursively, as edge-infer does)")
    p.add_argument("--threads", default="1,2", help="thread counts: runtime threads = preprocessing workers (default 1,2)")
    p.add_argument("--batch-size", type=C.positive_int("--batch-size"), default=8, help="images per runtime call (default 8)")
    p.add_argument("--repeats", type=C.positive_int("--repeats"), default=3, help="alternating repeats; the best is kept (default 3)")
    p.add_argument("--baseline-src", metavar="DIR", help="a folder with an older edge_runtime package to time the same way")
    p.add_argument("--rss-files", type=C.positive_int("--rss-files", 0), default=10000, metavar="N",
                   help="hard-linked files for the RSS check (default 10000; 0 skips it)")
    p.add_argument("--out", default="reports/throughput", help="report path without suffix (default reports/throughput)")
    C.add_common_args(p)
    return p


def _main(argv: Sequence[str]) -> int:
    if argv and argv[0] == WORKER_FLAG:
        return _worker(argv[1])
    args = build_parser().parse_args(argv)
    threads = C.parse_int_list(args.threads, "--threads")
    repeats = 1 if args.quick else args.repeats
    for path, kind in ((args.model, "model file"), (args.folder, "folder")):
        if not (Path(path).is_file() if kind == "model file" else Path(path).is_dir()):
            raise EdgeDeployError(f"Received {kind} {path!r}, expected an existing {kind}")
    if args.baseline_src and not (Path(args.baseline_src) / "edge_runtime").is_dir():
        raise EdgeDeployError(f"Received --baseline-src {args.baseline_src!r}, expected a folder holding edge_runtime/")
    outs = [f"{args.out}.{ext}" for ext in ("json", "md", "csv")]
    C.check_outputs(outs, args.force)
    model, folder = str(Path(args.model).resolve()), str(Path(args.folder).resolve())
    versions = [("pipelined", None)] + ([("baseline", str(Path(args.baseline_src).resolve()))] if args.baseline_src else [])
    rows: list[dict[str, Any]] = []
    for t in threads:
        for code, src, runtime, workers in _configurations(t, versions):
            spec = {"mode": "rate", "model": model, "folder": folder, "threads": runtime, "workers": workers,
                    "batch_size": args.batch_size, "repeats": repeats, "src": src}
            r = _spawn(spec)
            e2e, m1, mbat = max(r["e2e"]), max(r["model_b1"]), max(r["model_batch"])
            cmd_s = _command_seconds(model, folder, runtime, workers if r["pipelined"] else None, src, repeats)
            rows.append({"code": code, "budget": t, "threads": runtime, "workers": workers if r["pipelined"] else 0,
                         "batch_size": args.batch_size,
                         "images": r["images"], "e2e_images_per_s": round(e2e, 1),
                         "model_only_b1_images_per_s": round(m1, 1), "model_only_batch_images_per_s": round(mbat, 1),
                         "ratio_vs_b1": round(e2e / m1, 3), "ratio_vs_batch": round(e2e / mbat, 3),
                         "command_s": round(cmd_s, 3), "command_images_per_s": round(r["images"] / cmd_s, 1),
                         "e2e_all": [round(v, 1) for v in r["e2e"]], "edge_runtime": r["edge_runtime"]})
            print(f"{code:9s} T={t} (runtime {runtime}, workers {workers}): end-to-end {e2e:7.1f} img/s, model-only "
                  f"{m1:7.1f} (batch 1) / {mbat:7.1f} (batch {args.batch_size}) img/s, ratio {e2e / m1:.2f} / "
                  f"{e2e / mbat:.2f}; command {cmd_s:.2f} s", file=sys.stderr)
    for row in rows:
        base = next((b for b in rows if b["code"] == "baseline" and b["budget"] == row["budget"]), None)
        row["speedup_vs_baseline"] = round(row["e2e_images_per_s"] / base["e2e_images_per_s"], 2) if base else None
    rss: list[dict[str, Any]] = []
    if args.rss_files:
        tmp = Path(tempfile.mkdtemp(prefix="throughput_rss_"))
        try:
            big = _link_folder(folder, args.rss_files, tmp / "photos")
            t = max(threads)
            for code, src in versions:
                r = _spawn({"mode": "rss", "model": model, "folder": str(big), "threads": t, "workers": t,
                            "batch_size": args.batch_size, "repeats": 1, "src": src})
                rss.append({"code": code, "threads": t, "files": r["images"], "rss_before_mb": C.mb(r["rss_before"]),
                            "rss_peak_mb": C.mb(r["rss_peak_sampled"]), "rss_after_mb": C.mb(r["rss_after"]),
                            "growth_mb": C.mb(r["rss_peak_sampled"] - r["rss_before"]),
                            "ru_maxrss_mb": C.mb(r["ru_maxrss"]), "images_per_s": round(r["images_per_s"], 1)})
                print(f"{code:9s} RSS over {r['images']} files: {C.mb(r['rss_before'])} -> peak {C.mb(r['rss_peak_sampled'])} MB",
                      file=sys.stderr)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    report = {"tool": "throughput", "schema": C.REPORT_SCHEMA, "created": C.now_iso(), "environment": C.environment(),
              "settings": {"model": model, "folder": folder, "threads": threads, "batch_size": args.batch_size,
                           "repeats": repeats, "baseline_src": args.baseline_src, "rss_files": args.rss_files,
                           "load_average_1_5_15": list(os.getloadavg())},
              "results": rows, "rss": rss}
    C.write_json(outs[0], report, args.force)
    C.write_text(outs[1], _markdown(report), args.force)
    cols = ["code", "budget", "threads", "workers", "batch_size", "images", "e2e_images_per_s", "model_only_b1_images_per_s",
            "model_only_batch_images_per_s", "ratio_vs_b1", "ratio_vs_batch", "speedup_vs_baseline", "command_s",
            "command_images_per_s"]
    C.write_csv(outs[2], cols, [[r[c] for c in cols] for r in rows], args.force)
    print(f"wrote {', '.join(outs)}")
    return 0


def _markdown(report: dict[str, Any]) -> str:
    s, env = report["settings"], report["environment"]
    lines = [f"# Throughput: edge-infer end-to-end vs model-only ({Path(s['model']).name})", "",
             f"One run on one machine: {env['device']}, {env['cpu_cores_usable']} usable cores, {report['created']}.",
             f"Folder: {s['folder']}; batch {s['batch_size']}; best of {s['repeats']} alternating repeats.",
             "T: the thread count compared. pipelined and baseline: T runtime threads (and T preprocessing workers; "
             "0 workers: the code has no pipeline); split: T threads in all, runtime T // 2, the rest preprocessing "
             "workers. x baseline: against the baseline at the same T.",
             f"Load average at the end (1/5/15 min, other jobs on the machine): {', '.join(f'{v:.1f}' for v in s['load_average_1_5_15'])}.", ""]
    header = ["code", "T", "runtime threads", "workers", "images", "end-to-end img/s", "model-only b1 img/s", f"model-only b{s['batch_size']} img/s",
              "ratio vs b1", f"ratio vs b{s['batch_size']}", "x baseline", "command s", "command img/s"]
    body = [[r["code"], r.get("budget", r["threads"]), r["threads"], r["workers"], r["images"], C.fmt(r["e2e_images_per_s"], 1),
             C.fmt(r["model_only_b1_images_per_s"], 1), C.fmt(r["model_only_batch_images_per_s"], 1),
             C.fmt(r["ratio_vs_b1"], 3), C.fmt(r["ratio_vs_batch"], 3), C.fmt(r["speedup_vs_baseline"]),
             C.fmt(r["command_s"], 2), C.fmt(r["command_images_per_s"], 1)] for r in report["results"]]
    lines += [C.table(header, body, markdown=True), "",
              "- end-to-end: edge-infer's Runner over the folder (decode, resize, normalize, quantize, invoke, JSON line);",
              "- model-only: predict_tensor on preprocessed tensors of the same photos;",
              "- command: wall time of `edge-infer MODEL FOLDER --json --threads R --workers W` (start-up and load included).", ""]
    if report["rss"]:
        lines += ["## Memory over a large folder", ""]
        rh = ["code", "T", "files", "RSS before MB", "peak RSS MB", "growth MB", "ru_maxrss MB", "img/s"]
        rb = [[r["code"], r["threads"], r["files"], C.fmt(r["rss_before_mb"]), C.fmt(r["rss_peak_mb"]),
               C.fmt(r["growth_mb"]), C.fmt(r["ru_maxrss_mb"]), C.fmt(r["images_per_s"], 1)] for r in report["rss"]]
        lines += [C.table(rh, rb, markdown=True), "",
                  "RSS before: model loaded, paths listed, one batch run; peak: sampled every 20 ms during the run.", ""]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    return C.run_main(_main, argv, PROG)


if __name__ == "__main__":
    sys.exit(main())
