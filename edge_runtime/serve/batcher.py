"""The bounded queue and the dynamic batcher behind ``edge-infer --serve``.

A request whose body is in (app.py) goes through three stages:

1. **Admission** (``Admission``, on the event loop). A free slot
   (``max_concurrent``) is taken at once; otherwise the request waits in a
   FIFO queue of at most ``max_queue`` requests, until a slot frees or its
   deadline passes (then 503, from app.FrontDoor). It is refused at once,
   503 + ``Retry-After``, only when the queue is full, or when the wait the
   queue predicts (its position x the recent time a slot is held / slots)
   would already pass its deadline. Triton, TF Serving and TorchServe queue
   the same way: a bound and a deadline, never a refusal merely because the
   workers are busy.
2. **Decoding** (the decode pool, ``max_concurrent`` threads: the JPEG
   decoder and numpy release the GIL). Each image of the request becomes the
   model's input (``ImageClassifier.prepare``) and goes to the batcher as soon
   as it is ready.
3. **Batching** (``Batcher``, the one thread that calls the runtime, so no
   lock). It takes the oldest image, then more, up to ``max_batch``, waiting
   at most ``batch_timeout`` for them, and only while other images are still
   being decoded (a lone request is answered at once); then ONE runtime call
   on a dynamic-batch model (``predict_prepared``), at batch 1 or padded to
   ``max_batch`` (two shapes: a change of shape costs a re-plan). A
   fixed-batch file gets batches of its own size (1 for
   ``model_fixed1.tflite``). Images whose request has gone (deadline, client
   left) are skipped.

Slots and the queue count requests; the batch counts images.
"""
from __future__ import annotations

import asyncio
import collections
import math
import threading
import time
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any, NamedTuple

from .errors import HTTPError

if TYPE_CHECKING:
    from ..classifier import ImageClassifier
    from .metrics import ServeMetrics

HOLD_EWMA = 0.2  # weight of the newest slot-hold time in the queue's wait estimate


def retry_after(seconds: float) -> dict[str, str]:
    return {"Retry-After": str(max(1, math.ceil(seconds)))}


class Admission:
    """Slots and the bounded FIFO queue in front of them (event-loop thread only: no locks)."""

    def __init__(self, slots: int, max_queue: int, metrics: "ServeMetrics"):
        self.slots, self.max_queue, self.metrics = slots, max_queue, metrics
        self.free = slots
        self.waiters: collections.deque[asyncio.Future] = collections.deque()
        self.hold_s = 0.0  # recent seconds a request holds its slot (EWMA)

    def expected_wait(self, position: int) -> float:
        """Seconds until the request at ``position`` (1 = next) gets a slot, from the recent hold time."""
        return math.ceil(position / self.slots) * self.hold_s

    async def acquire(self, deadline: float) -> float:
        """Take a slot, waiting in the queue if need be; returns the seconds waited. Raises HTTPError(503)."""
        if self.free and not self.waiters:
            self.free -= 1
            self.metrics.in_flight.inc()
            self.metrics.queue_wait.observe(0.0)
            return 0.0
        if len(self.waiters) >= self.max_queue:
            self.metrics.rejected("queue_full")
            raise HTTPError(503, f"the queue is full ({self.max_queue} requests wait for {self.slots} slots); retry shortly",
                            retry_after(self.expected_wait(1) or 1))
        wait = self.expected_wait(len(self.waiters) + 1)
        if wait + self.hold_s > deadline - time.monotonic():
            self.metrics.rejected("deadline")
            raise HTTPError(503, f"the queue's expected wait ({wait:.2f} s for {len(self.waiters)} requests ahead) "
                                 "would pass this request's deadline; retry shortly", retry_after(wait))
        fut = asyncio.get_running_loop().create_future()
        self.waiters.append(fut)
        self.metrics.queue_depth.set(len(self.waiters))
        t0 = time.monotonic()
        try:
            await fut
        except asyncio.CancelledError:  # the deadline passed (or the server stops) while waiting
            if fut.done() and not fut.cancelled():
                self.release()  # a slot was handed over just before: pass it on
            else:
                try:
                    self.waiters.remove(fut)
                except ValueError:
                    pass
            raise
        finally:
            self.metrics.queue_depth.set(len(self.waiters))
        waited = time.monotonic() - t0
        self.metrics.queue_wait.observe(waited)
        return waited

    def release(self, held_s: float | None = None) -> None:
        """Give the slot to the oldest waiter still there, else free it."""
        if held_s is not None:
            self.hold_s = held_s if not self.hold_s else (1 - HOLD_EWMA) * self.hold_s + HOLD_EWMA * held_s
        while self.waiters:
            fut = self.waiters.popleft()
            if not fut.done():
                fut.set_result(None)  # the slot changes hands; in_flight stays the same
                self.metrics.queue_depth.set(len(self.waiters))
                return
        self.free += 1
        self.metrics.in_flight.dec()


