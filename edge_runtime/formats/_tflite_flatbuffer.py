"""A small, dependency-free TFLite flatbuffer reader and verifier (private to formats/tflite.py).

Why: LiteRT's Python interpreter builds a model without running the
flatbuffer verifier, so a truncated or hand-crafted file can crash the
process. Before the native runtime sees a file we walk the parts it indexes
(subgraphs, tensors, operators, buffers) and check every offset and index is
in bounds, then the values fuzzing showed to crash LiteRT's kernels:
quantization scales (zero, negative, denormal, huge) and zero points outside
the tensor type, constant buffers whose size disagrees with the tensor shape,
a missing first operator input, operators writing a graph input or a
tensor another operator writes, and operator codes whose two fields disagree. This is layer 1 of the crash guard; layer 2,
for what no verifier can see (an operator code swapped for another valid
one), is the subprocess probe in ``probe.py``. The same reader extracts the
metadata entries (where the manifest travels) with no ``flatbuffers``,
``ai_edge_litert`` or TensorFlow import, so it also serves tflite-runtime.

Schema field ids (tensorflow/lite/schema/schema.fbs):
  Model: 1 operator_codes, 2 subgraphs, 4 buffers, 6 metadata
  SubGraph: 0 tensors, 1 inputs, 2 outputs, 3 operators
  Tensor: 0 shape, 1 type, 2 buffer, 4 quantization, 7 shape_signature
  QuantizationParameters: 2 scale, 3 zero_point, 6 quantized_dimension
  OperatorCode: 0 deprecated_builtin_code, 3 builtin_code
  Operator: 0 opcode_index, 1 inputs, 2 outputs
  Buffer: 0 data, 1 offset, 2 size      Metadata: 0 name, 1 buffer
"""
from __future__ import annotations

import struct

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

    def floats(self, tab, idx: int) -> list[float]:
        start, length = self.vector(tab, idx)
        if start + 4 * length > self.n:
            raise ValueError("vector out of bounds")
        return list(struct.unpack_from(f"<{length}f", self.buf, start)) if length else []

    def longs(self, tab, idx: int) -> list[int]:
        start, length = self.vector(tab, idx)
        if start + 8 * length > self.n:
            raise ValueError("vector out of bounds")
        return list(struct.unpack_from(f"<{length}q", self.buf, start)) if length else []

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


# TensorType enum -> bytes per element (STRING, RESOURCE, VARIANT, INT4 and
# INT2 have no fixed size and are not size-checked).
_TYPE_SIZE = {0: 4, 1: 2, 2: 4, 3: 1, 4: 8, 6: 1, 7: 2, 8: 8, 9: 1, 10: 8, 11: 16, 12: 8, 15: 4, 16: 2, 18: 2}
_MAX_TYPE = 20
# Integer types a quantized tensor may have, with their value range.
_QRANGE = {3: (0, 255), 9: (-128, 127), 7: (-32768, 32767), 2: (-(2**31), 2**31 - 1), 4: (-(2**63), 2**63 - 1),
           16: (0, 65535), 17: (-8, 7)}
# Scales outside this range are not produced by any converter; fuzzing found
# that denormal, zero, negative and huge scales crash LiteRT's kernels.
_SCALE_MIN, _SCALE_MAX = 1e-20, 1e20
_MAX_DIM, _MAX_ELEMENTS = 1 << 24, 1 << 31


