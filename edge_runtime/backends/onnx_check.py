"""Compatibility: the ONNX checks moved to ``edge_runtime.formats`` (the ONNX format).

Kept so callers of the first version keep working; new code asks
``edge_runtime.formats.get_format("onnx")`` (``verify``, ``read_metadata``).
"""
from __future__ import annotations

from pathlib import Path

from ..formats.onnx import walk_fields

__all__ = ["read_onnx_metadata", "verify_onnx", "walk_fields"]


def verify_onnx(path: Path) -> None:
    """Raise ModelError unless ``path`` parses as an ONNX ModelProto with a graph."""
    from ..formats import get_format

    get_format("onnx").verify(path)


def read_onnx_metadata(path: Path) -> dict[str, str]:
    """metadata_props of an ONNX file as a dict (ModelError if damaged)."""
    from ..formats import get_format

    return get_format("onnx").read_metadata(path)
