"""Preprocessing parity: the device (numpy + Pillow) sees what training (TensorFlow) saw.

Training side: ``train.preprocess_tf.decode_and_preprocess`` when train/ has
it, else the same TF ops inline: ``tf.io.decode_jpeg(dct_method=
"INTEGER_ACCURATE")`` + EXIF orientation + ``tf.image.resize`` (bilinear or
nearest, no antialias) + the manifest's normalization. Device side:
``edge_runtime.preprocess.preprocess``.

Proof on real photos (the 800 cat/dog JPEGs beside the checkout, skipped
with a reason when absent) and on scikit-learn's two sample photos (skipped
when scikit-learn is absent): the decoded pixels are identical (the device's
fast libjpeg-turbo path, edge_runtime/jpeg.py, against TensorFlow's
``decode_jpeg(dct_method="INTEGER_ACCURATE")``), the model inputs agree at
exactly 0/255 (max diff == 0, no tolerance), and the exported model gives the
same top-1 through both. Also the image modes users meet:
EXIF orientation, grayscale, RGBA, palette, 16-bit PNG, CMYK JPEG.
"""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest

from edgedeploy.runtime.manifest import Manifest, Normalization
from edgedeploy.runtime.preprocess import load_image, preprocess

pytestmark = pytest.mark.tf
tf = pytest.importorskip("tensorflow", reason="the training side of the comparison needs TensorFlow")

PHOTOS = Path(__file__).resolve().parents[3] / "shared/data/cats_vs_dogs_small"


def _manifest(size=160, method="bilinear", in_graph=False, mean=(0.0, 0.0, 0.0), std=(255.0, 255.0, 255.0), order="RGB"):
    """Normalization to [0, 1] by default, so 1/255 is one grey level."""
    return Manifest(labels=["a", "b"], input_height=size, input_width=size, resize_method=method, color_order=order,
                    normalization=Normalization(in_graph=in_graph, mean=list(mean), std=list(std)))


def _tf_side(data: bytes, manifest: Manifest) -> np.ndarray:
    try:
        from edgedeploy.train.preprocess_tf import decode_and_preprocess
    except ImportError:
        decode_and_preprocess = None
    if decode_and_preprocess is not None:
        return decode_and_preprocess(data, manifest)
    # Inline fallback: the same ops, for a checkout without train/.
    from PIL import Image

    img = tf.io.decode_jpeg(data, channels=3, dct_method="INTEGER_ACCURATE").numpy()
    orientation = Image.open(io.BytesIO(data)).getexif().get(0x0112, 1)
    img = {3: np.rot90(img, 2), 6: np.rot90(img, 3), 8: np.rot90(img, 1)}.get(orientation, img)
    x = tf.image.resize(tf.cast(img, tf.float32), (manifest.input_height, manifest.input_width),
                        method=manifest.resize_method, antialias=False)
    if manifest.color_order == "BGR":
        x = tf.reverse(x, axis=[-1])
    n = manifest.normalization
    if not n.in_graph:
        x = (x - tf.constant(n.mean, tf.float32)) / tf.constant(n.std, tf.float32)
    return x.numpy()


def _photos(step: int = 1) -> list[Path]:
    if not (PHOTOS / "cat").is_dir():
        pytest.skip(f"real photos not found at {PHOTOS} (they sit beside the checkout, in ../shared)")
    return sorted(PHOTOS.glob("*/*.jpg"))[::step]


def _sklearn_photos() -> dict[str, bytes]:
    datasets = pytest.importorskip("sklearn.datasets", reason="scikit-learn is not installed")
    from PIL import Image

    out = {}
    for name, arr in zip(datasets.load_sample_images().filenames, datasets.load_sample_images().images):
        buf = io.BytesIO()
        Image.fromarray(arr).save(buf, "JPEG", quality=92)  # encode once; both sides decode the same bytes
        out[Path(name).name] = buf.getvalue()
    return out


@pytest.mark.slow
@pytest.mark.parametrize("method", ["bilinear", "nearest"])
def test_real_photos_match_training_exactly(method):
    m = _manifest(160, method)
    n = 0
    for path in _photos(step=1 if method == "bilinear" else 8):
        data = path.read_bytes()
        diff = float(np.abs(preprocess(data, m) - _tf_side(data, m)).max())
        n += 1
        assert diff == 0.0, f"{path.name}: device differs from training by {diff * 255:.6f}/255"
    assert n >= 50 if method == "nearest" else n == 800


@pytest.mark.slow
def test_real_photos_decode_to_the_same_pixels_on_the_fast_path(monkeypatch):
    """Every shared photo takes the fast JPEG path, and its pixels are TensorFlow's, to the bit."""
    from edgedeploy.runtime import jpeg

    real, calls = jpeg.fast_decoder(), [0]
    if real is None:
        pytest.skip("simplejpeg is not installed: the fast path is off (Pillow decodes, as proven above)")

    class Counting:
        @staticmethod
        def decode_jpeg(*a, **kw):
            calls[0] += 1
            return real.decode_jpeg(*a, **kw)

    monkeypatch.setattr(jpeg, "fast_decoder", lambda: Counting)
    paths = _photos()
    for path in paths:
        data = path.read_bytes()
        want = tf.io.decode_jpeg(data, channels=3, dct_method="INTEGER_ACCURATE").numpy()
        np.testing.assert_array_equal(load_image(data), want, err_msg=path.name)
    assert calls[0] == len(paths) == 800


