"""LiteRT (``ai-edge-litert``): the current runtime and the default for .tflite."""
from __future__ import annotations

import importlib.util
from typing import Any

from ._tflite_common import TFLiteBackend
from .base import BACKENDS


@BACKENDS.register("litert")
class LiteRTBackend(TFLiteBackend):
    name = "litert"
    runtime_module = "ai_edge_litert.interpreter"
    install_hint = "pip install ai-edge-litert"
    priority = 10

    @classmethod
    def available(cls) -> bool:
        return importlib.util.find_spec("ai_edge_litert") is not None

    def _interpreter_class(self) -> Any:
        from ai_edge_litert.interpreter import Interpreter

        return Interpreter

    def _resolver_kwargs(self) -> dict[str, Any]:
        from ai_edge_litert.interpreter import OpResolverType

        # AUTO applies the XNNPACK delegate by default; the other resolver turns it off.
        kind = OpResolverType.AUTO if self.xnnpack else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        return {"experimental_op_resolver_type": kind}
