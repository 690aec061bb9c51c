"""Soak test: many predictions in one process; does memory stay flat?

    python benchmarks/soak.py MODEL [--predictions 10000] [--warmup 1000] [--mode image|tensor]
        [--max-growth-mb 5] [--threads N] [--backend NAME] [--json OUT] [--quick]

Runs ``--predictions`` predictions (10,000 by default, warm-up included) in
this one process, cycling through the embedded digits' test images encoded
as PNG and JPEG bytes (``--mode image``: decode, resize, normalize and infer,
the whole ``ImageClassifier.predict`` path edge-infer uses) or through
preprocessed tensors (``--mode tensor``). RSS is read from /proc (no psutil)
about 200 times. The figure is the growth after warm-up: RSS at the end
minus RSS when the warm-up finished, with the maximum and a fitted slope
(KB per 1,000 predictions). It passes when the growth is under
``--max-growth-mb`` (5 MB); otherwise the exit code is 1. It also checks
that each input keeps the same answer throughout, and counts Python objects
before and after (a leak of Python objects shows there).
"""
from __future__ import annotations

import gc
import io
import sys
import time
from pathlib import Path
from typing import Any, Sequence

from edgedeploy.bench import _common as C
from edgedeploy.core.errors import EdgeDeployError

PROG = "soak.py"
DEFAULT_PREDICTIONS, DEFAULT_WARMUP = 10_000, 1_000
QUICK_PREDICTIONS, QUICK_WARMUP = 300, 50
SAMPLES = 200
N_INPUTS = 20


def soak_inputs(mode: str, clf) -> list:
    """The inputs cycled through: digits test images as PNG/JPEG bytes (upscaled to 64x64), or tensors."""
    import numpy as np

    from edgedeploy.runtime.datasets import load_digits

    ds = load_digits("test")
    imgs = ds.images[:N_INPUTS]
    if mode == "tensor":

        return [clf.preprocess(im)[None] for im in imgs]
    from PIL import Image

    out = []
    for i, im in enumerate(imgs):
        buf = io.BytesIO()
        pil = Image.fromarray(np.repeat(np.repeat(im, 8, 0), 8, 1))
        pil.save(buf, format="PNG" if i % 2 == 0 else "JPEG", quality=95)
        out.append(buf.getvalue())
    return out


def fit_slope(xs: Sequence[float], ys: Sequence[float]) -> float | None:
    """Least-squares slope of ys against xs (None with fewer than 3 points)."""
    import numpy as np

    if len(xs) < 3:
        return None
    return float(np.polyfit(np.asarray(xs, float), np.asarray(ys, float), 1)[0])


