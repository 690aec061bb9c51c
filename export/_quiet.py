"""Keep TensorFlow, the converters and tf2onnx from flooding the terminal.

The converters print from C++ (MLIR diagnostics, absl logs) straight to file
descriptors 1 and 2, from Python (``print`` in ``model.export``) and through
``warnings`` and ``logging``. ``captured()`` swallows all of it while a
conversion runs and keeps the text, so an error can show it and ``--debug``
can skip the capture altogether.
"""
from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
import tempfile
import warnings
from typing import Iterator


def quiet_tensorflow() -> None:
    """Call before TensorFlow is imported: C++ INFO/WARNING logs off."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("ABSL_MIN_LOG_LEVEL", "2")


def quiet_loggers() -> None:
    """Python-side loggers of TF, tf2onnx and ONNX Runtime's quantizer: errors only."""
    for name in ("tensorflow", "tf2onnx", "absl", "onnxruntime", "root"):
        logging.getLogger(None if name == "root" else name).setLevel(logging.ERROR)


class Captured:
    def __init__(self) -> None:
        self.text = ""

    def tail(self, lines: int = 20) -> str:
        return "\n".join(self.text.strip().splitlines()[-lines:])


@contextlib.contextmanager
def captured(enabled: bool = True) -> Iterator[Captured]:
    """Redirect fds 1/2, sys.stdout/err, warnings and logging into a buffer."""
    cap = Captured()
    if not enabled:
        yield cap
        return
    sys.stdout.flush()
    sys.stderr.flush()
    saved = []
    with tempfile.TemporaryFile(mode="w+b") as sink, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        py_buf = io.StringIO()
        try:
            for fd in (1, 2):
                try:
                    saved.append((fd, os.dup(fd)))
                    os.dup2(sink.fileno(), fd)
                except OSError:  # no such fd (embedded interpreters): Python-level capture only
                    pass
            with contextlib.redirect_stdout(py_buf), contextlib.redirect_stderr(py_buf):
                yield cap
        finally:
            with contextlib.suppress(Exception):
                sys.stdout.flush()
                sys.stderr.flush()
            for fd, dup in saved:
                os.dup2(dup, fd)
                os.close(dup)
            sink.seek(0)
            cap.text = sink.read().decode("utf-8", "replace") + py_buf.getvalue()
