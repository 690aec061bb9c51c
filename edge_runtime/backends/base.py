"""The backend interface every runtime implements."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ..environment import default_threads  # noqa: F401  (the one thread default, re-exported here)
from ..errors import EdgeDeployError, ModelError
from ..registry import Registry

BACKENDS: Registry[type["Backend"]] = Registry("backend")


@dataclass
class TensorInfo:
    """Shape, dtype and quantization of a model input or output."""

    name: str
    shape: tuple[int, ...]  # -1 (or 0) for a dynamic dimension
    dtype: np.dtype
    scale: float = 0.0  # 0.0 when the tensor is not quantized
    zero_point: int = 0
    quantized: bool = field(init=False)  # computed once: it sits on the per-inference path

    def __post_init__(self) -> None:
        self.dtype = np.dtype(self.dtype)
        self.quantized = bool(self.scale != 0.0 and np.issubdtype(self.dtype, np.integer))


class Backend:
    """Open a model file and run batches of model-ready input on it.

    Subclasses set the class attributes and implement ``_open`` and ``_run``.
    Inputs handed to ``run`` are already in the model's input dtype
    (quantized by the classifier when the model takes integers).
    """

    name: ClassVar[str] = ""
    suffixes: ClassVar[tuple[str, ...]] = ()
    install_hint: ClassVar[str] = ""
    priority: ClassVar[int] = 100  # lower wins for --backend auto

    def __init__(self, model_path: str | os.PathLike, threads: int | None = None, xnnpack: bool = True,
                 probe: str | None = None):
        """Open ``model_path``.

        Args:
            model_path: the model file.
            threads: runtime threads (default: all cores).
            xnnpack: apply the XNNPACK delegate where the runtime has it.
            probe: "auto", "always" or "never": whether to load the file in a
                throwaway process first (see ``backends/probe.py``).
        """
        if threads is not None and (not isinstance(threads, int) or isinstance(threads, bool) or threads < 1):
            raise EdgeDeployError(f"Received threads={threads!r}, expected an integer >= 1")
        self.path = Path(model_path)
        self.threads = threads or default_threads()
        self.xnnpack = xnnpack
        check_model_file(self.path, self.suffixes)
        from .probe import probe_model

        self.probed = probe_model(self.path, self.name, self.threads, self.xnnpack, probe)
        self.input: TensorInfo
        self.output: TensorInfo
        self._open()

    # -- to implement ---------------------------------------------------------
    @classmethod
    def available(cls) -> bool:
        raise NotImplementedError

    def _open(self) -> None:
        raise NotImplementedError

    def _run(self, batch: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    @property
    def dynamic_batch(self) -> bool:
        """True when the model accepts any batch size (else it is looped at 1)."""
        return self.input.shape[0] in (-1, 0)

    @property
    def delegate_applied(self) -> bool | None:
        """Whether an accelerating delegate (XNNPACK) took part; None if not applicable."""
        return None

    def embedded_metadata(self) -> dict[str, str]:
        """Metadata stored in the model file (the manifest travels here)."""
        return {}

    # -- shared ---------------------------------------------------------------
    def run(self, batch: np.ndarray) -> np.ndarray:
        """Run a batch (N, H, W, C) and return the output (N, classes)."""
        if batch.dtype != self.input.dtype:
            raise ModelError(f"input dtype {batch.dtype} does not match the model's {self.input.dtype}")
        return self._run(batch)

    def describe(self) -> dict[str, Any]:
        return {
            "backend": self.name,
            "threads": self.threads,
            "xnnpack": self.xnnpack,
            "delegate_applied": self.delegate_applied,
            "input": {"shape": list(self.input.shape), "dtype": str(np.dtype(self.input.dtype)), "scale": self.input.scale, "zero_point": self.input.zero_point},
            "output": {"shape": list(self.output.shape), "dtype": str(np.dtype(self.output.dtype)), "scale": self.output.scale, "zero_point": self.output.zero_point},
        }


# Checked before a native runtime ever sees the file: LiteRT and ONNX Runtime
# can crash the process on some malformed files, so foreign, truncated and
# damaged files are refused here with a one-line error (tflite_check.py,
# onnx_check.py); what gets past is contained by the subprocess probe (probe.py).
def check_model_file(path: Path, suffixes: tuple[str, ...]) -> None:
    if not path.exists():
        raise ModelError(f"model file not found: {path}")
    if path.is_dir():
        raise ModelError(f"expected a model file, got a directory: {path}")
    size = path.stat().st_size
    if size == 0:
        raise ModelError(f"model file is empty (0 bytes): {path}")
    suffix = path.suffix.lower()
    if suffix == ".tflite":
        from .tflite_check import verify_tflite

        verify_tflite(path)
    elif suffix == ".onnx":
        from .onnx_check import verify_onnx

        verify_onnx(path)
