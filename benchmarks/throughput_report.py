"""The Markdown of benchmarks/throughput.py's report (its first table is the README figure)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from edgedeploy.bench import _common as C
from edgedeploy.bench.cpu import flags_text
from edgedeploy.bench.peer_loops import NAMES

PEER_WHAT = {"opencv": "OpenCV loop: `cv2.imread` -> `cvtColor` -> `resize` INTER_LINEAR -> quantize -> `invoke` (2 runtime threads)",
             "pillow": "Pillow loop: `Image.open` -> `convert(\"RGB\")` -> `resize` BILINEAR -> quantize -> `invoke` (2 runtime threads)"}


def _diff(v: float | None) -> str:
    return "n/a" if v is None else f"max {v:.2f}/255"


def headline(report: dict[str, Any]) -> list[list[Any]]:
    cmds, parity, d = report["commands"], report["parity"], report["defaults"]
    base = cmds.get("opencv", {}).get("images_per_s")

    def row(what: str, c: dict[str, Any], par: str) -> list[Any]:
        ratio = C.fmt(c["images_per_s"] / base) if base else "n/a"
        return [what, C.fmt(c["images_per_s"], 1), ratio, C.fmt(c["cpu_ms_per_image"], 2), par]

    rows = [row(PEER_WHAT[k], cmds[k], _diff(parity["peers"].get(k, {}).get("max_diff_255"))) for k in NAMES if k in cmds]
    edge_par = "0/255" if parity.get("edge_infer_max_diff_255") == 0 else "NOT identical"
    rows.append(row(f"`edge-infer DIR --json` (defaults here: --threads {d['threads']} --workers {d['workers']})",
                    cmds["edge-infer"], edge_par))
    ceiling = report["costs"]["ceiling_images_per_s"]
    rows.append(["2-core ceiling: 2 / (decode + resize + inference at 1 thread)", C.fmt(ceiling, 1),
                 C.fmt(ceiling / base) if base else "n/a", "", f"edge-infer reaches {report['fraction_of_ceiling']:.0%}"])
    return rows


def markdown(report: dict[str, Any]) -> str:
    s, cpu, env = report["settings"], report["cpu"], report["environment"]
    ratio = report["ratio_vs_opencv"]
    verdict = ("n/a (OpenCV is not installed)" if ratio is None else
               f"**{ratio:.3f}x** (target {report['target_ratio']}x: {'met' if ratio >= report['target_ratio'] else 'NOT met'}); "
               f"from the median times {report['ratio_vs_opencv_median']:.3f}x")
    lines = [f"# Throughput: edge-infer against the loops a user writes ({Path(s['model']).name}, {s['images']} photos)", "",
             f"One run on one machine: {cpu['model']} ({env['cpu_cores_usable']} usable cores; {flags_text(cpu['flags'])}), "
             f"Python {env['python']}, {report['created']}. Load average (1/5/15 min) at the start "
             f"{', '.join(f'{v:.1f}' for v in s['load_average_start'])}, at the end "
             f"{', '.join(f'{v:.1f}' for v in cpu['load_average_end'])}: other jobs share these cores.",
             f"Every row is a whole process (start-up, imports, model load), best of {s['repeats']} interleaved rounds. "
             f"JPEG decoder: {report['decoder']}. edge-infer / OpenCV loop: {verdict}.", "",
             C.table(["command (whole process)", "img/s", "x OpenCV loop", "CPU ms/img", "pixels vs training"],
                     headline(report), markdown=True), "",
             "- CPU ms/img: user + system seconds of the process (start-up included) / images; the loops' 2 runtime "
             "threads spin while they wait, which counts here;",
             "- pixels vs training: the largest difference of the model input from what training computes, on every "
             "photo (edge-infer's decode equals Pillow's and its resize the reference port; TensorFlow's side is "
             "compared in tests/test_preprocess_parity.py).", ""]
    c = report["costs"]
    lines += ["## One image's serial CPU cost (thread CPU time, 1 thread, mean over the photos, best of 3 passes)", "",
              C.table(["stage", "ms/image"], [["decode (`load_image` from the file)", C.fmt(c["decode_ms"], 3)],
                                              ["resize to the model's input", C.fmt(c["resize_ms"], 3)],
                                              ["inference, 1 runtime thread, batch 1", C.fmt(c["inference_ms"], 3)],
                                              ["**decode + resize + inference**", C.fmt(c["serial_ms"], 3)],
                                              ["(normalize + quantize, not in the ceiling)", C.fmt(c["normalize_quantize_ms"], 3)]],
                      markdown=True), "",
              f"2-core ceiling = 2 / {c['serial_ms']:.3f} ms = {c['ceiling_images_per_s']:.0f} images/s; "
              f"edge-infer's whole command reaches {report['fraction_of_ceiling']:.0%} of it.", ""]
    lines += _grid(report) + _parity(report) + _rss(report)
    return "\n".join(lines)


def _grid(report: dict[str, Any]) -> list[str]:
    d, cmds = report["defaults"], report["commands"]
    rows = []
    for t, w in report["settings"]["grid"]:
        c = cmds[f"grid {t} {w}"]
        mark = " (the default)" if (t, w) == (d["threads"], d["workers"]) else ""
        rows.append([f"{t}{mark}", w, C.fmt(c["images_per_s"], 1), C.fmt(c["seconds"], 3), C.fmt(c["median_seconds"], 3),
                     C.fmt(c["cpu_ms_per_image"], 2)])
    return ["## The grid: `edge-infer DIR --json --threads T --workers W`", "",
            C.table(["--threads", "--workers", "img/s", "best s", "median s", "CPU ms/img"], rows, markdown=True), "",
            "Runtime threads and preprocessing workers share the cores; the default pair is chosen from this grid "
            "(edge_runtime/pipeline.py says why).", ""]


def _parity(report: dict[str, Any]) -> list[str]:
    p = report["parity"]
    rows = [["photos", p["photos"]], ["took the fast JPEG path", p["fast_jpeg_path"]],
            ["decoded pixels equal to Pillow's decode", p["decode_equal_to_pillow"]],
            ["resized pixels equal to the reference port of tf.image.resize", p["resize_equal_to_reference"]]]
    rows += [[f"{NAMES[k]}: largest / mean difference from training's pixels",
              f"{v['max_diff_255']:.4f} / {v['mean_diff_255']:.4f} (of 255)"] for k, v in p["peers"].items()]
    return ["## Parity of the pixels the model sees", "", C.table(["check", "value"], rows, markdown=True), ""]


def _rss(report: dict[str, Any]) -> list[str]:
    if not report["rss"]:
        return []
    rb = [[r["files"], C.fmt(r["rss_before_mb"]), C.fmt(r["rss_peak_mb"]), C.fmt(r["growth_mb"]), C.fmt(r["ru_maxrss_mb"]),
           C.fmt(r["images_per_s"], 1)] for r in report["rss"]]
    return ["## Memory over a large folder (edge-infer's pipeline, defaults)", "",
            C.table(["files", "RSS before MB", "peak RSS MB", "growth MB", "ru_maxrss MB", "img/s"], rb, markdown=True), "",
            "RSS before: model loaded, pool started, 16 images run; peak: sampled every 20 ms during the run.", ""]
