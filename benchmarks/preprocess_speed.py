"""How fast each way of decoding and resizing photos is, and whether it keeps parity with training.

    python benchmarks/preprocess_speed.py FOLDER [--size 160] [--images 200] [--model MODEL]
        [--repeats 3] [--out reports/preprocess_speed] [--force]

Training resizes with ``tf.image.resize`` (bilinear, half-pixel centres, no
antialias); ``edge_runtime.preprocess.resize_reference`` is its whole-image
numpy port, proven against TensorFlow on these photos (0/255,
tests/runtime/test_preprocess_parity.py). Every method here is compared with that
reference, pixel by pixel on the 0..255 scale (parity holds at <= 1/255, the
test's tolerance), and, with ``--model``, by the model's top-1 answer.

Methods:
- decode: Pillow open + decode + RGB (what no method can avoid);
- load_image before/now: the old copy-heavy decode (EXIF transpose copy, RGB
  convert copy, 64 KB tobytes pieces) and the current one;
- resize reference / gather-first (edge_runtime) / OpenCV INTER_LINEAR on
  float32 and on uint8 input;
- JPEG draft mode: ``img.draft("RGB", (size, size))`` lets libjpeg decode at
  1/2, 1/4 or 1/8 scale (DCT scaling), then the usual resize;
- preprocess before/now, and now with 2 threads (images/s).

Figures are the best of ``--repeats`` passes (a shared machine is noisy).
TF-free; OpenCV is optional (``pip install opencv-python-headless``).
"""
from __future__ import annotations

import io
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Sequence

from edgedeploy.bench import _common as C
from edgedeploy.core.errors import EdgeDeployError

PROG = "preprocess_speed.py"


def _old_load(path: Path):
    """load_image as it was before the pipeline work (for the 'before' row)."""
    import numpy as np
    from PIL import Image, ImageOps

    img = Image.open(io.BytesIO(path.read_bytes()))
    img.load()
    img = ImageOps.exif_transpose(img)
    return np.ascontiguousarray(np.asarray(img.convert("RGB")))


def _decode_only(path: Path):
    from PIL import Image

    img = Image.open(path)
    img.load()
    return img.convert("RGB") if img.mode != "RGB" else img


def _draft_load(path: Path, size: int):
    import numpy as np
    from PIL import Image

    img = Image.open(path)
    img.draft("RGB", (size, size))  # libjpeg DCT scaling: the decoded image is >= size, up to 8x smaller
    img.load()
    return np.asarray(img.convert("RGB"))


