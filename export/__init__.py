"""export: turn a trained Keras model into TFLite and ONNX files a device can run.

Every file is quantized as asked, carries the run's manifest inside it, and is
checked by the parity gate: it is run through ``edgedeploy.runtime`` (the code the
device runs) on the run's held-out images and train images outside the
calibration sample, compared with the Keras model, and accepted only when the
evidence does not show it worse than the budgets (``gate.py``, ``stats.py``).

    export-model runs/digits --format all
    export-model runs/digits --format tflite --quantize int8 --io uint8

Heavy imports (tensorflow, tf2onnx, onnx) happen inside the functions that
need them, so ``import edgedeploy.export`` and ``export-model --help`` stay instant.
"""
from __future__ import annotations

import importlib

__all__ = ["run_export", "ExportOptions", "BundleRequest", "bundle_export"]
_LAZY = {"run_export": "pipeline", "ExportOptions": "options", "BundleRequest": "options", "bundle_export": "bundle"}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
