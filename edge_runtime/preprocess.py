"""Image preprocessing, defined once for training and for the device.

The device side is numpy + Pillow, plus simplejpeg for plain JPEGs (jpeg.py).
Training (train/preprocess_tf.py) decodes with TensorFlow's ``decode_jpeg
(dct_method="INTEGER_ACCURATE")``, pixel-identical to ``load_image``, and
resizes with ``tf.image.resize(..., "bilinear")``; ``resize`` here reproduces
that op in numpy (half-pixel centres, no antialiasing, the same float32
operations in the same order). Training and the device agree at exactly
0/255 on all 800 shared photos: tests/runtime/test_preprocess_parity.py.

Why not Pillow's resize: Pillow's BILINEAR antialiases when downscaling and
differs from tf.image.resize by up to 106/255 on 500 -> 160 px photos, a
silent accuracy killer. Why not antialias=True in TF: still 4/255 off Pillow.
"""
from __future__ import annotations

import functools
import io
import os
from typing import TYPE_CHECKING, Any, Union

import numpy as np

from edgedeploy.core.errors import ImageError

from .jpeg import decode as decode_jpeg
from .options import DEFAULT_MAX_PIXELS

if TYPE_CHECKING:  # Pillow is imported lazily: a tensor-only caller never pays for it
    from PIL import Image as PILImage

    from .manifest import Manifest


ImageSource = Union[str, os.PathLike, bytes, "PILImage.Image", np.ndarray]
_PIXEL_COPY_BLOCK = 4 * 1024 * 1024
_EXIF_ORIENTATION = 0x0112
_TRANSPOSED = (2, 3, 4, 5, 6, 7, 8)  # EXIF orientations that need a flip or a rotation


def load_image(source: ImageSource, channels: int = 3, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode an image to a uint8 array of shape (H, W, channels), RGB order.

    Args:
        source: a path, encoded bytes, a PIL image, or a uint8 numpy array of
            shape (H, W), (H, W, 1), (H, W, 3) or (H, W, 4).
        channels: 3 for RGB, 1 for grayscale.
        max_pixels: refuse images with more pixels than this (decompression bombs).

    Returns:
        ``np.ndarray`` of dtype uint8 and shape (H, W, channels).

    Raises:
        ImageError: the file is missing, empty, corrupt, truncated, not an
            image, or larger than ``max_pixels``.
    """
    if isinstance(source, np.ndarray):
        return _from_array(source, channels)
    name, data = _read_source(source)
    if data is not None:
        fast = decode_jpeg(data, channels, max_pixels)  # plain JPEGs: libjpeg-turbo straight into numpy
        if fast is not None:
            return fast
    from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

    if ImageFile.MAXBLOCK < _PIXEL_COPY_BLOCK:
        # np.asarray(img) goes through img.tobytes(), which copies the pixels in
        # MAXBLOCK (64 KB) pieces and joins them: on worker threads those pieces
        # fragment the heap (+30 MB RSS over 2,000 photos with 2 threads,
        # benchmarks/throughput.py). A 4 MB block copies a 1.4 MP RGB frame in
        # one piece. Only raised, never lowered; Pillow's save uses it as its
        # minimum buffer size, which is harmless.
        ImageFile.MAXBLOCK = _PIXEL_COPY_BLOCK
    if data is None:
        if not isinstance(source, Image.Image):
            raise ImageError(f"cannot read an image from {type(source).__name__}; expected a path, bytes, PIL image or uint8 array")
        img = source

    try:
        if data is not None:
            img = Image.open(io.BytesIO(data))
        w, h = img.size
        if w * h > max_pixels:
            raise ImageError(f"image has {w}x{h} = {w * h} pixels, more than the limit of {max_pixels}: {name}")
        img.load()  # decode now so truncation surfaces here, not later
        if img.getexif().get(_EXIF_ORIENTATION, 1) in _TRANSPOSED:  # the photo as the camera meant it
            img = ImageOps.exif_transpose(img)  # (skipped when upright: it would copy the image)
        return _to_channels(img, channels)
    except ImageError:
        raise
    except UnidentifiedImageError:
        raise ImageError(f"not a recognised image file: {name}") from None
    except Image.DecompressionBombError as exc:  # Pillow's own cap, checked in open()
        raise ImageError(f"image has more pixels than allowed, more than the limit of {max_pixels} (a decompression bomb?): {name}: {exc}") from None
    except MemoryError:
        raise ImageError(f"image is too large to decode in the memory available: {name}") from None
    except Exception as exc:  # noqa: BLE001  Pillow's decoders raise many types on damaged files
        # (OSError, ValueError, SyntaxError, EOFError, struct.error, IndexError, ...): all mean "bad image".
        raise ImageError(f"corrupt or truncated image {name}: {type(exc).__name__}: {exc}") from None


def _read_source(source: Any) -> tuple[str, bytes | None]:
    """(name for messages, encoded bytes) of a path or bytes; (name, None) for anything else."""
    if isinstance(source, (str, os.PathLike)):
        name = str(source)
        try:  # one open and read; the reasons come from the errors (no stat calls first)
            with open(source, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            raise ImageError(f"image not found: {name}") from None
        except IsADirectoryError:
            raise ImageError(f"expected an image file, got a directory: {name}") from None
        except OSError as exc:
            raise ImageError(f"cannot read image {name}: {exc.strerror or exc}") from None
        if not data:
            raise ImageError(f"image file is empty (0 bytes): {name}")
        return name, data
    if isinstance(source, bytes):
        if not source:
            raise ImageError("image data is empty (0 bytes)")
        return "<bytes>", source
    return "<bytes>", None


def _to_channels(img: "PILImage.Image", channels: int) -> np.ndarray:
    """Convert any Pillow mode to uint8 RGB (or L), the way TF's decoders do."""
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        # 16-bit (or 32-bit int) grayscale: keep the high byte, as libpng's
        # strip_16 (and so tf.io.decode_png with dtype=uint8) does.
        a = np.asarray(img).astype(np.int64)
        if mode == "I" and a.max(initial=0) <= 255:
            a8 = a.astype(np.uint8)
        else:
            a8 = np.clip(a >> 8, 0, 255).astype(np.uint8)
        arr = a8[..., None]
        return _from_array(arr, channels)
    if mode == "F":
        arr = np.clip(np.asarray(img), 0, 255).astype(np.uint8)[..., None]
        return _from_array(arr, channels)
    # Alpha is dropped, not composited, matching tf.io.decode_png(channels=3).
    target = "L" if channels == 1 else "RGB"
    if mode in ("RGBA", "LA", "PA") and target == "RGB":
        img = img.convert("RGBA") if mode != "RGBA" else img
        return np.ascontiguousarray(np.asarray(img)[..., :3])
    if mode != target:
        img = img.convert(target)
    return _from_array(np.asarray(img), channels)


def _from_array(arr: np.ndarray, channels: int) -> np.ndarray:
    if arr.dtype != np.uint8:
        raise ImageError(f"image arrays must be uint8 (0..255), got dtype {arr.dtype}")
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 3, 4) or arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ImageError(f"image arrays must have shape (H, W), (H, W, 1), (H, W, 3) or (H, W, 4), got {arr.shape}")
    if arr.shape[2] == 4:
        arr = arr[..., :3]
    if channels == 3 and arr.shape[2] == 1:
        arr = np.repeat(arr, 3, axis=2)
    elif channels == 1 and arr.shape[2] == 3:
        # ITU-R 601-2 luma, as Pillow's convert("L")
        arr = np.round(arr @ np.array([0.299, 0.587, 0.114])).astype(np.uint8)[..., None]
    return np.ascontiguousarray(arr)


