"""The protobuf wire format, top level only, in pure Python (private to formats/onnx.py).

ONNX files are protobuf ``ModelProto`` messages. Walking the top-level wire
format (tags, wire types, lengths) catches random bytes and truncation, and
reads and rewrites ``metadata_props``, without the ``onnx`` package (which a
Pi does not have) and without protobuf itself.
"""
from __future__ import annotations

from typing import Iterator


def varint(buf: bytes, pos: int) -> tuple[int, int]:
    """(value, position after it) of the varint at ``pos``; ValueError if truncated."""
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


def encode_varint(value: int) -> bytes:
    out = bytearray()
    while True:
        b, value = value & 0x7F, value >> 7
        if value:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def spans(buf: bytes) -> Iterator[tuple[int, int, object, int, int]]:
    """Yield (field_number, wire_type, value, start, end) for the top level of a message.

    ``buf[start:end]`` is the field's raw encoding (key included), so a writer
    can copy fields it does not touch byte for byte.
    """
    pos = 0
    while pos < len(buf):
        start = pos
        key, pos = varint(buf, pos)
        field, wire = key >> 3, key & 7
        if field == 0:
            raise ValueError("field number 0")
        if wire == 0:
            value, pos = varint(buf, pos)
        elif wire == 1:
            value, pos = buf[pos:pos + 8], pos + 8
        elif wire == 2:
            n, pos = varint(buf, pos)
            value, pos = buf[pos:pos + n], pos + n
        elif wire == 5:
            value, pos = buf[pos:pos + 4], pos + 4
        else:
            raise ValueError(f"invalid wire type {wire}")
        if pos > len(buf):
            raise ValueError("truncated field")
        yield field, wire, value, start, pos


def walk_fields(buf: bytes) -> Iterator[tuple[int, int, object]]:
    """Yield (field_number, wire_type, value) for the top level of a protobuf message."""
    for field, wire, value, _, _ in spans(buf):
        yield field, wire, value


def length_delimited(field: int, payload: bytes) -> bytes:
    """The encoding of a wire-type-2 field (a string, bytes or a sub-message)."""
    return encode_varint(field << 3 | 2) + encode_varint(len(payload)) + payload
