"""``edge-infer DIR --json`` against the loops a user writes, each timed as a whole process, in one run.

    python benchmarks/throughput.py MODEL FOLDER [--grid-threads 1,2] [--grid-workers 1,2,3]
        [--repeats 3] [--rss-files 10000] [--out reports/throughput] [--force] [--quick]

Timed as whole processes (start-up, imports and the model load included),
interleaved ``--repeats`` times in a rotating order, the best of each kept
(a shared machine is noisy; the CPU seconds each used, user + system from
wait4, are recorded too):

- the peers (benchmarks/peer_loops.py): the plain OpenCV loop (``cv2.imread``
  -> ``cvtColor`` -> ``resize`` INTER_LINEAR -> quantize -> ``invoke``, LiteRT
  with 2 threads, one Python thread) and the same loop with Pillow;
- ``edge-infer MODEL FOLDER --json``, the command a user runs, with its defaults;
- the grid: the same command with ``--threads T --workers W`` for every pair
  (this is how the defaults were chosen: edge_runtime/pipeline.py).

Then, in a worker process, over every photo of FOLDER:

- one image's serial CPU cost (thread CPU time, best of 3 passes, 1 thread):
  decode (``load_image`` from the file), resize to the model's input,
  inference with 1 runtime thread at batch 1; the 2-core ceiling is
  ``2 / (decode + resize + inference)`` images/s, and edge-infer's rate is
  given as a fraction of it;
- parity: how many photos took the fast JPEG path, whether edge-infer's
  pixels equal Pillow's decode and the reference resize (then it is 0/255
  from training: TensorFlow's side is compared in
  tests/test_preprocess_parity.py), and how far each peer's pixels are from it.

``--rss-files N`` runs edge-infer's pipeline over N hard links to the photos
and samples RSS every 20 ms (before, peak, growth). Writes OUT.json,
OUT.md and OUT.csv (one row per command). TF-free.
"""
from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

from edgedeploy.bench import _common as C
from edgedeploy.bench import peer_loops
from edgedeploy.bench.cpu import cpu_record, load_average
from edgedeploy.bench.throughput_report import markdown
from edgedeploy.core.errors import EdgeDeployError

PROG = "throughput.py"
WORKER_FLAG = "--_worker"
TARGET_RATIO = 1.2


# -- the worker: serial costs and parity, or RSS over many files, in its own process ----
def _best_ms(fn: Any, items: Sequence[Any], passes: int) -> float:
    """Mean thread CPU milliseconds per item, best of ``passes``."""
    best = float("inf")
    for _ in range(passes):
        t0 = time.thread_time()
        for it in items:
            fn(it)
        best = min(best, (time.thread_time() - t0) / len(items) * 1000)
    return best


def _costs(spec: dict[str, Any]) -> dict[str, Any]:
    import numpy as np

    from edgedeploy.runtime import ImageClassifier, jpeg
    from edgedeploy.runtime.inputs import expand_inputs
    from edgedeploy.runtime.preprocess import load_image, normalize, resize

    clf = ImageClassifier(spec["model"], threads=1)
    m = clf.manifest
    size, ch, method = (m.input_height, m.input_width), m.input_channels, m.resize_method
    paths, _ = expand_inputs([spec["folder"]])
    decoded = [load_image(p, ch) for p in paths]
    resized = [resize(d, *size, method) for d in decoded]
    tensors = [clf.prepare(p)[None] for p in paths]
    passes = spec["passes"]
    costs = {"decode_ms": _best_ms(lambda p: load_image(p, ch), paths, passes),
             "resize_ms": _best_ms(lambda d: resize(d, *size, method), decoded, passes),
             "normalize_quantize_ms": _best_ms(lambda x: clf.quantize_input(normalize(x, m)), resized, passes),
             "inference_ms": _best_ms(clf.predict_prepared, tensors, passes)}
    serial = costs["decode_ms"] + costs["resize_ms"] + costs["inference_ms"]
    costs.update(serial_ms=serial, ceiling_images_per_s=2000.0 / serial, images=len(paths))
    return {"costs": costs, "parity": _parity(paths, decoded, resized, size, ch, method, jpeg, np),
            "decoder": jpeg.decoder_name()}


