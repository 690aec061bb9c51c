"""mobilenet_v2: keras.applications.MobileNetV2 (include_top=False) + GAP + Dropout + Dense.

The edge-friendly backbone people deploy on a Pi. Its ``preprocess_input``
("tf" mode: x / 127.5 - 1) is in the manifest as mean 127.5, std 127.5, RGB.
ImageNet weights exist for 96, 128, 160, 192 and 224 px inputs, and each
size loads its own (Keras picks them from ``input_shape``; given only an
``input_tensor`` it fell back to 224 px with a warning). Other sizes load the
224 px weights (the convolutions do not depend on the size), with one warning line.
"""
from __future__ import annotations

import sys
from typing import Any

from . import MODELS, ModelSpec, classifier_head, load_backbone_weights

IMAGENET_SIZES = (96, 128, 160, 192, 224)
ALPHA = 1.0


def imagenet_size(image_size: int) -> int:
    """The input size of the ImageNet weights used at ``image_size``."""
    return image_size if image_size in IMAGENET_SIZES else 224


def imagenet_weights_file(image_size: int) -> str:
    """The file Keras downloads (to ~/.keras/models) for ``image_size``."""
    return f"mobilenet_v2_weights_tf_dim_ordering_tf_kernels_{ALPHA}_{imagenet_size(image_size)}_no_top.h5"


def build(num_classes: int, image_size: int, weights: str = "none", dropout: float = 0.2) -> Any:
    import keras

    inputs = keras.Input(shape=(image_size, image_size, 3), name="image")
    if weights == "imagenet" and image_size not in IMAGENET_SIZES:
        print(f"warning: mobilenet_v2 has ImageNet weights for {', '.join(map(str, IMAGENET_SIZES))} px; "
              f"--image-size {image_size} uses the 224 px ones", file=sys.stderr, flush=True)
    base = load_backbone_weights(
        keras.applications.MobileNetV2, "mobilenet_v2", weights, include_top=False, input_tensor=inputs,
        input_shape=(image_size, image_size, 3), alpha=ALPHA,
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
