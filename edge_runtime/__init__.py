"""edge_runtime: the TF-free core of edgedeploy.

Everything a Raspberry Pi needs to run an exported classifier: the model
manifest, preprocessing identical to training, runtime backends (LiteRT,
tflite-runtime, ONNX Runtime) and ``ImageClassifier``. It imports numpy at
most; Pillow and the runtimes load only when a model or image is opened.
It never imports tensorflow, keras, train or export.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["ImageClassifier", "Prediction", "ClassifierOptions", "Manifest", "EdgeDeployError", "__version__"]

if TYPE_CHECKING:
    from .classifier import ImageClassifier, Prediction
    from .errors import EdgeDeployError
    from .manifest import Manifest
    from .options import ClassifierOptions


def __getattr__(name: str) -> Any:
    # Lazy: `import edge_runtime` stays cheap (a CLI's --help, a cold start on a Pi).
    if name in ("ImageClassifier", "Prediction"):
        from . import classifier

        return getattr(classifier, name)
    if name == "ClassifierOptions":
        from .options import ClassifierOptions

        return ClassifierOptions
    if name == "Manifest":
        from .manifest import Manifest

        return Manifest
    if name == "EdgeDeployError":
        from .errors import EdgeDeployError

        return EdgeDeployError
    raise AttributeError(f"module 'edge_runtime' has no attribute {name!r}")
