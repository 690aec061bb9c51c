"""TFLite flatbuffers (``.tflite``), read by LiteRT and tflite-runtime.

- verify: the pure-Python flatbuffer verifier in ``_tflite_flatbuffer.py``
  (every offset and index bounds-checked, plus the values fuzzing showed crash
  LiteRT's kernels);
- metadata: the model's ``metadata`` entries (name -> buffer), read without
  ``flatbuffers``, ``ai_edge_litert`` or TensorFlow;
- writing a metadata entry rebuilds the flatbuffer with
  ``ai_edge_litert.tools.flatbuffer_utils`` (imported only then; no
  TensorFlow, no tflite-support). An entry with the same name is replaced, so
  re-embedding leaves exactly one;
- packed files: the standard TFLite metadata's associated files (``labels.txt``)
  are a zip archive appended after the flatbuffer; runtimes ignore it, and
  rewriting the metadata keeps it.
"""
from __future__ import annotations

import io
import zipfile

from edgedeploy.core.errors import EdgeDeployError

from . import _tflite_standard as standard
from ._tflite_flatbuffer import FILE_IDENTIFIER, read_tflite_metadata, verify_tflite_bytes
from ._tflite_standard import STANDARD_METADATA, read_standard_metadata
from .base import ModelFormat, register_format

__all__ = ["FILE_IDENTIFIER", "STANDARD_METADATA", "TFLiteFormat", "packed_files", "read_tflite_metadata",
           "split_packed", "standard", "verify_tflite_bytes", "with_packed_files"]
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

    def standard_metadata(self, data: bytes) -> str | None:
        if STANDARD_METADATA not in read_tflite_metadata(data):
            return None
        packed = ", ".join(packed_files(data)) or "none"
        return f"{STANDARD_METADATA} (MediaPipe Tasks, Android TFLite Support); packed files: {packed}"

    def standard_hints(self, data: bytes) -> dict | None:
        try:
            raw = read_tflite_metadata(data).get(STANDARD_METADATA)
        except ValueError:
            return None
        meta = read_standard_metadata(raw) if raw else None
        if meta is None:
            return None
        labels = None
        if meta["labels_file"]:
            text = packed_files(data).get(meta["labels_file"])
            if text is not None:
                labels = [ln.strip() for ln in text.decode("utf-8", "replace").splitlines() if ln.strip()]
        return {"labels": labels, "mean": meta["mean"], "std": meta["std"], "channels": meta["channels"]}

    def strip_manifest(self, data: bytes) -> bytes:
        bare = self.write_metadata(super().strip_manifest(data), STANDARD_METADATA, None)
        return split_packed(bare)[0]  # and the labels packed after it

    def write_metadata(self, data: bytes, key: str, text: str | bytes | None) -> bytes:
        try:
            import numpy as np
            from ai_edge_litert import schema_py_generated as schema
            from ai_edge_litert.tools import flatbuffer_utils
        except ImportError:
            raise EdgeDeployError(f"writing metadata into a TFLite file needs ai-edge-litert: {WRITER_HINT}") from None

        data, packed = split_packed(data)
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
            raw = text.encode("utf-8") if isinstance(text, str) else bytes(text)
            buf.data = np.frombuffer(raw, dtype=np.uint8)
            model.buffers.append(buf)
            entry = schema.MetadataT()
            entry.name = key
            entry.buffer = len(model.buffers) - 1
            keep.append(entry)
        model.metadata = keep or None
        return with_packed_files(bytes(flatbuffer_utils.convert_object_to_bytearray(model)), packed)


def split_packed(data: bytes) -> tuple[bytes, dict[str, bytes]]:
    """(the flatbuffer, the files zipped after it): the standard metadata's labels; ({}) when none."""
    buf = io.BytesIO(data)
    if not zipfile.is_zipfile(buf):
        return data, {}
    try:
        with zipfile.ZipFile(buf) as zf:
            infos = zf.infolist()
            files = {i.filename: zf.read(i) for i in infos}
            start = min((i.header_offset for i in infos), default=len(data))  # absolute: zipfile adds the prefix
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):  # a chance "PK" signature in the model's bytes
        return data, {}
    return data[:start], files


def packed_files(data: bytes) -> dict[str, bytes]:
    """The files zipped after a TFLite flatbuffer, name -> bytes ({} when none)."""
    return split_packed(data)[1]


def with_packed_files(data: bytes, files: dict[str, bytes]) -> bytes:
    """``data`` (a bare flatbuffer) with ``files`` zipped after it, stored, as the metadata populators write them."""
    if not files:
        return data
    buf = io.BytesIO(data)
    buf.seek(0, io.SEEK_END)
    with zipfile.ZipFile(buf, "a") as zf:
        for name, content in files.items():
            zf.writestr(name, content)
    return buf.getvalue()
