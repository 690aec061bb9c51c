"""TFLite flatbuffers (``.tflite``), read by LiteRT and tflite-runtime.

- verify: the pure-Python flatbuffer verifier in ``_tflite_flatbuffer.py``
  (every offset and index bounds-checked, plus the values fuzzing showed crash
  LiteRT's kernels);
- metadata: the model's ``metadata`` entries (name -> buffer), read without
  ``flatbuffers``, ``ai_edge_litert`` or TensorFlow;
- writing a metadata entry rebuilds the flatbuffer with
  ``ai_edge_litert.tools.flatbuffer_utils`` (imported only then; no
  TensorFlow, no tflite-support). An entry with the same name is replaced, so
  re-embedding leaves exactly one.
"""
from __future__ import annotations

from ..errors import EdgeDeployError
from ._tflite_flatbuffer import FILE_IDENTIFIER, read_tflite_metadata, verify_tflite_bytes
from .base import ModelFormat, register_format

__all__ = ["FILE_IDENTIFIER", "TFLiteFormat", "read_tflite_metadata", "verify_tflite_bytes"]
WRITER_HINT = "pip install ai-edge-litert"


@register_format
class TFLiteFormat(ModelFormat):
    name = "tflite"
    suffix = ".tflite"
    display_name = "TFLite"
    order = 10

    def check_bytes(self, data: bytes) -> None:
        try:
            verify_tflite_bytes(data)
        except ValueError as exc:
            raise ValueError(f"{exc}; truncated or foreign file?") from None

    def metadata_from_bytes(self, data: bytes) -> dict[str, str]:
        return {k: v.decode("utf-8", "replace") for k, v in read_tflite_metadata(data).items()}

    def write_metadata(self, data: bytes, key: str, text: str | None) -> bytes:
        try:
            import numpy as np
            from ai_edge_litert import schema_py_generated as schema
            from ai_edge_litert.tools import flatbuffer_utils
        except ImportError:
            raise EdgeDeployError(f"writing metadata into a TFLite file needs ai-edge-litert: {WRITER_HINT}") from None

        model = flatbuffer_utils.read_model_from_bytearray(bytearray(data))
        keep = []
        for m in model.metadata or []:
            name = m.name.decode("utf-8", "replace") if isinstance(m.name, bytes) else m.name
            if name == key:
                # Empty the old buffer rather than delete it: buffer indices elsewhere stay valid.
                model.buffers[m.buffer].data = None
            else:
                keep.append(m)
        if text is not None:
            buf = schema.BufferT()
            buf.data = np.frombuffer(text.encode("utf-8"), dtype=np.uint8)
            model.buffers.append(buf)
            entry = schema.MetadataT()
            entry.name = key
            entry.buffer = len(model.buffers) - 1
            keep.append(entry)
        model.metadata = keep or None
        return bytes(flatbuffer_utils.convert_object_to_bytearray(model))