class Job(NamedTuple):
    x: Any  # one prepared image
    deadline: float
    future: Future  # -> its row of probabilities


class Batcher:
    """One thread that owns the runtime: groups prepared images into single runtime calls."""

    def __init__(self, clf: "ImageClassifier", max_batch: int, timeout_s: float, metrics: "ServeMetrics"):
        self.clf, self.timeout_s, self.metrics = clf, timeout_s, metrics
        fixed = int(clf.backend.input.shape[0]) if not clf.batchable else 0
        self.max_batch = max(1, fixed) if fixed else max_batch  # a fixed-batch file: its own batch size
        self._cv = threading.Condition()
        self._jobs: collections.deque[Job] = collections.deque()
        self._decoding = 0  # images admitted whose decoding has not finished
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name="edge-infer-batcher", daemon=True)
        self._thread.start()

    def expect(self, n: int) -> None:
        """``n`` images start decoding: worth waiting for while a batch fills."""
        with self._cv:
            self._decoding += n

    def decoded(self, job: Job | None) -> None:
        """One expected image is done decoding: queued (``job``) or failed (None)."""
        with self._cv:
            self._decoding -= 1
            if job is not None:
                self._jobs.append(job)
            self._cv.notify()

    def _collect(self) -> list[Job]:
        with self._cv:
            while not self._jobs and not self._closed:
                self._cv.wait()
            end = time.monotonic() + self.timeout_s
            while len(self._jobs) < self.max_batch and self._decoding > 0 and not self._closed:
                left = end - time.monotonic()
                if left <= 0:
                    break
                self._cv.wait(left)
            return [self._jobs.popleft() for _ in range(min(len(self._jobs), self.max_batch))]

    def _loop(self) -> None:
        import numpy as np

        while True:
            batch = self._collect()
            if not batch:
                return  # closed and drained
            now = time.monotonic()
            live = []
            for job in batch:
                if not job.future.set_running_or_notify_cancel():
                    continue  # its request has gone
                if now > job.deadline:
                    job.future.set_exception(HTTPError(503, "the request's deadline passed in the queue",
                                                       retry_after(1)))
                    continue
                live.append(job)
            if not live:
                continue
            try:
                probs = self.clf.predict_prepared(self._shaped(np.stack([j.x for j in live])))
            except Exception as exc:  # noqa: BLE001  every waiting request hears about it
                for job in live:
                    job.future.set_exception(exc)
                continue
            self.metrics.batch_size.observe(len(live))
            self.metrics.images.inc(len(live))
            for job, row in zip(live, probs):  # zip stops at the real images: padding rows are dropped
                job.future.set_result(row)

    def _shaped(self, xs: Any) -> Any:
        """A batch of 1 as it is; 2..max_batch-1 images padded with zeros to ``max_batch`` (rows dropped after).

        The runtime then sees two batch shapes, not eight: on a change of shape
        LiteRT re-allocates and XNNPACK re-plans at the next invoke (about half
        a second for VGG16-160 int8 on the 2-core EPYC, ~10 ms for the small
        CNN), which a dynamic batcher would otherwise pay on almost every call.
        """
        import numpy as np

        n = len(xs)
        if not self.clf.batchable or n in (1, self.max_batch):
            return xs
        return np.concatenate([xs, np.zeros((self.max_batch - n,) + xs.shape[1:], xs.dtype)])

    def close(self) -> None:
        """Finish what is queued, then stop the thread."""
        with self._cv:
            self._closed = True
            self._cv.notify_all()
        self._thread.join(timeout=30)
