"""The bundle's README.md, from ``bundle_templates/README.md.in`` and ``bundle.json``."""
from __future__ import annotations

from pathlib import Path
from string import Template
from typing import Any

from edgedeploy.runtime.manifest import Manifest

TEMPLATE = Path(__file__).with_name("bundle_templates") / "README.md.in"

MANIFEST_NOTE = ("This .tflite carries edgedeploy's manifest (labels, input size, normalization) as a TFLite "
                 "metadata entry named `edgedeploy.manifest`, read by edgedeploy.runtime.")
WITH_STANDARD = (" It also carries the standard TFLite metadata that MediaPipe Tasks and Android's TFLite Support "
                 "library read: {what}.")
WITHOUT_STANDARD = (" It does not carry the standard TFLite metadata (MediaPipe Tasks, Android's TFLite Support "
                    "library): export-model leaves it out when the metadata cannot describe the model (BGR input, "
                    "channels other than 1 or 3, or signed int8 input); the export report's notes say which.")


def metadata_note(info: dict[str, Any], manifest: Manifest) -> str:
    """What this bundle's model file carries, read from the file itself (bundle.json's model.standard_metadata)."""
    if manifest.format != "tflite":
        return "Not applicable: this is an ONNX model; it carries the manifest in `metadata_props`."
    standard = info["model"].get("standard_metadata")
    return MANIFEST_NOTE + (WITH_STANDARD.format(what=standard) if standard else WITHOUT_STANDARD)


def _gate_lines(gate: dict[str, Any]) -> str:
    m = gate.get("metrics") or {}
    out = []
    if "accuracy" in m:
        keras = m.get("keras_accuracy", gate.get("keras_test_accuracy"))
        n = m.get("parity_samples")
        out.append(f"- Parity gate at export: accuracy {m['accuracy']:.2f}%"
                   + (f" on {n} {m.get('parity_split', 'test')} images" if n else "")
                   + (f" (Keras {keras:.2f}%)" if isinstance(keras, (int, float)) else "")
                   + (f", drop {m['accuracy_drop']:+.2f} points" if "accuracy_drop" in m else "")
                   + (f", top-1 agreement with Keras {m['top1_agreement']:.2f}%" if "top1_agreement" in m else "")
                   + (f", max probability difference {m['max_abs_prob_diff']:.2g}" if "max_abs_prob_diff" in m else ""))
        g = m.get("gate") or {}
        verdict = g.get("verdict") or ({True: "passed", False: "REJECTED"}.get(g["passed"]) if "passed" in g else None)
        if verdict:
            out.append(f"- Gate verdict: {verdict}"
                       + (f" (max accuracy drop {g['max_accuracy_drop']} points)" if "max_accuracy_drop" in g else ""))
    else:
        out.append("- Parity gate figures: none in this file's manifest")
    if gate.get("selection"):
        sel = gate["selection"]
        why = sel.get("reason") or []
        why = [why] if isinstance(why, str) else [str(w) for w in why]
        crit = f" {sel['criterion']}" if sel.get("criterion") else ""
        out.append(f"- Chosen by `export-model --select{crit}`" + (":" if why else ""))
        out += [f"  - {w}" for w in why]
    return "\n".join(out)


def readme_text(info: dict[str, Any], manifest: Manifest, target: Any) -> str:
    labels = manifest.labels
    shown = ", ".join(f"`{x}`" for x in labels[:20]) + (f", ... ({len(labels)} in all)" if len(labels) > 20 else "")
    n = manifest.normalization
    norm = "0..255 pixels, normalized inside the model" if n.in_graph else f"(x - {n.mean}) / {n.std}"
    lat = info.get("latency")
    offline = info["offline"]
    values = {
        "name": info["name"], "model_file": info["model"]["file"], "target_desc": target.description,
        "version": info["edgedeploy"], "created": info["created"],
        "wheels_note": "; it installs with no network" if offline else "; it installs its dependencies from the package index",
        "format": manifest.format, "quantize": manifest.quantize,
        "size_kb": f"{info['model']['size_bytes'] / 1024:.1f}",
        "wheels_desc": (f"{len(info['wheels'])} wheels for {target.description}: edgedeploy and its dependencies"
                        if offline else "the edgedeploy wheel only (made with `--no-wheels`)"),
        "n_samples": len(info["samples"]), "n_labels": len(labels), "labels": shown,
        "input_desc": f"{manifest.input_height}x{manifest.input_width}x{manifest.input_channels} {manifest.color_order}, "
                      f"{manifest.resize_method} resize, {norm}; tensor {manifest.input.dtype}",
        "runtime": info["runtime"], "gate_lines": _gate_lines(info.get("gate") or {}),
        "latency_line": (f"- Latency at export: {lat}; measure it on the device: `edge-bench latency`" if lat is not None else
                         "- Latency: not measured for this bundle; measure it on the device: `edge-bench latency`"),
        "machine": target.machine,
        "python_req": target.python if offline else ">= 3.11",
        "install_from": "edgedeploy and its dependencies offline from `wheels/`" if offline
                        else "edgedeploy from `wheels/` and its dependencies from the package index",
        "service": info["service"],
        "metadata_note": metadata_note(info, manifest),
    }
    return Template(TEMPLATE.read_text()).safe_substitute(values)
