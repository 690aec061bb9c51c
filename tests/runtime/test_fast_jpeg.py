"""The fast JPEG path (edge_runtime/jpeg.py): which files take it, and that it changes no pixel and no error.

Everything the fast path does not take must reach Pillow (EXIF-rotated,
progressive, CMYK, PNG, damaged files); what it takes must be pixel-identical
to Pillow's decode, which tests/test_preprocess_parity.py proves identical
to TensorFlow's. TF-free.
"""
from __future__ import annotations

import io

import numpy as np
import pytest

from edgedeploy.core.errors import ImageError
from edgedeploy.runtime import jpeg
from edgedeploy.runtime.preprocess import load_image

pytest.importorskip("simplejpeg", reason="the fast path needs simplejpeg (the edge extra)")


def _pillow(data: bytes, mode: str = "RGB") -> np.ndarray:
    from PIL import Image, ImageOps

    img = ImageOps.exif_transpose(Image.open(io.BytesIO(data)))
    return np.asarray(img.convert(mode))


def _jpeg(arr: np.ndarray, **kw) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "JPEG", **kw)
    return buf.getvalue()


@pytest.fixture()
def picture() -> np.ndarray:
    rng = np.random.default_rng(11)
    img = rng.integers(0, 256, (53, 71, 3), dtype=np.uint8)
    img[10:30, 5:60] = [220, 40, 90]  # structure, so a turned image shows
    return img


@pytest.fixture()
def calls(monkeypatch):
    """Count the fast decoder's calls."""
    n = [0]
    real = jpeg.fast_decoder()

    class Counting:
        __version__ = real.__version__

        @staticmethod
        def decode_jpeg(*a, **kw):
            n[0] += 1
            return real.decode_jpeg(*a, **kw)

    monkeypatch.setattr(jpeg, "fast_decoder", lambda: Counting)
    return n


@pytest.mark.parametrize("subsampling", [0, 1, 2])  # 4:4:4, 4:2:2, 4:2:0
@pytest.mark.parametrize("size", [(53, 71), (1, 1), (17, 250), (301, 9)])
def test_fast_path_is_pixel_identical_to_pillow(calls, size, subsampling):
    img = np.random.default_rng(size[0] * 7 + subsampling).integers(0, 256, size + (3,), dtype=np.uint8)
    data = _jpeg(img, quality=90, subsampling=subsampling)
    got = load_image(data)
    assert calls[0] == 1
    assert got.dtype == np.uint8 and got.shape == size + (3,) and got.flags.c_contiguous
    np.testing.assert_array_equal(got, _pillow(data))


def test_grey_jpeg_is_fast_for_both_kinds_of_model(calls, picture):
    data = _jpeg(picture[..., 0], quality=90)
    assert jpeg.plain_jpeg_shape(data) == (53, 71, 1)
    np.testing.assert_array_equal(load_image(data), _pillow(data))
    np.testing.assert_array_equal(load_image(data, channels=1), _pillow(data, "L")[..., None])
    assert calls[0] == 2


def test_colour_jpeg_for_a_grey_model_goes_to_pillow(calls, picture):
    data = _jpeg(picture)
    np.testing.assert_array_equal(load_image(data, channels=1), _pillow(data, "L")[..., None])
    assert calls[0] == 0


@pytest.mark.parametrize("orientation", [2, 3, 4, 5, 6, 7, 8])
def test_a_turned_photo_goes_to_pillow_and_is_turned(calls, picture, orientation):
    from PIL import Image

    exif = Image.Exif()
    exif[0x0112] = orientation
    data = _jpeg(picture, exif=exif.tobytes())
    assert jpeg.plain_jpeg_shape(data) is None
    got = load_image(data)
    assert calls[0] == 0
    np.testing.assert_array_equal(got, _pillow(data))
    assert got.shape[:2] == ((71, 53) if orientation >= 5 else (53, 71))


@pytest.mark.parametrize("byte_order", ["<", ">"])
def test_upright_exif_keeps_the_fast_path(calls, picture, byte_order):
    import struct

    order = b"II" if byte_order == "<" else b"MM"
    ifd = (order + struct.pack(byte_order + "HI", 42, 8) + struct.pack(byte_order + "H", 2)
           + struct.pack(byte_order + "HHIHH", 0x010F, 3, 1, 7, 0)  # Make, then Orientation = 1
           + struct.pack(byte_order + "HHIHH", 0x0112, 3, 1, 1, 0) + b"\0\0\0\0")
    data = _jpeg(picture, exif=b"Exif\0\0" + ifd)
    assert jpeg.exif_orientation(ifd) == 1 and jpeg.plain_jpeg_shape(data) == (53, 71, 3)
    np.testing.assert_array_equal(load_image(data), _pillow(data))
    assert calls[0] == 1
    turned = ifd.replace(struct.pack(byte_order + "HHIHH", 0x0112, 3, 1, 1, 0), struct.pack(byte_order + "HHIHH", 0x0112, 3, 1, 6, 0))
    assert jpeg.exif_orientation(turned) == 6
    assert jpeg.exif_orientation(b"XX" + ifd[2:]) is None and jpeg.exif_orientation(ifd[:12]) is None


