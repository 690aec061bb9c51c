"""train/config.py, the registries and the CLI's fast paths (no TensorFlow needed)."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from edgedeploy.core.errors import EdgeDeployError
from edgedeploy.train.cli import build_parser, config_from_args
from edgedeploy.train.config import TrainConfig, load_config_file, resolve
from edgedeploy.train.data import DATASETS, choose_indices
from edgedeploy.train.models import MODELS

from train_helpers import ROOT, run_cli  # noqa: F401  (not_in_debug_mode: autouse)


def test_registries_list_models_and_datasets():
    assert MODELS.names() == ["mobilenet_v2", "small_cnn", "vgg16"]
    assert DATASETS.names() == ["cats_vs_dogs", "digits", "folder", "tf_flowers"]
    with pytest.raises(EdgeDeployError, match="expected one of: mobilenet_v2, small_cnn, vgg16"):
        MODELS.get("resnet")


def test_manifest_normalization_per_model():
    v = MODELS.get("vgg16")
    assert (v.color_order, v.in_graph, v.mean, v.std) == ("BGR", False, (103.939, 116.779, 123.68), (1.0, 1.0, 1.0))
    m = MODELS.get("mobilenet_v2")
    assert (m.color_order, m.in_graph, m.mean, m.std) == ("RGB", False, (127.5,) * 3, (127.5,) * 3)
    assert MODELS.get("small_cnn").normalization().in_graph is True


def test_resolve_defaults(tmp_path):
    c = resolve(TrainConfig(output=str(tmp_path / "r")))
    assert (c.dataset, c.image_size, c.augment, c.weights, c.finetune, c.lr) == ("digits", 32, False, "none", "full", 1e-3)
    c = resolve(TrainConfig(model="vgg16", dataset="cats_vs_dogs", output="x"))
    assert (c.image_size, c.augment, c.weights, c.finetune, c.fine_tune_lr) == (160, True, "imagenet", "two-phase", 1e-5)
    c = resolve(TrainConfig(model="vgg16", dataset="digits", finetune="partial", weights="none", output="x"))
    assert c.unfreeze_from == "block5_conv1"
    for cls in ("cat", "dog"):
        (tmp_path / "photos" / cls).mkdir(parents=True)
    c = resolve(TrainConfig(data_dir=str(tmp_path / "photos"), output="x"))
    assert c.dataset == "folder" and c.image_size == 160


@pytest.mark.parametrize("kw, match", [
    (dict(image_size=7), r"Received image_size=7, expected >= 32"),
    (dict(epochs=0), r"epochs=0"),
    (dict(optimizer="adagrad"), r"adam, rmsprop, sgd"),
    (dict(finetune="some"), r"head, partial, full, two-phase"),
    (dict(dropout=1.5), r"dropout=1.5"),
    (dict(model="small_cnn", finetune="head"), r"needs a backbone"),
    (dict(model="small_cnn", weights="imagenet"), r"no ImageNet weights"),
    (dict(model="vgg16", weights="/nonexistent/w.h5"), r"weights file not found"),
    (dict(dataset="folder"), r"needs --data"),
    (dict(data_dir="/nonexistent/dir"), r"data folder not found: /nonexistent/dir"),
    (dict(dataset="digits", data_dir="."), r"takes no --data"),
    (dict(dataset="imagenet"), r"unknown dataset 'imagenet'"),
])
def test_bad_settings_are_one_line_errors(kw, match):
    with pytest.raises(EdgeDeployError, match=match) as e:
        resolve(TrainConfig(output="x", **kw))
    assert "\n" not in str(e.value)


def test_config_file_yaml_and_toml_with_flag_override(tmp_path):
    y = tmp_path / "c.yaml"
    y.write_text("model: vgg16\nimage-size: 64\nepochs: 3\nweights: none\n")
    t = tmp_path / "c.toml"
    t.write_text('[train]\nmodel = "mobilenet_v2"\nbatch_size = 8\nlr = 0.01\n')
    assert load_config_file(y) == {"model": "vgg16", "image-size": 64, "epochs": 3, "weights": "none"}
    assert load_config_file(t) == {"model": "mobilenet_v2", "batch_size": 8, "lr": 0.01}
    args = build_parser().parse_args(["--config", str(y), "--epochs", "5"])
    cfg = config_from_args(args)
    assert (cfg.model, cfg.image_size, cfg.epochs, cfg.weights) == ("vgg16", 64, 5, "none")
    bad = tmp_path / "bad.yaml"
    bad.write_text("modle: vgg16\n")
    with pytest.raises(EdgeDeployError, match="unknown setting 'modle'"):
        config_from_args(build_parser().parse_args(["--config", str(bad)]))
    broken = tmp_path / "broken.toml"
    broken.write_text("model = \n")
    with pytest.raises(EdgeDeployError, match="cannot parse config file"):
        load_config_file(broken)
    with pytest.raises(EdgeDeployError, match="config file not found"):
        load_config_file(tmp_path / "missing.yaml")


def test_choose_indices_balanced_and_seeded():
    labels = np.array([0] * 50 + [1] * 5 + [2] * 20)
    idx = choose_indices(labels, 12, True, 0, 3)
    assert np.bincount(labels[idx], minlength=3).tolist() == [4, 4, 4]
    idx = choose_indices(labels, 30, True, 0, 3)
    assert np.bincount(labels[idx], minlength=3).tolist() == [13, 5, 12]  # class 1 runs out
    assert np.array_equal(idx, choose_indices(labels, 30, True, 0, 3))
    assert not np.array_equal(choose_indices(labels, 30, False, 0, 3), choose_indices(labels, 30, False, 1, 3))
    assert np.bincount(labels[choose_indices(labels, None, True, 0, 3)]).tolist() == [5, 5, 5]
    assert len(choose_indices(labels, None, False, 0, 3)) == 75


def test_help_lists_models_and_datasets_without_tensorflow():
    r = run_cli("--help", timeout=60)
    assert r.returncode == 0
    for name in ("small_cnn", "vgg16", "mobilenet_v2", "digits", "cats_vs_dogs", "tf_flowers", "folder"):
        assert name in r.stdout
    code = "import sys, train.cli, train.trainer; train.cli.build_parser(); print('tensorflow' in sys.modules, 'keras' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=str(ROOT), capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "False False"


@pytest.mark.parametrize("args, needle", [
    (["--image-size", "7"], "Received image_size=7, expected >= 32"),
    (["--data", "/nonexistent/photos"], "data folder not found: /nonexistent/photos"),
    (["--image-size", "big"], "invalid int value: 'big'"),
    (["--optimizer", "adagrad"], "invalid choice: 'adagrad'"),
    (["--model", "resnet"], "unknown model 'resnet'"),
    (["--resume"], "--resume needs --output"),
    (["--resume", "--output", "/nonexistent/run"], "run folder not found: /nonexistent/run"),
    (["--config", "/nonexistent/c.yaml"], "config file not found"),
])
def test_cli_user_errors_exit_2_with_one_line(args, needle):
    r = run_cli(*args, timeout=120)
    assert r.returncode == 2, r.stderr
    assert needle in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "Traceback" not in r.stderr


@pytest.mark.parametrize("layout, needle", [
    ({"cat/a.jpg": b"x", "cat/b.jpg": b"x"}, "has no class subfolders"),  # --data .../cat: images, no class folders
    ({"cat/a/a.jpg": b"x"}, "has only one class folder ('a')"),
    ({}, "is empty"),
])
def test_data_without_class_folders_is_refused_before_tensorflow_loads(tmp_path, layout, needle):
    """It took 10.5 s (TensorFlow's import) to refuse `--data photos/cat`; the folder is now looked at first."""
    (tmp_path / "cat").mkdir()
    for rel, data in layout.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(data)
    code = ("import sys\nfrom edgedeploy.train.cli import main\n"
            "rc = main(['--data', sys.argv[1], '--output', sys.argv[2]])\n"
            "print(rc, sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "cat"), str(tmp_path / "run")],
                         capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "2 []", out.stdout + out.stderr  # exit 2, and neither was imported
    assert out.stderr.count("\n") == 1 and needle in out.stderr and "Traceback" not in out.stderr
    assert not (tmp_path / "run").exists()


def test_interrupt_during_checkpoint_write_is_deferred():
    from edgedeploy.train.checkpoints import InterruptGuard

    guard = InterruptGuard()
    with guard.critical():
        guard.on_signal(15, None)  # no raise while best/last/state are written
        assert guard.pending is True
    with pytest.raises(KeyboardInterrupt):
        guard.raise_pending()  # raised once the three files agree
    assert guard.pending is False
    guard.raise_pending()  # nothing pending: no raise
    with pytest.raises(KeyboardInterrupt):
        guard.on_signal(15, None)


def test_train_state_round_trip_and_early_stopping(tmp_path):
    from edgedeploy.train.checkpoints import TrainState

    state = TrainState()
    assert state.record_epoch({"epoch": 1, "loss": 1.0}, val_loss=0.5, patience=2) is True
    assert state.record_epoch({"epoch": 2, "loss": 0.9}, val_loss=0.6, patience=2) is False
    assert not state.phase_stopped
    assert state.record_epoch({"epoch": 3, "loss": 0.8}, val_loss=0.7, patience=2) is False
    assert state.phase_stopped and (state.best, state.best_epoch, state.wait) == (0.5, 1, 2)
    state.save(tmp_path / "state.json")
    back = TrainState.load(tmp_path / "state.json")
    assert back == state and back.history_columns()["epoch"] == [1, 2, 3]
    back.enter_phase(1, fine_tune=True)
    assert (back.phase_index, back.wait, back.phase_stopped, back.fine_tune_start_epoch) == (1, 0, False, 4)


def test_patience_running_out_on_the_last_epoch_is_no_early_stop():
    """The demo's 15/15 was marked "(early stop)": patience ran out on the phase's planned last epoch."""
    from edgedeploy.train.checkpoints import TrainState

    last = TrainState()
    for epoch, loss in enumerate((0.5, 0.6, 0.7), start=1):
        last.record_epoch({"epoch": epoch}, val_loss=loss, patience=2, phase_epochs=3)
    assert last.wait == 2 and not last.phase_stopped  # the run ended as planned
    early = TrainState()
    for epoch, loss in enumerate((0.5, 0.6, 0.7), start=1):
        early.record_epoch({"epoch": epoch}, val_loss=loss, patience=2, phase_epochs=5)
    assert early.phase_stopped  # two epochs were left: a real early stop


@pytest.mark.tf
@pytest.mark.parametrize("epochs, marked", [(3, False), (5, True)])
def test_the_epoch_line_says_early_stop_only_when_epochs_were_left(tmp_path, capsys, epochs, marked):
    from types import SimpleNamespace

    from edgedeploy.train.checkpoints import InterruptGuard, TrainState, make_callback
    from edgedeploy.train.finetune import Phase

    state = TrainState()
    cb = make_callback(tmp_path, state, Phase("train", "full", epochs, 1e-3), patience=2, total_epochs=epochs,
                       chief=False, guard=InterruptGuard())
    model = SimpleNamespace(stop_training=False)
    cb.set_model(model)
    for epoch, val_loss in enumerate((0.5, 0.6, 0.7)):
        cb.on_epoch_begin(epoch)
        cb.on_epoch_end(epoch, {"loss": 1.0, "val_loss": val_loss})
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1].startswith(f"epoch   3/{epochs}")
    assert ("(early stop)" in lines[-1]) is marked and model.stop_training is marked
    assert not any("(early stop)" in line for line in lines[:-1])
