"""``edge-infer MODEL --info``: what was loaded and how it runs, without an image.

``model_info`` gathers the facts (the backend's own ``describe()`` plus the
file, its format and a manifest summary); ``format_info`` prints them as a
readable block, and ``--info --json`` prints the dict as one JSON object.
The accelerator is what the runtime reports after loading (the XNNPACK node
in a TFLite execution plan, ONNX Runtime's session providers), never what was
merely requested.
"""
from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any

from .formats import find_format
from .manifest import normalization_name

if TYPE_CHECKING:
    from .classifier import ImageClassifier


def model_info(clf: "ImageClassifier") -> dict[str, Any]:
    """Everything ``--info`` shows, as a JSON-ready dict (a superset of ``clf.describe()``)."""
    d = clf.describe()
    m = clf.manifest
    path = clf.path
    fmt = find_format(path)
    d["format"] = fmt.name if fmt else None
    d["size_bytes"] = path.stat().st_size if path.is_file() else None
    try:
        d["standard_metadata"] = fmt.standard_metadata(path.read_bytes()) if fmt and path.is_file() else None
    except (OSError, ValueError):
        d["standard_metadata"] = None
    d["manifest"] = {
        "found": clf.manifest_found,
        "origin": getattr(clf, "manifest_origin", "edgedeploy" if clf.manifest_found else "defaults"),
        "model_name": m.model_name,
        "dataset": m.dataset,
        "quantize": m.quantize,
        "num_classes": m.num_classes,
        "input": f"{m.input_height}x{m.input_width}x{m.input_channels} {m.color_order}",
        "resize_method": m.resize_method,
        "normalization": {"in_graph": m.normalization.in_graph, "mean": m.normalization.mean, "std": m.normalization.std,
                          "name": normalization_name(m.normalization)},
        "layout": m.layout,
        "macs": m.macs,
        "source_sha256": m.source_sha256,
        "metrics": m.metrics,
    }
    return d


def _tensor(t: dict[str, Any]) -> str:
    shape = "x".join("?" if s in (-1, 0) else str(s) for s in t["shape"])
    q = f", quantized scale={t['scale']:.6g} zero_point={t['zero_point']}" if t.get("scale") else ""
    return f"{shape} {t['dtype']}{q}"


def _labels(labels: list[str], limit: int = 12) -> str:
    shown = ", ".join(labels[:limit])
    return f"{len(labels)}: {shown}" + (f", ... (+{len(labels) - limit} more)" if len(labels) > limit else "")


def _preprocess(m: dict[str, Any]) -> str:
    """How an image becomes the model's input: size, colour order, normalization, axis order."""
    n = m["normalization"]
    how = "raw 0..255 (normalized in the graph)" if n["in_graph"] else f"(pixel - {n['mean']}) / {n['std']}"
    layout = m.get("layout", "nhwc")
    axes = "NCHW (channels first)" if layout == "nchw" else "NHWC (channels last)"
    return f"resize {m['resize_method']} to {m['input']}; normalize {n.get('name', '?')}: {how}; layout {axes}"


def format_info(d: dict[str, Any]) -> str:
    """The readable block for ``--info``."""
    m = d["manifest"]
    size = f" ({d['size_bytes'] / 1024:,.1f} KB)" if d.get("size_bytes") is not None else ""
    rows = [
        ("model", f"{d['model']}{size}"),
        ("format", d["format"]),
        ("backend", d["backend"]),
        ("threads", str(d["threads"])),
        ("accelerator", str(d.get("accelerator"))),
        ("input", _tensor(d["input"])),
        ("output", _tensor(d["output"])),
        ("labels", _labels(d["labels"])),
        ("preprocess", _preprocess(m)),
    ]
    if d.get("standard_metadata"):
        rows.append(("interop", d["standard_metadata"]))
    if m["found"]:
        summary = [f"model {m['model_name'] or '?'}", f"dataset {m['dataset'] or '?'}", f"quantize {m['quantize']}",
                   f"input {m['input']}", f"resize {m['resize_method']}"]
        if m.get("macs"):
            summary.append(f"{m['macs'] / 1e6:,.2f} MMAC")
        acc = (m.get("metrics") or {}).get("accuracy")
        if isinstance(acc, (int, float)):
            summary.append(f"accuracy at export {acc:.2f}%")  # export's metrics are percentages
        rows.append(("manifest", "; ".join(summary)))
    elif m.get("origin") == "standard metadata":
        n = m["normalization"]
        how = "raw 0..255" if n["in_graph"] else f"(pixel - {n['mean']}) / {n['std']}"
        rows.append(("manifest", f"no edgedeploy manifest: labels and input ({how}) from the standard TFLite metadata"))
    else:
        rows.append(("manifest", "none in the file or beside it: labels are class indices, input is raw 0..255 RGB"))
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k + ':':<{width + 1}} {v}" for k, v in rows)


def print_info(clf: "ImageClassifier", as_json: bool, alone: bool, prog: str) -> bool:
    """``--info``: alone, the answer on stdout (True: nothing else to do); with inputs, on stderr first."""
    info = model_info(clf)
    if alone:
        print(json.dumps(info) if as_json else format_info(info), flush=True)
        return True
    print(f"{prog}: {json.dumps(info)}" if as_json else format_info(info), file=sys.stderr, flush=True)
    return False
