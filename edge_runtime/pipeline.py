"""A pipelined input path: decode and preprocess on worker threads while the model runs.

    from edgedeploy.runtime import ImageClassifier
    from edgedeploy.runtime.pipeline import iter_predictions

    clf = ImageClassifier("model_int8.tflite")
    for item, outcome, latency_ms in iter_predictions(clf, paths, workers=2, batch_size=8):
        if isinstance(outcome, Exception):
            print(item, "failed:", outcome)
        else:
            print(item, outcome.label, outcome.score)

Why it is fast: Pillow releases the GIL while it decodes a JPEG, numpy while
it gathers and interpolates, and the runtimes while they invoke, so decode,
resize and inference of different images overlap on different cores.

Why memory stays flat: at most ``queue`` images are being preprocessed or
wait as tensors, and at most ``batch_size`` more wait for the model, whatever
the number of inputs; the inputs themselves are pulled lazily from any
iterable. Results come out in input order. An image that cannot be read is
yielded as its ``EdgeDeployError`` (in order, with the others), never raised.
"""
from __future__ import annotations

import collections
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterable, Iterator, NamedTuple

from edgedeploy.core.errors import EdgeDeployError

if TYPE_CHECKING:
    import numpy as np

    from .classifier import ImageClassifier, Prediction

__all__ = ["PipelineOptions", "Result", "Pipeline", "iter_predictions", "default_workers", "default_runtime_threads"]


def default_workers() -> int:
    """Preprocessing threads by default: min(4, cores) (a Pi 4/5 has 4)."""
    from .backends.base import default_threads

    return min(4, default_threads())


def default_runtime_threads() -> int:
    """Runtime threads by default for a folder: all cores."""
    from .backends.base import default_threads

    return default_threads()


@dataclass(frozen=True)
class PipelineOptions:
    """How the pipeline runs.

    Args:
        workers: preprocessing threads; 0 preprocesses in the calling thread
            (no overlap, no threads). None: ``default_workers()``.
        batch_size: images per runtime call.
        queue: most images in preprocessing or waiting as tensors at once
            (None: ``2 * batch_size``, at least ``2 * workers``).
    """

    workers: int | None = None
    batch_size: int = 8
    queue: int | None = None

    def __post_init__(self) -> None:
        for name, low in (("workers", 0), ("batch_size", 1), ("queue", 1)):
            value = getattr(self, name)
            if value is None and name != "batch_size":
                continue
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise EdgeDeployError(f"Received {name}={value!r}, expected an integer >= {low}")

    def resolved(self) -> "PipelineOptions":
        workers = default_workers() if self.workers is None else self.workers
        queue = self.queue if self.queue is not None else max(2 * self.batch_size, 2 * workers, 1)
        return PipelineOptions(workers=workers, batch_size=self.batch_size, queue=queue)


class Result(NamedTuple):
    """One input's outcome: unpacks as ``(item, outcome, latency_ms)``."""

    item: Any
    outcome: "Prediction | EdgeDeployError"
    latency_ms: float

    @property
    def ok(self) -> bool:
        return not isinstance(self.outcome, BaseException)


def _prepare(clf: "ImageClassifier", item: Any) -> tuple["np.ndarray | None", "EdgeDeployError | None", float]:
    """Read, decode and preprocess one input on a worker, as the model takes it (``ImageClassifier.prepare``)."""
    t0 = time.perf_counter()
    try:
        return clf.prepare(item), None, time.perf_counter() - t0
    except EdgeDeployError as exc:
        return None, exc, time.perf_counter() - t0


class _Done:
    """A finished 'future' for the inline (workers=0) path."""

    def __init__(self, value: Any):
        self._value = value

    def result(self) -> Any:
        return self._value

    def cancel(self) -> bool:
        return False