def _parity(paths: list[Path], decoded: list, resized: list, size: tuple[int, int], ch: int, method: str, jpeg: Any,
            np: Any) -> dict[str, Any]:
    """edge-infer's pixels against Pillow's decode and the reference resize; the peers' distance from them."""
    from PIL import Image, ImageOps

    from edgedeploy.runtime.preprocess import resize_reference

    fast = same_decode = same_resize = 0
    reference = []
    for p, d, r in zip(paths, decoded, resized):
        data = p.read_bytes()
        fast += jpeg.fast_decoder() is not None and jpeg.plain_jpeg_shape(data) is not None
        img = ImageOps.exif_transpose(Image.open(p))
        pil = np.asarray(img.convert("RGB" if ch == 3 else "L")).reshape(d.shape)
        same_decode += bool(np.array_equal(pil, d))
        ref = resize_reference(pil, *size) if method == "bilinear" else r
        same_resize += bool(np.array_equal(ref, r))
        reference.append(ref)
    out: dict[str, Any] = {"photos": len(paths), "fast_jpeg_path": int(fast), "decode_equal_to_pillow": same_decode,
                           "resize_equal_to_reference": same_resize,
                           "edge_infer_max_diff_255": 0.0 if same_decode == same_resize == len(paths) else None,
                           "peers": {}}
    for kind in peer_loops.DECODE:
        if not peer_loops.available(kind) or ch != 3:
            continue
        diffs = [np.abs(peer_loops.peer_pixels(kind, p, *size) - ref) for p, ref in zip(paths, reference)]
        out["peers"][kind] = {"max_diff_255": round(float(max(d.max() for d in diffs)), 4),
                              "mean_diff_255": round(float(np.mean([d.mean() for d in diffs])), 4)}
    return out


def _rss(spec: dict[str, Any]) -> dict[str, Any]:
    import threading

    from edgedeploy.bench._common import current_rss_bytes, peak_rss_bytes
    from edgedeploy.runtime import ImageClassifier
    from edgedeploy.runtime.inputs import expand_inputs
    from edgedeploy.runtime.pipeline import PipelineOptions
    from edgedeploy.runtime.runner import Runner

    clf = ImageClassifier(spec["model"])
    paths, _ = expand_inputs([spec["folder"]])
    with open(os.devnull, "w") as devnull:
        runner = Runner(clf, True, PipelineOptions(batch_size=8), out=devnull, err=devnull)
        runner.run(paths[:16])  # runtime buffers and the pool exist before the baseline is read
        before, samples, stop = current_rss_bytes(), [], threading.Event()

        def sample() -> None:
            while not stop.wait(0.02):
                samples.append(current_rss_bytes())

        t = threading.Thread(target=sample, daemon=True)
        t.start()
        t0 = time.perf_counter()
        runner.run(paths)
        rate = len(paths) / (time.perf_counter() - t0)
        stop.set()
        t.join()
        runner.close()
    return {"rss_before": before, "rss_peak_sampled": max(samples + [before]), "ru_maxrss": peak_rss_bytes(),
            "images": len(paths), "images_per_s": rate}


def _worker(spec_json: str) -> int:
    spec = json.loads(spec_json)
    print(json.dumps(_costs(spec) if spec["mode"] == "costs" else _rss(spec)))
    return 0


