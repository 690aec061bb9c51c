"""What LiteRT and the legacy tflite-runtime share: the same Interpreter API."""
from __future__ import annotations

import contextlib
import os
import sys
from typing import TYPE_CHECKING, Any, Iterator

from edgedeploy.core.errors import ModelError

from .base import Backend, TensorInfo

if TYPE_CHECKING:
    import numpy as np

SUPPORTED_DTYPES = ("float32", "float16", "uint8", "int8", "int16")  # np.dtype names
# Lines the TFLite runtime prints on every load: noise for a CLI user.
_NOISE = ("INFO: Created TensorFlow Lite XNNPACK delegate", "INFO: Initialized TensorFlow Lite runtime")


@contextlib.contextmanager
def native_stderr() -> Iterator[list[str]]:
    """Collect what native code prints on file descriptor 2 inside the block.

    Yields a list that holds the captured lines once the block ends. Used while
    loading a model so LiteRT's "Created XNNPACK delegate" line does not reach
    the user, while its real error lines can go into our one-line error.
    """
    lines: list[str] = []
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no fd 2 (embedded interpreter): capture nothing
        yield lines
        return
    try:  # an anonymous in-memory file (Linux); tempfile costs ~20 ms of imports on a cold start
        sink = os.fdopen(os.memfd_create("edgedeploy-stderr"), "w+b")
    except (AttributeError, OSError):
        import tempfile

        sink = tempfile.TemporaryFile()
    with sink as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield lines
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            lines.extend(tmp.read().decode("utf-8", "replace").splitlines())


def replay(lines: list[str]) -> None:
    """Print captured native lines on stderr, minus the known noise."""
    keep = [ln for ln in lines if ln.strip() and not ln.startswith(_NOISE)]
    if keep:
        sys.stderr.write("\n".join(keep) + "\n")


def _info(d: dict[str, Any]) -> TensorInfo:
    shape = tuple(int(s) for s in d.get("shape_signature", d["shape"]))
    scale, zp = d.get("quantization", (0.0, 0))
    return TensorInfo(d["name"], shape, d["dtype"], float(scale), int(zp))


class TFLiteBackend(Backend):
    format = "tflite"

    def _interpreter_class(self) -> Any:
        raise NotImplementedError

    def _resolver_kwargs(self) -> dict[str, Any]:
        return {}

    def _open(self) -> None:
        Interpreter = self._interpreter_class()
        kwargs = self._resolver_kwargs()
        failure = None
        with native_stderr() as lines:
            try:
                self._it = Interpreter(model_path=str(self.path), num_threads=self.threads, **kwargs)
                self._it.allocate_tensors()
            except (ValueError, RuntimeError) as exc:
                failure = exc
        if failure is not None:
            said = [ln.strip() for ln in lines if "ERROR" in ln or "error" in ln] + str(failure).strip().splitlines()
            raise ModelError(f"{self.name} could not load {self.path}: {said[0] if said else type(failure).__name__}") from None
        replay(lines)
        try:  # names come from the file: a damaged one can fail to decode
            ins, outs = self._it.get_input_details(), self._it.get_output_details()
        except (UnicodeDecodeError, ValueError, RuntimeError) as exc:
            raise ModelError(f"{self.name} could not read the inputs/outputs of {self.path}: {exc}") from None
        if len(ins) != 1 or len(outs) != 1:
            raise ModelError(f"expected a model with one input and one output, got {len(ins)} and {len(outs)}: {self.path}")
        self.input, self.output = _info(ins[0]), _info(outs[0])
        for role, info in (("input", self.input), ("output", self.output)):
            if info.dtype.name not in SUPPORTED_DTYPES:
                raise ModelError(f"unsupported {role} type {info.dtype} (expected float32, float16, uint8, int8 or int16): {self.path}")
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
        it = self._it
        try:
            if n != self._batch:
                if not self.dynamic_batch:
                    raise ModelError(f"model takes batches of {self._batch}, got {n}")
                it.resize_tensor_input(self._in_index, list(batch.shape), strict=True)
                it.allocate_tensors()
                self._batch = n
            it.set_tensor(self._in_index, batch)
            it.invoke()
            return it.get_tensor(self._out_index)  # GetTensor returns a copy already
        except (ValueError, RuntimeError) as exc:  # a kernel refused the model's own tensors
            msg = " ".join(str(exc).split()) or type(exc).__name__
            raise ModelError(f"{self.name} failed to run {self.path.name} on input {tuple(batch.shape)}: {msg[:300]}") from None