class Pipeline:
    """A reusable pool of preprocessing threads in front of one classifier.

    Use it as a context manager (or call ``close``); ``run(items)`` may be
    called many times (``--watch`` hands over one file at a time).

    Attributes:
        max_in_flight: the most inputs pulled but not yet yielded, seen so far
            (a memory check: it never exceeds ``queue + batch_size``).
    """

    def __init__(self, clf: "ImageClassifier", options: PipelineOptions | None = None):
        self.clf = clf
        self.options = (options or PipelineOptions()).resolved()
        self._pool: ThreadPoolExecutor | None = None
        if self.options.workers:
            self._pool = ThreadPoolExecutor(self.options.workers, thread_name_prefix="edge-preprocess")
        self.max_in_flight = 0

    def __enter__(self) -> "Pipeline":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the threads; queued work that has not started is dropped."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    def _submit(self, item: Any) -> Any:
        if self._pool is None:
            if self.options.workers:
                raise EdgeDeployError("this pipeline is closed")
            return _Done(_prepare(self.clf, item))
        return self._pool.submit(_prepare, self.clf, item)

    def run(self, items: Iterable[Any]) -> Iterator[Result]:
        """Classify ``items`` (paths, bytes, PIL images or uint8 arrays); results in input order."""
        import numpy as np

        opts = self.options
        source = iter(items)
        futures: collections.deque[tuple[Any, Future]] = collections.deque()
        pending: list[tuple[Any, Any, Any, float]] = []  # (item, tensor, error, prep seconds), in order
        exhausted = False
        pulled = yielded = 0
        try:
            while True:
                while not exhausted and len(futures) < opts.queue:
                    try:
                        item = next(source)
                    except StopIteration:
                        exhausted = True
                        break
                    futures.append((item, self._submit(item)))
                    pulled += 1
                    self.max_in_flight = max(self.max_in_flight, pulled - yielded)
                if not futures and not pending:
                    return
                if pending and pending[-1][2] is not None and all(p[2] is not None for p in pending):
                    for item, _, err, prep_s in pending:  # failures with no image before them: out now
                        yielded += 1
                        yield Result(item, err, prep_s * 1000.0)
                    pending = []
                    continue
                if futures and len(pending) < opts.batch_size:
                    item, fut = futures.popleft()
                    x, err, prep_s = fut.result()
                    pending.append((item, x, err, prep_s))
                    continue
                # A full batch (or the last one): run it and hand out everything pending, in order.
                xs = [p[1] for p in pending if p[2] is None]
                infer_s = 0.0
                probs = None
                if xs:
                    t0 = time.perf_counter()
                    # One runtime call on a dynamic-batch model (the workers handed over quantized
                    # tensors); a fixed-batch model's float input is chunked and padded.
                    probs = self.clf.predict_prepared(np.stack(xs))
                    infer_s = (time.perf_counter() - t0) / len(xs)
                row = 0
                batch, pending = pending, []
                for item, _, err, prep_s in batch:
                    if err is not None:
                        outcome: Any = err
                        latency = prep_s
                    else:
                        outcome = self.clf.prediction(probs[row])
                        row += 1
                        latency = prep_s + infer_s
                    yielded += 1
                    yield Result(item, outcome, latency * 1000.0)
        finally:
            for _, fut in futures:
                fut.cancel()


def iter_predictions(clf: "ImageClassifier", items: Iterable[Any], workers: int | None = None, batch_size: int = 8,
                     queue: int | None = None) -> Iterator[Result]:
    """Classify ``items`` through a pipeline of ``workers`` preprocessing threads.

    Args:
        clf: an opened ``ImageClassifier``.
        items: paths, bytes, PIL images or uint8 arrays; any iterable, pulled lazily.
        workers: preprocessing threads (0: none; None: ``default_workers()``).
        batch_size: images per runtime call.
        queue: most images preprocessed ahead of the model (None: ``2 * batch_size``).

    Yields:
        ``Result(item, outcome, latency_ms)`` in input order; ``outcome`` is a
        ``Prediction``, or the ``EdgeDeployError`` saying why that input failed.
    """
    with Pipeline(clf, PipelineOptions(workers=workers, batch_size=batch_size, queue=queue)) as pipe:
        yield from pipe.run(items)
