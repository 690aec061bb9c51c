"""Representative data for int8 / int16x8 quantization, shared by both formats.

By default: a seeded, class-balanced sample of the run's TRAIN split,
preprocessed exactly as at training (``train.preprocess_tf.preprocess_images``),
so the ranges the converter measures are the ranges the model saw. With
``--calibration-data DIR``: the images in a folder instead (any layout, read
with ``edge_runtime.preprocess.load_image``, then the same preprocessing).

The TFLite converter and ONNX Runtime's ``CalibrationDataReader`` iterate over
the very same array, one image at a time.
"""
from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from edgedeploy.core.errors import EdgeDeployError
from edgedeploy.runtime.inputs import IMAGE_SUFFIXES
from edgedeploy.runtime.manifest import Manifest
from edgedeploy.runtime.preprocess import load_image

DEFAULT_SAMPLES = 200


@dataclass
class Calibration:
    """Preprocessed float32 samples in the model's layout ((N, H, W, C), or (N, C, H, W)) and where they came from."""

    x: np.ndarray
    source: str
    per_class: dict[str, int] = field(default_factory=dict)
    skipped: int = 0
    raw_images: list[np.ndarray] = field(default_factory=list, repr=False)  # kept out of the parity evidence
    split: dict[str, Any] = field(default_factory=dict)  # how a --calibration-data folder was split (no run folder)

    def __len__(self) -> int:
        return len(self.x)

    def tflite_dataset(self) -> Iterator[list[np.ndarray]]:
        """``converter.representative_dataset``: one [1, H, W, C] batch per sample."""
        for i in range(len(self.x)):
            yield [self.x[i : i + 1]]

    def describe(self) -> dict[str, Any]:
        d: dict[str, Any] = {"source": self.source, "samples": len(self)}
        if self.per_class:
            d["per_class"] = dict(self.per_class)
        if self.skipped:
            d["skipped_unreadable"] = self.skipped
        if self.split:
            d["split"] = dict(self.split)
        return d


def check_sample_count(n: int, num_classes: int | None = None) -> None:
    """One-line errors for an impossible ``--calibration-samples``."""
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise EdgeDeployError(f"Received --calibration-samples {n!r}, expected an integer >= 1 (default {DEFAULT_SAMPLES})")
    if num_classes is not None and n < num_classes:
        raise EdgeDeployError(
            f"Received --calibration-samples {n}, fewer than the model's {num_classes} classes; "
            f"class-balanced calibration needs at least one image per class (default {DEFAULT_SAMPLES})"
        )


def from_run(run_dir: Path, manifest: Manifest, n: int = DEFAULT_SAMPLES, seed: int = 0,
             config: dict[str, Any] | None = None) -> Calibration:
    """``n`` class-balanced images of the run's train split, preprocessed as at training."""
    from .data import load_split, preprocess_images

    check_sample_count(n, manifest.num_classes)
    split = load_split(run_dir, "train", max_samples=n, balanced=True, seed=seed, config=config)
    if len(split) == 0:
        raise EdgeDeployError(f"the train split of {run_dir} is empty; nothing to calibrate on")
    counts = Counter(int(v) for v in np.asarray(split.labels))
    names = split.label_names or manifest.labels
    per_class = {names[c] if c < len(names) else str(c): counts.get(c, 0) for c in range(len(names))}
    x = preprocess_images(split.images, manifest)
    return Calibration(x=x, source=f"train split of {run_dir}", per_class=per_class,
                       raw_images=[split.images[i] for i in range(len(split))])


def list_images(folder: Path) -> list[Path]:
    """Image files under ``folder`` (recursive, sorted), never following links out of it."""
    root = folder.resolve()
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=False):
        dirnames.sort()
        for name in sorted(filenames):
            p = Path(dirpath) / name
            if p.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            try:
                p.resolve().relative_to(root)
            except ValueError:  # a symlink pointing outside the folder
                continue
            found.append(p)
    return found


def from_folder(folder: str | os.PathLike, manifest: Manifest, n: int = DEFAULT_SAMPLES, seed: int = 0) -> Calibration:
    """Up to ``n`` images from a folder (a seeded choice when there are more), preprocessed as at training."""
    from edgedeploy.core.errors import ImageError

    from .data import preprocess_images

    check_sample_count(n)
    d = Path(folder)
    if not d.exists():
        raise EdgeDeployError(f"--calibration-data folder not found: {d}")
    if not d.is_dir():
        raise EdgeDeployError(f"--calibration-data expects a folder of images, got a file: {d}")
    paths = list_images(d)
    if not paths:
        raise EdgeDeployError(f"--calibration-data folder {d} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    if len(paths) > n:
        pick = np.sort(np.random.default_rng(seed).permutation(len(paths))[:n])
        paths = [paths[i] for i in pick]
    images, skipped = [], 0
    for p in paths:
        try:
            images.append(load_image(p, channels=manifest.input_channels))
        except ImageError:
            skipped += 1
    if not images:
        raise EdgeDeployError(f"--calibration-data folder {d}: none of its {len(paths)} image files could be read")
    if len(images) < manifest.num_classes:
        raise EdgeDeployError(
            f"--calibration-data folder {d} has {len(images)} readable image(s), fewer than the model's "
            f"{manifest.num_classes} classes; give at least one image per class"
        )
    x = preprocess_images(images, manifest)
    return Calibration(x=x, source=f"folder {d}", skipped=skipped, raw_images=images)
