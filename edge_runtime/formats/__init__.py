"""Model file formats, registered by name: one module per format (``tflite.py``, ``onnx.py``).

The only place in the project that knows a file suffix. Backends declare the
format they read; benchmarks, fuzzing and the classifier find a file's format,
its manifest and its sidecar here; export writes manifests through it.

    from edgedeploy.runtime.formats import format_for_path, read_manifest
    fmt = format_for_path("model_int8.tflite")   # -> the TFLite format
    fmt.verify(path)                             # one-line ModelError if damaged
    read_manifest(path)                          # embedded, else the sidecar, else None
    fmt.write_manifest(data, manifest)           # bytes with the manifest embedded

A new format is one new module here that subclasses ``ModelFormat`` and uses
``@register_format`` (found without being listed; plug-ins outside the project
go in ``EDGEDEPLOY_FORMATS``). Importing this package is cheap: no numpy, no
runtime.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from edgedeploy.core.errors import ModelError

from .base import FORMATS, REJECTED_SUFFIX, SIDECAR_SUFFIX, ModelFormat, register_format

if TYPE_CHECKING:
    from ..manifest import Manifest

__all__ = ["FORMATS", "ModelFormat", "REJECTED_SUFFIX", "SIDECAR_SUFFIX", "all_formats", "describe_suffixes", "format_for_path",
           "get_format", "is_model_path", "model_suffixes", "read_manifest", "register_format", "sidecar_path",
           "verify_model_file"]


def get_format(name: str) -> ModelFormat:
    """The registered format ``name`` (one-line error listing the known ones)."""
    return FORMATS.get(name)


def all_formats() -> list[ModelFormat]:
    """Every registered format, in listing order (TFLite first)."""
    return sorted((FORMATS.get(n) for n in FORMATS.names()), key=lambda f: (f.order, f.name))


def model_suffixes() -> tuple[str, ...]:
    """The model file suffixes, in listing order: ``(".tflite", ".onnx")``."""
    return tuple(f.suffix for f in all_formats())


def describe_suffixes(joiner: str = " or ") -> str:
    """The suffixes for a message: ".tflite or .onnx"."""
    return joiner.join(model_suffixes())


def find_format(path: str | os.PathLike) -> ModelFormat | None:
    """The format a file name says, or None."""
    for f in all_formats():
        if f.matches(path):
            return f
    return None


def format_for_path(path: str | os.PathLike) -> ModelFormat:
    """The format of a model file, from its name.

    Raises:
        ModelError: one line naming the file and the known suffixes.
    """
    fmt = find_format(path)
    if fmt is None:
        suffix = Path(path).suffix.lower()
        raise ModelError(f"unsupported model file type {suffix or '(none)'!r} for {path}; "
                         f"expected one of {', '.join(model_suffixes())}")
    return fmt


def is_model_path(path: str | os.PathLike) -> bool:
    """True when the file name has a model suffix (the file itself is not read)."""
    return find_format(path) is not None


def sidecar_path(path: str | os.PathLike) -> Path:
    """The sidecar export-model writes beside a model: ``model_int8.tflite`` -> ``model_int8.tflite.json``."""
    return format_for_path(path).sidecar_path(path)


def verify_model_file(path: str | os.PathLike) -> ModelFormat:
    """Verify a model file with its format's checks; returns the format."""
    p = Path(path)
    if p.is_dir():
        raise ModelError(f"expected a model file ({describe_suffixes()}), got a directory: {p}")
    fmt = format_for_path(p)
    fmt.verify(p)
    return fmt


def read_manifest(path: str | os.PathLike, strict: bool = False) -> "Manifest | None":
    """The manifest of a model file (embedded, else sidecar), without a runtime; None if absent.

    Args:
        path: the model file.
        strict: raise on a damaged metadata entry instead of trying the sidecar.
    """
    return format_for_path(path).read_manifest(path, strict=strict)
