"""digits: the embedded 8x8 handwritten digits, with edge_runtime's fixed split.

The 8x8 uint8 RGB images go into the pipeline as they are; the pipeline
upscales them to ``--image-size`` (default 32) with ``tf.image.resize``
bilinear, as the device does from the same 8x8 images.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from edgedeploy.runtime.datasets import DIGITS_LABELS, SPLIT_FRACTIONS, SPLIT_SEED, load_digits

from .._tf import import_tf
from . import DATASETS, SPLITS, DataSpec, Prepared, SplitSource


def prepare(cfg: Any, record: dict[str, Any] | None = None) -> Prepared:

    sets = {s: load_digits(s) for s in SPLITS}
    counts = {s: len(sets[s]) for s in SPLITS}
    rec = {
        "dataset": "digits",
        "source": "edgedeploy.runtime.datasets.load_digits",
        "split_seed": SPLIT_SEED,
        "fractions": dict(SPLIT_FRACTIONS),
        "labels": list(DIGITS_LABELS),
        "counts": counts,
    }

    def raw(split: str) -> Any:
        tf = import_tf()
        s = sets[split]
        return tf.data.Dataset.from_tensor_slices((s.images, s.labels.astype(np.int32)))

    return Prepared("digits", list(DIGITS_LABELS), counts, rec, raw, augment_flip=False)


def split_source(record: dict[str, Any], split: str) -> SplitSource:
    s = load_digits(split)
    return SplitSource(s.labels, list(s.label_names), lambda idx: [s.images[i] for i in idx])


DATASETS.register("digits")(
    DataSpec(
        name="digits",
        description="embedded 8x8 handwritten digits (1,797 images, 10 classes); the default",
        prepare=prepare,
        split_source=split_source,
        default_image_size=32,
        default_augment=False,
        default_epochs=15,
    )
)
