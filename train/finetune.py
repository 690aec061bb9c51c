"""Fine-tuning strategies: which layers train.

- ``head``: the backbone is frozen; only the ``head_*`` classifier trains.
- ``partial``: backbone layers from ``unfreeze_from`` upward train (e.g.
  ``block5_conv1`` for VGG16), the ones below stay frozen.
- ``full``: every layer trains.
- ``two-phase`` (the default for pretrained backbones): ``head`` first, then
  the top of the backbone (``unfreeze_from``, or the model's default) at a
  lower learning rate. ``phases()`` turns a config into that schedule.

BatchNormalization layers of a *pretrained* backbone stay frozen in every
strategy (Keras 3 then runs them in inference mode): updating ImageNet
statistics from small batches of a small dataset wrecks the features, as the
Keras transfer-learning guide explains. Trained from scratch (``weights
none``), BatchNormalization trains like any layer.

After changing ``trainable`` a model must be compiled again.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from edgedeploy.core.errors import EdgeDeployError

from .models import HEAD_PREFIX, MODELS

STRATEGIES = ("head", "partial", "full", "two-phase")


@dataclass(frozen=True)
class Phase:
    """One fit() call of the schedule."""

    name: str  # "train" | "head" | "fine_tune"
    strategy: str  # head | partial | full
    epochs: int
    lr: float
    unfreeze_from: str | None = None


def phases(cfg: Any) -> list[Phase]:
    """The training schedule of a resolved TrainConfig."""
    if cfg.finetune == "two-phase":
        second = "partial" if cfg.unfreeze_from or MODELS.get(cfg.model).default_unfreeze_from else "full"
        unfreeze = cfg.unfreeze_from or MODELS.get(cfg.model).default_unfreeze_from
        out = [Phase("head", "head", cfg.epochs, cfg.lr)]
        if cfg.fine_tune_epochs > 0:
            out.append(Phase("fine_tune", second, cfg.fine_tune_epochs, cfg.fine_tune_lr, unfreeze))
        return out
    return [Phase("train", cfg.finetune, cfg.epochs, cfg.lr, cfg.unfreeze_from)]


def _is_input(layer: Any) -> bool:
    return type(layer).__name__ == "InputLayer"


def _is_batchnorm(layer: Any) -> bool:
    return "BatchNormalization" in type(layer).__name__


def backbone_layers(model: Any) -> list[Any]:
    """Layers that are not the classifier head (and not the input)."""
    return [layer for layer in model.layers if not _is_input(layer) and not layer.name.startswith(HEAD_PREFIX)]


def head_layers(model: Any) -> list[Any]:
    return [layer for layer in model.layers if layer.name.startswith(HEAD_PREFIX)]


def apply_strategy(model: Any, strategy: str, unfreeze_from: str | None = None, freeze_batchnorm: bool = True) -> None:
    """Set ``layer.trainable`` for ``strategy`` (head | partial | full)."""
    if strategy not in ("head", "partial", "full"):
        raise EdgeDeployError(f"Received finetune={strategy!r}, expected one of: head, partial, full")
    model.trainable = True
    base = backbone_layers(model)
    start = 0
    if strategy == "head":
        start = len(base)
    elif strategy == "partial":
        if not unfreeze_from:
            raise EdgeDeployError("--finetune partial needs --unfreeze-from LAYER")
        names = [layer.name for layer in base]
        if unfreeze_from not in names:
            raise EdgeDeployError(
                f"unknown layer {unfreeze_from!r} for --unfreeze-from; valid names include: {', '.join(suggest_layers(model))}"
            )
        start = names.index(unfreeze_from)
    for i, layer in enumerate(base):
        layer.trainable = i >= start and not (freeze_batchnorm and _is_batchnorm(layer))
    for layer in head_layers(model):
        layer.trainable = True


def suggest_layers(model: Any, limit: int = 8) -> list[str]:
    """A few valid ``--unfreeze-from`` names: the model's suggestions, then weighted layers."""
    names = [layer.name for layer in backbone_layers(model)]
    spec_name = model.name if model.name in MODELS else None
    picks = [n for n in (MODELS.get(spec_name).fine_tune_layers if spec_name else ()) if n in names]
    for layer in backbone_layers(model):
        if len(picks) >= limit:
            break
        if layer.weights and layer.name not in picks and not _is_batchnorm(layer):
            picks.append(layer.name)
    return picks[:limit] or names[:limit]


def trainable_report(model: Any) -> dict[str, Any]:
    """Counts of trainable layers and parameters, for the log and config.json."""
    import numpy as np

    weighted = [layer for layer in model.layers if layer.weights]
    trainable_params = int(sum(int(np.prod(w.shape)) for w in model.trainable_weights))
    total_params = int(sum(int(np.prod(w.shape)) for w in model.weights))
    return {
        "trainable_layers": [layer.name for layer in weighted if layer.trainable and layer.trainable_weights],
        "num_trainable_layers": sum(1 for layer in weighted if layer.trainable_weights),
        "num_weighted_layers": len(weighted),
        "trainable_params": trainable_params,
        "total_params": total_params,
    }


def describe(model: Any, phase: Phase) -> str:
    r = trainable_report(model)
    extra = f" from {phase.unfreeze_from}" if phase.strategy == "partial" else ""
    return (
        f"phase {phase.name}: {phase.strategy}{extra}, {r['num_trainable_layers']} of {r['num_weighted_layers']} "
        f"weighted layers trainable ({r['trainable_params']:,} of {r['total_params']:,} parameters), "
        f"lr {phase.lr:g}, {phase.epochs} epochs"
    )
