"""train-model's failure paths: a failed run can be retried, errors stay one line,
defaults agree with --help, and mobilenet_v2 picks the ImageNet weights for its size."""
from __future__ import annotations

import pytest

from edgedeploy.core.errors import EdgeDeployError

from train_helpers import make_image_folder, run_cli  # noqa: F401  (not_in_debug_mode: autouse)


# -- TF-free: defaults, warnings, messages ---------------------------------------------
@pytest.mark.parametrize("finetune, pretrained, lr", [
    ("partial", True, 1e-4), ("partial", False, 1e-4), ("full", True, 1e-4), ("full", False, 1e-3),
    ("head", True, 1e-3), ("two-phase", True, 1e-3),
])
def test_default_lr_matches_help(finetune, pretrained, lr):
    from edgedeploy.train.cli import build_parser
    from edgedeploy.train.config import LR_HELP, TrainConfig, default_lr, resolve

    assert default_lr(finetune, pretrained) == lr
    cfg = resolve(TrainConfig(model="mobilenet_v2", weights="imagenet" if pretrained else "none", finetune=finetune))
    assert cfg.lr == lr
    help_text = " ".join(build_parser().format_help().split())
    assert " ".join(LR_HELP.split()) in help_text and "1e-4 for --finetune partial" in help_text


def test_partial_without_pretrained_weights_warns():
    from edgedeploy.train.config import TrainConfig, config_warnings, resolve

    cfg = resolve(TrainConfig(model="mobilenet_v2", weights="none", finetune="partial", unfreeze_from="block_13_expand"))
    (line,) = config_warnings(cfg)
    assert "--finetune partial with --weights none freezes the backbone layers below block_13_expand" in line
    assert "randomly initialised" in line and "--finetune full" in line
    assert config_warnings(resolve(TrainConfig(model="mobilenet_v2", weights="none", finetune="full"))) == []
    assert config_warnings(resolve(TrainConfig(model="small_cnn"))) == []


def test_short_reason_keeps_whole_words_and_the_cause():
    from edgedeploy.train.models import short_reason

    offline = Exception("URL fetch failure on https://storage.googleapis.com/tensorflow/keras-applications/vgg16/"
                        "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5: None -- [Errno -2] Name or service not known")
    assert short_reason(offline) == "[Errno -2] Name or service not known"
    long = Exception("word " * 100)
    cut = short_reason(long, limit=42)
    assert cut.endswith(" ...") and all(w == "word" for w in cut[:-4].split())


