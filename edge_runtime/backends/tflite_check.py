"""Compatibility: the TFLite checks moved to ``edge_runtime.formats`` (the TFLite format).

Kept so callers of the first version keep working; new code asks
``edge_runtime.formats.get_format("tflite")`` (``verify``, ``read_metadata``).
"""
from __future__ import annotations

from pathlib import Path

from ..formats.tflite import FILE_IDENTIFIER, read_tflite_metadata, verify_tflite_bytes

__all__ = ["FILE_IDENTIFIER", "read_tflite_metadata", "verify_tflite", "verify_tflite_bytes"]


def verify_tflite(path: Path) -> None:
    """Raise ModelError unless ``path`` is a sound TFLite file."""
    from ..formats import get_format

    get_format("tflite").verify(path)
