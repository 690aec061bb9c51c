"""mobilenet_v2: keras.applications.MobileNetV2 (include_top=False) + GAP + Dropout + Dense.

The edge-friendly backbone people deploy on a Pi. Its ``preprocess_input``
("tf" mode: x / 127.5 - 1) is in the manifest as mean 127.5, std 127.5, RGB.
ImageNet weights exist for 96, 128, 160, 192 and 224 px inputs; other sizes
load the 224 px weights (the convolutions do not depend on the size).
"""
from __future__ import annotations

from typing import Any

from . import MODELS, ModelSpec, classifier_head, load_backbone_weights


def build(num_classes: int, image_size: int, weights: str = "none", dropout: float = 0.2) -> Any:
    import keras

    inputs = keras.Input(shape=(image_size, image_size, 3), name="image")
    base = load_backbone_weights(
        keras.applications.MobileNetV2, "mobilenet_v2", weights, include_top=False, input_tensor=inputs, alpha=1.0
    )
    outputs = classifier_head(base.output, num_classes, dropout)
    return keras.Model(inputs, outputs, name="mobilenet_v2")


MODELS.register("mobilenet_v2")(
    ModelSpec(
        name="mobilenet_v2",
        build=build,
        description="MobileNetV2 backbone (ImageNet weights by default) + GlobalAveragePooling + Dense",
        color_order="RGB",
        in_graph=False,
        mean=(127.5, 127.5, 127.5),
        std=(127.5, 127.5, 127.5),
        pretrained=True,
        default_weights="imagenet",
        default_dropout=0.2,
        # About where the TF transfer-learning tutorial unfreezes (layer 100 of 154).
        default_unfreeze_from="block_11_expand",
        fine_tune_layers=("block_11_expand", "block_13_expand", "block_16_expand"),
    )
)
