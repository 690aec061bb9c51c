"""Latency statistics, one definition for the benchmarks and for export-model --select.

``edgedeploy.runtime.measure.measure_file`` runs the method below on a model file.

The method (``benchmarks/latency.py`` documents the same): the input is
uniform random uint8 pixels of the model's input size from a seed,
normalized as the manifest says; ``ImageClassifier.predict_tensor`` is
timed on one batch at a time (input quantization included, image decoding
excluded), after untimed warm-up runs, with the garbage collector off while
timing; the statistics are numpy's linear percentiles.
"""
from __future__ import annotations

import gc
import time
from typing import Any, Callable, Sequence

import numpy as np

__all__ = ["synthetic_pixels", "time_calls", "latency_stats", "QUICK_WARMUP", "QUICK_RUNS", "INPUT_POOL"]

QUICK_WARMUP, QUICK_RUNS = 3, 20
INPUT_POOL = 32  # distinct synthetic images cycled through the timed runs


def synthetic_pixels(seed: int, n: int, height: int, width: int, channels: int) -> np.ndarray:
    """The benchmark input: uniform random uint8 pixels, a pure function of (seed, shape)."""
    return np.random.default_rng(seed).integers(0, 256, size=(n, height, width, channels), dtype=np.uint8)


def time_calls(call: Callable[[Any], Any], inputs: Sequence[Any], warmup: int, runs: int,
               on_step: Callable[[], None] | None = None) -> list[float]:
    """Seconds per ``call(input)`` over ``runs`` timed calls after ``warmup`` untimed ones (gc off while timing)."""
    for i in range(warmup):
        call(inputs[i % len(inputs)])
        if on_step:
            on_step()
    times: list[float] = []
    gc_was = gc.isenabled()
    gc.disable()  # as timeit does: a collection is not the model's latency
    try:
        for i in range(runs):
            x = inputs[i % len(inputs)]
            t = time.perf_counter()
            call(x)
            times.append(time.perf_counter() - t)
            if on_step:
                on_step()
    finally:
        if gc_was:
            gc.enable()
    return times


def latency_stats(seconds: Sequence[float]) -> dict[str, float]:
    """mean/std/min/max/p50/p90/p99 in milliseconds (numpy's linear percentiles)."""
    a = np.asarray(seconds, dtype=np.float64) * 1e3
    if a.size == 0:
        raise ValueError("no timed runs")
    p50, p90, p99 = np.percentile(a, [50, 90, 99])
    return {"mean_ms": float(a.mean()), "std_ms": float(a.std(ddof=1)) if a.size > 1 else 0.0,
            "min_ms": float(a.min()), "max_ms": float(a.max()),
            "p50_ms": float(p50), "p90_ms": float(p90), "p99_ms": float(p99)}
