"""Which JPEG decoder the device uses: speed, size, import cost and pixel identity, measured.

    python benchmarks/jpeg_decode.py FOLDER [--passes 3] [--wheels] [--out reports/jpeg_decode] [--force] [--quick]

For every decoder installed here (Pillow, simplejpeg, PyTurboJPEG,
``cv2.imdecode``), over every JPEG photo under FOLDER, from bytes in memory
to an RGB uint8 numpy array:

- ms/image: thread CPU time, 1 thread, best of ``--passes`` passes;
- images/s with 2 threads (wall time): whether it releases the GIL;
- pixel identity with Pillow's decode, photo by photo (Pillow equals
  TensorFlow's ``decode_jpeg(dct_method="INTEGER_ACCURATE")``, what training
  sees, on all 800 shared photos: tests/test_preprocess_parity.py);
- import cost after numpy in a fresh interpreter (best of 5): milliseconds
  and resident memory added;
- with ``--wheels``: the size of its wheel for a Pi (aarch64, Bookworm,
  CPython 3.11), from ``pip download --only-binary=:all: --platform
  manylinux2014_aarch64 ...`` (needs the network to PyPI).

Writes OUT.json and OUT.md; the choice and its reasons are in the Markdown.
TF-free.
"""
from __future__ import annotations

import io
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Sequence

from edgedeploy.bench import _common as C
from edgedeploy.bench.cpu import cpu_record
from edgedeploy.core.errors import EdgeDeployError

PROG = "jpeg_decode.py"
# name -> (pip distribution, module imported, note)
DECODERS = {
    "Pillow": ("pillow", "PIL.Image", "the fallback: every format, EXIF, modes"),
    "simplejpeg": ("simplejpeg", "simplejpeg", "libjpeg-turbo bundled in the wheel; decodes into numpy"),
    "PyTurboJPEG": ("PyTurboJPEG<2", "turbojpeg", "pure Python (a 13 KB sdist) over ctypes and the system's libturbojpeg "
                    "(apt libturbojpeg0, 0.2 MB); Bookworm's libjpeg-turbo 2.1 needs PyTurboJPEG 1.x"),
    "cv2.imdecode": ("opencv-python-headless<5", "cv2", "BGR out (cvtColor to RGB included); OpenCV's whole wheel"),
}


def decoder(name: str) -> Callable[[bytes], Any]:
    """bytes -> RGB uint8 (H, W, 3); ImportError/OSError when not usable here."""
    import numpy as np

    if name == "Pillow":
        from PIL import Image

        return lambda data: np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    if name == "simplejpeg":
        import simplejpeg

        return lambda data: simplejpeg.decode_jpeg(data, colorspace="RGB", fastdct=False, fastupsample=False)
    if name == "PyTurboJPEG":
        import turbojpeg

        tj = turbojpeg.TurboJPEG()
        return lambda data: tj.decode(data, pixel_format=turbojpeg.TJPF_RGB, flags=0)
    import cv2

    cv2.setNumThreads(1)
    return lambda data: cv2.cvtColor(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def _cpu_ms(fn: Callable[[bytes], Any], datas: Sequence[bytes], passes: int) -> float:
    best = float("inf")
    for _ in range(passes):
        t0 = time.thread_time()
        for d in datas:
            fn(d)
        best = min(best, (time.thread_time() - t0) / len(datas) * 1000)
    return best


def _rate_2_threads(fn: Callable[[bytes], Any], datas: Sequence[bytes], passes: int) -> float:
    best = 0.0
    with ThreadPoolExecutor(2) as ex:
        list(ex.map(fn, datas[:8]))
        for _ in range(passes):
            t0 = time.perf_counter()
            for _ in ex.map(fn, datas):
                pass
            best = max(best, len(datas) / (time.perf_counter() - t0))
    return best


IMPORT_PROBE = ("import time, numpy\n"
                "def rss():\n"
                "    return int(open('/proc/self/statm').read().split()[1]) * {page}\n"
                "r0 = rss(); t0 = time.perf_counter()\n"
                "import {module}\n"
                "print(time.perf_counter() - t0, rss() - r0)\n")


def import_cost(module: str, runs: int = 5) -> dict[str, float] | None:
    """Best-of-``runs`` seconds and RSS bytes that importing ``module`` adds after numpy, in fresh interpreters."""
    code = IMPORT_PROBE.format(module=module, page=os.sysconf("SC_PAGE_SIZE"))
    best_s, best_rss = float("inf"), float("inf")
    for _ in range(runs):
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tempfile.gettempdir())
        if proc.returncode != 0:
            return None
        s, rss = proc.stdout.split()
        best_s, best_rss = min(best_s, float(s)), min(best_rss, float(rss))
    return {"import_ms": round(best_s * 1000, 1), "import_rss_mb": round(best_rss / 1e6, 1)}


