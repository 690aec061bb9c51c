"""Source readers, one file per kind: what ``export-model SOURCE`` can read.

``run`` (a train-model run folder or .keras), ``h5`` (Keras 2), ``saved_model``, ``onnx`` (NCHW or
NHWC float32) and ``tflite`` (float32). ``open_source(opts)`` asks each kind, in order, whether it
claims the path; a new kind is one new module here with a ``Source`` subclass registered in
``SOURCES`` (``base.py`` says what it implements). Importing this package is cheap: the readers
import TensorFlow, onnx and the runtimes only when they open a model.
"""
from __future__ import annotations

from .base import SOURCES, Source, claiming_kind, default_output, describe_kinds, open_source

__all__ = ["SOURCES", "Source", "claiming_kind", "default_output", "describe_kinds", "open_source"]
