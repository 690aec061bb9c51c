"""Training-side preprocessing in TensorFlow, identical to the device's.

The device (``edge_runtime.preprocess``) decodes with Pillow, applies the
EXIF orientation, resizes with a numpy port of ``tf.image.resize`` (bilinear,
half-pixel centres, no antialias) and normalizes with ``normalize``. Here:

- ``tf_decode``: ``tf.io.decode_jpeg(dct_method="INTEGER_ACCURATE")`` (the
  default fast DCT is up to 4/255 off Pillow; the accurate one matches it
  exactly), which also decodes PNG/GIF/BMP, plus the EXIF orientation;
- ``tf_resize``: ``tf.image.resize(x, (h, w), method)`` with antialias off;
- ``tf_normalize``: channel reorder and ``(x - mean) / std`` in float32, the
  same operations in the same order as ``edge_runtime.preprocess.normalize``.

``preprocess_images`` and ``decode_and_preprocess`` are the public helpers
export/ and the parity tests use: they return what Keras sees.
"""
from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from edgedeploy.runtime.manifest import Manifest
from edgedeploy.runtime.preprocess import load_image

from ._tf import import_tf

_ORIENTATION_TAG = 0x0112


def exif_orientation(data: bytes) -> int:
    """The EXIF orientation (1..8) of encoded image bytes, 1 when absent or unreadable.

    Reads the header only (no pixel decode), with the same Pillow call that
    ``ImageOps.exif_transpose`` uses on the device.
    """
    if isinstance(data, np.ndarray):  # tf.numpy_function passes a 0-d object array
        data = data.item()
    try:
        from PIL import Image

        with Image.open(io.BytesIO(bytes(data))) as img:
            value = int(img.getexif().get(_ORIENTATION_TAG, 1))
    except Exception:
        return 1
    return value if 1 <= value <= 8 else 1


def tf_apply_orientation(image: Any, orientation: Any) -> Any:
    """Undo an EXIF orientation like Pillow's ``ImageOps.exif_transpose``."""
    tf = import_tf()

    def transpose(x: Any) -> Any:
        return tf.transpose(x, [1, 0, 2])

    branches = [
        lambda: image,  # 0: unused
        lambda: image,  # 1: normal
        lambda: tf.image.flip_left_right(image),  # 2: mirror horizontal
        lambda: tf.image.rot90(image, 2),  # 3: rotate 180
        lambda: tf.image.flip_up_down(image),  # 4: mirror vertical
        lambda: transpose(image),  # 5: transpose
        lambda: tf.image.rot90(image, 3),  # 6: rotate 90 clockwise (PIL ROTATE_270)
        lambda: tf.image.rot90(transpose(image), 2),  # 7: transverse
        lambda: tf.image.rot90(image, 1),  # 8: rotate 90 counter-clockwise (PIL ROTATE_90)
    ]
    out = tf.switch_case(tf.clip_by_value(tf.cast(orientation, tf.int32), 0, 8), branches)
    out.set_shape([None, None, image.shape[-1]])
    return out


def tf_decode(data: Any, channels: int = 3) -> Any:
    """Decode encoded image bytes (a scalar string tensor) to uint8 (H, W, channels).

    Matches ``edge_runtime.preprocess.load_image`` on JPEGs exactly (accurate
    integer DCT, EXIF orientation applied).
    """
    tf = import_tf()
    image = tf.io.decode_jpeg(data, channels=channels, dct_method="INTEGER_ACCURATE")
    orientation = tf.numpy_function(exif_orientation, [data], tf.int64, stateful=False)
    return tf_apply_orientation(image, orientation)


def tf_resize(image: Any, height: int, width: int, method: str = "bilinear") -> Any:
    """float32 resize exactly like ``edge_runtime.preprocess.resize``."""
    tf = import_tf()
    x = tf.cast(image, tf.float32)
    return tf.image.resize(x, (height, width), method=method, antialias=False)


def tf_normalize(x: Any, manifest: Manifest) -> Any:
    """Colour order and ``(x - mean) / std`` as ``edge_runtime.preprocess.normalize``."""
    tf = import_tf()
    x = tf.cast(x, tf.float32)
    if manifest.color_order == "BGR" and x.shape[-1] == 3:
        x = tf.reverse(x, axis=[-1])
    n = manifest.normalization
    if not n.in_graph:
        x = (x - tf.constant(n.mean, tf.float32)) / tf.constant(n.std, tf.float32)
    return x


def preprocess_images(images: np.ndarray | Sequence[np.ndarray], manifest: Manifest, chunk: int = 256) -> np.ndarray:
    """uint8 images (an (N, H, W, C) array or a list of (H, W, C) arrays) -> float32 model input.

    Resizes to the manifest's input size with TensorFlow and normalizes per
    the manifest: exactly what the Keras model sees during training and
    evaluation. Returns an (N, input_height, input_width, input_channels) array.
    """
    tf = import_tf()
    h, w, c = manifest.input_height, manifest.input_width, manifest.input_channels
    if isinstance(images, np.ndarray) and images.ndim == 4 and images.shape[-1] == c:
        out = []
        for i in range(0, len(images), chunk):
            x = tf_resize(tf.convert_to_tensor(images[i : i + chunk]), h, w, manifest.resize_method)
            out.append(tf_normalize(x, manifest).numpy())
        return np.concatenate(out, axis=0) if out else np.zeros((0, h, w, c), np.float32)
    out = []
    for img in images:
        arr = load_image(np.asarray(img), channels=c)  # any (H, W[, 1|3|4]) uint8 -> (H, W, c)
        x = tf_resize(tf.convert_to_tensor(arr), h, w, manifest.resize_method)
        out.append(tf_normalize(x, manifest).numpy())
    return np.stack(out).astype(np.float32, copy=False) if out else np.zeros((0, h, w, c), np.float32)


def decode_and_preprocess(source: str | os.PathLike | bytes, manifest: Manifest) -> np.ndarray:
    """The pure-TensorFlow path for one encoded image: decode, resize, normalize.

    Returns float32 (input_height, input_width, input_channels), to compare
    with ``edge_runtime.preprocess.preprocess(source, manifest)``.
    """
    tf = import_tf()
    data = source if isinstance(source, bytes) else Path(source).read_bytes()
    img = tf_decode(tf.constant(data), channels=manifest.input_channels)
    x = tf_resize(img, manifest.input_height, manifest.input_width, manifest.resize_method)
    return tf_normalize(x, manifest).numpy()
