"""Training throughput: the real tf.data input pipeline vs in-memory tensors.

``measure(cfg, epochs, augment)`` trains the same model, epoch by epoch,
alternately from
- the pipeline ``train-model`` uses (decode -> resize -> cache -> shuffle ->
  batch -> [augment] -> normalize -> prefetch), and
- the same preprocessed images held as in-memory tensors, pre-batched,
and returns images/s for each and their ratio (target: >= 0.9, i.e. the input
pipeline is not the bottleneck). The first epoch of each (tracing, cache
filling) is left out. The headline uses each side's fastest epoch, the one
least disturbed by other processes on a shared machine; medians are reported
too. "pipeline alone" is how fast the pipeline delivers batches with no model.

``benchmarks/train_throughput.py`` is the command-line wrapper.
"""
from __future__ import annotations

import statistics
import time
from typing import Any

from edgedeploy.runtime.manifest import Manifest

from ._tf import import_keras, import_tf
from .data import DATASETS
from .models import MODELS, build_model
from .pipeline import build_dataset

TARGET = 0.9


def _fit_epoch(model: Any, *args: Any, **kw: Any) -> float:
    import warnings

    t = time.perf_counter()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*(shuffle|ran out of data).*")
        model.fit(*args, epochs=1, verbose=0, **kw)
    return time.perf_counter() - t


def measure(cfg: Any, epochs: int, augment: bool) -> dict[str, Any]:
    import numpy as np



    tf = import_tf()
    keras = import_keras()
    keras.utils.set_random_seed(cfg.seed)
    spec = MODELS.get(cfg.model)
    data = DATASETS.get(cfg.dataset).prepare(cfg, None)
    n = data.counts["train"]
    manifest = Manifest(labels=data.label_names, input_height=cfg.image_size, input_width=cfg.image_size,
                        color_order=spec.color_order, normalization=spec.normalization())
    pipeline = build_dataset(data.raw("train"), manifest, cfg.batch_size, training=True, augment=augment,
                             flip=data.augment_flip, seed=cfg.seed, num_examples=n)
    # The in-memory twin: the same preprocessed images, materialised once as
    # tensors and fed pre-batched (the cheapest possible feed). Keras' own
    # model.fit(x_tensor, y_tensor) path was measured too and is slower than
    # both at 160 px (it re-slices the whole array every epoch), so it would
    # flatter the pipeline.
    plain = build_dataset(data.raw("train"), manifest, cfg.batch_size, training=False, num_examples=n)
    xs, ys = zip(*[(x.numpy(), y.numpy()) for x, y in plain])
    x_mem, y_mem = tf.constant(np.concatenate(xs)), tf.constant(np.concatenate(ys))
    in_memory = tf.data.Dataset.from_tensor_slices((x_mem, y_mem)).batch(cfg.batch_size).cache().prefetch(1)

    t = time.perf_counter()
    seen = sum(int(x.shape[0]) for x, _ in pipeline)  # cold: decode + resize + fill the cache
    cold_only = seen / (time.perf_counter() - t)
    t = time.perf_counter()
    seen = sum(int(x.shape[0]) for x, _ in pipeline)
    warm_only = seen / (time.perf_counter() - t)

    model = build_model(cfg.model, len(data.label_names), cfg.image_size, "none", cfg.dropout)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    pipe_s, mem_s = [], []
    for _ in range(epochs):  # alternate, so that load from other processes hits both alike
        pipe_s.append(_fit_epoch(model, pipeline))
        mem_s.append(_fit_epoch(model, in_memory))
    # Best epoch (the one least disturbed by other processes) is the headline; median shown too.
    pipe, mem = n / min(pipe_s[1:]), n / min(mem_s[1:])
    pipe_med, mem_med = n / statistics.median(pipe_s[1:]), n / statistics.median(mem_s[1:])
    return {
        "augment": augment,
        "train_images": n,
        "pipeline_images_per_s": round(pipe, 1),
        "in_memory_images_per_s": round(mem, 1),
        "ratio": round(pipe / mem, 3),
        "meets_target": pipe / mem >= TARGET,
        "median": {"pipeline_images_per_s": round(pipe_med, 1), "in_memory_images_per_s": round(mem_med, 1),
                   "ratio": round(pipe_med / mem_med, 3)},
        "first_epoch_s": {"pipeline": round(pipe_s[0], 2), "in_memory": round(mem_s[0], 2)},
        "epoch_s": {"pipeline": [round(s, 3) for s in pipe_s], "in_memory": [round(s, 3) for s in mem_s]},
        "pipeline_alone_images_per_s": {"cold": round(cold_only, 1), "warm": round(warm_only, 1)},
    }
