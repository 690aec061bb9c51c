"""The Markdown of benchmarks/jpeg_decode.py's report: the table, then the choice and why."""
from __future__ import annotations

from typing import Any

from edgedeploy.bench import _common as C
from edgedeploy.bench.cpu import flags_text

CHOICE = """## The choice: simplejpeg, in the `edge` extra, with Pillow as the fallback

- **Pixels:** every decoder here wraps libjpeg-turbo with the accurate integer
  IDCT and fancy upsampling, and each gave Pillow's pixels, bit for bit, on every
  photo; Pillow gives TensorFlow's `decode_jpeg(dct_method="INTEGER_ACCURATE")`
  (tests/test_preprocess_parity.py, 0/255 on all 800). So training needs no
  change: the preprocessing stays defined once.
- **Speed:** simplejpeg, PyTurboJPEG and `cv2.imdecode` are close to each other
  and faster than Pillow's `open -> convert("RGB") -> asarray` (which decodes
  in pieces and copies): {speed}. simplejpeg decodes straight into a numpy
  array and releases the GIL, so two workers decode in parallel.
- **Size on a Pi:** simplejpeg's aarch64 wheel is under 0.5 MB with libjpeg-turbo
  inside; PyTurboJPEG's wheel is tiny but needs the system's libturbojpeg
  (Bookworm's is 2.1, which PyTurboJPEG 2 refuses); OpenCV's wheel is about
  35 MB and was already kept out of `edge` for its import cost.
- **Import:** a few milliseconds after numpy, imported on the first JPEG only.
- **Where it is used:** `edge_runtime/jpeg.py` takes sequential 8-bit JPEGs with
  1 or 3 components, no Adobe segment and an upright (or no) EXIF orientation;
  everything else (EXIF-rotated, progressive, CMYK, PNG, WebP, 16-bit, palette,
  damaged files) goes to Pillow exactly as before, and so does every file when
  simplejpeg is not installed or `EDGEDEPLOY_JPEG=pillow` is set.
"""


def _speed(report: dict[str, Any]) -> str:
    ms = {r["decoder"]: r["ms_per_image"] for r in report["results"] if "ms_per_image" in r}
    if "Pillow" not in ms:
        return "Pillow was not measured"
    return "; ".join(f"{k} {ms['Pillow'] / v:.1f}x Pillow's speed" for k, v in ms.items() if k != "Pillow")


def _wheel(r: dict[str, Any]) -> str:
    if r.get("wheel_bytes"):
        return f"{r['wheel_bytes'] / 1e6:.2f} MB"
    if "wheel" not in r:
        return "n/a (run with --wheels)"
    return "no aarch64 wheel"


def markdown(report: dict[str, Any]) -> str:
    env, cpu = report["environment"], report["cpu"]
    rows = []
    for r in report["results"]:
        wheel = _wheel(r)
        if "unavailable" in r:
            rows.append([r["decoder"], "not usable here", "", "", "", "", wheel, r["note"] + f" ({r['unavailable']})"])
            continue
        same = f"{r['identical_to_pillow']}/{r['photos']}" + (f" (max {r['max_diff_255']:g}/255)" if r["max_diff_255"] else "")
        imp = f"{r['import_ms']:.1f} ms / {r['import_rss_mb']:.1f} MB" if "import_ms" in r else "n/a"
        rows.append([r["decoder"], C.fmt(r["ms_per_image"], 3), C.fmt(r["images_per_s_2_threads"], 0), same, imp,
                     "yes" if r["decoder"] == report["runtime_decoder"].split()[0] else "", wheel, r["note"]])
    head = (f"# JPEG decode: which decoder the device uses ({report['photos']} photos)\n\n"
            f"One run on one machine: {cpu['model']} ({env['cpu_cores_usable']} usable cores; {flags_text(cpu['flags'])}), "
            f"Python {env['python']}, {report['created']}; load average {', '.join(f'{v:.1f}' for v in cpu['load_average'])}. "
            f"Bytes in memory -> RGB uint8 numpy array; ms/image is thread CPU time, 1 thread, best of {report['passes']} "
            f"passes; 2-thread images/s is wall time (noisy on a shared machine). The runtime decodes plain JPEGs with: "
            f"{report['runtime_decoder']}.\n\n")
    table = C.table(["decoder", "ms/image", "img/s, 2 threads", "pixels identical to Pillow (= training)",
                     "import after numpy / RSS", "edge_runtime uses it", "aarch64 cp311 wheel", "note"], rows, markdown=True)
    return head + table + "\n\n" + CHOICE.format(speed=_speed(report))
