"""The dataset registry and ``load_split``.

Each dataset is one file registering a ``DataSpec``:

- ``digits``: the embedded 8x8 digits (``edge_runtime.datasets``), the default;
- ``cats_vs_dogs`` and ``tf_flowers``: TensorFlow Datasets (``tfds.py``);
- ``folder``: ``--data DIR`` with one subfolder per class (``folder.py``).

A spec has two sides. ``prepare(cfg, record)`` is the training side: it
fixes the seeded, deterministic train/validation/test split (``record`` is
the run's saved ``splits.json`` when resuming) and yields raw uint8 images as
``tf.data`` datasets. ``split_source(record, split)`` is the side export/ and
benchmarks use through ``load_split``: labels first, then only the images
asked for, decoded exactly as the device decodes them.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from edgedeploy.core.errors import EdgeDeployError
from edgedeploy.core.registry import Registry
from edgedeploy.core.runfolder import RunFolder
from edgedeploy.runtime.datasets import ImageSet, choose_indices  # noqa: F401  (re-exported)

SPLITS = ("train", "validation", "test")


@dataclass
class Prepared:
    """A dataset ready for training: labels, split sizes and raw tf.data splits."""

    name: str  # recorded in the manifest, e.g. "digits" or "folder:cats_vs_dogs_small"
    label_names: list[str]
    counts: dict[str, int]
    record: dict[str, Any]  # written as splits.json
    raw: Callable[[str], Any]  # split -> tf.data.Dataset of (uint8 (H, W, 3), int32 label)
    augment_flip: bool = True  # horizontal flips make sense (not for digits)
    notes: list[str] = field(default_factory=list)  # e.g. "skipped 3 unreadable files"


@dataclass
class SplitSource:
    """One split's labels, and a loader for any subset of its images."""

    labels: np.ndarray
    label_names: list[str]
    load: Callable[[np.ndarray], list[np.ndarray]]  # indices -> uint8 (H, W, 3) images


@dataclass(frozen=True)
class DataSpec:
    name: str
    description: str
    prepare: Callable[[Any, dict[str, Any] | None], Prepared]
    split_source: Callable[[dict[str, Any], str], SplitSource]
    default_image_size: int = 160
    default_augment: bool = True
    default_epochs: int = 15
    needs_data_dir: bool = False  # --data is required (folder)
    accepts_data_dir: bool = False  # --data is allowed (folder; TFDS data_dir)
    # A cheap look at --data before training starts (no TensorFlow): raises EdgeDeployError, one line.
    check_data_dir: Callable[[Path], Any] | None = None


DATASETS: Registry[DataSpec] = Registry("dataset", package=__package__)  # every public module here registers itself: one new file adds one


def load_split(
    run_dir: str | Path,
    split: str,
    max_samples: int | None = None,
    balanced: bool = False,
    seed: int = 0,
) -> ImageSet:
    """Raw images of a run's ``split`` ("train" | "validation" | "test"), before resizing.

    Reads the run folder's ``config.json`` and ``splits.json`` to find the
    dataset and the exact split training used. Images are decoded as the device
    decodes them (Pillow, or TF's accurate JPEG decoder, which is identical).

    Returns:
        An ``ImageSet``: ``images`` is a uint8 (N, H, W, 3) array when every
        image has the same size, else a list of uint8 (H, W, 3) arrays;
        ``labels`` int64 (N,); ``label_names`` the run's labels. With
        ``max_samples`` a seeded subset (class-balanced with ``balanced=True``,
        e.g. for int8 calibration) in the split's order.
    """
    if split not in SPLITS:
        raise EdgeDeployError(f"Received split={split!r}, expected one of: {', '.join(SPLITS)}")
    folder = RunFolder(run_dir)
    if not folder.path.is_dir():
        raise EdgeDeployError(f"run folder not found: {run_dir}")
    cfg, record = folder.config(), folder.splits()
    name = record.get("dataset") or cfg.get("config", cfg).get("dataset")
    src = DATASETS.get(str(name)).split_source(record, split)
    idx = choose_indices(np.asarray(src.labels), max_samples, balanced, seed, len(src.label_names))
    images = src.load(idx)
    labels = np.asarray(src.labels, dtype=np.int64)[idx]
    if len(images) != len(idx):  # a loader dropped unreadable files (reported on stderr)
        raise EdgeDeployError(f"{len(idx) - len(images)} image(s) of the {split} split could not be read")
    if images and all(im.shape == images[0].shape for im in images):
        stacked: Any = np.stack(images).astype(np.uint8, copy=False)
    elif images:
        stacked = images
    else:
        stacked = np.zeros((0, 1, 1, 3), np.uint8)
    return ImageSet(stacked, labels, list(src.label_names))


