"""A pipelined input path: decode and preprocess on worker threads while the model runs.

    from edgedeploy.runtime import ImageClassifier
    from edgedeploy.runtime.pipeline import iter_predictions

    clf = ImageClassifier("model_int8.tflite")
    for item, outcome, latency_ms in iter_predictions(clf, paths, workers=2, batch_size=8):
        if isinstance(outcome, Exception):
            print(item, "failed:", outcome)
        else:
            print(item, outcome.label, outcome.score)

Why it is fast: the JPEG decoders (simplejpeg, Pillow) release the GIL while
they decode, numpy while it gathers and interpolates, and the runtimes while
they invoke, so decode, resize and inference of different images overlap on
different cores. A worker prepares a whole batch (read, decode, resize,
quantize, stack) per task, so threads hand over work once per runtime call,
not once per image.

Why memory stays flat: at most ``queue`` images are being preprocessed or
wait as tensors, and at most ``batch_size`` more wait for the model, whatever
the number of inputs; the inputs themselves are pulled lazily from any
iterable, ``batch_size`` at a time. Results come out in input order. An image that cannot be read is
yielded as its ``EdgeDeployError`` (in order, with the others), never raised.
"""
from __future__ import annotations

import collections
import itertools
import os
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Iterator, NamedTuple

from edgedeploy.core.errors import EdgeDeployError
from edgedeploy.core.flags import flag, int_at_least

if TYPE_CHECKING:
    import numpy as np

    from .classifier import ImageClassifier, Prediction

__all__ = ["PipelineOptions", "Result", "Pipeline", "iter_predictions", "default_workers", "default_runtime_threads",
           "model_macs", "HEAVY_MACS"]


# A model of at least this many multiply-accumulates per image is the bottleneck of a
# folder run: on the 2-core AMD EPYC of reports/throughput.md, VGG16-160 int8 (7.8 GMAC)
# takes 19 ms an image at 1 thread and 11 ms at 2, against under 1 ms to read, decode and
# resize a photo; the 160 px small CNN (73 MMAC) takes 0.4 ms, less than its photo's
# preprocessing, so there the cores go to the workers.
HEAVY_MACS = 1_000_000_000


def model_macs(model: "str | os.PathLike") -> int | None:
    """Multiply-accumulates per image from the model's manifest (its sidecar first: no flatbuffer parse), else None."""
    import json

    sidecar = Path(f"{model}.json")
    try:
        macs = json.loads(sidecar.read_text()).get("macs") if sidecar.is_file() else None
        if macs is None:
            from .classifier import load_manifest_for

            manifest = load_manifest_for(model)
            macs = manifest.macs if manifest is not None else None
    except (OSError, ValueError, EdgeDeployError):
        return None
    return int(macs) if isinstance(macs, (int, float)) and macs > 0 else None


