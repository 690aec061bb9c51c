"""The legacy ``tflite-runtime`` 2.14, still on many Pis (and the 32-bit route).

Its wheels were built against numpy 1.x: under numpy 2 the import fails or
crashes, so we check first and say what to install.
"""
from __future__ import annotations

import importlib.util
from typing import Any

from edgedeploy.core.errors import BackendError

from ._tflite_common import TFLiteBackend
from .base import BACKENDS


@BACKENDS.register("tflite-runtime")
class TFLiteRuntimeBackend(TFLiteBackend):
    name = "tflite-runtime"
    runtime_module = "tflite_runtime.interpreter"
    install_hint = 'pip install "tflite-runtime==2.14.*" "numpy<2"'
    priority = 20

    @classmethod
    def available(cls) -> bool:
        return importlib.util.find_spec("tflite_runtime") is not None

    def _interpreter_class(self) -> Any:
        import numpy as np

        if int(np.__version__.split(".")[0]) >= 2:
            raise BackendError(f"tflite-runtime 2.14 needs numpy<2, found numpy {np.__version__}: {self.install_hint}, or use --backend litert")
        from tflite_runtime.interpreter import Interpreter

        return Interpreter

    def _resolver_kwargs(self) -> dict[str, Any]:
        from tflite_runtime.interpreter import OpResolverType

        kind = OpResolverType.AUTO if self.xnnpack else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        return {"experimental_op_resolver_type": kind}
