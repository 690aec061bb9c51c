"""The run's data, through train/'s public API.

export/ imports train/ only here, to load a run's splits for calibration and
parity and to preprocess images exactly as training did:

- ``train.data.load_split(run_dir, split, max_samples, balanced, seed)``:
  raw uint8 images of the split training used (from ``config.json`` and
  ``splits.json`` in the run folder);
- ``train.preprocess_tf.preprocess_images(images, manifest)``: what Keras sees;
- ``train.macs.count_macs(model)``.

When train/ cannot be imported (an install with only the ``export`` extra),
the embedded ``digits`` dataset still works, with the same split and the
same TensorFlow preprocessing.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from edgedeploy.core.errors import EdgeDeployError
from edgedeploy.runtime.datasets import ImageSet, choose_indices
from edgedeploy.runtime.manifest import Manifest


def _train_data() -> Any | None:
    try:
        import edgedeploy.train.data as td

        return td
    except ImportError:
        return None


def load_split(run_dir: Path, split: str, max_samples: int | None = None, balanced: bool = False,
               seed: int = 0, config: dict[str, Any] | None = None) -> ImageSet:
    """Raw uint8 images of the run's ``split`` (a seeded, optionally class-balanced subset)."""
    td = _train_data()
    if td is not None:
        return td.load_split(run_dir, split, max_samples=max_samples, balanced=balanced, seed=seed)
    dataset = _dataset_name(config or {})
    if dataset != "digits":
        raise EdgeDeployError(
            f"cannot load the {split} split of dataset {dataset!r} for {run_dir}: the train package is not "
            "installed (pip install 'edgedeploy[train]')"
        )
    from edgedeploy.runtime.datasets import load_digits

    full = load_digits(split)
    idx = choose_indices(full.labels, max_samples, balanced, seed, len(full.label_names))
    return ImageSet(full.images[idx], full.labels[idx], full.label_names)


def _dataset_name(config: dict[str, Any]) -> str:
    cfg = config.get("config", config)
    return str(cfg.get("dataset") or "digits") if isinstance(cfg, dict) else "digits"


def preprocess_images(images: np.ndarray | Sequence[np.ndarray], manifest: Manifest) -> np.ndarray:
    """uint8 images -> float32 (N, H, W, C): exactly what the Keras model saw in training."""
    try:
        from edgedeploy.train.preprocess_tf import preprocess_images as _pp
    except ImportError:
        _pp = _preprocess_images_tf
    return np.asarray(_pp(images, manifest), dtype=np.float32)


def _preprocess_images_tf(images: np.ndarray | Sequence[np.ndarray], manifest: Manifest) -> np.ndarray:
    import tensorflow as tf

    from edgedeploy.runtime.preprocess import load_image

    h, w, c = manifest.input_height, manifest.input_width, manifest.input_channels
    out = []
    for img in images:
        arr = load_image(np.asarray(img), channels=c)
        x = tf.image.resize(tf.cast(arr, tf.float32), (h, w), method=manifest.resize_method, antialias=False)
        if manifest.color_order == "BGR" and c == 3:
            x = tf.reverse(x, axis=[-1])
        n = manifest.normalization
        if not n.in_graph:
            x = (x - tf.constant(n.mean, tf.float32)) / tf.constant(n.std, tf.float32)
        out.append(x.numpy())
    return np.stack(out).astype(np.float32) if out else np.zeros((0, h, w, c), np.float32)


def count_macs(model: Any) -> int | None:
    """Multiply-accumulates per inference (batch 1), or None when they cannot be counted."""
    try:
        from edgedeploy.train.macs import count_macs as _count
    except ImportError:
        return None
    try:
        return int(_count(model))
    except (ValueError, AttributeError, TypeError):
        return None
