"""small_cnn: the user's CNN, trained from scratch.

Input(H, W, 3) -> Rescaling(1/255) in the graph -> [Conv2D(f, 3x3, same,
ReLU) -> MaxPooling2D] for f in 16, 32, 64 -> Flatten -> [Dropout] ->
Dense(128, ReLU) -> Dense(softmax). At 160x160 the flatten is 20x20x64 =
25,600 features. Normalization lives in the graph, so an int8 export can
take raw uint8 pixels.
"""
from __future__ import annotations

from typing import Any

from edgedeploy.core.errors import EdgeDeployError

from . import HEAD_PREFIX, MODELS, ModelSpec, quiet_keras_warnings, short_reason

FILTERS = (16, 32, 64)
DENSE_UNITS = 128


def build(num_classes: int, image_size: int, weights: str = "none", dropout: float = 0.0) -> Any:
    import keras
    from keras import layers

    inputs = keras.Input(shape=(image_size, image_size, 3), name="image")
    x = layers.Rescaling(1.0 / 255, name="rescale")(inputs)
    for i, f in enumerate(FILTERS, start=1):
        x = layers.Conv2D(f, 3, padding="same", activation="relu", name=f"conv{i}")(x)
        x = layers.MaxPooling2D(name=f"pool{i}")(x)
    x = layers.Flatten(name="flatten")(x)
    if dropout:
        x = layers.Dropout(dropout, name="dropout")(x)
    x = layers.Dense(DENSE_UNITS, activation="relu", name="fc")(x)
    outputs = layers.Dense(num_classes, activation="softmax", name=HEAD_PREFIX + "predictions")(x)
    model = keras.Model(inputs, outputs, name="small_cnn")
    if weights not in ("none", None):
        if weights == "imagenet":
            raise EdgeDeployError("small_cnn has no ImageNet weights; pass --weights none or --weights PATH")
        try:
            with quiet_keras_warnings():
                model.load_weights(weights)
        except Exception as exc:
            raise EdgeDeployError(f"could not load small_cnn weights from {weights}: {short_reason(exc)}") from None
    return model


MODELS.register("small_cnn")(
    ModelSpec(
        name="small_cnn",
        build=build,
        description="Conv 16/32/64 + MaxPooling, Flatten, Dense 128, softmax; trained from scratch",
        in_graph=True,
        default_dropout=0.3,
    )
)
