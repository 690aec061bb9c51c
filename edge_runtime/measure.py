"""A short latency run of one model file in this process (export-model --select measures here with it).

The method is ``edgedeploy.core.timing``'s, the one ``benchmarks/latency.py`` uses.
"""
from __future__ import annotations

import os
from typing import Any

import numpy as np

from edgedeploy.core.timing import INPUT_POOL, QUICK_RUNS, QUICK_WARMUP, latency_stats, synthetic_pixels, time_calls

from .classifier import ImageClassifier
from .preprocess import normalize

__all__ = ["measure_file"]


def measure_file(path: str | os.PathLike, threads: int | None = None, warmup: int = QUICK_WARMUP, runs: int = QUICK_RUNS,
                 seed: int = 0, backend: str = "auto", batch_size: int = 1, probe: str | None = None) -> dict[str, Any]:
    """A short latency run of one model file in this process: the stats plus backend and threads."""
    clf = ImageClassifier(path, threads=threads, backend=backend, probe=probe)
    m = clf.manifest
    n_batches = max(1, -(-INPUT_POOL // batch_size))
    pixels = synthetic_pixels(seed, n_batches * batch_size, m.input_height, m.input_width, m.input_channels)
    x = clf.to_model_layout(normalize(pixels.astype(np.float32), m))
    batches = [np.ascontiguousarray(x[i * batch_size:(i + 1) * batch_size]) for i in range(n_batches)]
    clf.predict_tensor(batches[0], batch_size=batch_size)  # first inference: not timed
    times = time_calls(lambda b: clf.predict_tensor(b, batch_size=batch_size), batches, warmup, runs)
    return {**latency_stats(times), "backend": clf.backend.name, "threads": clf.backend.threads, "batch_size": batch_size,
            "warmup": warmup, "runs": runs, "seed": seed}
