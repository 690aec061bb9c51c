"""cats_vs_dogs and tf_flowers through TensorFlow Datasets.

Both ship a single ``train`` split. As in the TF tutorials, it is read in
file order (``shuffle_files=False``, so deterministic) and cut with
``take``/``skip``: the first 80% train, the next 10% validation, the last 10%
test. Images are read as encoded bytes (``tfds.decode.SkipDecoding``) and
decoded with ``tf.io.decode_jpeg(dct_method="INTEGER_ACCURATE")`` plus the
EXIF orientation, which reproduces the device's Pillow decode exactly; the
pipeline then casts to float32 and resizes to ``--image-size`` (default 160).

``--data DIR`` is the TFDS ``data_dir`` here. A dataset that is not on disk
is downloaded when the network allows; otherwise a one-line error says how
to get it.

Under ``tfds.testing.mock_data`` (the tests), ``SkipDecoding`` yields random
images encoded as PNG bytes; ``decode_jpeg`` decodes PNG too (TF's decoder
sniffs the format), so the same code path runs.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from edgedeploy.core.errors import EdgeDeployError

from .._tf import import_tf
from ..preprocess_tf import tf_decode
from . import DATASETS, SPLITS, DataSpec, Prepared, SplitSource

FRACTIONS = {"train": 0.8, "validation": 0.1, "test": 0.1}


def _builder(name: str, data_dir: str | None) -> Any:
    import tensorflow_datasets as tfds


    import_tf()
    try:
        builder = tfds.builder(name, data_dir=data_dir)
    except Exception as exc:
        raise EdgeDeployError(f"TFDS dataset {name!r} is not available: {' '.join(str(exc).split())[:200]}") from None
    if not _is_prepared(builder):
        try:
            builder.download_and_prepare()
        except Exception as exc:
            detail = " ".join(str(exc).split())[:160] or type(exc).__name__
            where = data_dir or "~/tensorflow_datasets"
            raise EdgeDeployError(
                f"TFDS dataset {name!r} is not in {where} and could not be downloaded ({detail}); "
                f"run `tfds build {name}` where there is network and pass its data_dir with --data, "
                f"or train on an image folder with --dataset folder --data DIR"
            ) from None
    return builder


def _is_prepared(builder: Any) -> bool:
    try:
        return bool(builder.is_prepared())
    except Exception:
        return False


def _split_bounds(n: int) -> dict[str, tuple[int, int]]:
    n_train = int(n * FRACTIONS["train"])
    n_val = int(n * FRACTIONS["validation"])
    return {"train": (0, n_train), "validation": (n_train, n_train + n_val), "test": (n_train + n_val, n)}


def _encoded(builder: Any) -> tuple[Any, int]:
    """The whole ``train`` split as (encoded bytes, label), in file order, and its size."""
    import tensorflow_datasets as tfds


    tf = import_tf()
    ds = builder.as_dataset(split="train", shuffle_files=False, decoders={"image": tfds.decode.SkipDecoding()})
    n = int(ds.cardinality().numpy())
    if n < 0:  # unknown: fall back to the metadata, then to counting
        try:
            n = int(builder.info.splits["train"].num_examples)
        except Exception:
            n = int(ds.reduce(np.int64(0), lambda c, _: c + 1).numpy())
    ds = ds.map(lambda ex: (ex["image"], tf.cast(ex["label"], tf.int32)))
    return ds, n


def _take_skip(ds: Any, n: int, split: str) -> Any:
    """train = take(a); validation = skip(a).take(b); test = skip(a).skip(b)."""
    b = _split_bounds(n)
    n_train, n_val = b["train"][1], b["validation"][1] - b["validation"][0]
    if split == "train":
        return ds.take(n_train)
    rest = ds.skip(n_train)
    return rest.take(n_val) if split == "validation" else rest.skip(n_val)


def _make(name: str) -> tuple[Any, Any]:
    def prepare(cfg: Any, record: dict[str, Any] | None = None) -> Prepared:

        tf = import_tf()
        data_dir = cfg.data_dir
        builder = _builder(name, data_dir)
        encoded, n = _encoded(builder)
        labels = list(builder.info.features["label"].names)
        b = _split_bounds(n)
        counts = {s: b[s][1] - b[s][0] for s in SPLITS}
        if min(counts.values()) < 1:
            raise EdgeDeployError(f"TFDS dataset {name!r} has only {n} images; too few to split 80/10/10")
        rec = {
            "dataset": name,
            "tfds_split": "train",
            "method": "take/skip in file order",
            "fractions": dict(FRACTIONS),
            "data_dir": data_dir,
            "num_examples": n,
            "bounds": b,
            "labels": labels,
            "counts": counts,
        }

        def raw(split: str) -> Any:
            ds = _take_skip(encoded, n, split)
            return ds.map(lambda data, y: (tf_decode(data), y), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)

        return Prepared(name, labels, counts, rec, raw, augment_flip=True)

    def split_source(record: dict[str, Any], split: str) -> SplitSource:

        builder = _builder(name, record.get("data_dir"))
        encoded, n = _encoded(builder)
        ds = _take_skip(encoded, n, split)
        labels = np.fromiter((int(y) for y in ds.map(lambda d, y: y).as_numpy_iterator()), dtype=np.int64)
        names = list(builder.info.features["label"].names)

        def load(idx: np.ndarray) -> list[np.ndarray]:
            wanted = set(int(i) for i in idx)
            out = []
            for i, (data, _) in enumerate(ds):
                if i in wanted:
                    out.append(tf_decode(data).numpy())
            return out

        return SplitSource(labels, names, load)

    return prepare, split_source


for _name, _desc in (
    ("cats_vs_dogs", "TFDS cats_vs_dogs (23,262 photos, 2 classes); needs the TFDS data on disk"),
    ("tf_flowers", "TFDS tf_flowers (3,670 photos, 5 classes); needs the TFDS data on disk"),
):
    _prepare, _split_source = _make(_name)
    DATASETS.register(_name)(
        DataSpec(
            name=_name,
            description=_desc,
            prepare=_prepare,
            split_source=_split_source,
            default_image_size=160,
            default_augment=True,
            default_epochs=20,
            accepts_data_dir=True,
        )
    )
