"""What true batching gains: images/s of one runtime call per N images, against N calls of one.

    python benchmarks/batching.py MODEL... [--batch-sizes 1,2,4,8,16] [--threads 1,2]
        [--images N] [--repeats 2] [--out reports/batching] [--force]

Exported files have a dynamic batch dimension (TFLite ``shape_signature``
-1, ONNX a symbolic ``batch``), so ``ImageClassifier.predict_tensor`` hands
a whole batch to the runtime in one call (LiteRT: ``resize_tensor_input`` +
``allocate_tensors`` when the batch size changes). For every model, thread
count and batch size this times ``--images`` preprocessed images (uniform
random pixels, seed 0) run in batches and reports images/s and the gain
over batch 1. That each batch is one runtime call is proven by
tests/runtime/test_pipeline.py (test_predict_batch_runs_one_runtime_call_per_batch).
Best of ``--repeats`` alternating passes. TF-free.
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any, Sequence

from edgedeploy.bench import _common as C
from edgedeploy.core.errors import EdgeDeployError

PROG = "batching.py"
AUTO_SECONDS, AUTO_MAX = 2.0, 512


def measure(model: str, threads: int, sizes: list[int], images: int, repeats: int) -> list[dict[str, Any]]:
    import numpy as np

    from edgedeploy.runtime import ImageClassifier

    clf = ImageClassifier(model, threads=threads)
    m = clf.manifest
    from edgedeploy.runtime.preprocess import normalize

    def inputs(n: int) -> Any:
        x = np.random.default_rng(0).integers(0, 256, (n, m.input_height, m.input_width, m.input_channels))
        return clf.to_model_layout(normalize(x.astype(np.float32), m))

    if not images:  # auto: about AUTO_SECONDS per batch-1 pass, a whole number of the largest batch
        probe = inputs(2)
        clf.predict_tensor(probe[:1])
        t0 = time.perf_counter()
        clf.predict_tensor(probe[1:])
        per = max(time.perf_counter() - t0, 1e-5)
        step = max(sizes)
        images = int(min(AUTO_MAX, max(step, AUTO_SECONDS / per)) // step * step) or step
    x = inputs(images)
    best = {b: 0.0 for b in sizes}
    ncalls: dict[int, int] = {}
    for b in sizes:  # warm: each batch size's buffers once
        clf.predict_tensor(x[:b], batch_size=b)
    for _ in range(repeats):
        for b in sizes:
            t0 = time.perf_counter()
            clf.predict_tensor(x, batch_size=b)
            best[b] = max(best[b], images / (time.perf_counter() - t0))
            ncalls[b] = -(-images // b)
    rows = []
    for b in sizes:
        rows.append({"model": f"{m.model_name or '?'} {m.input_height}px {Path(model).name}", "path": str(Path(model).resolve()), "backend": clf.backend.name,
                     "dynamic_batch": clf.backend.dynamic_batch, "threads": threads, "batch_size": b, "images": images,
                     "runtime_calls": ncalls[b], "images_per_s": round(best[b], 2),
                     "gain_vs_batch1": round(best[b] / best[sizes[0]], 3), "input_dtype": str(clf.backend.input.dtype)})
        print(f"{rows[-1]['model']:40s} T={threads} batch {b:3d}: {best[b]:8.2f} img/s ({ncalls[b]} calls)", file=sys.stderr)
    return rows


def build_parser() -> C.ArgumentParser:
    p = C.ArgumentParser(prog=PROG, description="images/s per batch size on dynamic-batch exported models.")
    p.add_argument("models", nargs="+", help=".tflite/.onnx files")
    p.add_argument("--batch-sizes", default="1,2,4,8,16", help="batch sizes; the first is the reference (default 1,2,4,8,16)")
    p.add_argument("--threads", default="1,2", help="runtime threads (default 1,2)")
    p.add_argument("--images", type=C.positive_int("--images", 0), default=0,
                   help="images per pass (default 0: about 2 s of batch-1 work per model, at most 512)")
    p.add_argument("--repeats", type=C.positive_int("--repeats"), default=2, help="passes; the best is kept (default 2)")
    p.add_argument("--out", default="reports/batching", help="report path without suffix")
    C.add_common_args(p)
    return p


def _main(argv: Sequence[str]) -> int:
    args = build_parser().parse_args(argv)
    sizes = C.parse_int_list(args.batch_sizes, "--batch-sizes")
    threads = C.parse_int_list(args.threads, "--threads")
    outs = [f"{args.out}.json", f"{args.out}.md"]
    C.check_outputs(outs, args.force)
    for model in args.models:
        if not Path(model).is_file():
            raise EdgeDeployError(f"Received model {model!r}, expected an existing .tflite or .onnx file")
    rows: list[dict[str, Any]] = []
    for model in args.models:
        for t in threads:
            rows.extend(measure(model, t, sizes, args.images, 1 if args.quick else args.repeats))
    report = {"tool": "batching", "schema": C.REPORT_SCHEMA, "created": C.now_iso(), "environment": C.environment(),
              "settings": {"batch_sizes": sizes, "threads": threads, "images": args.images, "repeats": args.repeats,
                           "load_average_1_5_15": list(os.getloadavg())}, "results": rows}
    C.write_json(outs[0], report, args.force)
    C.write_text(outs[1], _markdown(report), args.force)
    print(f"wrote {', '.join(outs)}")
    return 0


def _markdown(report: dict[str, Any]) -> str:
    s, env = report["settings"], report["environment"]
    lines = ["# True batching: images/s per batch size", "",
             f"One run on one machine: {env['device']}, {report['created']}; images per pass in the table, best of "
             f"{s['repeats']}; load average at the end {', '.join(f'{v:.1f}' for v in s['load_average_1_5_15'])}.",
             "calls: runtime calls per pass, one per batch (counted in tests/runtime/test_pipeline.py).", ""]
    header = ["model", "backend", "dynamic", "T", "batch", "images", "calls", "img/s", "gain vs batch 1"]
    body = [[r["model"], r["backend"], C.fmt(r["dynamic_batch"]), r["threads"], r["batch_size"], r["images"], r["runtime_calls"],
             C.fmt(r["images_per_s"], 1), C.fmt(r["gain_vs_batch1"])] for r in report["results"]]
    return "\n".join(lines + [C.table(header, body, markdown=True), ""])


def main(argv: Sequence[str] | None = None) -> int:
    return C.run_main(_main, argv, PROG)


if __name__ == "__main__":
    sys.exit(main())
