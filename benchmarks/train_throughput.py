"""Training throughput: the real tf.data input pipeline vs in-memory tensors.

    python benchmarks/train_throughput.py [--dataset digits | --data DIR] [--model small_cnn]
        [--image-size S] [--batch-size B] [--epochs N] [--augment/--no-augment] [--json OUT]

Prints images/s for the input pipeline train-model uses and for the same
model fed from in-memory tensors, and their ratio (target >= 0.9: the data
pipeline must not be the bottleneck).

This is the one benchmark that measures training, so it needs the ``train``
extra. The measurement lives in ``train/throughput_cli.py``; this script runs
it in a child process, which keeps benchmarks/ free of any train or
TensorFlow import (the rule that lets every other script run on a Pi).
"""
from __future__ import annotations

import os
import subprocess
import sys
from typing import Sequence

from edgedeploy.bench._common import Requires
from edgedeploy.core.command import run_argv

PROG = "train_throughput.py"
REQUIRES = Requires("train", "tensorflow")  # edge-bench lists it only where TensorFlow is installed


def _run(argv: list[str]) -> int:
    if not any(a in ("-h", "--help") for a in argv):
        REQUIRES.check(PROG)  # one line on an edge-only install, not the child's traceback
    env = dict(os.environ)
    return subprocess.call([sys.executable, "-m", "edgedeploy.train.throughput_cli", *argv], env=env)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point through edge_runtime.command (the child prints its own errors; Ctrl-C: 130)."""
    return run_argv(PROG, _run, argv)


if __name__ == "__main__":
    sys.exit(main())
