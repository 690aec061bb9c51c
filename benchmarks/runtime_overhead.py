"""What edge_runtime costs on top of the bare runtime, and what it saves against TensorFlow.

    python benchmarks/runtime_overhead.py MODEL.tflite [--repeats 5] [--iters 2000] [--out reports] [--quick]

Three figures, each measured in fresh subprocesses, ``--repeats`` times, the
median reported (the targets in brackets):

(a) per-call overhead [<= 1.05x]: ``ImageClassifier.predict_tensor`` on an
    already-preprocessed tensor against a bare LiteRT ``set_tensor`` /
    ``invoke`` / ``get_tensor`` loop driving the same interpreter (same file,
    threads, delegate and memory). The loops alternate in 40 short blocks per
    process so a busy neighbour slows both alike; the ratio is the median of
    the per-block ratios of thread CPU time (``time.thread_time``, which a
    preempting neighbour does not inflate; with 1 thread XNNPACK runs in the
    calling thread). Wall-clock figures are reported beside it.
(b) cold start [<= 0.08x]: a fresh process that imports edge_runtime, opens
    the model and classifies one image file, against ``python -c "import
    tensorflow"``. Wall time from the parent, interpreter start included on
    both sides. The probe verdict for the file is cached first (a device runs
    the same file many times); the one-off first-sight probe is reported too.
(c) peak RSS [<= 0.15x]: the process of (b) against the same inference
    through full TensorFlow (``tf.io`` decode + ``tf.image.resize`` +
    ``tf.lite.Interpreter`` on the same file).

TensorFlow is optional (a Pi has none): without it the TF sides of (b) and
(c) are skipped and the report says so. Also records the heaviest imports of
the edge cold start (``python -X importtime``). Writes
``OUT/runtime_overhead.json`` and ``OUT/runtime_overhead.md``.
"""
from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from edgedeploy.core.command import ArgumentParser, run_argv
from edgedeploy.core.errors import EdgeDeployError
from edgedeploy.core.io import atomic_write_json, atomic_write_text
from edgedeploy.runtime.backends import BACKENDS

TARGETS = {"overhead": 1.05, "cold_start": 0.08, "peak_rss": 0.15}

OVERHEAD_CHILD = r'''
import json, statistics, sys, time
import numpy as np
from edgedeploy.runtime import ImageClassifier
model, threads, iters, rounds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
clf = ImageClassifier(model, threads=threads)
h, w, c = clf.manifest.input_height, clf.manifest.input_width, clf.manifest.input_channels
x = np.random.default_rng(0).uniform(0, 255, (1, h, w, c)).astype(np.float32)
xq = clf.quantize_input(x)  # the bare loop gets model-ready input for free
# The bare loop drives the very interpreter the classifier opened (same file, threads,
# delegate and memory), so the difference is the wrapper and nothing else.
it, i_in, i_out = clf.backend._it, clf.backend._in_index, clf.backend._out_index
def bare():
    it.set_tensor(i_in, xq); it.invoke(); return it.get_tensor(i_out)
def ours():
    return clf.predict_tensor(x)
for f in (bare, ours):
    for _ in range(200): f()
t = {"bare": [], "ours": [], "bare_cpu": [], "ours_cpu": []}
block = max(1, iters // rounds)
for r in range(rounds):  # short alternating blocks: a busy neighbour slows both alike
    for name, f in (("bare", bare), ("ours", ours)) if r % 2 == 0 else (("ours", ours), ("bare", bare)):
        c0, t0 = time.thread_time(), time.perf_counter()
        for _ in range(block): f()
        t[name].append((time.perf_counter() - t0) / block)
        t[name + "_cpu"].append((time.thread_time() - c0) / block)
med = {k: statistics.median(v) for k, v in t.items()}
med["ratio_wall"] = statistics.median(o / b for o, b in zip(t["ours"], t["bare"]))
med["ratio"] = statistics.median(o / b for o, b in zip(t["ours_cpu"], t["bare_cpu"]))
med["delegate"] = clf.backend.delegate_applied
print(json.dumps(med))
'''

