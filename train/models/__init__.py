"""The model registry: one file per architecture, each ``@MODELS.register``-ed.

A ``ModelSpec`` says how to build the Keras model and what the device must do
to an image before it (the manifest's colour order and normalization), plus
which layers fine-tuning may start from. Builders import Keras lazily, so
listing the models (``train-model --help``) costs nothing.

Every builder returns a *functional* ``keras.Model`` (tf2onnx fails on Keras 3
``Sequential``) without Lambda layers (``safe_mode`` loading must work). The
classifier layers on top of a backbone are named ``head_*``; every other
layer belongs to the backbone, which is what ``train/finetune.py`` freezes.
"""
from __future__ import annotations

import contextlib
import io
import logging
import os
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

from edgedeploy.core.errors import EdgeDeployError
from edgedeploy.core.registry import Registry
from edgedeploy.runtime.manifest import Normalization

HEAD_PREFIX = "head_"


@dataclass(frozen=True)
class ModelSpec:
    """What the registry holds for one architecture."""

    name: str
    build: Callable[..., Any]  # build(num_classes, image_size, weights="none", dropout=0.0) -> keras.Model
    description: str
    color_order: str = "RGB"
    in_graph: bool = True  # normalization inside the model (a Rescaling layer)
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    pretrained: bool = False  # a backbone with ImageNet weights
    default_weights: str = "none"
    default_dropout: float = 0.0
    default_unfreeze_from: str | None = None
    fine_tune_layers: tuple[str, ...] = field(default_factory=tuple)  # suggested --unfreeze-from values

    def normalization(self) -> Normalization:
        return Normalization(in_graph=self.in_graph, mean=list(self.mean), std=list(self.std))


MODELS: Registry[ModelSpec] = Registry("model", package=__package__)  # every public module here registers itself: one new file adds one


def build_model(name: str, num_classes: int, image_size: int, weights: str = "none", dropout: float = 0.0) -> Any:
    """Build a registered model; ``weights`` is "imagenet", "none" or a path."""
    if num_classes < 2:
        raise EdgeDeployError(f"Received num_classes={num_classes}, expected >= 2")
    return MODELS.get(name).build(num_classes, image_size, weights=weights, dropout=dropout)


def short_reason(exc: BaseException, limit: int = 240) -> str:
    """One line from an exception, cut at a word boundary (never mid-word).

    A failed download reads "URL fetch failure on <url>: None -- <reason>";
    the reason is the part worth showing.
    """
    text = " ".join(str(exc).split()) or type(exc).__name__
    if " -- " in text:
        text = text.rsplit(" -- ", 1)[1]
    if len(text) > limit:
        text = text[:limit].rsplit(" ", 1)[0] + " ..."
    return text


@contextlib.contextmanager
def quiet_keras_warnings() -> Iterator[list[str]]:
    """Keep Keras's warnings (Python warnings, absl/TF logging, stray prints) off the console.

    A mismatched weights file makes Keras print one warning per layer before it
    fails; the one-line error says what went wrong. ``--debug``
    (``EDGEDEPLOY_DEBUG``) lets everything through. Yields the captured lines.
    """
    captured: list[str] = []
    if os.environ.get("EDGEDEPLOY_DEBUG"):
        yield captured
        return
    loggers = [logging.getLogger(n) for n in ("tensorflow", "keras", "absl", "h5py")]
    levels = [lg.level for lg in loggers]
    out = io.StringIO()
    try:
        for lg in loggers:
            lg.setLevel(logging.ERROR + 10)
        with warnings.catch_warnings(record=True) as caught, contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            warnings.simplefilter("always")
            yield captured
        captured.extend(str(w.message) for w in caught)
        captured.extend(line for line in out.getvalue().splitlines() if line.strip())
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def load_backbone_weights(app: Callable[..., Any], model_name: str, weights: str, **kwargs: Any) -> Any:
    """Call a ``keras.applications`` constructor, turning weight failures into one line.

    Offline, ``weights="imagenet"`` fails to download; a bad ``PATH`` fails to
    load. Both become an ``EdgeDeployError`` naming ``--weights PATH`` and
    ``--weights none``. Keras's per-layer warnings stay quiet (``--debug`` shows them).
    """
    arg: str | None = None if weights == "none" else weights
    try:
        with quiet_keras_warnings():
            return app(weights=arg, **kwargs)
    except Exception as exc:
        detail = short_reason(exc)
        if weights == "imagenet":
            raise EdgeDeployError(
                f"could not download the ImageNet weights for {model_name} ({detail}); "
                f"pass --weights PATH to a local notop .h5 file, or --weights none to train from scratch"
            ) from None
        if arg is None:
            raise
        raise EdgeDeployError(
            f"could not load {model_name} weights from {weights} ({detail}); expected the Keras "
            f"'notop' .h5 weights of {model_name}, or pass --weights none"
        ) from None


def classifier_head(x: Any, num_classes: int, dropout: float) -> Any:
    """GlobalAveragePooling2D, optional Dropout, Dense softmax: the transfer-learning head."""
    from keras import layers

    x = layers.GlobalAveragePooling2D(name=HEAD_PREFIX + "pool")(x)
    if dropout:
        x = layers.Dropout(dropout, name=HEAD_PREFIX + "dropout")(x)
    return layers.Dense(num_classes, activation="softmax", name=HEAD_PREFIX + "predictions")(x)


