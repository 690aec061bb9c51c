"""The backend interface every runtime implements."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from edgedeploy.core.environment import default_threads  # noqa: F401  (the one thread default, re-exported here)
from edgedeploy.core.errors import EdgeDeployError, ModelError
from edgedeploy.core.registry import Registry

if TYPE_CHECKING:
    import numpy as np

    from ..formats import ModelFormat

# Every public module of this package is imported on the first lookup (a new
# backend is one new file); plug-ins outside the project are named in
# EDGEDEPLOY_BACKENDS (comma-separated modules) or loaded with
# BACKENDS.load_plugin("module").
PLUGIN_ENV = "EDGEDEPLOY_BACKENDS"


def _listing_order(cls: type["Backend"]) -> tuple[int, int]:
    """Backends are listed by the format they read (TFLite first), then in --backend auto's preference."""
    from ..formats import FORMATS

    return (FORMATS.get(cls.format).order if cls.format in FORMATS else 1000, cls.priority)


BACKENDS: Registry[type["Backend"]] = Registry("backend", package=__package__, plugin_env=PLUGIN_ENV,
                                               order=_listing_order)


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
        import numpy as np  # lazy: importing the backends (the CLI's --help) must not load numpy

        self.dtype = np.dtype(self.dtype)
        self.quantized = bool(self.scale != 0.0 and np.issubdtype(self.dtype, np.integer))


class Backend:
    """Open a model file and run batches of model-ready input on it.

    Subclasses set the class attributes and implement ``_open`` and ``_run``.
    Inputs handed to ``run`` are already in the model's input dtype
    (quantized by the classifier when the model takes integers).
    """

    name: ClassVar[str] = ""
    format: ClassVar[str] = ""  # the edge_runtime.formats name of the files it reads ("tflite")
    runtime_module: ClassVar[str] = ""  # what opening a model imports (benchmarks time it apart)
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
        self._setup(model_path, threads, xnnpack)
        self.model_format().verify(self.path)  # before any native code sees the file
        from .probe import probe_model

        self.probed = probe_model(self.path, self.name, self.threads, self.xnnpack, probe)
        self._open()

    def _setup(self, model_path: str | os.PathLike, threads: int | None, xnnpack: bool) -> None:
        if threads is not None and (not isinstance(threads, int) or isinstance(threads, bool) or threads < 1):
            raise EdgeDeployError(f"Received threads={threads!r}, expected an integer >= 1")
        self.path = Path(model_path)
        self.threads = threads or default_threads()
        self.xnnpack = xnnpack
        self.input: TensorInfo
        self.output: TensorInfo

    @classmethod
    def open_unchecked(cls, model_path: str | os.PathLike, threads: int = 1, xnnpack: bool = True) -> "Backend":
        """Open a file with no verification and no probe: a damaged file can crash the process.

        Only for measuring what the checks protect against (the fuzz baseline).
        """
        self = cls.__new__(cls)
        self._setup(model_path, threads, xnnpack)
        self.probed = False
        self._open()
        return self

    # -- the format it reads --------------------------------------------------
    @classmethod
    def model_format(cls) -> "ModelFormat":
        from ..formats import get_format

        return get_format(cls.format)

    @classmethod
    def reads(cls, path: str | os.PathLike) -> bool:
        """True when ``path`` is a file of the format this backend reads (by its name)."""
        return cls.model_format().matches(path)

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

    @property
    def accelerator(self) -> str:
        """What really ran the model, as the runtime reports it once it is open.

        TFLite: "XNNPACK" when the delegate took part, else the built-in CPU
        kernels; backends with providers (ONNX Runtime) override this.
        """
        applied = self.delegate_applied
        if applied is None:
            return "unknown (the runtime does not say)"
        return "XNNPACK" if applied else "none (built-in CPU kernels)"

    def embedded_metadata(self) -> dict[str, str]:
        """Metadata stored in the model file (the manifest travels here), read by its format."""
        return self.model_format().read_metadata(self.path)

    # -- shared ---------------------------------------------------------------
    def run(self, batch: np.ndarray) -> np.ndarray:
        """Run a batch (N, H, W, C) and return the output (N, classes)."""
        if batch.dtype != self.input.dtype:
            raise ModelError(f"input dtype {batch.dtype} does not match the model's {self.input.dtype}")
        return self._run(batch)

    def describe(self) -> dict[str, Any]:
        import numpy as np

        return {
            "backend": self.name,
            "threads": self.threads,
            "xnnpack": self.xnnpack,
            "delegate_applied": self.delegate_applied,
            "accelerator": self.accelerator,
            "input": {"shape": list(self.input.shape), "dtype": str(np.dtype(self.input.dtype)), "scale": self.input.scale, "zero_point": self.input.zero_point},
            "output": {"shape": list(self.output.shape), "dtype": str(np.dtype(self.output.dtype)), "scale": self.output.scale, "zero_point": self.output.zero_point},
        }


# Checked before a native runtime ever sees the file: LiteRT and ONNX Runtime
# can crash the process on some malformed files, so foreign, truncated and
# damaged files are refused by the file's format (edge_runtime/formats/) with a
# one-line error; what gets past is contained by the subprocess probe (probe.py).
