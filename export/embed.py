"""Put the manifest inside the model file, so one file is enough on the device.

- TFLite: a metadata entry named ``edgedeploy.manifest`` (``EMBED_KEY``)
  whose buffer holds the manifest JSON, added with
  ``ai_edge_litert.tools.flatbuffer_utils`` (no TensorFlow, no tflite-support).
- ONNX: a ``metadata_props`` entry with the same key.

An entry with the same name is replaced, so re-embedding (the final manifest
carries the parity metrics measured on the first one) leaves exactly one.
Both readers on the device side are edge_runtime's dependency-free ones
(``backends.tflite_check.read_tflite_metadata``, ``backends.onnx_check``).
"""
from __future__ import annotations

import json

import numpy as np

from edge_runtime.manifest import EMBED_KEY, Manifest


def embed_tflite(data: bytes, text: str, key: str = EMBED_KEY) -> bytes:
    """Return ``data`` (a .tflite flatbuffer) with metadata entry ``key`` set to ``text``."""
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(data))
    entries = list(model.metadata or [])
    keep = []
    for m in entries:
        name = m.name.decode("utf-8", "replace") if isinstance(m.name, bytes) else m.name
        if name == key:
            # Empty the old buffer rather than delete it: buffer indices elsewhere stay valid.
            model.buffers[m.buffer].data = None
        else:
            keep.append(m)
    buf = schema.BufferT()
    buf.data = np.frombuffer(text.encode("utf-8"), dtype=np.uint8)
    model.buffers.append(buf)
    entry = schema.MetadataT()
    entry.name = key
    entry.buffer = len(model.buffers) - 1
    keep.append(entry)
    model.metadata = keep
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def embed_onnx(data: bytes, text: str, key: str = EMBED_KEY) -> bytes:
    """Return ``data`` (a serialized ONNX ModelProto) with ``metadata_props[key] = text``."""
    import onnx

    model = onnx.load_from_string(data)
    props = [p for p in model.metadata_props if p.key != key]
    del model.metadata_props[:]
    model.metadata_props.extend(props)
    entry = model.metadata_props.add()
    entry.key, entry.value = key, text
    return model.SerializeToString()


EMBEDDERS = {"tflite": embed_tflite, "onnx": embed_onnx}


def embed_manifest(fmt: str, data: bytes, manifest: Manifest) -> bytes:
    """Embed ``manifest`` as compact JSON (the sidecar file keeps the indented form)."""
    text = json.dumps(manifest.to_dict(), sort_keys=True, separators=(",", ":"))
    return EMBEDDERS[fmt](data, text)


def read_embedded(fmt: str, data: bytes) -> str | None:
    """The manifest JSON embedded in ``data``, read the way the device reads it."""
    if fmt == "tflite":
        from edge_runtime.backends.tflite_check import read_tflite_metadata

        raw = read_tflite_metadata(data).get(EMBED_KEY)
        return None if raw is None else raw.decode("utf-8")
    from edge_runtime.backends.onnx_check import _METADATA_PROPS, walk_fields

    for field, wire, value in walk_fields(data):
        if field == _METADATA_PROPS and wire == 2:
            entry = {f: v for f, w, v in walk_fields(value) if w == 2}
            if bytes(entry.get(1, b"")).decode("utf-8") == EMBED_KEY:
                return bytes(entry.get(2, b"")).decode("utf-8")
    return None
