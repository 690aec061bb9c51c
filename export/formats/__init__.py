"""Export formats, registered by name; one file per format.

Each format declares the quantize modes it supports; the file it writes (suffix,
verification, embedded manifest, sidecar) is the ``edge_runtime.formats`` format
of the same name. Every public module here is imported on the first registry
lookup, so a new format is one new file. Importing this package is cheap: the
converters import TensorFlow, tf2onnx and onnx only when they run.
"""
from __future__ import annotations

from .base import FORMATS, IO_TYPES, MODES, ConversionError, ConvertContext, Converted, ExportFormat, mode_tag


def format_names() -> list[str]:
    """Registered format names in their display order (tflite first)."""
    return sorted(FORMATS.names(), key=lambda n: (FORMATS.get(n).order, n))


__all__ = ["format_names", "FORMATS", "MODES", "IO_TYPES", "ExportFormat", "ConvertContext", "Converted", "ConversionError", "mode_tag"]
