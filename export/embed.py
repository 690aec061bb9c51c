"""Put the manifest inside the model file, so one file is enough on the device.

export/ writes and reads embedded manifests only through ``edge_runtime.formats``,
the module that owns each file format (TFLite: a metadata entry named
``edgedeploy.manifest``; ONNX: a ``metadata_props`` entry with the same key).
An entry with the same name is replaced, so re-embedding (the final manifest
carries the parity metrics measured on the first one) leaves exactly one, and
the device reads the file with the very same code.
"""
from __future__ import annotations

from edgedeploy.runtime.formats import get_format
from edgedeploy.runtime.manifest import EMBED_KEY, Manifest


def embed_manifest(fmt: str, data: bytes, manifest: Manifest) -> bytes:
    """Embed ``manifest`` as compact JSON (the sidecar file keeps the indented form)."""
    return get_format(fmt).write_manifest(data, manifest)


def read_embedded(fmt: str, data: bytes) -> str | None:
    """The manifest JSON embedded in ``data``, read the way the device reads it."""
    return get_format(fmt).manifest_text(data)


def embed_tflite(data: bytes, text: str, key: str = EMBED_KEY) -> bytes:
    """Return ``data`` (a TFLite flatbuffer) with metadata entry ``key`` set to ``text``."""
    return get_format("tflite").write_metadata(data, key, text)


def embed_onnx(data: bytes, text: str, key: str = EMBED_KEY) -> bytes:
    """Return ``data`` (a serialized ONNX ModelProto) with ``metadata_props[key] = text``."""
    return get_format("onnx").write_metadata(data, key, text)