# -- mobilenet_v2's ImageNet weights per input size (the download itself fails offline) ----------
@pytest.mark.tf
@pytest.mark.parametrize("size, expected", [(96, 96), (128, 128), (160, 160), (192, 192), (224, 224), (100, 224)])
def test_mobilenet_v2_asks_keras_for_the_weights_of_its_size(size, expected, monkeypatch, capsys):
    import warnings

    from keras.src.applications import mobilenet_v2 as keras_mnv2

    from edgedeploy.train.models import build_model
    from edgedeploy.train.models.mobilenet_v2 import imagenet_weights_file

    asked = []

    def offline(name, origin, **kw):
        asked.append(name)
        raise Exception(f"URL fetch failure on {origin}: None -- [Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(keras_mnv2.file_utils, "get_file", offline)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(EdgeDeployError) as e:
            build_model("mobilenet_v2", 2, size, weights="imagenet")
    assert asked == [imagenet_weights_file(size)] and f"_1.0_{expected}_no_top.h5" in asked[0]
    message = str(e.value)
    assert "(  [Errno" not in message and "[Errno -3] Temporary failure in name resolution)" in message
    assert "--weights none" in message and "\n" not in message
    assert not [w for w in caught if "224" in str(w.message)]  # Keras's fallback warning is gone
    err = capsys.readouterr().err
    if size == expected:
        assert err == ""
    else:
        assert err.strip() == (f"warning: mobilenet_v2 has ImageNet weights for 96, 128, 160, 192, 224 px; "
                               f"--image-size {size} uses the 224 px ones")


# -- failed runs leave nothing that blocks the retry ---------------------------------------------
@pytest.mark.tf
def test_wrong_weights_file_is_one_line_and_the_retry_works(tmp_path, capfd):
    from edgedeploy.train._tf import import_keras
    from edgedeploy.train.cli import main
    from edgedeploy.train.models import build_model

    keras = import_keras()
    wrong = tmp_path / "wrong.weights.h5"
    keras.applications.MobileNetV2(include_top=False, weights=None, input_shape=(32, 32, 3)).save_weights(wrong)
    run = tmp_path / "run"
    args = ["--epochs", "1", "--patience", "0", "--batch-size", "128", "--weights", str(wrong), "--output", str(run)]
    proc = run_cli(*args)  # a real process: Keras's warnings would reach its stderr
    assert proc.returncode == 2
    err = proc.stderr
    assert len(err.strip().splitlines()) == 1, err
    assert f"could not load small_cnn weights from {wrong}" in err and "Traceback" not in err
    assert not run.exists(), "the failed run left files that block the retry"
    # The user puts the right file in place and runs the same command again.
    build_model("small_cnn", 10, 32).save_weights(wrong)
    assert main(args) == 0
    assert (run / "model.keras").is_file()


@pytest.mark.tf
@pytest.mark.slow
def test_unfreeze_typo_leaves_nothing_behind(tmp_path, capfd):
    from edgedeploy.train.cli import main

    data = make_image_folder(tmp_path / "colours", ("red", "blue"), per_class=6)
    run = tmp_path / "run"
    args = ["--model", "mobilenet_v2", "--weights", "none", "--data", str(data), "--image-size", "32", "--epochs", "1",
            "--finetune", "partial", "--output", str(run)]
    assert main([*args, "--unfreeze-from", "block_13_expnad"]) == 2
    out, err = capfd.readouterr()
    errors = [ln for ln in err.strip().splitlines() if not ln.startswith("warning: ")]  # partial + none warns
    assert len(errors) == 1 and "unknown layer 'block_13_expnad' for --unfreeze-from" in errors[0], err
    assert not run.exists()
    assert main([*args, "--unfreeze-from", "block_13_expand"]) == 0  # the plain retry, typo fixed
    out, err = capfd.readouterr()
    assert "--finetune partial with --weights none freezes" in err
    assert (run / "model.keras").is_file()


@pytest.mark.tf
def test_failure_inside_an_existing_empty_folder_keeps_the_folder(tmp_path):
    from edgedeploy.train import train
    from edgedeploy.train.config import TrainConfig

    run = tmp_path / "run"
    run.mkdir()
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"not hdf5")
    with pytest.raises(EdgeDeployError, match="could not load small_cnn weights"):
        train(TrainConfig(epochs=1, weights=str(junk), output=str(run)))
    assert run.is_dir() and list(run.iterdir()) == []


# -- training plots ----------------------------------------------------------------------
def test_curve_plot_has_integer_epochs_and_marks_the_best(tmp_path):
    pytest.importorskip("matplotlib")
    from edgedeploy.train.plots import curve_figure, plot_curve

    history = {"epoch": [1, 2, 3, 4, 5], "loss": [1.0, 0.6, 0.4, 0.3, 0.25], "val_loss": [0.9, 0.5, 0.45, 0.47, 0.5]}
    fig = curve_figure(history, "loss", fine_tune_start=4, best_epoch=3)
    ax = fig.axes[0]
    ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
    assert ticks and all(float(t).is_integer() for t in ticks), ticks
    best = [ln for ln in ax.get_lines() if ln.get_label().startswith("best epoch 3")]
    assert len(best) == 1 and list(best[0].get_xdata()) == [3] and list(best[0].get_ydata()) == [0.45]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["train", "validation", "best epoch 3 (lowest val_loss)", "fine-tuning starts"]
    assert ax.get_title() == "Loss per epoch (train and validation)"
    out = plot_curve(history, "loss", tmp_path / "loss.png", best_epoch=3)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_prediction_grid_says_what_it_shows():
    pytest.importorskip("matplotlib")
    import numpy as np

    from edgedeploy.train.plots import predictions_figure

    images = [np.full((8, 8), 40 * i, np.uint8) for i in range(5)]
    fig = predictions_figure(images, y_true=[1, 0, 1, 1, 0], y_pred=[0, 0, 1, 1, 0], scores=[0.6, 0.9, 0.8, 0.7, 0.99],
                             labels=["cat", "dog"])
    assert fig._suptitle.get_text().startswith("Test images: 4 predicted right (green), 1 wrong (red)")
    titled = [ax for ax in fig.axes if ax.get_title()]
    assert len(titled) == 5 and titled[0].get_title() == "predicted cat (0.60)\ntrue dog"
    assert titled[0].title.get_color() == "red" and titled[1].title.get_color() == "green"