# The children report VmHWM, their own address space's peak, not ru_maxrss:
# Linux carries ru_maxrss across fork and exec, so a child started by a larger
# parent would report the parent's peak (the bug compare.py had). Inline, not
# benchmarks._common.peak_rss_bytes: importing that would add its own imports to
# the cold start and the RSS these children measure.
PEAK_KB = r'''
def _peak_kb():
    try:
        with open("/proc/self/status") as f:
            return next(int(l.split()[1]) for l in f if l.startswith("VmHWM:"))
    except (OSError, StopIteration, ValueError, IndexError):
        import resource
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
'''

EDGE_COLD = PEAK_KB + r'''
import sys
from edgedeploy.runtime import ImageClassifier
pred = ImageClassifier(sys.argv[1]).predict(sys.argv[2])
print(pred.label, _peak_kb())
'''

TF_FULL = PEAK_KB + r'''
import sys
import tensorflow as tf
x = tf.io.decode_jpeg(tf.io.read_file(sys.argv[2]), channels=3, dct_method="INTEGER_ACCURATE")
it = tf.lite.Interpreter(model_path=sys.argv[1]); it.allocate_tensors()
d = it.get_input_details()[0]
x = tf.image.resize(tf.cast(x, tf.float32), d["shape"][1:3])[None].numpy()
it.set_tensor(d["index"], x.astype(d["dtype"])); it.invoke()
out = it.get_tensor(it.get_output_details()[0]["index"])
print(int(out.argmax()), _peak_kb())
'''


def _env(**extra: str) -> dict[str, str]:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    env.update(extra)
    return env


def _timed(cmd: list[str], env: dict[str, str]) -> tuple[float, str]:
    t0 = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    dt = time.perf_counter() - t0
    if out.returncode != 0:
        raise EdgeDeployError(f"benchmark child failed ({' '.join(cmd[:3])}...): {(out.stderr.strip().splitlines() or ['?'])[-1]}")
    return dt, (out.stdout.strip().splitlines() or [""])[-1]


def _has_tf() -> bool:
    out = subprocess.run([sys.executable, "-c", "import importlib.util,sys; sys.exit(importlib.util.find_spec('tensorflow') is None)"],
                         env=_env())
    return out.returncode == 0


def _heaviest_imports(model: str, image: str, n: int = 8) -> list[dict]:
    out = subprocess.run([sys.executable, "-X", "importtime", "-c", EDGE_COLD, model, image], capture_output=True,
                         text=True, env=_env(), timeout=300)
    rows = []
    for line in out.stderr.splitlines():
        if line.startswith("import time:") and "|" in line and "self" not in line:
            _, cum, name = (part.strip() for part in line[len("import time:"):].split("|"))
            if "." not in name.strip():  # top-level packages only
                rows.append({"module": name.strip(), "cumulative_ms": round(int(cum) / 1000, 1)})
    return sorted(rows, key=lambda r: -r["cumulative_ms"])[:n]


