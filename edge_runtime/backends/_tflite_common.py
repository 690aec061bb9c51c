"""What LiteRT and the legacy tflite-runtime share: the same Interpreter API."""
from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import ModelError
from .base import Backend, TensorInfo
from .tflite_check import read_tflite_metadata


def _info(d: dict[str, Any]) -> TensorInfo:
    shape = tuple(int(s) for s in d.get("shape_signature", d["shape"]))
    scale, zp = d.get("quantization", (0.0, 0))
    return TensorInfo(d["name"], shape, np.dtype(d["dtype"]), float(scale), int(zp))


class TFLiteBackend(Backend):
    suffixes = (".tflite",)

    def _interpreter_class(self) -> Any:
        raise NotImplementedError

    def _resolver_kwargs(self) -> dict[str, Any]:
        return {}

    def _open(self) -> None:
        Interpreter = self._interpreter_class()
        try:
            self._it = Interpreter(model_path=str(self.path), num_threads=self.threads, **self._resolver_kwargs())
            self._it.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise ModelError(f"{self.name} could not load {self.path}: {str(exc).strip().splitlines()[0] if str(exc).strip() else exc}") from None
        ins, outs = self._it.get_input_details(), self._it.get_output_details()
        if len(ins) != 1 or len(outs) != 1:
            raise ModelError(f"expected a model with one input and one output, got {len(ins)} and {len(outs)}: {self.path}")
        self.input, self.output = _info(ins[0]), _info(outs[0])
        self._in_index, self._out_index = ins[0]["index"], outs[0]["index"]
        self._batch = int(ins[0]["shape"][0])

    @property
    def delegate_applied(self) -> bool | None:
        try:  # the delegate shows up as an extra node in the execution plan
            return any(op["op_name"] == "DELEGATE" for op in self._it._get_ops_details())
        except Exception:  # a private API: if it moves, say "unknown" rather than guess
            return None

    def _run(self, batch: np.ndarray) -> np.ndarray:
        n = batch.shape[0]
        if n != self._batch:
            if not self.dynamic_batch:
                raise ModelError(f"model takes batches of {self._batch}, got {n}")
            self._it.resize_tensor_input(self._in_index, list(batch.shape), strict=True)
            self._it.allocate_tensors()
            self._batch = n
        self._it.set_tensor(self._in_index, batch)
        self._it.invoke()
        return self._it.get_tensor(self._out_index).copy()

    def embedded_metadata(self) -> dict[str, str]:
        raw = read_tflite_metadata(self.path.read_bytes())
        return {k: v.decode("utf-8", "replace") for k, v in raw.items()}
