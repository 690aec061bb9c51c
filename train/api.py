"""``edgedeploy.train.train(config) -> run folder``: the one entry point of training.

It resolves the config, prints its warnings, and trains in this process (trainer.py), or hands a multi-worker run to its supervisor (cluster.py),
whose child process trains through trainer.py too. So the dependencies point one way:
api -> cluster -> trainer, and api -> trainer.
"""
from __future__ import annotations

import sys
from pathlib import Path

from edgedeploy.core.errors import EdgeDeployError

from .cluster import train_multi_worker
from .config import TrainConfig, config_warnings, resolve
from .trainer import train_here

__all__ = ["train"]


def train(config: TrainConfig) -> Path:
    """Train a model as ``config`` says; return the run folder.

    Raises:
        EdgeDeployError: a user error (bad data folder, offline ImageNet
            weights, existing run folder without force, ...), one line.
        TrainingInterrupted: Ctrl-C or SIGTERM; the last good checkpoint stays.
    """
    if config.resume and not config.output:
        raise EdgeDeployError("--resume needs --output RUN_FOLDER (the run to continue)")
    cfg = resolve(config)
    for note in config_warnings(cfg):
        print(f"warning: {note}", file=sys.stderr, flush=True)
    if cfg.distribute == "multi-worker":  # a supervised child process per worker

        return train_multi_worker(cfg)

    return train_here(cfg, None, chief=True)  # it prepares the run folder inside its interrupt guard