def measure(model: Path, repeats: int, iters: int, threads: int) -> dict:
    """Run the three measurements; returns the report dict."""
    import numpy as np
    from PIL import Image

    tmp = Path(tempfile.mkdtemp(prefix="edgedeploy-overhead-"))
    image = tmp / "input.jpg"
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (240, 320, 3), dtype=np.uint8)).save(image, quality=90)
    py, env = sys.executable, _env()
    from edgedeploy.core.environment import environment

    rep: dict = {"model": str(model), "repeats": repeats, "iters": iters, "threads": threads,
                 "machine": f"{platform.machine()} {platform.processor() or ''} {os.cpu_count()} cores".strip(),
                 "python": platform.python_version(), "environment": environment(), "targets": TARGETS}
    # (a) per-call overhead
    runs = [json.loads(_timed([py, "-c", OVERHEAD_CHILD, str(model), str(threads), str(iters), "40"], env)[1])
            for _ in range(repeats)]
    bare = statistics.median(r["bare"] for r in runs)
    ours = statistics.median(r["ours"] for r in runs)
    bare_cpu = statistics.median(r["bare_cpu"] for r in runs)
    ours_cpu = statistics.median(r["ours_cpu"] for r in runs)
    rep["overhead"] = {"bare_us": round(bare_cpu * 1e6, 2), "predict_tensor_us": round(ours_cpu * 1e6, 2),
                       "added_us": round((ours_cpu - bare_cpu) * 1e6, 2),
                       "ratio": round(statistics.median(r["ratio"] for r in runs), 4),
                       "ratio_per_process": [round(r["ratio"], 4) for r in runs],
                       "wall_bare_us": round(bare * 1e6, 2), "wall_predict_tensor_us": round(ours * 1e6, 2),
                       "ratio_wall": round(statistics.median(r["ratio_wall"] for r in runs), 4),
                       "delegate_applied": runs[0]["delegate"]}
    # (b) cold start and (c) RSS, edge side; the first run after a cache wipe shows the one-off probe
    with tempfile.TemporaryDirectory() as cache:
        first, _ = _timed([py, "-c", EDGE_COLD, str(model), str(image)], _env(EDGEDEPLOY_CACHE=cache))
        edge = [_timed([py, "-c", EDGE_COLD, str(model), str(image)], _env(EDGEDEPLOY_CACHE=cache)) for _ in range(repeats)]
    edge_s = statistics.median(t for t, _ in edge)
    edge_rss = statistics.median(int(line.split()[1]) for _, line in edge) / 1024
    rep["cold_start"] = {"edge_s": round(edge_s, 3), "edge_first_sight_with_probe_s": round(first, 3)}
    rep["peak_rss"] = {"edge_mb": round(edge_rss, 1)}
    rep["python_startup_s"] = round(statistics.median(_timed([py, "-c", "pass"], env)[0] for _ in range(repeats)), 3)
    rep["heaviest_imports"] = _heaviest_imports(str(model), str(image))
    if _has_tf():
        tf_import = statistics.median(_timed([py, "-c", "import tensorflow"], env)[0] for _ in range(repeats))
        tf_full = [_timed([py, "-c", TF_FULL, str(model), str(image)], env) for _ in range(repeats)]
        tf_rss = statistics.median(int(line.split()[1]) for _, line in tf_full) / 1024
        rep["cold_start"].update(tensorflow_import_s=round(tf_import, 3), ratio=round(edge_s / tf_import, 4),
                                 tensorflow_full_inference_s=round(statistics.median(t for t, _ in tf_full), 3))
        rep["peak_rss"].update(tensorflow_mb=round(tf_rss, 1), ratio=round(edge_rss / tf_rss, 4))
        rep["tensorflow"] = "measured"
    else:
        rep["tensorflow"] = "not installed: the TensorFlow sides of (b) and (c) were skipped"
    rep["verdicts"] = {k: (rep[k].get("ratio") is not None and rep[k]["ratio"] <= TARGETS[k]) if "ratio" in rep[k] else None
                       for k in TARGETS}
    return rep


