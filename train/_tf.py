"""Import TensorFlow and Keras once, quietly.

TF prints C++ log lines (CUDA probing, absl warnings) on import and on first
device use. ``import_tf()`` sets ``TF_CPP_MIN_LOG_LEVEL=2`` before the import
and, unless ``EDGEDEPLOY_DEBUG`` is set, sends file descriptor 2 to /dev/null
while TF initialises its devices, so a CLI user sees only our own output.
"""
from __future__ import annotations

import contextlib
import logging
import os
import sys
from typing import Any, Iterator

_QUIET = {"done": False}


@contextlib.contextmanager
def _stderr_silenced() -> Iterator[None]:
    if os.environ.get("EDGEDEPLOY_DEBUG"):
        yield
        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real fd 2 (embedded interpreters)
        yield
        return
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)


def import_tf() -> Any:
    """Return the ``tensorflow`` module, imported with its log spam silenced."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if not _QUIET["done"]:
        with _stderr_silenced():
            import tensorflow as tf

            tf.config.list_physical_devices()  # device probing prints here
        tf.get_logger().setLevel(logging.ERROR)
        with contextlib.suppress(Exception):
            import absl.logging

            absl.logging.set_verbosity(absl.logging.ERROR)
        _QUIET["done"] = True
    import tensorflow as tf

    return tf


def import_keras() -> Any:
    import_tf()
    import keras

    return keras
