"""Runtime backends, registered by name. One file per backend.

A backend opens a model file and runs already-preprocessed batches on it.
``edge_runtime`` never falls back to full TensorFlow: when no runtime for a
file is installed, the error names the pip command that fixes it.
"""
from __future__ import annotations

from pathlib import Path

from ..errors import BackendError, ModelError
from .base import BACKENDS, Backend, TensorInfo

# Importing these modules registers them; each defers its runtime import
# until a model is actually opened.
from . import litert, onnxruntime, tflite_runtime  # noqa: E402,F401

__all__ = ["BACKENDS", "Backend", "TensorInfo", "backend_for", "resolve_backend"]


def resolve_backend(model_path: str | Path, name: str = "auto") -> type[Backend]:
    """Pick the backend class for a model file.

    Args:
        model_path: the model file; its suffix decides with ``name="auto"``.
        name: a registered backend name, or "auto" for the first installed
            backend (in preference order) that reads this file type.

    Returns:
        The backend class.

    Raises:
        BackendError: unknown name, wrong file type, or nothing installed.
    """
    path = Path(model_path)
    if not path.exists():
        raise ModelError(f"model file not found: {path}")
    if path.is_dir():
        raise ModelError(f"expected a model file (.tflite or .onnx), got a directory: {path}")
    suffix = path.suffix.lower()
    if name != "auto":
        cls = BACKENDS.get(name)
        if suffix not in cls.suffixes:
            raise BackendError(f"backend {name!r} reads {', '.join(cls.suffixes)} files, got {Path(model_path).name!r}")
        if not cls.available():
            raise BackendError(f"backend {name!r} is not installed: {cls.install_hint}")
        return cls
    candidates = sorted((BACKENDS.get(n) for n in BACKENDS.names()), key=lambda c: c.priority)
    readers = [c for c in candidates if suffix in c.suffixes]
    if not readers:
        known = sorted({s for c in candidates for s in c.suffixes})
        raise BackendError(f"unsupported model file type {suffix or '(none)'!r} for {model_path}; expected one of {', '.join(known)}")
    for cls in readers:
        if cls.available():
            return cls
    raise BackendError(f"no runtime installed for {suffix} models: {readers[0].install_hint}")


def backend_for(model_path: str | Path, name: str = "auto", threads: int | None = None, **kwargs) -> Backend:
    """Open ``model_path`` with the chosen backend."""
    return resolve_backend(model_path, name)(model_path, threads=threads, **kwargs)