def _check_tensor(r: _Reader, t, n_buffers: int, buffer_sizes: list[int]) -> None:
    shape = r.ints(t, 0)
    signature = r.ints(t, 7)
    ttype = r.scalar(t, 1, "<b")
    if not 0 <= ttype <= _MAX_TYPE:
        raise ValueError(f"tensor type {ttype} unknown")
    if any(d < 0 or d > _MAX_DIM for d in shape) or any(d < -1 or d > _MAX_DIM for d in signature):
        raise ValueError(f"tensor shape {shape} / signature {signature} out of range")
    if signature and len(signature) != len(shape):
        raise ValueError("tensor shape_signature rank differs from its shape")
    elements = 1
    for d in shape:
        elements *= d
    if elements > _MAX_ELEMENTS:
        raise ValueError(f"tensor of {elements} elements is too large")
    b = r.scalar(t, 2, "<I")
    if b >= max(n_buffers, 1):
        raise ValueError("tensor buffer index out of range")
    if b and n_buffers and buffer_sizes[b] and ttype in _TYPE_SIZE and buffer_sizes[b] != elements * _TYPE_SIZE[ttype]:
        raise ValueError(f"constant tensor of shape {shape} does not match its buffer of {buffer_sizes[b]} bytes")
    qp = r.field(t, 4)
    if qp is None:
        return
    q = r.table(r.deref(qp))
    scales = r.floats(q, 2)
    zeros = r.longs(q, 3)
    if not scales and not zeros:
        return
    if any(not (_SCALE_MIN <= s <= _SCALE_MAX) for s in scales):  # also rejects NaN
        raise ValueError(f"quantization scale out of range: {scales[:4]}")
    if zeros and len(zeros) != len(scales):
        raise ValueError("quantization has different numbers of scales and zero points")
    lo, hi = _QRANGE.get(ttype, (-(2**63), 2**63 - 1))
    if any(not lo <= z <= hi for z in zeros):
        raise ValueError(f"quantization zero point out of range for the tensor type: {zeros[:4]}")
    if len(scales) > 1:
        dim = r.scalar(q, 6, "<i")
        if not 0 <= dim < len(shape) or shape[dim] != len(scales):
            raise ValueError("per-channel quantization does not match the tensor's shape")


def verify_tflite_bytes(buf: bytes) -> None:
    """Raise ValueError unless the file is structurally sound and its values sane.

    Checks every offset and index the interpreter follows (tables, vectors,
    buffers, tensors, operators, metadata), plus tensor types, shapes,
    constant-buffer sizes and quantization parameters: the values fuzzing
    showed can crash LiteRT's kernels.
    """
    r, model = _parse(buf)
    codes = r.tables(model, 1)
    for c in codes:
        deprecated, builtin = r.scalar(c, 0, "<b"), r.scalar(c, 3, "<i")
        if not 0 <= max(deprecated, builtin) < 1000:
            raise ValueError("operator builtin code out of range")
        # Converters write both fields: deprecated = min(builtin, 127). A file where
        # they disagree was damaged (fuzzing: such a swap crashes LiteRT).
        if builtin and deprecated != min(builtin, 127):
            raise ValueError(f"operator code fields disagree ({deprecated} vs {builtin})")
    buffers = r.tables(model, 4)
    sizes = []
    for b in buffers:
        _, length = r.vector(b, 0)
        offset, size = r.scalar(b, 1, "<Q"), r.scalar(b, 2, "<Q")
        if offset and offset + size > len(buf):
            raise ValueError("external buffer out of bounds")
        sizes.append(length or (size if offset else 0))
    subgraphs = r.tables(model, 2)
    if not subgraphs:
        raise ValueError("no subgraphs")
    for sg in subgraphs:
        tensors = r.tables(sg, 0)
        for t in tensors:
            _check_tensor(r, t, len(buffers), sizes)
        sg_inputs = r.ints(sg, 1)
        if not all(0 <= i < len(tensors) for i in sg_inputs + r.ints(sg, 2)):
            raise ValueError("subgraph input/output index out of range")
        produced = set(sg_inputs)  # a tensor is written by one operator at most, never a graph input
        for op in r.tables(sg, 3):
            if r.scalar(op, 0, "<I") >= len(codes):
                raise ValueError("operator code index out of range")
            ins, outs = r.ints(op, 1), r.ints(op, 2)
            # -1 marks an optional input (a bias, say), never the first one.
            if not all(-1 <= i < len(tensors) for i in ins) or (ins and ins[0] < 0):
                raise ValueError("operator input index out of range")
            if not all(0 <= i < len(tensors) for i in outs) or produced.intersection(outs) or len(set(outs)) != len(outs):
                raise ValueError("operator output index out of range or written twice")
            produced.update(outs)
    for m in r.tables(model, 6):
        if r.scalar(m, 1, "<I") >= len(buffers):
            raise ValueError("metadata buffer index out of range")


def read_tflite_metadata(buf: bytes) -> dict[str, bytes]:
    """The model's metadata entries, name -> raw bytes of their buffer (ValueError if damaged)."""
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