def test_sklearn_sample_photos_match_training():
    for size, method in ((160, "bilinear"), (224, "bilinear"), (97, "nearest"), (600, "bilinear")):  # up- and downscaling
        m = _manifest(size, method)
        for name, data in _sklearn_photos().items():
            diff = float(np.abs(preprocess(data, m) - _tf_side(data, m)).max())
            assert diff == 0, f"{name} at {size} {method}: {diff * 255:.3f}/255"


def test_normalization_math_and_colour_order_match():
    data = next(iter(_sklearn_photos().values()))
    for m in (_manifest(128, mean=(123.68, 116.78, 103.94), std=(58.4, 57.1, 57.4)),
              _manifest(128, mean=(103.939, 116.779, 123.68), std=(1.0, 1.0, 1.0), order="BGR"),
              _manifest(128, in_graph=True)):
        std = np.asarray(m.normalization.std if not m.normalization.in_graph else [1.0] * 3)
        diff = np.abs(preprocess(data, m) - _tf_side(data, m)) * std  # back to grey levels
        assert diff.max() == 0, f"{m.color_order} {m.normalization}: {diff.max():.6f} grey levels"


@pytest.mark.slow
def test_model_gives_the_same_top1_through_both_paths(edge_models):
    from edgedeploy.runtime import ImageClassifier

    clf = ImageClassifier(edge_models / "model_float32.tflite")
    m = clf.manifest
    sources = [p.read_bytes() for p in _photos(step=8)] if (PHOTOS / "cat").is_dir() else []
    sources += list(_sklearn_photos().values())
    edge = np.stack([preprocess(s, m) for s in sources])
    train = np.stack([_tf_side(s, m) for s in sources])
    np.testing.assert_array_equal(edge, train)  # 0/255: the same model input, so the same answers
    pe, pt = clf.predict_tensor(edge), clf.predict_tensor(train)
    np.testing.assert_array_equal(pe, pt)


# -- image modes ------------------------------------------------------------------
def _encode(img, fmt, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


@pytest.fixture(scope="module")
def photo():
    from PIL import Image

    rng = np.random.default_rng(3)
    base = rng.integers(0, 256, (60, 90, 3), dtype=np.uint8)
    base[20:40, 10:80] = [200, 30, 60]  # some structure so orientation errors show
    return Image.fromarray(base)


@pytest.mark.parametrize("orientation", [1, 3, 6, 8])
def test_exif_orientation_is_applied_like_training(photo, orientation):
    from PIL import Image

    exif = Image.Exif()
    exif[0x0112] = orientation
    data = _encode(photo, "JPEG", quality=95, exif=exif.tobytes())
    dev = load_image(data)
    assert dev.shape[:2] == ((90, 60) if orientation in (6, 8) else (60, 90))
    m = _manifest(48)
    assert np.abs(preprocess(data, m) - _tf_side(data, m)).max() == 0


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "I;16", "CMYK", "LA", "1"])
def test_image_modes_decode_like_training(photo, mode):
    if mode == "I;16":
        arr16 = (np.asarray(photo.convert("L")).astype(np.uint16) * 257 + 128).astype(np.uint16)
        from PIL import Image

        img, fmt = Image.fromarray(arr16), "PNG"
    elif mode == "CMYK":
        img, fmt = photo.convert("CMYK"), "JPEG"
    elif mode == "P":
        img, fmt = photo.convert("P", palette=1, colors=64), "PNG"  # 1 = ADAPTIVE
    else:
        img, fmt = photo.convert(mode), "PNG"
    data = _encode(img, fmt, **({"quality": 95} if fmt == "JPEG" else {}))
    dev = load_image(data)
    assert dev.dtype == np.uint8 and dev.shape == (60, 90, 3)
    if mode == "CMYK":
        # TF's libjpeg and Pillow invert Adobe CMYK differently; what matters on the
        # device is a sane RGB image close to the original colours.
        assert np.abs(dev.astype(int) - np.asarray(photo).astype(int)).mean() < 30
        return
    m = _manifest(48)
    diff = np.abs(preprocess(data, m) - _tf_side(data, m)).max()
    assert diff == 0, f"{mode}: {diff * 255:.3f}/255"


def test_grayscale_models_get_one_channel(photo):
    m = Manifest(labels=["a"], input_height=20, input_width=30, input_channels=1,
                 normalization=Normalization(in_graph=True, mean=[0.0], std=[1.0]))
    for img in (photo, photo.convert("L"), photo.convert("RGBA")):
        x = preprocess(_encode(img, "PNG"), m)
        assert x.shape == (20, 30, 1)


@pytest.mark.parametrize("normalize", ["imagenet", "0-1"])
def test_nchw_model_input_is_the_training_side_channels_first(edge_models, tmp_path, normalize):
    """A PyTorch-style model (layout nchw): the device's input is the training-side array transposed, same values."""
    from edgedeploy.runtime import ImageClassifier
    from edgedeploy.runtime.manifest import NORMALIZE_PRESETS

    from byom_fixtures import nchw_onnx

    mean, std = NORMALIZE_PRESETS[normalize]
    m = _manifest(32, mean=mean, std=std).replace(layout="nchw", labels=[str(i) for i in range(10)])
    clf = ImageClassifier(nchw_onnx(edge_models / "model_float32.onnx", tmp_path / "nchw.onnx"), manifest=m)
    sources = [p.read_bytes() for p in _photos(step=40)] if (PHOTOS / "cat").is_dir() else []
    sources += list(_sklearn_photos().values())
    for data in sources:
        device = clf.preprocess(data)
        train = _tf_side(data, m).transpose(2, 0, 1)
        assert device.shape == (3, 32, 32) and device.flags.c_contiguous
        assert (np.abs(device - train) * np.asarray(m.normalization.std)[:, None, None]).max() <= 1.0  # grey levels
