"""A float32 ``.tflite`` file, e.g. a MediaPipe Model Maker classifier (the float reference: LiteRT).

Claimed by the ``.tflite`` suffix or the ``TFL3`` flatbuffer identifier; verified by the device's
own flatbuffer verifier before LiteRT sees it. Its manifest comes from the flags, over what the
file says of itself: an edgedeploy manifest already embedded, else the standard TFLite metadata
(labels packed as ``labels.txt``, ``NormalizationOptions``), which the runtime reads too.

It converts to TFLite only, with Google's ``ai-edge-quantizer`` working on the flatbuffer itself
(no TensorFlow, no Keras source needed): ``weight-only`` (int8 weights, float compute),
``dynamic`` (int8 weights, activations quantized at run time), ``int8`` (static int8 activations,
calibrated on ``--calibration-data``; int8 input and output, which the device quantizes) and
``int16x8`` (static int16 activations and I/O). There is no float16 recipe in ai-edge-quantizer 0.10, and no TFLite -> ONNX
converter is kept here.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgedeploy.core.errors import EdgeDeployError

from ..formats.base import Converted
from ..formats.tflite import TFLiteFormat
from ._foreign import ForeignSource
from .base import SOURCES, read_head
from .onnx import open_runtime_source

if TYPE_CHECKING:
    from ..formats import ConvertContext, ExportFormat
    from ..options import ExportOptions

# quantize mode -> ai-edge-quantizer recipe (ai_edge_quantizer.recipe)
RECIPES = {"weight-only": "weight_only_wi8_afp32", "dynamic": "dynamic_wi8_afp32", "int8": "static_wi8_ai8",
           "int16x8": "static_wi8_ai16"}


def _signature(data: bytes) -> tuple[str, str]:
    """(signature key, input name) of the model's one signature: how ai-edge-quantizer feeds calibration data."""
    from ai_edge_litert.interpreter import Interpreter

    sigs = Interpreter(model_content=data).get_signature_list()
    if len(sigs) != 1 or len(next(iter(sigs.values()))["inputs"]) != 1:
        raise EdgeDeployError(f"ai-edge-quantizer calibrates through the model's signature; this model has "
                              f"{len(sigs)} signatures ({', '.join(sigs) or 'none'}), expected one with one input")
    key = next(iter(sigs))
    return key, sigs[key]["inputs"][0]


def consistent_operator_codes(data: bytes) -> bytes:
    """``data`` with each operator code's ``deprecated_builtin_code`` set to min(``builtin_code``, 127), as converters write it.

    ai-edge-quantizer 0.10 leaves the deprecated field at 0 (ADD) for the DEQUANTIZE ops it adds in
    weight-only mode. LiteRT takes the larger of the two fields and runs it, but a runtime that reads
    only the deprecated field would run ADD, and the device's verifier refuses codes that disagree
    (a fuzzed swap of them crashes LiteRT), so they are made to agree as the TFLite converter writes them.
    """
    from ai_edge_litert.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(data))
    changed = False
    for code in model.operatorCodes or []:
        if code.deprecatedBuiltinCode != min(code.builtinCode, 127):
            code.deprecatedBuiltinCode, changed = min(code.builtinCode, 127), True
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model)) if changed else data


class QuantizerTFLite(TFLiteFormat):
    """ai-edge-quantizer on the source flatbuffer."""

    modes = {
        "none": "float32: the source itself, with the manifest and standard metadata",
        "weight-only": "ai-edge-quantizer weight_only_wi8_afp32: int8 weights, float compute",
        "dynamic": "ai-edge-quantizer dynamic_wi8_afp32: int8 weights, activations quantized at run time",
        "int8": "ai-edge-quantizer static_wi8_ai8: int8 weights and activations, calibrated; int8 I/O",
        "int16x8": "ai-edge-quantizer static_wi8_ai16: int16 activations, int8 weights, calibrated; int16 I/O",
    }
    calibrated = ("int8", "int16x8")
    keep_float_modes = ()
    io_modes = ()
    diagnosed_modes = ()

    def __init__(self, path: Path):
        self.path = path

    def float_bytes(self, ctx: "ConvertContext") -> bytes:
        """The source flatbuffer without edgedeploy's manifest, the standard metadata or packed files (written again after)."""
        if "tflite_float" not in ctx.cache:
            ctx.cache["tflite_float"] = TFLiteFormat.model_format().strip_manifest(self.path.read_bytes())
        return ctx.cache["tflite_float"]

    def convert(self, ctx: "ConvertContext", mode: str) -> Converted:
        self.check_mode(mode)
        data = self.float_bytes(ctx)
        if mode == "none":
            return Converted(data=data, converter=f"the source {self.path.name}")
        from importlib import metadata

        from ai_edge_quantizer import quantizer, recipe

        qt = quantizer.Quantizer(bytearray(data))
        qt.load_quantization_recipe(getattr(recipe, RECIPES[mode])())
        calibration = None
        if mode in self.calibrated:
            key, name = _signature(data)
            x = ctx.calibration().x
            calibration = qt.calibrate({key: [{name: x[i:i + 1]} for i in range(len(x))]}, num_threads=1)
        result = qt.quantize(calibration, enable_progress_report=False)
        version = metadata.version("ai-edge-quantizer")
        return Converted(data=consistent_operator_codes(bytes(result.quantized_model)),
                         converter=f"ai-edge-quantizer {version} {RECIPES[mode]}")


@SOURCES.register("tflite")
class TFLiteSource(ForeignSource):
    kind = "tflite"
    description = "a float32 .tflite file"
    runtime = "LiteRT"
    order = 50
    registry_formats = False

    @classmethod
    def claims(cls, path: Path) -> bool:
        from edgedeploy.runtime.formats import get_format

        return path.is_file() and (get_format("tflite").matches(path) or read_head(path, 8)[4:8] == b"TFL3")

    @classmethod
    def open(cls, path: Path, opts: "ExportOptions") -> ForeignSource:
        from edgedeploy.runtime.formats import get_format

        from ..manifest_flags import fields_from_manifest, fields_from_standard_hints

        fmt = get_format("tflite")
        if not fmt.matches(path):  # the device runtime picks its backend by the suffix
            raise EdgeDeployError(f"{path} is a TFLite flatbuffer without the {fmt.suffix} suffix; rename it to {path.stem}{fmt.suffix}")
        fmt.verify(path)
        embedded = fmt.read_manifest(path, strict=True)
        if embedded is not None:
            file_fields = fields_from_manifest(embedded, "its embedded manifest")
        else:
            file_fields = fields_from_standard_hints(fmt.standard_hints(path.read_bytes()), -1, "its standard TFLite metadata")
        return open_runtime_source(cls, path, opts, file_fields)

    def exports(self) -> dict[str, "ExportFormat"]:
        return {"tflite": QuantizerTFLite(self.path)}

    def load(self, opts: "ExportOptions") -> Any:
        from edgedeploy.runtime import ImageClassifier

        return ImageClassifier(self.path, manifest=self.manifest, threads=opts.threads)

    def predict(self, model: Any, x: np.ndarray) -> np.ndarray:
        return model.predict_tensor(x, batch_size=32)
