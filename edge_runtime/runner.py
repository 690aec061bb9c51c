"""Classify many images and print one line each: what ``edge-infer MODEL INPUT...`` and ``--watch`` run.

Decoding and preprocessing run on worker threads while the model runs (pipeline.py); lines come out
in input order. An image that cannot be read is one stderr line, counted; the others still run.

``latency_ms`` on each line (``LATENCY_HELP``) is that image's own work: reading and decoding the
file, resizing, normalizing and quantizing it (on a worker thread), plus its share of the batched
runtime call (the call's time divided by the images in it). Time spent waiting in the queue for a
worker or for the batch to fill is not included, so the figures add up to the CPU work per image;
wall time per image is the command's total over the images. The model alone: ``benchmarks/latency.py``.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from edgedeploy.core.errors import EdgeDeployError

from .pipeline import Pipeline, PipelineOptions

if TYPE_CHECKING:
    from edgedeploy.core.progress import Progress

    from .classifier import ImageClassifier, Prediction

__all__ = ["Runner", "format_prediction", "LATENCY_HELP"]

LATENCY_HELP = ("latency_ms = that image's decode + resize + normalize time plus its share of the batched "
                "runtime call; queue waits are not included")


def format_prediction(path: str, pred: "Prediction", latency_ms: float, as_json: bool) -> str:
    """One output line for one image (JSON or human)."""
    if as_json:
        return json.dumps(pred.to_dict(path=path, latency_ms=latency_ms))
    rest = ", ".join(f"{lab} {s:.1%}" for lab, s in pred.top_k[1:])
    return f"{path}: {pred.label} {pred.score:.1%}" + (f"  (then {rest})" if rest else "") + f"  [{latency_ms:.1f} ms]"


class Runner:
    """Classify paths through the threaded pipeline and print one line per image.

    Args:
        clf: the opened classifier.
        as_json: JSON lines instead of human lines.
        pipeline: workers and batch size.
        prog: the name before each error line.
        out, err: output streams.
    """

    def __init__(self, clf: "ImageClassifier", as_json: bool, pipeline: PipelineOptions | None = None,
                 prog: str = "edge-infer", out=None, err=None):
        self.clf, self.as_json, self.prog = clf, as_json, prog
        self.options = pipeline or PipelineOptions()
        self.out, self.err = out or sys.stdout, err or sys.stderr
        self.ok = self.failed = 0
        self.progress: "Progress | None" = None
        self._pipeline = None

    def report(self, item: str, reason: str) -> None:
        """One stderr line for an input that failed; counted."""
        self.failed += 1
        line = f"{self.prog}: error: {reason}" if item in reason else f"{self.prog}: error: {item}: {reason}"
        (self.progress.write if self.progress else self._err_line)(line)

    def _err_line(self, line: str) -> None:
        print(line, file=self.err, flush=True)

    def run(self, paths: Sequence[Path]) -> None:
        """Classify ``paths``; failures are reported and counted, never raised."""

        if self._pipeline is None:  # kept across calls: --watch hands over one file at a time
            self._pipeline = Pipeline(self.clf, self.options)
        for path, outcome, latency_ms in self._pipeline.run(paths):
            if self.progress:
                self.progress.update()
            if isinstance(outcome, EdgeDeployError):
                self.report(str(path), str(outcome))
                continue
            line = format_prediction(str(path), outcome, latency_ms, self.as_json)
            if self.progress and self.out is self.err:
                self.progress.write(line)
            else:
                print(line, file=self.out, flush=True)
            self.ok += 1

    def summary(self, force: bool = False, count: int = 0, min_count: int = 10) -> None:
        """``N classified, M failed`` on stderr, when something failed, many ran, or ``force``."""
        if force or self.failed or count >= min_count:
            print(f"{self.prog}: {self.ok} classified, {self.failed} failed", file=self.err, flush=True)

    def close(self) -> None:
        """Stop the preprocessing threads."""
        if self._pipeline is not None:
            self._pipeline.close()
            self._pipeline = None