def soak(model: Path, predictions: int, warmup: int, mode: str = "image", threads: int | None = None,
         backend: str = "auto", target_mb: float = 5.0, progress: bool = True) -> dict[str, Any]:
    from edgedeploy.runtime.classifier import ImageClassifier

    rss0 = C.current_rss_bytes()
    clf = ImageClassifier(model, threads=threads, backend=backend)
    inputs = soak_inputs(mode, clf)
    run = (lambda x: clf.predict(x).index) if mode == "image" else (lambda x: int(clf.predict_tensor(x)[0].argmax()))
    every = max(1, predictions // SAMPLES)
    samples: list[dict[str, float]] = []
    first_answer: dict[int, int] = {}
    changes = 0
    baseline = objects_after_warmup = None
    bar = C.Progress(predictions, f"soak {model.name}", enabled=progress)
    t0 = time.perf_counter()
    for i in range(predictions):
        k = i % len(inputs)
        ans = run(inputs[k])
        if k not in first_answer:
            first_answer[k] = ans
        elif ans != first_answer[k]:
            changes += 1
        done = i + 1
        if done == warmup:
            gc.collect()
            baseline = C.current_rss_bytes()
            objects_after_warmup = len(gc.get_objects())
        if done % every == 0 or done == predictions or done == warmup:
            samples.append({"prediction": done, "seconds": time.perf_counter() - t0, "rss_mb": C.current_rss_bytes() / 1e6})
        bar.update()
    elapsed = time.perf_counter() - t0
    bar.close()
    gc.collect()
    final = C.current_rss_bytes()
    objects_end = len(gc.get_objects())
    after = [s for s in samples if s["prediction"] >= warmup]
    growth_mb = (final - baseline) / 1e6
    max_after_mb = (max(s["rss_mb"] for s in after) - baseline / 1e6) if after else 0.0
    slope = fit_slope([s["prediction"] for s in after], [s["rss_mb"] for s in after])
    return {
        "model": str(model), "variant": model.name, "backend": clf.backend.name, "threads": clf.backend.threads, "mode": mode,
        "predictions": predictions, "warmup": warmup, "seconds": elapsed, "predictions_per_s": predictions / elapsed if elapsed else None,
        "rss_before_load_mb": C.mb(rss0), "rss_after_warmup_mb": C.mb(baseline), "rss_end_mb": C.mb(final),
        "rss_growth_after_warmup_mb": round(growth_mb, 3), "rss_max_growth_after_warmup_mb": round(max_after_mb, 3),
        "rss_slope_kb_per_1000": None if slope is None else round(slope * 1e3 * 1e3, 3),
        "peak_rss_mb": C.mb(C.peak_rss_bytes()), "python_objects_after_warmup": objects_after_warmup,
        "python_objects_end": objects_end, "answer_changes": changes, "distinct_inputs": len(inputs),
        "target_growth_mb": target_mb, "within_target": growth_mb < target_mb,
        "samples": samples,
    }


def build_parser() -> C.ArgumentParser:
    p = C.ArgumentParser(prog=PROG, description="Many predictions in one process: RSS growth after warm-up (target < 5 MB).")
    p.add_argument("model", metavar="MODEL", help="a .tflite or .onnx model")
    p.add_argument("--predictions", type=C.positive_int("--predictions", 2), default=None,
                   help=f"total predictions, warm-up included (default {DEFAULT_PREDICTIONS}, --quick {QUICK_PREDICTIONS})")
    p.add_argument("--warmup", type=C.positive_int("--warmup", 1), default=None,
                   help=f"predictions before the RSS baseline (default {DEFAULT_WARMUP}, --quick {QUICK_WARMUP})")
    p.add_argument("--mode", choices=("image", "tensor"), default="image", help="image: PNG/JPEG bytes through predict (default); tensor: predict_tensor")
    p.add_argument("--max-growth-mb", type=float, default=5.0, help="pass when RSS grows less than this after warm-up (default 5)")
    p.add_argument("--threads", type=C.positive_int("--threads", 1), default=None)
    p.add_argument("--backend", default="auto")
    p.add_argument("--json", metavar="OUT", default=None, help="write the report as JSON")
    C.add_common_args(p)
    return p


def _main(argv: Sequence[str]) -> int:
    args = build_parser().parse_args(argv)
    predictions = args.predictions if args.predictions is not None else (QUICK_PREDICTIONS if args.quick else DEFAULT_PREDICTIONS)
    warmup = args.warmup if args.warmup is not None else (QUICK_WARMUP if args.quick else DEFAULT_WARMUP)
    if warmup >= predictions:
        raise EdgeDeployError(f"Received --warmup={warmup} with --predictions={predictions}; the warm-up must be shorter than the run")
    if args.max_growth_mb <= 0:
        raise EdgeDeployError(f"Received --max-growth-mb={args.max_growth_mb}, expected a positive number")
    C.check_backend_names([args.backend])
    C.check_outputs([args.json], args.force)
    models = C.discover_models([args.model])
    if len(models) != 1:
        raise EdgeDeployError(f"soak takes one model file, got {len(models)} in {args.model}")
    res = soak(models[0], predictions, warmup, args.mode, args.threads, args.backend, args.max_growth_mb)
    report = {"tool": "soak", "schema": C.REPORT_SCHEMA, "created": C.now_iso(), "environment": C.environment(),
              "settings": {"predictions": predictions, "warmup": warmup, "mode": args.mode, "max_growth_mb": args.max_growth_mb,
                           "threads": args.threads, "backend": args.backend, "quick": args.quick,
                           "inputs": f"the first {N_INPUTS} digits test images" + (" as PNG/JPEG bytes, 64x64" if args.mode == "image" else " as tensors")},
              "result": res}
    verdict = "PASS" if res["within_target"] else "FAIL"
    print(f"soak: {predictions} predictions of {res['variant']} ({res['backend']}, {args.mode}) in {res['seconds']:.1f} s "
          f"({res['predictions_per_s']:.0f}/s); RSS {res['rss_after_warmup_mb']} MB after {warmup} warm-up -> "
          f"{res['rss_end_mb']} MB at the end: growth {res['rss_growth_after_warmup_mb']:+.2f} MB "
          f"(max {res['rss_max_growth_after_warmup_mb']:+.2f}, target < {args.max_growth_mb:g} MB): {verdict}; "
          f"answer changes {res['answer_changes']}")
    if args.json:
        C.write_json(args.json, report, args.force)
        print(f"wrote {args.json}")
    return 0 if res["within_target"] and res["answer_changes"] == 0 else 1


def main(argv: Sequence[str] | None = None) -> int:
    return C.run_main(_main, argv, PROG)


if __name__ == "__main__":
    sys.exit(main())