def _with_segment(data: bytes, marker: int, payload: bytes) -> bytes:
    return data[:2] + bytes((0xFF, marker)) + (len(payload) + 2).to_bytes(2, "big") + payload + data[2:]


def test_xmp_orientation_and_adobe_segments_go_to_pillow(picture):
    data = _jpeg(picture)
    xmp = b"http://ns.adobe.com/xap/1.0/\0<x:xmpmeta><rdf:Description tiff:Orientation=\"6\"/></x:xmpmeta>"
    with_xmp = _with_segment(data, 0xE1, xmp)
    plain_xmp = _with_segment(data, 0xE1, b"http://ns.adobe.com/xap/1.0/\0<x:xmpmeta/>")
    adobe = _with_segment(data, 0xEE, b"Adobe\0\x64\0\0\0\0\x01")  # APP14, transform 1 (YCbCr)
    assert jpeg.plain_jpeg_shape(data) == jpeg.plain_jpeg_shape(plain_xmp) == (53, 71, 3)
    assert jpeg.plain_jpeg_shape(with_xmp) is None and jpeg.plain_jpeg_shape(adobe) is None
    for d in (with_xmp, adobe):
        np.testing.assert_array_equal(load_image(d), _pillow(d))


def test_progressive_cmyk_and_other_formats_go_to_pillow(calls, picture):
    from PIL import Image

    def enc(img, fmt, **kw):
        buf = io.BytesIO()
        img.save(buf, fmt, **kw)
        return buf.getvalue()

    pil = Image.fromarray(picture)
    cases = {"progressive": enc(pil, "JPEG", progressive=True), "cmyk": enc(pil.convert("CMYK"), "JPEG"),
             "png": enc(pil, "PNG"), "webp": enc(pil, "WEBP", lossless=True), "palette": enc(pil.convert("P"), "PNG")}
    for name, data in cases.items():
        assert jpeg.plain_jpeg_shape(data) is None, name
        assert load_image(data).shape == (53, 71, 3), name
    assert calls[0] == 0
    np.testing.assert_array_equal(load_image(cases["progressive"]), _pillow(cases["progressive"]))


def test_damaged_and_oversized_jpegs_keep_pillows_errors(calls, picture, tmp_path):
    data = _jpeg(picture)
    with pytest.raises(ImageError, match="corrupt or truncated image <bytes>"):
        load_image(data[: len(data) // 2])
    with pytest.raises(ImageError, match=r"image has 71x53 = 3763 pixels, more than the limit of 3000"):
        load_image(data, max_pixels=3000)
    for bad in (b"\xff\xd8", b"\xff\xd8\xff", b"\xff\xd8\xff\xc0\x00\x11junk", data[:200]):
        assert jpeg.plain_jpeg_shape(bad) is None
        with pytest.raises(ImageError):
            load_image(bad)
    (tmp_path / "empty.jpg").write_bytes(b"")
    with pytest.raises(ImageError, match="image file is empty"):
        load_image(tmp_path / "empty.jpg")
    with pytest.raises(ImageError, match="got a directory"):
        load_image(tmp_path)
    with pytest.raises(ImageError, match="image not found"):
        load_image(tmp_path / "missing.jpg")


def test_the_switch_and_a_missing_simplejpeg_fall_back_to_pillow(monkeypatch, picture):
    data = _jpeg(picture)
    jpeg.fast_decoder.cache_clear()
    monkeypatch.setenv(jpeg.ENV, "pillow")
    try:
        assert jpeg.fast_decoder() is None and jpeg.decoder_name() == "Pillow"
        assert jpeg.decode(data, 3, 10**9) is None
        np.testing.assert_array_equal(load_image(data), _pillow(data))
    finally:
        jpeg.fast_decoder.cache_clear()
    monkeypatch.delenv(jpeg.ENV)
    assert jpeg.decoder_name().startswith("simplejpeg ")


def test_damaged_jpegs_get_the_same_pixels_or_error_with_and_without_the_fast_path(monkeypatch):
    """Seeded mutations (bytes changed, files cut, segment headers overwritten): never a crash, never a difference."""
    import random

    rng = random.Random(7)
    pic = np.random.default_rng(5).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    seeds = [_jpeg(pic, quality=q, subsampling=s) for q, s in ((90, 2), (75, 1), (95, 0))]

    def outcome(data: bytes) -> object:
        try:
            return load_image(data)
        except ImageError as exc:
            return str(exc)

    for i in range(300):
        d = bytearray(rng.choice(seeds))
        kind = i % 3
        if kind == 0:
            for _ in range(rng.randint(1, 6)):
                d[rng.randrange(len(d))] = rng.randrange(256)
        elif kind == 1:
            d = d[: rng.randrange(2, len(d))]
        else:
            j = rng.randrange(2, min(400, len(d) - 4))
            d[j:j + 4] = bytes(rng.randrange(256) for _ in range(4))
        fast = outcome(bytes(d))
        jpeg.fast_decoder.cache_clear()
        monkeypatch.setenv(jpeg.ENV, "pillow")
        slow = outcome(bytes(d))
        monkeypatch.delenv(jpeg.ENV)
        jpeg.fast_decoder.cache_clear()
        if isinstance(slow, str) or isinstance(fast, str):
            assert fast == slow, i
        else:
            np.testing.assert_array_equal(fast, slow, err_msg=str(i))