def wheel_size(requirement: str) -> dict[str, Any]:
    """The aarch64 / CPython 3.11 wheel pip picks for a Pi (Bookworm, glibc 2.36): file name and bytes."""
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--disable-pip-version-check",
                               "--only-binary=:all:", "--platform", "manylinux2014_aarch64", "--python-version", "3.11",
                               "--implementation", "cp", "--abi", "cp311", requirement, "--no-deps", "-d", tmp],
                              capture_output=True, text=True)
        files = list(Path(tmp).glob("*.whl"))
        if proc.returncode != 0 or not files:
            return {"wheel": None, "wheel_error": (proc.stderr.strip().splitlines() or ["no wheel"])[-1][:200]}
        return {"wheel": files[0].name, "wheel_bytes": files[0].stat().st_size}


def measure(name: str, datas: Sequence[bytes], reference: Sequence[Any], passes: int, wheels: bool) -> dict[str, Any]:
    import numpy as np

    dist, module, note = DECODERS[name]
    row: dict[str, Any] = {"decoder": name, "module": module, "note": note}
    try:
        fn = decoder(name)
        fn(datas[0])
    except Exception as exc:  # noqa: BLE001  not installed, or its native library is missing
        row["unavailable"] = f"{type(exc).__name__}: {exc}"[:200]
    else:
        outs = [fn(d) for d in datas]
        same = sum(bool(o.shape == r.shape and np.array_equal(o, r)) for o, r in zip(outs, reference))
        worst = max(float(np.abs(o.astype(np.int16) - r).max()) if o.shape == r.shape else 255.0
                    for o, r in zip(outs, reference))
        row.update(ms_per_image=round(_cpu_ms(fn, datas, passes), 3),
                   images_per_s_2_threads=round(_rate_2_threads(fn, datas, passes), 1),
                   identical_to_pillow=same, photos=len(datas), max_diff_255=worst)
        row.update(import_cost(module) or {})
    if wheels:
        row.update(wheel_size(dist))
    return row


def build_parser() -> C.ArgumentParser:
    p = C.ArgumentParser(prog=PROG, description="JPEG decoders compared: speed, size, import cost, pixel identity.")
    p.add_argument("folder", help="a folder of JPEG photos (searched recursively)")
    p.add_argument("--passes", type=C.positive_int("--passes"), default=3, help="passes; the best is kept (default 3)")
    p.add_argument("--wheels", action="store_true", help="also download each decoder's aarch64 wheel to size it (network)")
    p.add_argument("--out", default="reports/jpeg_decode", help="report path without suffix (default reports/jpeg_decode)")
    C.add_common_args(p)
    return p


def _main(argv: Sequence[str]) -> int:
    args = build_parser().parse_args(argv)
    outs = [f"{args.out}.json", f"{args.out}.md"]
    C.check_outputs(outs, args.force)
    paths = sorted(p for p in Path(args.folder).rglob("*") if p.suffix.lower() in (".jpg", ".jpeg"))
    if not paths:
        raise EdgeDeployError(f"Received folder {args.folder!r}, expected JPEG photos in it")
    if args.quick:
        paths = paths[:40]
    datas = [p.read_bytes() for p in paths]
    reference = [decoder("Pillow")(d) for d in datas]
    passes = 1 if args.quick else args.passes
    rows = []
    for name in DECODERS:
        rows.append(measure(name, datas, reference, passes, args.wheels))
        print(f"{name:14s} {rows[-1].get('ms_per_image', 'n/a')} ms", file=sys.stderr)
    from edgedeploy.bench.jpeg_report import markdown
    from edgedeploy.runtime.jpeg import decoder_name

    report = {"tool": "jpeg_decode", "schema": C.REPORT_SCHEMA, "created": C.now_iso(), "environment": C.environment(),
              "cpu": cpu_record(), "folder": str(Path(args.folder).resolve()), "photos": len(paths), "passes": passes,
              "results": rows, "runtime_decoder": decoder_name()}
    C.write_json(outs[0], report, args.force)
    C.write_text(outs[1], markdown(report), args.force)
    print(f"wrote {', '.join(outs)}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return C.run_main(_main, argv, PROG)


if __name__ == "__main__":
    sys.exit(main())