def markdown(rep: dict) -> str:
    """The report as a markdown table."""
    from edgedeploy.core.environment import describe_cpu

    o, c, r = rep["overhead"], rep["cold_start"], rep["peak_rss"]

    def ratio(d, k):
        return f"{d['ratio']:.3f}x" if "ratio" in d else "n/a (no TensorFlow)"

    lines = ["# edge_runtime overhead", "",
             f"Model `{Path(rep['model']).name}`, {rep['threads']} thread(s), {rep['repeats']} fresh processes each, medians. "
             f"Machine: {describe_cpu(rep['environment']) if rep.get('environment') else rep['machine']}, "
             f"Python {rep['python']}.", "",
             "| measure | edge_runtime | reference | ratio | target |", "| --- | ---: | ---: | ---: | ---: |",
             f"| (a) per call, preprocessed tensor (thread CPU time) | {o['predict_tensor_us']} us | bare LiteRT loop {o['bare_us']} us | {ratio(o, 'ratio')} | <= {TARGETS['overhead']}x |",
             f"| (a') the same, wall clock | {o['wall_predict_tensor_us']} us | {o['wall_bare_us']} us | {o['ratio_wall']:.3f}x | |",
             f"| (b) cold start: import + load + first image | {c['edge_s']} s | `import tensorflow` {c.get('tensorflow_import_s', 'n/a')} s | {ratio(c, 'ratio')} | <= {TARGETS['cold_start']}x |",
             f"| (c) peak RSS of that process | {r['edge_mb']} MB | same inference via TensorFlow {r.get('tensorflow_mb', 'n/a')} MB | {ratio(r, 'ratio')} | <= {TARGETS['peak_rss']}x |",
             "", f"Python start-up alone: {rep['python_startup_s']} s. First sight of a model file (one-off subprocess probe, "
             f"then cached): {c['edge_first_sight_with_probe_s']} s. XNNPACK applied: {o['delegate_applied']}.", "",
             "Heaviest imports of the edge cold start (`python -X importtime`, cumulative):", ""]
    lines += [f"- `{row['module']}`: {row['cumulative_ms']} ms" for row in rep["heaviest_imports"]]
    if rep["tensorflow"] != "measured":
        lines += ["", f"TensorFlow {rep['tensorflow']}."]
    return "\n".join(lines) + "\n"


def build_parser() -> ArgumentParser:
    """The script's parser (flags anywhere: the shared ArgumentParser parses intermixed)."""
    p = ArgumentParser(prog="benchmarks/runtime_overhead.py", description=__doc__.split("\n\n")[0])
    p.add_argument("model", help="a .tflite model exported by edgedeploy (the small CNN)")
    p.add_argument("--repeats", type=int, default=5, help="fresh processes per measurement (default 5)")
    p.add_argument("--iters", type=int, default=4000, help="calls per loop and process in (a) (default 4000)")
    p.add_argument("--threads", type=int, default=1, help="runtime threads for (a) (default 1)")
    p.add_argument("--out", default="reports", help="folder for the reports (default reports/)")
    p.add_argument("--quick", action="store_true", help="3 repeats of 800 calls: a smoke run")
    return p


def _run(argv: list[str]) -> int:
    """Measure and write ``runtime_overhead.json`` and ``.md``.

    Args:
        argv: command-line arguments (see the module docstring).

    Returns:
        0 when measured (targets are reported, not enforced), 2 on a usage error.
    """
    args = build_parser().parse_args(argv)
    try:
        model = Path(args.model)
        litert = BACKENDS.get("litert")  # (a) drives a bare LiteRT interpreter beside ImageClassifier
        if not model.is_file() or not litert.reads(model):
            raise EdgeDeployError(f"expected a {litert.model_format().suffix} model file, got {args.model!r}")
        if min(args.repeats, args.iters, args.threads) < 1:
            raise EdgeDeployError("--repeats, --iters and --threads must be integers >= 1")
        repeats, iters = (3, 800) if args.quick else (args.repeats, args.iters)
        rep = measure(model, repeats, iters, args.threads)
        out = Path(args.out)
        atomic_write_json(out / "runtime_overhead.json", rep, force=True)
        atomic_write_text(out / "runtime_overhead.md", markdown(rep), force=True)
    except EdgeDeployError as exc:
        print(f"runtime_overhead: error: {exc}", file=sys.stderr)
        return 2
    print(markdown(rep))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point through edge_runtime.command (one-line errors: exit 2; Ctrl-C: 130; --debug: traceback)."""
    return run_argv("runtime_overhead.py", _run, argv)


if __name__ == "__main__":
    sys.exit(main())