def _spawn(spec: dict[str, Any]) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, "-m", "edgedeploy.bench.throughput", WORKER_FLAG, json.dumps(spec)],
                          capture_output=True, text=True, cwd=tempfile.gettempdir(), env=_child_env())
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise EdgeDeployError(f"the {spec['mode']} worker failed: {tail}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# -- whole processes ----------------------------------------------------------------
def _child_env() -> dict[str, str]:
    # An installed package has its bytecode compiled (pip does it); a checkout run with
    # PYTHONDONTWRITEBYTECODE would recompile every module at every start-up instead.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env.pop("EDGEDEPLOY_JPEG", None)
    return env


def _run_timed(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds user + system) of one whole process; a failure is one line."""
    with tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, stdin=subprocess.DEVNULL, env=env,
                                cwd=tempfile.gettempdir())
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            err.seek(0)
            tail = (err.read().decode("utf-8", "replace").strip().splitlines() or ["no output"])[-1]
            raise EdgeDeployError(f"{' '.join(cmd[:3])} ... failed ({proc.returncode}): {tail}")
    return wall, usage.ru_utime + usage.ru_stime


def _edge_infer(model: str, folder: str, flags: Sequence[str] = ()) -> list[str]:
    script = Path(sys.executable).with_name("edge-infer")
    head = [str(script)] if script.is_file() else [sys.executable, "-m", "edgedeploy.runtime.cli"]
    return [*head, model, folder, "--json", *flags]


def _commands(model: str, folder: str, loops: dict[str, Path], grid: list[tuple[int, int]]) -> dict[str, list[str]]:
    cmds = {kind: [sys.executable, str(path), model, folder] for kind, path in loops.items()}
    cmds["edge-infer"] = _edge_infer(model, folder)
    for t, w in grid:
        cmds[f"grid {t} {w}"] = _edge_infer(model, folder, ["--threads", str(t), "--workers", str(w)])
    return cmds


def time_commands(cmds: dict[str, list[str]], repeats: int) -> dict[str, dict[str, Any]]:
    """Each command once untimed (bytecode, page cache), then ``repeats`` interleaved rounds, rotating the order."""
    env = _child_env()
    names = list(cmds)
    for name in names:
        _run_timed(cmds[name], env)
    runs: dict[str, list[tuple[float, float]]] = {n: [] for n in names}
    for r in range(repeats):
        for name in names[r % len(names):] + names[: r % len(names)]:
            runs[name].append(_run_timed(cmds[name], env))
            print(f"  {name:14s} {runs[name][-1][0]:6.2f} s wall, {runs[name][-1][1]:5.2f} s CPU", file=sys.stderr)
    out = {}
    for name, rs in runs.items():
        walls = sorted(w for w, _ in rs)
        out[name] = {"seconds": round(walls[0], 3), "median_seconds": round(walls[len(walls) // 2], 3),
                     "cpu_seconds": round(min(c for _, c in rs), 3), "all_seconds": [round(w, 3) for w, _ in rs]}
    return out


# -- the run --------------------------------------------------------------------------
def build_parser() -> C.ArgumentParser:
    p = C.ArgumentParser(prog=PROG, description="edge-infer over a folder against the OpenCV and Pillow loops, whole processes.")
    p.add_argument("model", help="a .tflite model file (the loops use LiteRT)")
    p.add_argument("folder", help="a folder of JPEG photos (searched recursively, as edge-infer does)")
    p.add_argument("--grid-threads", default="1,2", help="runtime threads tried in the grid (default 1,2)")
    p.add_argument("--grid-workers", default="1,2,3", help="preprocessing workers tried in the grid (default 1,2,3)")
    p.add_argument("--repeats", type=C.positive_int("--repeats"), default=3, help="interleaved rounds; the best is kept (default 3)")
    p.add_argument("--rss-files", type=C.positive_int("--rss-files", 0), default=10000, metavar="N",
                   help="hard-linked files for the RSS check (default 10000; 0 skips it)")
    p.add_argument("--out", default="reports/throughput", help="report path without suffix (default reports/throughput)")
    C.add_common_args(p)
    return p


def _rss_rows(model: str, folder: str, n: int) -> list[dict[str, Any]]:
    import shutil

    from edgedeploy.runtime.inputs import expand_inputs

    photos, _ = expand_inputs([folder])
    tmp = Path(tempfile.mkdtemp(prefix="throughput_rss_"))
    try:
        for i in range(n):
            src, sub = photos[i % len(photos)], tmp / f"d{i // 1000:03d}"
            sub.mkdir(exist_ok=True)
            try:
                os.link(src, sub / f"img{i:06d}{src.suffix.lower()}")
            except OSError:  # another filesystem: copy
                shutil.copyfile(src, sub / f"img{i:06d}{src.suffix.lower()}")
        r = _spawn({"mode": "rss", "model": model, "folder": str(tmp)})
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return [{"files": r["images"], "rss_before_mb": C.mb(r["rss_before"]), "rss_peak_mb": C.mb(r["rss_peak_sampled"]),
             "growth_mb": C.mb(r["rss_peak_sampled"] - r["rss_before"]), "ru_maxrss_mb": C.mb(r["ru_maxrss"]),
             "images_per_s": round(r["images_per_s"], 1)}]


def _defaults(model: str) -> dict[str, Any]:
    """What ``edge-infer MODEL DIR`` picks here without --threads/--workers (edge_runtime/pipeline.py)."""
    from edgedeploy.runtime.pipeline import HEAVY_MACS, default_runtime_threads, default_workers, model_macs

    threads = default_runtime_threads(model)
    return {"threads": threads, "workers": default_workers(threads), "model_macs": model_macs(model),
            "heavy_macs": HEAVY_MACS}


def _main(argv: Sequence[str]) -> int:
    if argv and argv[0] == WORKER_FLAG:
        return _worker(argv[1])
    args = build_parser().parse_args(argv)
    grid = list(itertools.product(C.parse_int_list(args.grid_threads, "--grid-threads"),
                                  C.parse_int_list(args.grid_workers, "--grid-workers", 0)))
    repeats, passes = (1, 1) if args.quick else (args.repeats, 3)
    if not Path(args.model).is_file():
        raise EdgeDeployError(f"Received model file {args.model!r}, expected an existing .tflite file")
    if not Path(args.folder).is_dir():
        raise EdgeDeployError(f"Received folder {args.folder!r}, expected an existing folder of photos")
    outs = [f"{args.out}.json", f"{args.out}.md", f"{args.out}.csv"]
    C.check_outputs(outs, args.force)
    model, folder = str(Path(args.model).resolve()), str(Path(args.folder).resolve())
    from edgedeploy.runtime.classifier import load_manifest_for

    manifest = load_manifest_for(model)
    loops = {k: p for k, p in peer_loops.write_loops(peer_loops.scratch_dir(), manifest and manifest.normalization).items()
             if peer_loops.available(k)}
    load_start = load_average()
    timed = time_commands(_commands(model, folder, loops, grid), repeats)
    worker = _spawn({"mode": "costs", "model": model, "folder": folder, "passes": passes})
    images = worker["costs"]["images"]
    for row in timed.values():
        row["images_per_s"] = round(images / row["seconds"], 1)
        row["cpu_ms_per_image"] = round(row["cpu_seconds"] / images * 1000, 3)
    report = {"tool": "throughput", "schema": C.REPORT_SCHEMA, "created": C.now_iso(), "environment": C.environment(),
              "cpu": cpu_record(), "settings": {"model": model, "folder": folder, "images": images, "repeats": repeats,
                                                 "grid": grid, "load_average_start": load_start},
              "commands": timed, "defaults": _defaults(model), "decoder": worker["decoder"], "costs": worker["costs"],
              "parity": worker["parity"], "target_ratio": TARGET_RATIO}
    edge, peer = timed["edge-infer"], timed.get("opencv")
    report["ratio_vs_opencv"] = round(edge["images_per_s"] / peer["images_per_s"], 3) if peer else None
    report["ratio_vs_opencv_median"] = round(peer["median_seconds"] / edge["median_seconds"], 3) if peer else None
    report["fraction_of_ceiling"] = round(edge["images_per_s"] / worker["costs"]["ceiling_images_per_s"], 3)
    report["rss"] = _rss_rows(model, folder, args.rss_files) if args.rss_files else []
    report["cpu"]["load_average_end"] = load_average()
    C.write_json(outs[0], report, args.force)
    C.write_text(outs[1], markdown(report), args.force)
    cols = ["command", "images", "seconds", "median_seconds", "images_per_s", "cpu_seconds", "cpu_ms_per_image"]
    C.write_csv(outs[2], cols, [[name, images] + [row[c] for c in cols[2:]] for name, row in timed.items()], args.force)
    print(f"wrote {', '.join(outs)}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return C.run_main(_main, argv, PROG)


if __name__ == "__main__":
    sys.exit(main())
