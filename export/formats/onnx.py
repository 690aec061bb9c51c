"""ONNX export (ONNX Runtime on the device).

Keras 3 path: ``tf2onnx.convert.from_keras`` first; it still fails on some
Keras 3 models in tf2onnx 1.17 (``KeyError: 'keras_tensor_N'`` on Sequential
models, tensorflow-onnx#2448), and then the model is wrapped in a
``tf.function`` with an explicit input signature and converted with
``from_function``. The batch dimension is dynamic either way. Every file
written passes ``onnx.checker.check_model``.

Quantization is ONNX Runtime's: ``quantize_dynamic`` (int8 weights), and for
int8 ``quant_pre_process`` then ``quantize_static`` in QDQ format with
per-channel weights, calibrated by a ``CalibrationDataReader`` over the same
samples the TFLite converter gets. Weights use 7 of their 8 bits
(``reduce_range``): on x86 CPUs without VNNI, ONNX Runtime's u8s8 kernels
saturate 16-bit intermediate sums with full-range int8 weights, which cost
this project's digits CNN 0.35 in max probability difference and 1% top-1
agreement (0.07 and 100% with reduce_range). The parity gate runs on the
export machine, so the file has to be right there as well as on the Pi's ARM
cores, which never saturate. float16 is
``onnxruntime.transformers.float16.convert_float_to_float16`` with float32
inputs and outputs kept.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .base import FORMATS, ConversionError, ConvertContext, Converted, ExportFormat, match_nodes

INPUT_NAME = "image"
MIN_OPSET = 13  # per-channel QDQ (QuantizeLinear with axis) needs 13


def _signature(ctx: ConvertContext) -> tuple[Any, ...]:
    import tensorflow as tf

    m = ctx.manifest
    return (tf.TensorSpec((None, m.input_height, m.input_width, m.input_channels), tf.float32, name=INPUT_NAME),)


def _onnx_from_keras(model: Any, signature: tuple[Any, ...], opset: int) -> Any:
    import tf2onnx

    proto, _ = tf2onnx.convert.from_keras(model, input_signature=signature, opset=opset)
    return proto


def _onnx_from_function(model: Any, signature: tuple[Any, ...], opset: int) -> Any:
    import tensorflow as tf
    import tf2onnx

    fn = tf.function(lambda x: model(x, training=False), input_signature=signature)
    proto, _ = tf2onnx.convert.from_function(fn, input_signature=signature, opset=opset)
    return proto


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0][:200]}" if text else type(exc).__name__


class _Reader:
    """``CalibrationDataReader`` over the shared calibration array, one image per call."""

    def __init__(self, x: np.ndarray, input_name: str):
        self.x, self.name, self.i = x, input_name, 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self.i >= len(self.x):
            return None
        self.i += 1
        return {self.name: self.x[self.i - 1 : self.i]}

    def rewind(self) -> None:
        self.i = 0


@FORMATS.register("onnx")
class OnnxFormat(ExportFormat):
    name = "onnx"
    order = 20
    modes = {
        "none": "float32",
        "float16": "float16 weights and compute, float32 I/O",
        "dynamic": "quantize_dynamic: int8 weights, activations quantized at run time",
        "int8": "quantize_static: QDQ, per-channel int8 weights, calibrated; float32 I/O",
    }
    calibrated = ("int8",)
    keep_float_modes = ("dynamic", "int8")

    def float_model(self, ctx: ConvertContext) -> tuple[Any, str]:
        """The float32 ModelProto and the conversion path that produced it."""
        import onnx

        if "onnx_float" in ctx.cache:
            proto, path = ctx.cache["onnx_float"]
            copy = onnx.ModelProto()
            copy.CopyFrom(proto)
            return copy, path
        sig = _signature(ctx)
        try:
            proto, path = _onnx_from_keras(ctx.model, sig, ctx.opset), "tf2onnx.from_keras"
        except Exception as first:  # tf2onnx on Keras 3: KeyError keras_tensor_N and friends
            reason = _first_line(first)
            try:
                proto = _onnx_from_function(ctx.model, sig, ctx.opset)
            except Exception as second:
                raise ConversionError(
                    f"ONNX conversion failed: tf2onnx.from_keras ({reason}), then from_function ({_first_line(second)})"
                ) from second
            path = f"tf2onnx.from_function (from_keras failed: {reason})"
        _dynamic_batch(proto)
        onnx.checker.check_model(proto)
        ctx.cache["onnx_float"] = (proto, path)
        return self.float_model(ctx)

    def convert(self, ctx: ConvertContext, mode: str) -> Converted:
        import onnx

        self.check_mode(mode)
        proto, path = self.float_model(ctx)
        if mode == "none":
            return Converted(data=proto.SerializeToString(), converter=path)
        if mode == "float16":
            from onnxruntime.transformers.float16 import convert_float_to_float16
            from onnxruntime.transformers.onnx_model import OnnxModel

            half = convert_float_to_float16(proto, keep_io_types=True)
            # The converter appends the I/O Cast nodes at the end of the node list;
            # onnx.checker wants the graph topologically sorted.
            OnnxModel.graph_topological_sort(half.graph, is_deterministic=True)
            return Converted(data=half.SerializeToString(), converter=path + " + float16")

        from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_dynamic, quantize_static
        from onnxruntime.quantization.shape_inference import quant_pre_process

        work = Path(ctx.workdir)
        src, pre, out = work / f"float_{mode}.onnx", work / f"pre_{mode}.onnx", work / f"quant_{mode}.onnx"
        onnx.save(proto, src)
        # Symbolic shape inference (sympy) is for transformer-style dynamic shapes;
        # ONNX's own shape inference covers image CNNs, so it is skipped.
        quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
        base = onnx.load(str(pre))
        nodes = [n.name for n in base.graph.node if n.name]
        matched = match_nodes(ctx.keep_float, nodes, ctx.layer_scopes) if ctx.keep_float else {}
        exclude = sorted({n for hits in matched.values() for n in hits})
        unmatched = [pat for pat, hits in matched.items() if not hits]
        notes = [f"--keep-float {pat!r} matched no ONNX node" for pat in unmatched]
        if mode == "dynamic":
            quantize_dynamic(str(pre), str(out), weight_type=QuantType.QInt8, per_channel=False,
                             reduce_range=True, nodes_to_exclude=exclude or None)
            tag = "quantize_dynamic (int8 weights, reduce_range)"
        else:
            calib = ctx.calibration()
            quantize_static(
                str(pre), str(out), _Reader(calib.x, base.graph.input[0].name),
                quant_format=QuantFormat.QDQ, per_channel=True,
                activation_type=QuantType.QInt8, weight_type=QuantType.QInt8, reduce_range=True,
                calibrate_method=CalibrationMethod.MinMax, nodes_to_exclude=exclude or None,
            )
            tag = "quant_pre_process + quantize_static (QDQ, per-channel int8, reduce_range, MinMax)"
        return Converted(data=out.read_bytes(), converter=f"{path} + {tag}", kept_float=exclude, notes=notes,
                         keep_float_unmatched=unmatched)

    def check(self, data: bytes) -> None:
        import onnx

        super().check(data)  # the device's own verifier first
        try:
            onnx.checker.check_model(onnx.load_from_string(data))
        except Exception as exc:  # onnx.checker.ValidationError, DecodeError
            raise ConversionError(f"onnx.checker rejected the exported model: {_first_line(exc)}") from None


def _dynamic_batch(proto: Any) -> None:
    """Make the first dimension of every graph input and output symbolic ("batch")."""
    for value in list(proto.graph.input) + list(proto.graph.output):
        dims = value.type.tensor_type.shape.dim
        if dims:
            dims[0].ClearField("dim_value")
            dims[0].dim_param = "batch"
