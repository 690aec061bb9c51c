"""When int8 hurts: find the layers that lose the most to quantization.

Runs TFLite's ``QuantizationDebugger`` on the calibration samples: every
quantized op is compared with its float counterpart on the same input. The
layers are ranked by RMSE divided by the quantization step (scale), the
measure the TF guide recommends: above about 0.3-0.5 a layer is losing more
than rounding noise. The top ones are what ``--keep-float`` should name.
"""
from __future__ import annotations

import csv
import io
import math
from typing import Any

from .base import ConvertContext, ExportFormat

DEBUG_SAMPLES = 32


def layer_scope(node: str) -> str:
    """A short, format-independent handle for a node: its name scope ("model_1/dense_1/")."""
    first = node.split(";")[0]
    if "/" in first:
        return first.rsplit("/", 1)[0] + "/"
    return first


def worst_layers(ctx: ConvertContext, fmt: ExportFormat, k: int = 5) -> list[dict[str, Any]]:
    """The ``k`` TFLite int8 ops with the largest RMSE/scale on the calibration data.

    ``fmt`` is the TFLite format: its ``new_converter`` makes the converter (by the same
    paths as the export) and its ``configure`` sets it up for int8, so this module needs
    nothing else from tflite.py (and tflite.py imports this one, one way).
    """
    import numpy as np
    import tensorflow as tf

    calib = ctx.calibration()
    x = calib.x[:DEBUG_SAMPLES]

    def dataset():
        for i in range(len(x)):
            yield [x[i : i + 1]]

    tmp = None
    try:
        converter, tmp = fmt.new_converter(ctx)
        fmt.configure(converter, ctx, "int8")
        converter.representative_dataset = dataset
        debugger = tf.lite.experimental.QuantizationDebugger(converter=converter, debug_dataset=dataset)
        debugger.run()
        buf = io.StringIO()
        debugger.layer_statistics_dump(buf)
    finally:
        if tmp is not None:
            tmp.cleanup()
    rows = []
    for r in csv.DictReader(io.StringIO(buf.getvalue())):
        try:
            scale = float(r["scale"])
            mse = float(r["mean_squared_error"])
        except (KeyError, ValueError):
            continue
        if not scale or not np.isfinite(mse):
            continue
        rows.append({
            "node": r.get("tensor_name", ""),
            "scope": layer_scope(r.get("tensor_name", "")),
            "op": r.get("op_name", ""),
            "rmse_over_scale": round(math.sqrt(mse) / scale, 4),
            "max_abs_error": float(f"{float(r.get('max_abs_error', 'nan')):.4g}"),
        })
    inverse = {scope: layer for layer, scope in ctx.layer_scopes.items()}
    for row in rows:  # the Keras layer a node belongs to: what --keep-float takes
        last = row["scope"].rstrip("/").rsplit("/", 1)[-1]
        row["layer"] = inverse.get(last) if row["scope"].endswith("/") else None
    rows.sort(key=lambda d: -d["rmse_over_scale"])
    return rows[:k]


def keep_float_hint(worst: list[dict[str, Any]], n: int = 2) -> str:
    """The --keep-float value for the ``n`` worst layers (Keras names where known)."""
    # Nodes outside any layer scope (the graph's output tensor) cannot be named.
    names = list(dict.fromkeys(w.get("layer") or w["scope"] for w in worst
                               if w["rmse_over_scale"] > 0 and (w.get("layer") or "/" in w["scope"])))
    return ",".join(names[:n])
