"""ONNX Runtime, for .onnx files (CPU execution provider)."""
from __future__ import annotations

import importlib.util
from typing import TYPE_CHECKING

from edgedeploy.core.errors import ModelError

from .base import BACKENDS, Backend, TensorInfo

if TYPE_CHECKING:
    import numpy as np

_ORT_TYPES = {"tensor(float)": "float32", "tensor(float16)": "float16", "tensor(uint8)": "uint8", "tensor(int8)": "int8"}


def _info(arg) -> TensorInfo:
    if arg.type not in _ORT_TYPES:
        raise ModelError(f"unsupported ONNX tensor type {arg.type} for {arg.name}")
    shape = tuple(d if isinstance(d, int) and d > 0 else -1 for d in arg.shape)
    return TensorInfo(arg.name, shape, _ORT_TYPES[arg.type])


@BACKENDS.register("onnxruntime")
class OnnxRuntimeBackend(Backend):
    name = "onnxruntime"
    format = "onnx"
    runtime_module = "onnxruntime"
    install_hint = "pip install onnxruntime"
    priority = 10

    @classmethod
    def available(cls) -> bool:
        return importlib.util.find_spec("onnxruntime") is not None

    def _open(self) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = self.threads
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3  # errors only; warnings about unused initialisers are noise
        try:
            self._sess = ort.InferenceSession(str(self.path), sess_options=opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph/... classes
            msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelError(f"onnxruntime could not load {self.path}: {msg}") from None
        try:  # names and types come from the file: a damaged one can fail to decode
            ins, outs = self._sess.get_inputs(), self._sess.get_outputs()
            if len(ins) != 1 or len(outs) != 1:
                raise ModelError(f"expected a model with one input and one output, got {len(ins)} and {len(outs)}: {self.path}")
            self.input, self.output = _info(ins[0]), _info(outs[0])
        except (UnicodeDecodeError, ValueError, RuntimeError) as exc:
            raise ModelError(f"onnxruntime could not read the inputs/outputs of {self.path}: {exc}") from None

    def _run(self, batch: np.ndarray) -> np.ndarray:
        try:
            return self._sess.run([self.output.name], {self.input.name: batch})[0]
        except Exception as exc:  # onnxruntime's own Fail/InvalidArgument/RuntimeException classes
            msg = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise ModelError(f"onnxruntime failed to run {self.path.name} on input {tuple(batch.shape)}: {msg[:300]}") from None

    @property
    def providers(self) -> list[str]:
        """The execution providers the session really uses, in priority order."""
        return list(self._sess.get_providers())

    @property
    def accelerator(self) -> str:
        return ", ".join(self.providers)

    def describe(self) -> dict:
        d = super().describe()
        # XNNPACK is a TFLite delegate here: ONNX Runtime used it only if its own
        # XNNPACK execution provider is in the session (never requested today).
        d["xnnpack"] = "XnnpackExecutionProvider" in self.providers
        d["providers"] = self.providers
        return d
