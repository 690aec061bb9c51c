"""edgedeploy: train an image classifier, export it to quantized TFLite and ONNX, prove
each export answers like the trained model, and run it on a Raspberry Pi without TensorFlow.

The public Python API is the device runtime's::

    from edgedeploy import ImageClassifier
    clf = ImageClassifier("model_int8.tflite")
    clf.predict("cat.jpg").label

One import name holds the whole project:

- ``edgedeploy.core``: the kernel every layer uses (errors, registry, atomic io,
  the command runner, environment, timing, progress, classification metrics);
- ``edgedeploy.runtime`` (the ``edge_runtime/`` folder): the TF-free device runtime;
- ``edgedeploy.train`` (``train/``), ``edgedeploy.export`` (``export/``): the workstation side;
- ``edgedeploy.bench`` (``benchmarks/``): the benchmark scripts (``edge-bench NAME``).

Importing ``edgedeploy`` is cheap: the names below load on first use.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.2.0"
__all__ = ["ImageClassifier", "ClassifierOptions", "Prediction", "Manifest", "EdgeDeployError", "__version__"]

if TYPE_CHECKING:
    from .core.errors import EdgeDeployError
    from .runtime.classifier import ImageClassifier, Prediction
    from .runtime.manifest import Manifest
    from .runtime.options import ClassifierOptions

_LAZY = {"ImageClassifier": "edgedeploy.runtime.classifier", "Prediction": "edgedeploy.runtime.classifier",
         "ClassifierOptions": "edgedeploy.runtime.options", "Manifest": "edgedeploy.runtime.manifest",
         "EdgeDeployError": "edgedeploy.core.errors"}


def _map_source_tree() -> None:
    """In a source checkout, find ``edgedeploy.runtime`` & co. in the user's top-level folders.

    The wheel and an editable install lay the subpackages out under ``edgedeploy/`` (pyproject's
    package-dir). A checkout that is merely on ``sys.path`` (``PYTHONPATH=checkout``, or
    ``python -m ...`` run from the checkout's root, which puts this folder ahead of any install)
    has them in ``edge_runtime/``, ``train/``, ``export/`` and ``benchmarks/`` instead; this finder
    maps the four names there, so both ways import the same code. It does nothing in an install.
    """
    import importlib.util
    import sys
    from pathlib import Path

    here = Path(__file__).resolve().parent
    folders = {"runtime": "edge_runtime", "train": "train", "export": "export", "bench": "benchmarks"}
    if (here / "runtime").is_dir() or not (here.parent / "edge_runtime" / "__init__.py").is_file():
        return

    class SourceTreeFinder:
        @staticmethod
        def find_spec(fullname: str, path: Any = None, target: Any = None) -> Any:
            prefix, _, sub = fullname.partition(".")
            if prefix != __name__ or sub not in folders:
                return None
            folder = here.parent / folders[sub]
            return importlib.util.spec_from_file_location(fullname, folder / "__init__.py",
                                                          submodule_search_locations=[str(folder)])

    if not any(getattr(f, "__qualname__", "") == "SourceTreeFinder" for f in sys.meta_path):
        sys.meta_path.insert(0, SourceTreeFinder)  # type: ignore[arg-type]


_map_source_tree()


def __getattr__(name: str) -> Any:
    # Lazy, so `import edgedeploy` stays cheap (a command's --help, a cold start on a Pi).
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'edgedeploy' has no attribute {name!r}")
