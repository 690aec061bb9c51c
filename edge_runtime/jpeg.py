"""The fast JPEG path: libjpeg-turbo straight into a numpy array (simplejpeg), Pillow for the rest.

``load_image`` asks ``decode(data, channels, max_pixels)`` first. It answers
an RGB (or grey) uint8 array for the JPEGs it is sure about, and ``None`` for
everything else, which Pillow then decodes exactly as before (same pixels,
same errors). The fast path takes a file only when a header walk (markers up
to the first scan, a few microseconds, no pixel work) shows:

- a sequential Huffman JPEG (SOF0 or SOF1), 8 bits, 1 or 3 components
  (not progressive, lossless, arithmetic-coded, 12-bit or CMYK/YCCK);
- no Adobe APP14 segment (its colour transform flag is left to Pillow);
- no EXIF orientation other than 1 (the tag is read from the first EXIF
  APP1 segment, as Pillow reads it) and no XMP that mentions an orientation;
- at most ``max_pixels`` pixels (Pillow's path raises the error message);
- a colour JPEG for an RGB model, or a grey JPEG (a colour JPEG for a grey
  model goes to Pillow, whose RGB -> L conversion is the defined one).

Pixel identity: simplejpeg decodes with the accurate integer IDCT and fancy
upsampling (``fastdct=False, fastupsample=False``), the same libjpeg-turbo
settings as Pillow and as TensorFlow's ``decode_jpeg(dct_method=
"INTEGER_ACCURATE")``; the three agree at 0/255 on every one of the 800
shared photos (tests/test_preprocess_parity.py, reports/jpeg_decode.md). Any
error or warning from simplejpeg (``strict=True``: a truncated or damaged
file) sends the file to Pillow, whose answer is the defined one.

simplejpeg is in the ``edge`` extra (its aarch64 wheel is under 0.5 MB). When
it is missing, or ``EDGEDEPLOY_JPEG=pillow`` is set, every file goes to Pillow.
It is imported on first use, never at module import.
"""
from __future__ import annotations

import functools
import os
import struct
from typing import Any

import numpy as np

ENV = "EDGEDEPLOY_JPEG"  # "pillow": never use the fast path
_SEQUENTIAL = (0xC0, 0xC1)
_STANDALONE = frozenset((0x01, *range(0xD0, 0xD8)))  # TEM, RST0..7: no length field
_APP1, _APP14, _SOS = 0xE1, 0xEE, 0xDA
_EXIF = b"Exif\x00\x00"
_XMP = b"http://ns.adobe.com/xap/1.0/\x00"
_ORIENTATION = 0x0112


@functools.lru_cache(maxsize=1)
def fast_decoder() -> Any:
    """The simplejpeg module, or None (not installed, or ``EDGEDEPLOY_JPEG=pillow``)."""
    if os.environ.get(ENV, "").strip().lower() == "pillow":
        return None
    try:
        import simplejpeg
    except ImportError:
        return None
    return simplejpeg


def decoder_name() -> str:
    """What decodes a plain JPEG here: "simplejpeg X.Y" or "Pillow"."""
    mod = fast_decoder()
    return f"simplejpeg {getattr(mod, '__version__', '?')}" if mod is not None else "Pillow"


def exif_orientation(app1: bytes) -> int | None:
    """The orientation tag of an EXIF APP1 payload (after ``Exif\\0\\0``): 1 when absent, None when unreadable."""
    try:
        order = {b"II": "<", b"MM": ">"}[bytes(app1[:2])]
        magic, ifd = struct.unpack_from(order + "HI", app1, 2)
        if magic != 42:
            return None
        (count,) = struct.unpack_from(order + "H", app1, ifd)
        for k in range(count):
            tag, kind, n = struct.unpack_from(order + "HHI", app1, ifd + 2 + 12 * k)
            if tag == _ORIENTATION:
                return struct.unpack_from(order + "H", app1, ifd + 10 + 12 * k)[0] if (kind, n) == (3, 1) else None
    except (KeyError, struct.error):
        return None
    return 1


def plain_jpeg_shape(data: bytes) -> tuple[int, int, int] | None:
    """(height, width, components) when ``data`` is a JPEG for the fast path (module docstring), else None."""
    if data[:2] != b"\xff\xd8":
        return None
    i, n, sof = 2, len(data), None
    while i + 4 <= n:
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in _STANDALONE:
            i += 2
            continue
        end = i + 2 + ((data[i + 2] << 8) | data[i + 3])
        if marker == _SOS:  # the first scan: a progressive, lossless or arithmetic file had no SOF0/SOF1
            return sof
        if end > n or marker == _APP14:
            return None
        if marker in _SEQUENTIAL:
            precision, h, w, comps = data[i + 4], (data[i + 5] << 8) | data[i + 6], (data[i + 7] << 8) | data[i + 8], data[i + 9]
            if sof is not None or precision != 8 or comps not in (1, 3) or h < 1 or w < 1:
                return None
            sof = (h, w, comps)
        elif marker == _APP1 and not _app1_is_upright(data[i + 4:end]):
            return None
        i = end
    return None  # no scan: let Pillow say what is wrong


def _app1_is_upright(payload: bytes) -> bool:
    """False when an APP1 segment may turn the image (Pillow's exif_transpose acts on 2..8)."""
    if payload.startswith(_EXIF):
        value = exif_orientation(payload[len(_EXIF):])
        return value is not None and not 2 <= value <= 8
    if payload.startswith(_XMP):
        return b"rientation" not in payload  # tiff:Orientation, in an attribute or an element
    return True


def decode(data: bytes, channels: int, max_pixels: int) -> np.ndarray | None:
    """The image as uint8 (H, W, channels) when it takes the fast path; None: decode it with Pillow."""
    if channels not in (1, 3):
        return None
    mod = fast_decoder()
    if mod is None:
        return None
    shape = plain_jpeg_shape(data)
    if shape is None:
        return None
    h, w, comps = shape
    if h * w > max_pixels or (channels == 1 and comps != 1):
        return None
    try:
        arr = mod.decode_jpeg(data, colorspace="GRAY" if channels == 1 else "RGB", fastdct=False, fastupsample=False,
                              strict=True)
    except Exception:  # noqa: BLE001  damaged or unusual: Pillow decides (and words the error)
        return None
    return arr if arr.ndim == 3 else arr[..., None]
