"""Runtime backends, registered by name. One file per backend.

A backend opens a model file and runs already-preprocessed batches on it. It
declares the file format it reads (``format = "tflite"``, see
``edge_runtime.formats``) and the module its runtime lives in. Every public
module of this package is imported the first time a backend is looked up, so
adding a backend is adding one file; a plug-in outside the project is a module
named in ``EDGEDEPLOY_BACKENDS`` (or loaded with ``register_backend_module``).

``edge_runtime`` never falls back to full TensorFlow: when no runtime for a
file is installed, the error names the pip command that fixes it.
"""
from __future__ import annotations

from pathlib import Path

from edgedeploy.core.errors import BackendError, ModelError

from ..formats import describe_suffixes, format_for_path
from .base import BACKENDS, PLUGIN_ENV, Backend, TensorInfo

__all__ = ["BACKENDS", "PLUGIN_ENV", "Backend", "TensorInfo", "backend_for", "backend_names", "register_backend_module",
           "resolve_backend", "runtime_modules"]


def backend_names() -> list[str]:
    """Every registered backend name (plug-ins included), sorted."""
    return BACKENDS.names()


def register_backend_module(module: str) -> None:
    """Import a plug-in module that registers backends, here and in child processes.

    The module is added to ``EDGEDEPLOY_BACKENDS`` so the subprocess probe and
    the benchmark workers register it too.
    """
    BACKENDS.load_plugin(module)


def runtime_modules() -> dict[str, str]:
    """Backend name -> the module its runtime lives in (benchmarks time that import apart)."""
    return {n: BACKENDS.get(n).runtime_module for n in BACKENDS.names() if BACKENDS.get(n).runtime_module}


def resolve_backend(model_path: str | Path, name: str = "auto") -> type[Backend]:
    """Pick the backend class for a model file.

    Args:
        model_path: the model file; its format decides with ``name="auto"``.
        name: a registered backend name, or "auto" for the first installed
            backend (in preference order) that reads this file's format.

    Returns:
        The backend class.

    Raises:
        ModelError: missing file, a directory, or an unknown file type.
        BackendError: unknown name, wrong file type, or nothing installed.
    """


    path = Path(model_path)
    if not path.exists():
        raise ModelError(f"model file not found: {path}")
    if path.is_dir():
        raise ModelError(f"expected a model file ({describe_suffixes()}), got a directory: {path}")
    if name != "auto":
        cls = BACKENDS.get(name)
        if not cls.reads(path):
            raise BackendError(f"backend {name!r} reads {cls.model_format().suffix} files, got {path.name!r}")
        if not cls.available():
            raise BackendError(f"backend {name!r} is not installed: {cls.install_hint}")
        return cls
    fmt = format_for_path(path)
    readers = sorted((c for c in map(BACKENDS.get, BACKENDS.names()) if c.format == fmt.name), key=lambda c: (c.priority, c.name))
    if not readers:
        raise BackendError(f"no backend reads {fmt.display_name} ({fmt.suffix}) files: {path}")
    for cls in readers:
        if cls.available():
            return cls
    raise BackendError(f"no runtime installed for {fmt.suffix} models: {readers[0].install_hint}")


def backend_for(model_path: str | Path, name: str = "auto", threads: int | None = None, **kwargs) -> Backend:
    """Open ``model_path`` with the chosen backend."""
    return resolve_backend(model_path, name)(model_path, threads=threads, **kwargs)