def _bilinear_axis(in_size: int, out_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    # TensorFlow's HalfPixelScaler: in = (out + 0.5) * scale - 0.5
    scale = in_size / out_size
    pos = (np.arange(out_size, dtype=np.float32) + 0.5) * np.float32(scale) - 0.5
    floor = np.floor(pos)
    lo = np.clip(floor, 0, in_size - 1).astype(np.intp)
    hi = np.clip(np.ceil(pos), 0, in_size - 1).astype(np.intp)
    frac = (pos - floor).astype(np.float32)
    return lo, hi, frac


def _frozen(*arrays: np.ndarray) -> tuple[np.ndarray, ...]:
    for arr in arrays:
        arr.flags.writeable = False
    return arrays


# Cached per axis, not per image size: a folder of photos has many heights but
# few widths (800 photos here: 592 distinct sizes), and each axis's plan is
# small (a few KB), so 256 entries bound the cache at about 3 MB.
@functools.lru_cache(maxsize=256)
def _row_plan(in_h: int, out_h: int) -> tuple[np.ndarray, ...]:
    y0, y1, fy = _bilinear_axis(in_h, out_h)
    return _frozen(y0, y1, fy[:, None])


@functools.lru_cache(maxsize=256)
def _column_plan(in_w: int, channels: int, out_w: int) -> tuple[np.ndarray, ...]:
    x0, x1, fx = _bilinear_axis(in_w, out_w)
    ch = np.arange(channels)
    c0 = ((x0 * channels)[:, None] + ch).ravel()  # columns of the (H, W*C) view
    c1 = ((x1 * channels)[:, None] + ch).ravel()
    return _frozen(c0, c1, np.repeat(fx, channels)[None, :])


@functools.lru_cache(maxsize=32)
def _bilinear_plan(in_h: int, in_w: int, channels: int, out_h: int, out_w: int) -> tuple[np.ndarray, ...]:
    """Source rows, flat source columns (per channel) and weights of a bilinear resize.

    Built from per-axis plans, so the index arithmetic runs once per distinct
    height and once per distinct width, not once per image.
    """
    y0, y1, fy = _row_plan(in_h, out_h)
    c0, c1, fx = _column_plan(in_w, channels, out_w)
    return (y0, y1, c0, c1, fx, fy)


def resize(image: np.ndarray, height: int, width: int, method: str = "bilinear") -> np.ndarray:
    """Resize like ``tf.image.resize(image, (height, width), method)`` (antialias off).

    Bilinear with half-pixel centres reads 2 source rows and 2 source columns
    per output pixel, so only those ``4 * height * width`` source pixels are
    gathered (in the input dtype, uint8 for a photo) and converted to float32;
    the rest of the image is never touched by float arithmetic. The
    arithmetic is TensorFlow's, in the same order (lerp along x, then along
    y), so the result is bit-identical to interpolating the whole image.

    Args:
        image: array of shape (H, W, C), any numeric dtype.
        height, width: output size.
        method: "bilinear" or "nearest".

    Returns:
        float32 array of shape (height, width, C). Values are not rounded,
        exactly as TensorFlow returns them.
    """
    in_h, in_w = image.shape[:2]
    if method == "nearest":
        # tf.image.resize "nearest" uses half-pixel centres and floor.
        # Computed in float32, as TensorFlow does, so ties fall the same way.
        ys = np.minimum(np.floor((np.arange(height, dtype=np.float32) + 0.5) * np.float32(in_h / height)), in_h - 1).astype(np.intp)
        xs = np.minimum(np.floor((np.arange(width, dtype=np.float32) + 0.5) * np.float32(in_w / width)), in_w - 1).astype(np.intp)
        return image[ys[:, None], xs[None, :]].astype(np.float32)
    if method != "bilinear":
        raise ImageError(f"unknown resize method {method!r}; expected 'bilinear' or 'nearest'")
    if (in_h, in_w) == (height, width):
        return image.astype(np.float32)  # always a fresh array
    channels = image.shape[2] if image.ndim == 3 else 1
    y0, y1, c0, c1, fx, fy = _bilinear_plan(in_h, in_w, channels, height, width)
    rows = np.ascontiguousarray(image).reshape(in_h, in_w * channels)
    f32 = np.float32
    r0, r1 = rows[y0], rows[y1]  # the 2 source rows of every output row, input dtype
    top, t1 = r0.take(c0, axis=1).astype(f32), r0.take(c1, axis=1).astype(f32)  # (height, width*C)
    bot, b1 = r1.take(c0, axis=1).astype(f32), r1.take(c1, axis=1).astype(f32)
    # Same operation order as TensorFlow's kernel: lerp along x, then along y
    # (in place, on (height, width*C) rows so numpy's inner loops are long).
    t1 -= top
    t1 *= fx
    top += t1
    b1 -= bot
    b1 *= fx
    bot += b1
    bot -= top
    bot *= fy
    top += bot
    return top.reshape((height, width, channels) if image.ndim == 3 else (height, width))


def resize_reference(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """The plain whole-image bilinear (float work on every source pixel).

    Kept as the readable definition that ``resize`` must equal, and as the
    baseline of benchmarks/preprocess_speed.py.
    """
    x = image.astype(np.float32, copy=False)
    in_h, in_w = x.shape[:2]
    y0, y1, fy = _bilinear_axis(in_h, height)
    x0, x1, fx = _bilinear_axis(in_w, width)
    fx = fx[None, :, None]
    top = x[y0]
    bot = x[y1]
    top = top[:, x0] + (top[:, x1] - top[:, x0]) * fx
    bot = bot[:, x0] + (bot[:, x1] - bot[:, x0]) * fx
    return top + (bot - top) * fy[:, None, None]


def normalize(x: np.ndarray, manifest: "Manifest") -> np.ndarray:
    """Reorder channels and apply the manifest's normalization to 0..255 float pixels."""
    if manifest.color_order == "BGR" and x.shape[-1] == 3:
        x = x[..., ::-1]
    n = manifest.normalization
    if not n.in_graph:
        x = (x - np.asarray(n.mean, np.float32)) / np.asarray(n.std, np.float32)
    return np.ascontiguousarray(x, dtype=np.float32)


def preprocess(source: ImageSource, manifest: "Manifest", max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode, resize and normalize one image into a float32 (H, W, C) model input."""
    img = load_image(source, manifest.input_channels, max_pixels)
    x = resize(img, manifest.input_height, manifest.input_width, manifest.resize_method)
    return normalize(x, manifest)


