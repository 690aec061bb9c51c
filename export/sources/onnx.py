"""A float32 ONNX file, NCHW (a PyTorch export) or NHWC (the float reference: ONNX Runtime).

Claimed by the ``.onnx`` suffix (protobuf has no magic bytes); verified by the device's own ONNX
reader before ONNX Runtime sees it, so a truncated or foreign file is one line. Its manifest comes
from the flags, over what the file says: an edgedeploy manifest already embedded, or common
``metadata_props`` keys (``labels``/``classes``/``names``, ``layout``, ``normalize``, ``color``).
The layout is read from the input shape when it is unambiguous (1x3x224x224 is NCHW).

It converts to ONNX only, with ONNX Runtime's quantizer exactly as a Keras run's float ONNX is
(float16, ``quantize_dynamic``, static int8 QDQ calibrated on ``--calibration-data``). There is
no ONNX -> TFLite: no converter kept here does it (docs/bring-your-own-model.md says what was tried).
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgedeploy.runtime.manifest import sha256_file

from ..formats.onnx import OnnxFormat
from ._foreign import ForeignSource
from .base import SOURCES

if TYPE_CHECKING:
    from ..formats import ConvertContext, ExportFormat
    from ..options import ExportOptions


class SourceOnnx(OnnxFormat):
    """ONNX Runtime's quantizer on the source file's own graph (no tf2onnx)."""

    def __init__(self, path: Path):
        self.path = path

    def float_model(self, ctx: "ConvertContext") -> tuple[Any, str]:
        import onnx

        if "onnx_float" not in ctx.cache:
            proto = onnx.load(str(self.path))
            onnx.checker.check_model(proto)
            ctx.cache["onnx_float"] = (proto, f"the source {self.path.name}")
        return super().float_model(ctx)


def open_runtime_source(cls: type[ForeignSource], path: Path, opts: "ExportOptions", file_fields: Any) -> ForeignSource:
    """Open ``path`` with the device runtime, build its manifest (flags over ``file_fields``); shared by .onnx and .tflite."""
    import numpy as np

    from edgedeploy.runtime.backends import backend_for

    from ..manifest_flags import ManifestFields, build_manifest

    backend = backend_for(path, "auto", threads=opts.threads)  # verified by its format first, then probed
    flags = ManifestFields.from_options(opts)
    given = flags.over(file_fields)
    manifest = build_manifest(given, tuple(backend.input.shape), int(backend.output.shape[-1]), path, fmt=cls.kind,
                              input_dtype=str(np.dtype(backend.input.dtype)))
    del backend
    return cls(path=path, manifest=manifest, sha256=sha256_file(path), notes=[f"{k}: {v}" for k, v in sorted(given.origin.items())])


@SOURCES.register("onnx")
class OnnxSource(ForeignSource):
    kind = "onnx"
    description = "a float32 .onnx file (NCHW or NHWC)"
    runtime = "ONNX Runtime"
    order = 40
    registry_formats = False

    @classmethod
    def claims(cls, path: Path) -> bool:
        from edgedeploy.runtime.formats import get_format

        return path.is_file() and get_format("onnx").matches(path)

    @classmethod
    def open(cls, path: Path, opts: "ExportOptions") -> ForeignSource:
        from edgedeploy.runtime.formats import get_format

        from ..manifest_flags import ManifestFields, fields_from_manifest, fields_from_onnx_metadata

        fmt = get_format("onnx")
        fmt.verify(path)
        embedded = fmt.read_manifest(path, strict=True)
        file_fields = (fields_from_manifest(embedded, "its embedded manifest") if embedded is not None
                       else fields_from_onnx_metadata(fmt.read_metadata(path), path.name))
        return open_runtime_source(cls, path, opts, file_fields or ManifestFields())

    def exports(self) -> dict[str, "ExportFormat"]:
        return {"onnx": SourceOnnx(self.path)}

    def load(self, opts: "ExportOptions") -> Any:
        from edgedeploy.runtime import ImageClassifier

        return ImageClassifier(self.path, manifest=self.manifest, threads=opts.threads)

    def predict(self, model: Any, x: np.ndarray) -> np.ndarray:
        return model.predict_tensor(x, batch_size=32)
