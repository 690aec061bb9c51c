"""The tf.data input pipeline: raw uint8 images -> batches the model trains on.

    raw (uint8, any size) -> float32 resize (tf.image.resize, as the device)
      -> cache -> shuffle (train) -> batch -> augment (train, optional)
      -> normalize (manifest) -> prefetch(AUTOTUNE)

Augmentation (flip, rotation, zoom, contrast; ``augment.py``) runs here on
0..255 pixels, never inside the saved model. The cache holds the resized float32 images in
memory; above ``MEMORY_CACHE_LIMIT`` bytes it goes to a file in the run
folder instead.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from edgedeploy.runtime.manifest import Manifest

from ._tf import import_tf
from .augment import augment_batch
from .preprocess_tf import tf_normalize, tf_resize

MEMORY_CACHE_LIMIT = 3 * 1024**3
SHUFFLE_BUFFER = 4096


def build_dataset(
    raw: Any,
    manifest: Manifest,
    batch_size: int,
    *,
    training: bool,
    augment: bool = False,
    flip: bool = True,
    seed: int = 0,
    num_examples: int | None = None,
    cache_dir: str | Path | None = None,
    name: str = "data",
) -> Any:
    """Turn a raw (uint8 image, label) dataset into model-ready batches."""
    tf = import_tf()
    h, w = manifest.input_height, manifest.input_width
    auto = tf.data.AUTOTUNE
    ds = raw.map(lambda x, y: (tf_resize(x, h, w, manifest.resize_method), y), num_parallel_calls=auto, deterministic=True)
    size = (num_examples or 0) * h * w * manifest.input_channels * 4
    if cache_dir is not None and size > MEMORY_CACHE_LIMIT:
        Path(cache_dir).mkdir(parents=True, exist_ok=True)
        ds = ds.cache(str(Path(cache_dir) / name))
    else:
        ds = ds.cache()
    if training:
        buf = min(num_examples or SHUFFLE_BUFFER, SHUFFLE_BUFFER)
        ds = ds.shuffle(max(buf, 1), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size)
    if training and augment:
        ds = ds.map(lambda x, y: (augment_batch(x, flip=flip, seed=seed), y), num_parallel_calls=auto)
    ds = ds.map(lambda x, y: (tf_normalize(x, manifest), y), num_parallel_calls=auto)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return ds.with_options(options).prefetch(auto)