def _best_ms(fn: Callable[[Any], Any], items: Sequence[Any], repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        for it in items:
            fn(it)
        best = min(best, (time.perf_counter() - t0) / len(items) * 1000)
    return best


def _best_rate(fn: Callable[[Any], Any], items: Sequence[Any], repeats: int, threads: int) -> float:
    best = 0.0
    with ThreadPoolExecutor(threads) as ex:
        list(ex.map(fn, items[:threads * 2]))
        for _ in range(repeats):
            t0 = time.perf_counter()
            for _ in ex.map(fn, items):
                pass
            best = max(best, len(items) / (time.perf_counter() - t0))
    return best


def build_parser() -> C.ArgumentParser:
    p = C.ArgumentParser(prog=PROG, description="Decode and resize speed of each method, and its parity with training.")
    p.add_argument("folder", help="a folder of JPEG photos (searched recursively)")
    p.add_argument("--size", type=C.positive_int("--size"), default=160, help="square output size (default 160)")
    p.add_argument("--images", type=C.positive_int("--images"), default=200, help="photos used (default 200)")
    p.add_argument("--model", help="also compare the model's top-1 answers (a .tflite/.onnx of the same input size)")
    p.add_argument("--repeats", type=C.positive_int("--repeats"), default=3, help="passes; the best is kept (default 3)")
    p.add_argument("--out", default="reports/preprocess_speed", help="report path without suffix")
    C.add_common_args(p)
    return p


def _main(argv: Sequence[str]) -> int:
    import numpy as np

    from edgedeploy.runtime.inputs import expand_inputs
    from edgedeploy.runtime.preprocess import load_image, resize, resize_reference

    args = build_parser().parse_args(argv)
    outs = [f"{args.out}.json", f"{args.out}.md"]
    C.check_outputs(outs, args.force)
    paths, _ = expand_inputs([args.folder])
    paths = [p for p in paths if p.suffix.lower() in (".jpg", ".jpeg")][: args.images]
    if not paths:
        raise EdgeDeployError(f"Received folder {args.folder!r}, expected JPEG photos in it")
    S, reps = args.size, 1 if args.quick else args.repeats
    decoded = [load_image(p) for p in paths]
    reference = [resize_reference(im, S, S) for im in decoded]
    results: list[dict[str, Any]] = []

    def diff(outs_: list) -> dict[str, Any]:
        d = [float(np.abs(o.astype(np.float32) - r).max()) if o.shape == r.shape else float("inf") for o, r in zip(outs_, reference)]
        mean = float(np.mean([np.abs(o.astype(np.float32) - r).mean() for o, r in zip(outs_, reference)]))
        return {"max_abs_diff_255": round(max(d), 6), "mean_abs_diff_255": round(mean, 6), "parity": max(d) <= 1.0}

    def add(name: str, ms: float, stage: str, note: str = "", **extra: Any) -> None:
        row = {"method": name, "stage": stage, "ms_per_image": round(ms, 3), "note": note}
        row.update(extra)
        results.append(row)
        print(f"{name:42s} {ms:7.3f} ms  {extra.get('max_abs_diff_255', '')}", file=sys.stderr)

    add("decode (Pillow open+decode+RGB)", _best_ms(_decode_only, paths, reps), "decode")
    add("load_image before", _best_ms(_old_load, paths, reps), "decode", "EXIF/convert copies, 64 KB tobytes pieces")
    add("load_image now", _best_ms(load_image, paths, reps), "decode")
    add("resize reference (whole image in float32)", _best_ms(lambda im: resize_reference(im, S, S), decoded, reps), "resize",
        **diff(reference))
    add("resize gather-first (edge_runtime now)", _best_ms(lambda im: resize(im, S, S), decoded, reps), "resize",
        **diff([resize(im, S, S) for im in decoded]))
    candidates: dict[str, list] = {}
    try:
        import cv2

        cv2.setNumThreads(1)
        f32 = [cv2.resize(im.astype(np.float32), (S, S), interpolation=cv2.INTER_LINEAR) for im in decoded]
        u8 = [cv2.resize(im, (S, S), interpolation=cv2.INTER_LINEAR) for im in decoded]
        add(f"OpenCV {cv2.__version__} INTER_LINEAR float32", _best_ms(
            lambda im: cv2.resize(im.astype(np.float32), (S, S), interpolation=cv2.INTER_LINEAR), decoded, reps), "resize",
            "1 OpenCV thread", **diff(f32))
        add(f"OpenCV {cv2.__version__} INTER_LINEAR uint8", _best_ms(
            lambda im: cv2.resize(im, (S, S), interpolation=cv2.INTER_LINEAR), decoded, reps), "resize",
            "fixed-point weights, output rounded to uint8", **diff(u8))
        candidates.update({"OpenCV float32": f32, "OpenCV uint8": u8})
    except ImportError:
        print(f"{PROG}: OpenCV not installed: its rows are skipped (pip install opencv-python-headless)", file=sys.stderr)
    drafted = [resize(_draft_load(p, S), S, S) for p in paths]
    add("JPEG draft + gather-first resize", _best_ms(lambda p: resize(_draft_load(p, S), S, S), paths, reps),
        "decode+resize", "libjpeg DCT scaling changes the pixels", **diff(drafted))
    candidates["JPEG draft"] = drafted
    add("decode + resize before", _best_ms(lambda p: resize_reference(_old_load(p), S, S), paths, reps), "decode+resize")
    add("decode + resize now", _best_ms(lambda p: resize(load_image(p), S, S), paths, reps), "decode+resize")
    rates = {}
    for label, fn in (("before", lambda p: resize_reference(_old_load(p), S, S)), ("now", lambda p: resize(load_image(p), S, S))):
        for t in (1, 2):
            rates[f"{label}_{t}"] = round(_best_rate(fn, paths, reps, t), 1)
    agreement = None
    if args.model:
        from edgedeploy.runtime import ImageClassifier

        clf = ImageClassifier(args.model, threads=2)
        m = clf.manifest
        if (m.input_height, m.input_width) != (S, S):
            raise EdgeDeployError(f"Received --model with input {m.input_height}x{m.input_width}, expected {S}x{S} (--size)")
        from edgedeploy.runtime.preprocess import normalize

        def top1(xs: list) -> Any:
            return clf.predict_tensor(np.stack([normalize(x.astype(np.float32), m) for x in xs])).argmax(1)

        ref = top1(reference)
        agreement = {name: round(float((top1(xs) == ref).mean()), 4) for name, xs in candidates.items()}
    report = {"tool": "preprocess_speed", "schema": C.REPORT_SCHEMA, "created": C.now_iso(), "environment": C.environment(),
              "settings": {"load_average_1_5_15": list(os.getloadavg()), "folder": str(Path(args.folder).resolve()),
                           "images": len(paths), "size": S, "repeats": reps,
                           "model": args.model, "mean_source_size": [round(float(np.mean([d.shape[i] for d in decoded]))) for i in (0, 1)]},
              "results": results, "images_per_s": rates, "top1_agreement_vs_reference": agreement}
    C.write_json(outs[0], report, args.force)
    C.write_text(outs[1], _markdown(report), args.force)
    print(f"wrote {', '.join(outs)}")
    return 0


def _markdown(report: dict[str, Any]) -> str:
    s, env, r = report["settings"], report["environment"], report["images_per_s"]
    lines = [f"# Preprocessing speed and parity ({s['images']} photos, about {s['mean_source_size'][1]}x{s['mean_source_size'][0]} -> {s['size']}x{s['size']})",
             "", f"One run on one machine: {env['device']}, {report['created']}; best of {s['repeats']} passes, 1 thread unless said.",
             f"Load average at the end (1/5/15 min, other jobs on the machine): {', '.join(f'{v:.1f}' for v in s['load_average_1_5_15'])}.",
             "Diff: against the whole-image numpy port of tf.image.resize (0/255 from TensorFlow on these photos); "
             "parity = max diff <= 1/255.", ""]
    header = ["method", "stage", "ms/image", "max diff /255", "mean diff /255", "parity", "note"]
    body = [[x["method"], x["stage"], C.fmt(x["ms_per_image"], 3), C.fmt(x.get("max_abs_diff_255"), 4),
             C.fmt(x.get("mean_abs_diff_255"), 4), C.fmt(x.get("parity")) if "parity" in x else "", x["note"]] for x in report["results"]]
    lines += [C.table(header, body, markdown=True), "", "## decode + resize, images/s", "",
              C.table(["code", "1 thread", "2 threads", "2 vs 1"],
                      [["before", r["before_1"], r["before_2"], C.fmt(r["before_2"] / r["before_1"])],
                       ["now", r["now_1"], r["now_2"], C.fmt(r["now_2"] / r["now_1"])]], markdown=True), ""]
    if report["top1_agreement_vs_reference"]:
        lines += [f"## Top-1 agreement with the reference pixels ({Path(s['model']).name})", "",
                  C.table(["method", "agreement"], [[k, f"{v:.2%}"] for k, v in report["top1_agreement_vs_reference"].items()],
                          markdown=True), ""]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    return C.run_main(_main, argv, PROG)


if __name__ == "__main__":
    sys.exit(main())
