"""vgg16: keras.applications.VGG16 (include_top=False) + GAP + Dropout + Dense.

VGG16's ``preprocess_input`` ("caffe" mode: RGB -> BGR, then subtract the
ImageNet mean per channel, no scaling) is not in the graph: it is in the
manifest (color_order BGR, mean [103.939, 116.779, 123.68], std 1), and the
training pipeline applies exactly the math of ``edge_runtime.preprocess.normalize``.
"""
from __future__ import annotations

from typing import Any

from . import MODELS, ModelSpec, classifier_head, load_backbone_weights


def build(num_classes: int, image_size: int, weights: str = "none", dropout: float = 0.2) -> Any:
    import keras

    inputs = keras.Input(shape=(image_size, image_size, 3), name="image")
    base = load_backbone_weights(keras.applications.VGG16, "vgg16", weights, include_top=False, input_tensor=inputs)
    outputs = classifier_head(base.output, num_classes, dropout)
    return keras.Model(inputs, outputs, name="vgg16")


MODELS.register("vgg16")(
    ModelSpec(
        name="vgg16",
        build=build,
        description="VGG16 backbone (ImageNet weights by default) + GlobalAveragePooling + Dense",
        color_order="BGR",
        in_graph=False,
        mean=(103.939, 116.779, 123.68),
        std=(1.0, 1.0, 1.0),
        pretrained=True,
        default_weights="imagenet",
        default_dropout=0.2,
        default_unfreeze_from="block5_conv1",
        fine_tune_layers=("block5_conv1", "block4_conv1", "block3_conv1"),
    )
)