def default_runtime_threads(model: "str | os.PathLike | None" = None, cores: int | None = None) -> int:
    """Runtime threads when ``--threads`` is not given (chosen from the grid in reports/throughput.md).

    All cores for a model of at least ``HEAVY_MACS`` per image or of unknown
    cost (its manifest says nothing): inference is the bottleneck. Half the
    cores (at least 1) for a lighter one: there decoding and resizing cost as
    much as the model, and XNNPACK's threads spin while they wait for a core
    that a preprocessing worker holds.
    """
    from .backends.base import default_threads

    cores = cores or default_threads()
    macs = model_macs(model) if model is not None else None
    return cores if macs is None or macs >= HEAVY_MACS else max(1, cores // 2)


def default_workers(runtime_threads: int | None = None, cores: int | None = None) -> int:
    """Preprocessing workers when ``--workers`` is not given: the cores the runtime leaves, plus one, at least 1.

    The extra worker keeps both kinds of thread fed while the other waits (the
    main thread hands over batches and prints). Runtime threads None: all cores
    (the library's default) -> 1 worker. 2 cores: 1 runtime thread + 2 workers
    for a light model, 2 + 1 for a heavy one; a Pi's 4: 2 + 3, or 4 + 1.
    """
    from .backends.base import default_threads

    cores = cores or default_threads()
    threads = cores if runtime_threads is None else runtime_threads
    return max(1, cores - threads + 1)


@dataclass(frozen=True)
class PipelineOptions:
    """How the pipeline runs.

    Args:
        workers: preprocessing threads; 0 preprocesses in the calling thread
            (no overlap, no threads). None: ``default_workers(runtime threads)``.
        batch_size: images per runtime call.
        queue: most images in preprocessing or waiting as tensors at once, in
            batches of ``batch_size`` (None: ``batch_size * max(2, workers)``:
            every worker has a batch to prepare while the model runs one).
    """

    workers: int | None = flag("--workers", type=int_at_least(0), metavar="N",
                               help="threads that decode and preprocess while the model runs (default: the cores the runtime "
                                    "threads leave, plus one; 0 none)")
    batch_size: int = flag("--batch-size", default=8, type=int_at_least(1), metavar="B", help="images per runtime call (default 8)")
    queue: int | None = None

    def __post_init__(self) -> None:
        for name, low in (("workers", 0), ("batch_size", 1), ("queue", 1)):
            value = getattr(self, name)
            if value is None and name != "batch_size":
                continue
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise EdgeDeployError(f"Received {name}={value!r}, expected an integer >= {low}")

    def resolved(self, runtime_threads: int | None = None) -> "PipelineOptions":
        workers = default_workers(runtime_threads) if self.workers is None else self.workers
        queue = self.queue if self.queue is not None else self.batch_size * max(2, workers)
        return PipelineOptions(workers=workers, batch_size=self.batch_size, queue=queue)


class Result(NamedTuple):
    """One input's outcome: unpacks as ``(item, outcome, latency_ms)``."""

    item: Any
    outcome: "Prediction | EdgeDeployError"
    latency_ms: float

    @property
    def ok(self) -> bool:
        return not isinstance(self.outcome, BaseException)


class _Chunk(NamedTuple):
    """Up to ``batch_size`` consecutive inputs, prepared by one worker: the model's batch and each input's outcome."""

    items: list
    batch: "np.ndarray | None"  # the prepared inputs that succeeded, stacked in order
    errors: list  # per input: None, or the EdgeDeployError that says why it failed
    prep_s: list  # per input: seconds to read, decode and preprocess it


def _prepare_chunk(clf: "ImageClassifier", items: list) -> _Chunk:
    """Worker: read, decode and preprocess each input as the model takes it (``ImageClassifier.prepare``), then stack.

    One task per batch, not per image: one hand-over between threads per runtime call.
    """
    import numpy as np

    xs, errors, prep_s = [], [], []
    for item in items:
        t0 = time.perf_counter()
        try:
            xs.append(clf.prepare(item))
            errors.append(None)
        except EdgeDeployError as exc:
            errors.append(exc)
        prep_s.append(time.perf_counter() - t0)
    return _Chunk(items, np.stack(xs) if xs else None, errors, prep_s)


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
        self.options = (options or PipelineOptions()).resolved(getattr(clf.backend, "threads", None))
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

    def _submit(self, items: list) -> Any:
        if self._pool is None:
            if self.options.workers:
                raise EdgeDeployError("this pipeline is closed")
            return _Done(_prepare_chunk(self.clf, items))
        return self._pool.submit(_prepare_chunk, self.clf, items)

    def run(self, items: Iterable[Any]) -> Iterator[Result]:
        """Classify ``items`` (paths, bytes, PIL images or uint8 arrays); results in input order.

        Inputs are pulled ``batch_size`` at a time, and up to ``queue // batch_size``
        batches (at least one) are prepared ahead on the workers while the model runs.
        """
        opts = self.options
        source = iter(items)
        ahead = max(1, opts.queue // opts.batch_size)
        futures: collections.deque[Future] = collections.deque()
        state = {"exhausted": False, "pulled": 0, "yielded": 0}

        def fill() -> None:
            while not state["exhausted"] and len(futures) < ahead:
                chunk = list(itertools.islice(source, opts.batch_size))
                state["exhausted"] = len(chunk) < opts.batch_size
                if chunk:
                    futures.append(self._submit(chunk))
                    state["pulled"] += len(chunk)
                    self.max_in_flight = max(self.max_in_flight, state["pulled"] - state["yielded"])

        try:
            fill()
            while futures:
                chunk = futures.popleft().result()
                fill()  # the workers start on the next batch while the model runs this one
                for result in self._answer(chunk):
                    state["yielded"] += 1
                    yield result
        finally:
            for fut in futures:
                fut.cancel()

    def _answer(self, chunk: _Chunk) -> Iterator[Result]:
        """One runtime call for the chunk's good inputs, then every input's Result, in order."""
        infer_s, probs = 0.0, None
        if chunk.batch is not None:
            t0 = time.perf_counter()
            # One runtime call on a dynamic-batch model (the workers handed over quantized
            # tensors); a fixed-batch model's float input is chunked and padded.
            probs = self.clf.predict_prepared(chunk.batch)
            infer_s = (time.perf_counter() - t0) / len(chunk.batch)
        row = 0
        for item, err, prep_s in zip(chunk.items, chunk.errors, chunk.prep_s):
            if err is not None:
                yield Result(item, err, prep_s * 1000.0)
                continue
            yield Result(item, self.clf.prediction(probs[row]), (prep_s + infer_s) * 1000.0)
            row += 1


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
