"""ONNX protobufs (``.onnx``), read by ONNX Runtime.

All in pure Python over the protobuf wire format (``_protobuf.py``): no
``onnx``, no ``protobuf``, no runtime.

- verify: the top level parses (tags, wire types, lengths in bounds) and has
  an ``ir_version`` and a ``graph``;
- metadata: ``ModelProto.metadata_props`` (field 14), key -> value;
- writing an entry copies every other field byte for byte, drops the entries
  with that key, and puts the new one after the last ``metadata_props`` entry,
  before any higher-numbered field: the bytes ``onnx`` would serialize.
"""
from __future__ import annotations

from ._protobuf import length_delimited, spans, walk_fields
from .base import ModelFormat, register_format

__all__ = ["OnnxFormat", "walk_fields"]

# ModelProto field numbers (onnx/onnx.proto)
IR_VERSION, GRAPH, METADATA_PROPS = 1, 7, 14
# StringStringEntryProto
ENTRY_KEY, ENTRY_VALUE = 1, 2


def _entry(value: bytes) -> tuple[str, str]:
    fields = {f: v for f, w, v in walk_fields(value) if w == 2}
    return (bytes(fields.get(ENTRY_KEY, b"")).decode("utf-8", "replace"),
            bytes(fields.get(ENTRY_VALUE, b"")).decode("utf-8", "replace"))


@register_format
class OnnxFormat(ModelFormat):
    name = "onnx"
    suffix = ".onnx"
    display_name = "ONNX"
    metadata_name = "metadata_props"
    order = 20

    def check_bytes(self, data: bytes) -> None:
        try:
            seen = {field: wire for field, wire, _ in walk_fields(data)}
        except ValueError as exc:
            raise ValueError(f"corrupt or truncated: {exc}") from None
        if seen.get(IR_VERSION) != 0 or seen.get(GRAPH) != 2:
            raise ValueError("no ir_version or graph")

    def metadata_from_bytes(self, data: bytes) -> dict[str, str]:
        out: dict[str, str] = {}
        for field, wire, value in walk_fields(data):
            if field == METADATA_PROPS and wire == 2:
                key, text = _entry(value)
                out[key] = text
        return out

    def write_metadata(self, data: bytes, key: str, text: str | None) -> bytes:
        new = b""
        if text is not None:
            entry = length_delimited(ENTRY_KEY, key.encode("utf-8")) + length_delimited(ENTRY_VALUE, text.encode("utf-8"))
            new = length_delimited(METADATA_PROPS, entry)
        out, placed = bytearray(), False
        for field, wire, value, start, end in spans(data):
            if field == METADATA_PROPS and wire == 2 and _entry(value)[0] == key:
                continue  # replaced, never duplicated
            if field > METADATA_PROPS and not placed:
                out += new
                placed = True
            out += data[start:end]
        if not placed:
            out += new
        return bytes(out)
