"""train/models, train/finetune and train/macs: build, one training step, trainable layers, MACs."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgedeploy.core.errors import EdgeDeployError
from edgedeploy.train.finetune import apply_strategy, phases, trainable_report
from edgedeploy.train.macs import count_macs
from edgedeploy.train.models import build_model

pytestmark = pytest.mark.tf


def _keras():
    from edgedeploy.train._tf import import_keras

    return import_keras()


@pytest.fixture(scope="module")
def vgg16():
    return build_model("vgg16", 3, 32, weights="none", dropout=0.2)


@pytest.fixture(scope="module")
def mobilenet_v2():
    return build_model("mobilenet_v2", 3, 32, weights="none", dropout=0.2)


def _one_step(model, eager=False):
    keras = _keras()
    x = np.random.default_rng(0).uniform(-1, 1, (4, 32, 32, 3)).astype("float32")
    y = np.array([0, 1, 2, 0])
    before = [w.numpy().copy() for w in model.trainable_weights]
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"],
                  run_eagerly=eager)
    model.fit(x, y, batch_size=4, epochs=1, verbose=0)
    changed = sum(not np.array_equal(b, w.numpy()) for b, w in zip(before, model.trainable_weights))
    return changed, len(before)


@pytest.mark.parametrize("name", ["small_cnn", "vgg16", "mobilenet_v2"])
def test_each_model_trains_one_step(name, request):
    model = request.getfixturevalue(name) if name != "small_cnn" else build_model("small_cnn", 3, 32)
    keras = _keras()
    assert not isinstance(model, keras.Sequential) and model.name == name
    assert model.output_shape == (None, 3)
    assert not any(type(layer).__name__ == "Lambda" for layer in model.layers)
    if name != "small_cnn":
        apply_strategy(model, "full", freeze_batchnorm=False)
    # Eager for the backbones: tracing MobileNetV2's train step takes 40-80 s of Python on
    # this 2-core machine (28k graph ops); graph-mode training is covered by the slow
    # two-phase test in test_train_run.py.
    changed, total = _one_step(model, eager=name != "small_cnn")
    assert changed == total > 0


def test_small_cnn_architecture_at_160():
    m = build_model("small_cnn", 2, 160)
    names = [layer.name for layer in m.layers]
    assert names[:2] == ["image", "rescale"] and m.get_layer("rescale").scale == pytest.approx(1 / 255)
    assert [m.get_layer(f"conv{i}").filters for i in (1, 2, 3)] == [16, 32, 64]
    assert m.get_layer("flatten").output.shape[-1] == 25600  # 20 x 20 x 64
    assert m.get_layer("head_predictions").activation.__name__ == "softmax"


def test_macs_by_hand_and_vgg16_reference():
    m = build_model("small_cnn", 10, 32, dropout=0.0)
    by_hand = (32 * 32 * 16 * 3 * 3 * 3) + (16 * 16 * 32 * 3 * 3 * 16) + (8 * 8 * 64 * 3 * 3 * 32) + 1024 * 128 + 128 * 10
    assert count_macs(m) == by_hand == 2_934_016
    keras = _keras()
    vgg = keras.applications.VGG16(include_top=False, weights=None, input_shape=(224, 224, 3))
    assert count_macs(vgg) / 1e9 == pytest.approx(15.35, abs=0.05)  # the textbook 15.5 GMAC includes the FC top
    mb = keras.applications.MobileNetV2(include_top=True, weights=None, input_shape=(224, 224, 3))
    assert count_macs(mb) / 1e6 == pytest.approx(300, rel=0.03)  # MobileNetV2 paper: 300M multiply-adds


def test_saved_model_loads_in_safe_mode(tmp_path):
    keras = _keras()
    m = build_model("small_cnn", 2, 32)
    m.save(tmp_path / "m.keras")
    again = keras.models.load_model(tmp_path / "m.keras", safe_mode=True, compile=False)
    x = np.random.default_rng(1).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(again.predict(x, verbose=0), m.predict(x, verbose=0), atol=1e-6)


# -- fine-tuning ------------------------------------------------------------------------
def _trainable(model):
    return {layer.name for layer in model.layers if layer.weights and layer.trainable}


def test_vgg16_strategies_set_exactly_the_right_layers(vgg16):
    head = {"head_predictions"}
    apply_strategy(vgg16, "head")
    assert _trainable(vgg16) == head
    assert trainable_report(vgg16)["trainable_params"] == 512 * 3 + 3
    apply_strategy(vgg16, "partial", "block5_conv1")
    assert _trainable(vgg16) == head | {"block5_conv1", "block5_conv2", "block5_conv3"}
    apply_strategy(vgg16, "partial", "block4_conv2")
    assert _trainable(vgg16) == head | {"block4_conv2", "block4_conv3", "block5_conv1", "block5_conv2", "block5_conv3"}
    apply_strategy(vgg16, "full")
    assert _trainable(vgg16) == {layer.name for layer in vgg16.layers if layer.weights}
    assert len(_trainable(vgg16)) == 14  # 13 convolutions + the classifier


def test_mobilenet_v2_keeps_pretrained_batchnorm_frozen(mobilenet_v2):
    m = mobilenet_v2
    bns = {layer.name for layer in m.layers if "BatchNormalization" in type(layer).__name__}
    apply_strategy(m, "head")
    assert _trainable(m) == {"head_predictions"}
    apply_strategy(m, "partial", "block_16_expand")
    assert _trainable(m) == {"block_16_expand", "block_16_depthwise", "block_16_project", "Conv_1", "head_predictions"}
    apply_strategy(m, "full", freeze_batchnorm=True)
    weighted = {layer.name for layer in m.layers if layer.weights}
    assert _trainable(m) == weighted - bns and bns
    apply_strategy(m, "full", freeze_batchnorm=False)  # from scratch: BN trains too
    assert _trainable(m) == weighted


def test_unknown_unfreeze_layer_lists_valid_names(vgg16):
    with pytest.raises(EdgeDeployError, match=r"unknown layer 'block9_conv1'.*block5_conv1") as e:
        apply_strategy(vgg16, "partial", "block9_conv1")
    assert "\n" not in str(e.value)


def test_two_phase_schedule():
    from edgedeploy.train.config import TrainConfig, resolve

    cfg = resolve(TrainConfig(model="vgg16", dataset="digits", weights="none", finetune="two-phase", epochs=3,
                              fine_tune_epochs=2, output="x"))
    p = phases(cfg)
    assert [(x.name, x.strategy, x.epochs, x.unfreeze_from) for x in p] == [
        ("head", "head", 3, None), ("fine_tune", "partial", 2, "block5_conv1")]
    assert p[1].lr == pytest.approx(p[0].lr / 100)
    assert [x.strategy for x in phases(resolve(TrainConfig(output="x")))] == ["full"]


def test_weights_from_a_local_file(tmp_path):
    keras = _keras()
    base = keras.applications.MobileNetV2(include_top=False, weights=None, input_shape=(32, 32, 3))
    path = tmp_path / "mobilenet_v2_notop.weights.h5"
    base.save_weights(path)
    m = build_model("mobilenet_v2", 2, 32, weights=str(path))
    np.testing.assert_array_equal(m.get_layer("Conv1").kernel.numpy(), base.get_layer("Conv1").kernel.numpy())
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"not hdf5")
    with pytest.raises(EdgeDeployError, match=r"could not load mobilenet_v2 weights from .*junk.h5"):
        build_model("mobilenet_v2", 2, 32, weights=str(junk))


def test_imagenet_weights_offline_is_one_line_error():
    cached = Path.home() / ".keras/models/vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"
    if cached.exists():
        pytest.skip("ImageNet weights are cached, so nothing fails offline")
    try:
        build_model("vgg16", 2, 32, weights="imagenet")
    except EdgeDeployError as e:
        assert "--weights PATH" in str(e) and "--weights none" in str(e) and "\n" not in str(e)
    else:
        pytest.skip("the network allowed the ImageNet download")
