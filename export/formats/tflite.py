"""TFLite export (LiteRT), every quantize mode the converter offers.

Keras 3 path: ``TFLiteConverter.from_keras_model``; when it fails (as it
does on some TF >= 2.16 / Keras 3 models, tensorflow#63867) the model is
exported as a SavedModel (``model.export(dir, format="tf_saved_model")``) and
converted with ``from_saved_model``. The report records which path ran.

``--keep-float`` (int8/int16x8): the model is calibrated once, then quantized
with the named nodes left in float (the MLIR quantizer's node denylist,
which is what ``tf.lite.experimental.QuantizationDebugger`` uses).
"""
from __future__ import annotations

import tempfile
from typing import TYPE_CHECKING, Any, Callable

from .base import FORMATS, ConversionError, ConvertContext, Converted, ExportFormat, match_nodes

if TYPE_CHECKING:
    from edgedeploy.runtime.manifest import Manifest


def from_keras_model(model: Any) -> Any:
    """``TFLiteConverter.from_keras_model`` (the first conversion path)."""
    import tensorflow as tf

    return tf.lite.TFLiteConverter.from_keras_model(model)


def from_saved_model(model: Any, workdir: Any) -> tuple[Any, Any]:
    """The SavedModel fallback: (converter, the temporary directory to clean up)."""
    import tensorflow as tf

    tmp = tempfile.TemporaryDirectory(dir=workdir, prefix="saved_model_")
    model.export(tmp.name, format="tf_saved_model")
    return tf.lite.TFLiteConverter.from_saved_model(tmp.name), tmp


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0][:200]}" if text else type(exc).__name__


