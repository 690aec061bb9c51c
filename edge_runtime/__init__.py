"""edgedeploy.runtime: the TF-free device runtime (the ``edge_runtime/`` folder).

Everything a Raspberry Pi needs to run an exported classifier: the model
manifest, preprocessing identical to training, runtime backends (LiteRT,
tflite-runtime, ONNX Runtime) and ``ImageClassifier``. It imports numpy at
most; Pillow and the runtimes load only when a model or image is opened.
It never imports tensorflow, keras, train or export.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["ImageClassifier", "Prediction", "ClassifierOptions", "Manifest"]

if TYPE_CHECKING:
    from .classifier import ImageClassifier, Prediction
    from .manifest import Manifest
    from .options import ClassifierOptions

_LAZY = {"ImageClassifier": "classifier", "Prediction": "classifier", "ClassifierOptions": "options", "Manifest": "manifest"}


def __getattr__(name: str) -> Any:
    # Lazy: `import edgedeploy.runtime` stays cheap (a CLI's --help, a cold start on a Pi).
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
