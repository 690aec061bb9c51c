"""train: train image classifiers with TensorFlow/Keras and write a run folder.

A run folder holds ``model.keras``, ``manifest.json`` (the edge_runtime
contract), metrics, plots, the resolved config and the data splits. The
public entry points are:

- ``train.train(config: TrainConfig) -> Path`` (the run folder),
- ``train.TrainConfig`` (``train/config.py``),
- ``train.data.load_split(run_dir, split, ...)`` (raw images of a run's split),
- ``train.preprocess_tf.preprocess_images`` / ``decode_and_preprocess``,
- ``train.macs.count_macs(model)``.

Importing ``train`` is cheap: TensorFlow and Keras load only when a function
that needs them runs, so ``train-model --help`` is instant.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["train", "TrainConfig"]

if TYPE_CHECKING:
    from .api import train
    from .config import TrainConfig


def __getattr__(name: str) -> Any:
    if name == "TrainConfig":
        from .config import TrainConfig

        return TrainConfig
    if name == "train":
        from .api import train

        return train
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