@FORMATS.register("tflite")
class TFLiteFormat(ExportFormat):
    name = "tflite"
    order = 10
    modes = {
        "none": "float32",
        "float16": "float16 weights (half the size, float32 compute on most CPUs)",
        "dynamic": "dynamic-range: int8 weights, float activations",
        "int8": "full-integer int8, calibrated; --io picks the input/output type (default uint8)",
        "int16x8": "EXPERIMENTAL: 16-bit activations, 8-bit weights, calibrated; float32 I/O",
    }
    calibrated = ("int8", "int16x8")
    keep_float_modes = ("int8", "int16x8")
    io_modes = ("int8",)
    diagnosed_modes = ("int8",)
    diagnosis_tool = "TFLite's QuantizationDebugger"

    # -- hooks ------------------------------------------------------------------
    def expected_input_dtype(self, ctx: ConvertContext, mode: str) -> str | None:
        return ctx.io if mode in self.io_modes else None

    def finish(self, data: bytes, manifest: "Manifest") -> tuple[bytes, list[str]]:
        """Add the standard TFLite metadata (normalization, labels.txt) that MediaPipe and Android read."""
        from ._tflite_metadata import add, unsupported_reason

        why = unsupported_reason(manifest)
        if why:
            return data, [f"no standard TFLite metadata (MediaPipe, Android): {why}"]
        return add(data, manifest), []

    def diagnose(self, ctx: ConvertContext, mode: str) -> list[dict[str, Any]] | None:
        from ._tflite_debug import worst_layers

        return worst_layers(ctx, self) if mode in self.diagnosed_modes else None

    # -- conversion -------------------------------------------------------------
    @staticmethod
    def new_converter(ctx: ConvertContext) -> tuple[Any, Any]:
        """A TFLiteConverter of ``ctx.model``: ``from_keras_model``, else via a SavedModel; (converter, temp folder or None)."""
        try:
            return from_keras_model(ctx.model), None
        except Exception:  # Keras 3 models the direct path cannot take
            return from_saved_model(ctx.model, ctx.workdir)

    def configure(self, converter: Any, ctx: ConvertContext, mode: str) -> None:
        """Set ``converter`` up for ``mode`` (optimizations, representative data, I/O types)."""
        import tensorflow as tf

        if mode == "none":
            return
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        if mode == "float16":
            converter.target_spec.supported_types = [tf.float16]
        elif mode in self.calibrated:
            calib = ctx.calibration()
            converter.representative_dataset = calib.tflite_dataset
            if mode == "int8":
                converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
                io = {"uint8": tf.uint8, "int8": tf.int8, "float32": tf.float32}[ctx.io]
                converter.inference_input_type = io
                converter.inference_output_type = io
            else:
                converter.target_spec.supported_ops = [tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8]

    def _with_fallback(self, ctx: ConvertContext, run: Callable[[Any], bytes]) -> tuple[bytes, str]:
        """Run ``run(converter)`` on from_keras_model, else on the SavedModel path."""
        try:
            return run(from_keras_model(ctx.model)), "from_keras_model"
        except Exception as first:  # any converter failure: try the documented Keras 3 workaround
            reason = _first_line(first)
        tmp = None
        try:
            converter, tmp = from_saved_model(ctx.model, ctx.workdir)
            return run(converter), f"saved_model (from_keras_model failed: {reason})"
        except Exception as second:
            raise ConversionError(
                f"TFLite conversion failed: from_keras_model ({reason}), then SavedModel ({_first_line(second)})"
            ) from second
        finally:
            if tmp is not None:
                tmp.cleanup()

    def convert(self, ctx: ConvertContext, mode: str) -> Converted:
        self.check_mode(mode)
        if ctx.keep_float and mode in self.keep_float_modes:
            return self._convert_keep_float(ctx, mode)

        def run(converter: Any) -> bytes:
            self.configure(converter, ctx, mode)
            return bytes(converter.convert())

        data, path = self._with_fallback(ctx, run)
        return Converted(data=data, converter=path)

    def _convert_keep_float(self, ctx: ConvertContext, mode: str) -> Converted:
        """Calibrate once, then quantize with the matching nodes denylisted (left in float)."""
        import tensorflow as tf
        from tensorflow.lite.python import convert as tfl_convert
        from tensorflow.lite.python import util as tfl_util

        def calibrate(converter: Any) -> bytes:
            self.configure(converter, ctx, mode)
            converter.experimental_mlir_quantizer = True
            converter._experimental_calibrate_only = True  # noqa: SLF001 (the debugger's own route)
            return bytes(converter.convert())

        calibrated, path = self._with_fallback(ctx, calibrate)
        names = tensor_names(calibrated)
        matched = match_nodes(ctx.keep_float, names, ctx.layer_scopes)
        nodes = sorted({n for hits in matched.values() for n in hits})
        unmatched = [pat for pat, hits in matched.items() if not hits]
        notes = [f"--keep-float {pat!r} matched no TFLite node" for pat in unmatched]
        int16 = mode == "int16x8"
        quantized = tfl_convert.mlir_quantize(
            calibrated,
            fully_quantize=False,
            inference_type=tfl_convert._types_pb2.QUANTIZED_INT16 if int16 else tfl_convert._types_pb2.QUANTIZED_INT8,  # noqa: SLF001
            denylisted_nodes=nodes,
        )
        if mode == "int8" and ctx.io != "float32":
            io = {"uint8": tf.uint8, "int8": tf.int8}[ctx.io]
            quantized = tfl_util.modify_model_io_type(quantized, io, io)
        return Converted(data=bytes(quantized), converter=path + " + keep-float denylist", kept_float=nodes, notes=notes,
                         keep_float_unmatched=unmatched)


def tensor_names(data: bytes) -> list[str]:
    """Names of the tensors of a .tflite model (node outputs carry the op's name)."""
    from ai_edge_litert.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(data))
    out = []
    for sg in model.subgraphs:
        for t in sg.tensors:
            name = t.name.decode("utf-8", "replace") if isinstance(t.name, bytes) else str(t.name)
            out.append(name)
    return out
