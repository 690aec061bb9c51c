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

from edgedeploy.core.errors import EdgeDeployError

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


def choose_indices(labels: np.ndarray, max_samples: int | None, balanced: bool, seed: int, num_classes: int) -> np.ndarray:
    """Seeded subset of ``range(len(labels))``, sorted.

    ``balanced`` takes classes in turn (each class's images in a seeded random
    order) until ``max_samples`` are chosen or every image is taken; without
    ``max_samples`` it keeps the same number of images per class (the smallest
    class's count).
    """
    n = len(labels)
    if max_samples is not None and max_samples < 1:
        raise EdgeDeployError(f"Received max_samples={max_samples}, expected >= 1")
    rng = np.random.default_rng(seed)
    if not balanced:
        if max_samples is None or max_samples >= n:
            return np.arange(n)
        return np.sort(rng.permutation(n)[:max_samples])
    per_class = [rng.permutation(np.flatnonzero(labels == c)) for c in range(num_classes)]
    per_class = [p for p in per_class if len(p)]
    if not per_class:
        return np.zeros(0, dtype=np.int64)
    if max_samples is None:
        k = min(len(p) for p in per_class)
        return np.sort(np.concatenate([p[:k] for p in per_class]))
    picked: list[int] = []
    depth = 0
    while len(picked) < max_samples and any(depth < len(p) for p in per_class):
        for p in per_class:
            if depth < len(p) and len(picked) < max_samples:
                picked.append(int(p[depth]))
        depth += 1
    return np.sort(np.asarray(picked, dtype=np.int64))
