"""A pure-Python structural check of an ONNX file, before onnxruntime sees it.

ONNX files are protobuf ``ModelProto`` messages. Walking the top-level wire
format (tags, wire types, lengths) catches random bytes and truncation
without the ``onnx`` package, which a Pi does not have.
"""
from __future__ import annotations

from pathlib import Path

from ..errors import ModelError

_IR_VERSION, _GRAPH, _METADATA_PROPS = 1, 7, 14


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf) or shift > 63:
            raise ValueError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7


def walk_fields(buf: bytes):
    """Yield (field_number, wire_type, value) for the top level of a protobuf message."""
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        field, wire = key >> 3, key & 7
        if field == 0:
            raise ValueError("field number 0")
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            value, pos = buf[pos:pos + 8], pos + 8
        elif wire == 2:
            n, pos = _varint(buf, pos)
            value, pos = buf[pos:pos + n], pos + n
        elif wire == 5:
            value, pos = buf[pos:pos + 4], pos + 4
        else:
            raise ValueError(f"invalid wire type {wire}")
        if pos > len(buf):
            raise ValueError("truncated field")
        yield field, wire, value


def verify_onnx(path: Path) -> None:
    """Raise ModelError unless ``path`` parses as an ONNX ModelProto with a graph."""
    buf = Path(path).read_bytes()
    try:
        seen = {field: wire for field, wire, _ in walk_fields(buf)}
    except ValueError as exc:
        raise ModelError(f"not a valid ONNX model (corrupt or truncated: {exc}): {path}") from None
    if seen.get(_IR_VERSION) != 0 or seen.get(_GRAPH) != 2:
        raise ModelError(f"not a valid ONNX model (no ir_version or graph): {path}")


def read_onnx_metadata(path: Path) -> dict[str, str]:
    """metadata_props of an ONNX file as a dict, read without onnx or onnxruntime."""
    out: dict[str, str] = {}
    try:
        for field, wire, value in walk_fields(Path(path).read_bytes()):
            if field == _METADATA_PROPS and wire == 2:
                entry = {f: v for f, w, v in walk_fields(value) if w == 2}
                out[bytes(entry.get(1, b"")).decode("utf-8", "replace")] = bytes(entry.get(2, b"")).decode("utf-8", "replace")
    except ValueError as exc:  # a damaged metadata entry inside a well-formed top level
        raise ModelError(f"ONNX metadata_props are corrupt ({exc}): {path}") from None
    return out
