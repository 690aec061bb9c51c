"""The gather-first bilinear resize equals the whole-image numpy port (TF-free).

``resize`` gathers only the 2x2 source neighbours of each output pixel before
any float work; ``resize_reference`` converts and interpolates the whole
image, the definition that tests/runtime/test_preprocess_parity.py proves against
tf.image.resize on real photos. Equal here means equal there.
"""
from __future__ import annotations

import numpy as np
import pytest

from edgedeploy.runtime.preprocess import _bilinear_plan, resize, resize_reference


def _old_nearest(image: np.ndarray, height: int, width: int) -> np.ndarray:
    x = image.astype(np.float32)
    in_h, in_w = x.shape[:2]
    ys = np.minimum(np.floor((np.arange(height, dtype=np.float32) + 0.5) * np.float32(in_h / height)), in_h - 1).astype(np.intp)
    xs = np.minimum(np.floor((np.arange(width, dtype=np.float32) + 0.5) * np.float32(in_w / width)), in_w - 1).astype(np.intp)
    return x[ys][:, xs]


SIZES = [((375, 500), (160, 160)), ((500, 333), (224, 224)), ((37, 41), (160, 96)), ((8, 8), (32, 32)),
         ((1, 1), (5, 7)), ((300, 1), (32, 32)), ((161, 159), (160, 160)), ((64, 64), (1, 1))]


@pytest.mark.parametrize("channels", [1, 3, 4])
@pytest.mark.parametrize("src,dst", SIZES)
def test_resize_matches_whole_image_reference_on_random_images(src, dst, channels):
    rng = np.random.default_rng(src[0] * 1000 + dst[1] + channels)
    img = rng.integers(0, 256, size=src + (channels,), dtype=np.uint8)
    got = resize(img, *dst)
    want = resize_reference(img, *dst)
    assert got.dtype == np.float32 and got.shape == dst + (channels,)
    assert np.abs(got - want).max() <= 1e-4
    np.testing.assert_array_equal(got, want)  # same ops in the same order: bit-identical


def test_resize_of_float_and_strided_input_matches_reference():
    rng = np.random.default_rng(7)
    img = rng.uniform(-3, 300, size=(90, 120, 3)).astype(np.float64)
    np.testing.assert_array_equal(resize(img, 33, 47), resize_reference(img, 33, 47))
    strided = rng.integers(0, 256, size=(200, 300, 3), dtype=np.uint8)[::2, ::-3]  # not contiguous
    np.testing.assert_array_equal(resize(strided, 40, 40), resize_reference(strided, 40, 40))


@pytest.mark.parametrize("src,dst", SIZES[:4])
def test_nearest_matches_old_implementation(src, dst):
    img = np.random.default_rng(3).integers(0, 256, size=src + (3,), dtype=np.uint8)
    got = resize(img, *dst, method="nearest")
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, _old_nearest(img, *dst))


def test_same_size_returns_a_fresh_float_copy():
    img = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    out = resize(img, 2, 3)
    out += 1
    assert img[0, 0, 0] == 0 and out.dtype == np.float32


def test_plan_is_cached_and_read_only():
    resize(np.zeros((50, 60, 3), np.uint8), 10, 10)
    plan = _bilinear_plan(50, 60, 3, 10, 10)
    assert plan is _bilinear_plan(50, 60, 3, 10, 10)
    with pytest.raises(ValueError):
        plan[0][0] = 1


# -- against an independent float64 definition: the sampling grid itself -----------------
def _bilinear_float64(image: np.ndarray, height: int, width: int, shift: float = 0.0) -> np.ndarray:
    """Half-pixel-centre bilinear, no antialias, every coordinate and weight in float64 (no shared code)."""
    img = image.astype(np.float64)
    in_h, in_w = img.shape[:2]

    def axis(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        pos = (np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5 + shift
        lo = np.floor(pos)
        frac = pos - lo
        return np.clip(lo, 0, n_in - 1).astype(int), np.clip(lo + 1, 0, n_in - 1).astype(int), frac

    y0, y1, fy = axis(in_h, height)
    x0, x1, fx = axis(in_w, width)
    fx, fy = fx[None, :, None], fy[:, None, None]
    top = img[y0][:, x0] * (1 - fx) + img[y0][:, x1] * fx
    bot = img[y1][:, x0] * (1 - fx) + img[y1][:, x1] * fx
    return top * (1 - fy) + bot * fy


# Odd sizes, every aspect ratio: down and up, tall and wide, 1-pixel edges.
ODD = [((37, 41), (19, 23)), ((41, 37), (160, 161)), ((101, 7), (33, 99)), ((7, 101), (99, 33)), ((199, 301), (161, 97)),
       ((3, 5), (11, 13)), ((1, 9), (5, 3)), ((9, 1), (3, 5)), ((255, 257), (31, 253))]
GRID_TOL = 5e-5  # pixels in [0, 1]: float32 positions (TensorFlow's) are off by < 1e-5 px at these sizes


@pytest.mark.parametrize("src,dst", ODD)
def test_resize_samples_the_half_pixel_grid_of_the_float64_definition(src, dst):
    rng = np.random.default_rng(src[0] * 31 + dst[1])
    img = rng.uniform(0, 1, size=src + (3,))
    err = np.abs(resize(img, *dst).astype(np.float64) - _bilinear_float64(img, *dst)).max()
    assert err <= GRID_TOL, f"{src} -> {dst}: {err:.2e}"


def test_a_grid_shifted_by_two_thousandths_of_a_pixel_is_caught(monkeypatch):
    """The comparison above has the power to see a 0.002 px shift: a resize sampling there fails it."""
    from edgedeploy.runtime import preprocess as P

    real = P._bilinear_axis

    def shifted(in_size, out_size):
        scale = in_size / out_size
        pos = (np.arange(out_size, dtype=np.float32) + 0.5) * np.float32(scale) - 0.5 + np.float32(0.002)
        floor = np.floor(pos)
        return (np.clip(floor, 0, in_size - 1).astype(np.intp), np.clip(np.ceil(pos), 0, in_size - 1).astype(np.intp),
                (pos - floor).astype(np.float32))

    for fn in (P._row_plan, P._column_plan, P._bilinear_plan):
        fn.cache_clear()
    monkeypatch.setattr(P, "_bilinear_axis", shifted)
    try:
        worst = 0.0
        for src, dst in ODD:
            img = np.random.default_rng(src[0] * 31 + dst[1]).uniform(0, 1, size=src + (3,))
            worst = max(worst, float(np.abs(P.resize(img, *dst) - _bilinear_float64(img, *dst)).max()))
        assert worst > 20 * GRID_TOL
    finally:
        monkeypatch.setattr(P, "_bilinear_axis", real)
        for fn in (P._row_plan, P._column_plan, P._bilinear_plan):
            fn.cache_clear()
