"""A small, dependency-free TFLite flatbuffer reader and verifier.

Why: LiteRT's Python interpreter builds a model without running the
flatbuffer verifier, so a truncated or hand-crafted file can crash the
process. Before the native runtime sees a file we walk the parts it indexes
(subgraphs, tensors, operators, buffers) and check every offset and index is
in bounds. The same reader extracts the metadata entries (where the manifest
travels) with no ``flatbuffers``, ``ai_edge_litert`` or TensorFlow import, so
it also serves tflite-runtime installs.

Schema field ids (tensorflow/lite/schema/schema.fbs):
  Model: 1 operator_codes, 2 subgraphs, 4 buffers, 6 metadata
  SubGraph: 0 tensors, 1 inputs, 2 outputs, 3 operators
  Tensor: 0 shape, 2 buffer      Operator: 0 opcode_index, 1 inputs, 2 outputs
  Buffer: 0 data, 1 offset, 2 size      Metadata: 0 name, 1 buffer
"""
from __future__ import annotations

import struct
from pathlib import Path

from ..errors import ModelError

FILE_IDENTIFIER = b"TFL3"


class _Reader:
    def __init__(self, buf: bytes):
        self.buf = buf
        self.n = len(buf)

    def _u(self, fmt: str, pos: int) -> int:
        size = struct.calcsize(fmt)
        if pos < 0 or pos + size > self.n:
            raise ValueError(f"offset {pos} out of bounds")
        return struct.unpack_from(fmt, self.buf, pos)[0]

    def table(self, pos: int) -> tuple[int, int, int]:
        """(table_pos, vtable_pos, vtable_len) of the table at pos."""
        vt = pos - self._u("<i", pos)
        vt_len = self._u("<H", vt)
        if vt_len < 4 or vt_len % 2:
            raise ValueError("bad vtable")
        self._u("<H", vt + vt_len - 2)
        return pos, vt, vt_len

    def field(self, tab: tuple[int, int, int], idx: int) -> int | None:
        pos, vt, vt_len = tab
        off = 4 + 2 * idx
        if off >= vt_len:
            return None
        rel = self._u("<H", vt + off)
        return pos + rel if rel else None

    def scalar(self, tab, idx: int, fmt: str, default: int = 0) -> int:
        p = self.field(tab, idx)
        return default if p is None else self._u(fmt, p)

    def deref(self, p: int) -> int:
        return p + self._u("<I", p)

    def vector(self, tab, idx: int) -> tuple[int, int]:
        """(start, length) of a vector field, or (0, 0) when absent."""
        p = self.field(tab, idx)
        if p is None:
            return 0, 0
        v = self.deref(p)
        length = self._u("<I", v)
        if v + 4 + length > self.n:
            raise ValueError("vector out of bounds")
        return v + 4, length

    def ints(self, tab, idx: int) -> list[int]:
        start, length = self.vector(tab, idx)
        if start + 4 * length > self.n:
            raise ValueError("vector out of bounds")
        return list(struct.unpack_from(f"<{length}i", self.buf, start)) if length else []

    def tables(self, tab, idx: int) -> list[tuple[int, int, int]]:
        start, length = self.vector(tab, idx)
        if start + 4 * length > self.n:
            raise ValueError("vector out of bounds")
        return [self.table(self.deref(start + 4 * i)) for i in range(length)]

    def string(self, tab, idx: int) -> str:
        start, length = self.vector(tab, idx)
        return self.buf[start:start + length].decode("utf-8", "replace")

    def bytes_(self, tab, idx: int) -> bytes:
        start, length = self.vector(tab, idx)
        return self.buf[start:start + length]


def _parse(buf: bytes) -> tuple[_Reader, tuple[int, int, int]]:
    if len(buf) < 8 or buf[4:8] != FILE_IDENTIFIER:
        raise ValueError("missing TFL3 file identifier")
    r = _Reader(buf)
    return r, r.table(r._u("<I", 0))


def verify_tflite_bytes(buf: bytes) -> None:
    """Raise ValueError unless every index the interpreter follows is in bounds."""
    r, model = _parse(buf)
    n_codes = len(r.tables(model, 1))
    buffers = r.tables(model, 4)
    for b in buffers:
        r.bytes_(b, 0)
        offset, size = r.scalar(b, 1, "<Q"), r.scalar(b, 2, "<Q")
        if offset and offset + size > len(buf):
            raise ValueError("external buffer out of bounds")
    subgraphs = r.tables(model, 2)
    if not subgraphs:
        raise ValueError("no subgraphs")
    for sg in subgraphs:
        tensors = r.tables(sg, 0)
        for t in tensors:
            r.ints(t, 0)
            if r.scalar(t, 2, "<I") >= max(len(buffers), 1):
                raise ValueError("tensor buffer index out of range")
        ok = lambda i: -1 <= i < len(tensors)  # noqa: E731  (-1 marks an optional input)
        if not all(0 <= i < len(tensors) for i in r.ints(sg, 1) + r.ints(sg, 2)):
            raise ValueError("subgraph input/output index out of range")
        for op in r.tables(sg, 3):
            if r.scalar(op, 0, "<I") >= n_codes:
                raise ValueError("operator code index out of range")
            if not all(ok(i) for i in r.ints(op, 1) + r.ints(op, 2)):
                raise ValueError("operator tensor index out of range")
    for m in r.tables(model, 6):
        if r.scalar(m, 1, "<I") >= len(buffers):
            raise ValueError("metadata buffer index out of range")


def verify_tflite(path: Path) -> None:
    try:
        verify_tflite_bytes(Path(path).read_bytes())
    except ValueError as exc:
        raise ModelError(f"not a valid TFLite model ({exc}; truncated or foreign file?): {path}") from None


def read_tflite_metadata(buf: bytes) -> dict[str, bytes]:
    """The model's metadata entries, name -> raw bytes of their buffer."""
    r, model = _parse(buf)
    buffers = r.tables(model, 4)
    out: dict[str, bytes] = {}
    for m in r.tables(model, 6):
        b = buffers[r.scalar(m, 1, "<I")]
        data = r.bytes_(b, 0)
        offset, size = r.scalar(b, 1, "<Q"), r.scalar(b, 2, "<Q")
        if not data and offset:
            data = buf[offset:offset + size]
        out[r.string(m, 0)] = bytes(data)
    return out
