"""Training throughput: the real tf.data input pipeline vs in-memory tensors.

    python benchmarks/train_throughput.py [--dataset digits | --data DIR] [--model small_cnn]
        [--image-size S] [--batch-size B] [--epochs N] [--augment/--no-augment] [--json OUT]

Prints images/s for the input pipeline train-model uses and for the same
model fed from in-memory tensors, and their ratio (target >= 0.9: the data
pipeline must not be the bottleneck); see ``train/throughput.py`` for the
method. Unlike the other benchmark scripts this one measures training, so it
needs the ``train`` extra (TensorFlow). ``benchmarks/train_throughput.py``
runs this module in a child process, so benchmarks/ itself never imports train.
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
from typing import Sequence


def _parser() -> argparse.ArgumentParser:
    from edgedeploy.core.command import ArgumentParser  # flags anywhere; a mistake is one line, exit 2

    p = ArgumentParser(prog="train_throughput.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="small_cnn")
    p.add_argument("--dataset", default=None, help="digits (default), folder, cats_vs_dogs, tf_flowers")
    p.add_argument("--data", dest="data_dir", metavar="DIR", help="image folder, one subfolder per class")
    p.add_argument("--image-size", type=int)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--epochs", type=int, default=6, help="epochs per variant, the first one excluded (default: 6)")
    p.add_argument("--augment", action=argparse.BooleanOptionalAction, default=None,
                   help="also measure with augmentation (default: the dataset's training default)")
    p.add_argument("--json", metavar="OUT", help="write the results as JSON here")
    p.add_argument("--debug", action="store_true")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    from edgedeploy.core.errors import EdgeDeployError

    try:
        args = _parser().parse_args(argv)
    except EdgeDeployError as exc:
        print(f"train_throughput.py: error: {exc}", file=sys.stderr)
        return 2
    if not args.debug:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from edgedeploy.core.errors import EdgeDeployError
    from edgedeploy.core.io import atomic_write_json

    try:
        from edgedeploy.train.config import TrainConfig, package_versions, resolve
        from edgedeploy.train.throughput import TARGET, measure
    except ImportError as exc:
        print(f"train_throughput.py: error: needs the train extra (pip install 'edgedeploy[train]'): {exc}", file=sys.stderr)
        return 2
    try:
        if args.epochs < 2:
            raise EdgeDeployError(f"Received epochs={args.epochs}, expected >= 2 (the first epoch is excluded)")
        cfg = resolve(TrainConfig(model=args.model, dataset=args.dataset, data_dir=args.data_dir, image_size=args.image_size,
                                  batch_size=args.batch_size, weights="none", output="unused"))
        variants = [False] + ([True] if (args.augment if args.augment is not None else cfg.augment) else [])
        results = [measure(cfg, args.epochs, aug) for aug in variants]
    except ImportError as exc:  # TensorFlow missing or broken: one line, not the traceback from deep inside
        if args.debug:
            raise
        print(f"train_throughput.py: error: needs the train extra (pip install 'edgedeploy[train]'): {exc}", file=sys.stderr)
        return 2
    except EdgeDeployError as exc:
        if args.debug:
            raise
        print(f"train_throughput.py: error: {exc}", file=sys.stderr)
        return 2
    from edgedeploy.core.environment import environment

    report = {
        "benchmark": "train_throughput",
        "model": cfg.model, "dataset": cfg.dataset, "data_dir": cfg.data_dir, "image_size": cfg.image_size,
        "batch_size": cfg.batch_size, "epochs": args.epochs, "target_ratio": TARGET,
        "machine": {"cpu_count": os.cpu_count(), "machine": platform.machine(), "processor": platform.processor(),
                    "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None},
        "versions": package_versions(),
        "environment": environment(),
        "results": results,
    }
    print(f"{cfg.model} on {cfg.dataset} at {cfg.image_size}px, batch {cfg.batch_size}, {results[0]['train_images']} images")
    print(f"{'augment':<8} {'pipeline img/s':>15} {'in-memory img/s':>16} {'ratio':>6} {'median ratio':>13} "
          f"{'pipeline alone img/s':>21}  target {TARGET}")
    for r in results:
        print(f"{str(r['augment']):<8} {r['pipeline_images_per_s']:>15.1f} {r['in_memory_images_per_s']:>16.1f} "
              f"{r['ratio']:>6.3f} {r['median']['ratio']:>13.3f} {r['pipeline_alone_images_per_s']['warm']:>21.1f}  "
              f"{'ok' if r['meets_target'] else 'below'}")
    if args.json:
        atomic_write_json(args.json, report, force=True)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
