"""The embedded default dataset: scikit-learn's handwritten ``digits``.

1,797 real 8x8 grayscale scans (UCI "Optical Recognition of Handwritten
Digits", CC BY 4.0), shipped inside the package as ``digits.npz`` (45 KB) so
that training, export and the benchmarks on a Pi all run offline and agree
on the same split, without scikit-learn installed.

The split is defined here, once: train/ trains on it and benchmarks/ scores on
the same held-out test images.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

DIGITS_PATH = Path(__file__).with_name("digits.npz")
DIGITS_LABELS = [str(i) for i in range(10)]
SPLIT_FRACTIONS = {"train": 0.70, "validation": 0.15, "test": 0.15}
SPLIT_SEED = 1234


@dataclass
class ImageSet:
    """uint8 RGB images (N, H, W, 3), integer labels (N,) and the label names."""

    images: np.ndarray
    labels: np.ndarray
    label_names: list[str]

    def __len__(self) -> int:
        return len(self.labels)


def load_digits(split: str = "all") -> ImageSet:
    """Load the embedded digits as 8x8 uint8 RGB images.

    Args:
        split: "train", "validation", "test" or "all".

    Returns:
        An ``ImageSet``. Pixel values 0..16 are scaled to 0..255 and the
        single channel repeated to three, so the images look like any photo
        to the rest of the pipeline.
    """
    with np.load(DIGITS_PATH, allow_pickle=False) as z:
        raw = z["images"].astype(np.float32)
        target = z["target"].astype(np.int64)
    images = np.round(raw * (255.0 / 16.0)).astype(np.uint8)[..., None].repeat(3, axis=-1)
    if split == "all":
        return ImageSet(images, target, list(DIGITS_LABELS))
    if split not in SPLIT_FRACTIONS:
        raise ValueError(f"Received split={split!r}, expected one of {sorted(SPLIT_FRACTIONS)} or 'all'")
    order = np.random.default_rng(SPLIT_SEED).permutation(len(target))
    n_train = int(round(SPLIT_FRACTIONS["train"] * len(order)))
    n_val = int(round(SPLIT_FRACTIONS["validation"] * len(order)))
    bounds = {"train": (0, n_train), "validation": (n_train, n_train + n_val), "test": (n_train + n_val, len(order))}
    lo, hi = bounds[split]
    idx = np.sort(order[lo:hi])
    return ImageSet(images[idx], target[idx], list(DIGITS_LABELS))
