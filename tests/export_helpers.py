"""Run folders for the export tests.

``tiny_run()`` is the run folder ``train-model`` itself wrote in the shared
real-command chain (tests/model_fixtures.py: small_cnn on digits at 32x32, a few
epochs); tests take a private copy with ``copy_run``.

``train_tiny`` (and ``tiny_run(kind, ...)`` with a kind or options) builds the
cases train-model cannot make, written in train-model's run-folder layout:
a ``Sequential`` model (the converter fallbacks), a model with a ``Lambda``
layer (--unsafe-load) and untrained or differently sized variants.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
IMAGE_SIZE = 32
_CACHE: dict[str, Path] = {}


def _base_dir() -> Path:
    d = Path(os.environ.get("EDGEDEPLOY_TEST_CACHE", "")) if os.environ.get("EDGEDEPLOY_TEST_CACHE") else None
    if d is None:
        import atexit
        import tempfile

        d = Path(tempfile.mkdtemp(prefix="edgedeploy-export-tests-"))
        atexit.register(shutil.rmtree, d, ignore_errors=True)
    d.mkdir(parents=True, exist_ok=True)
    return d


def manifest_dict(image_size: int = IMAGE_SIZE, name: str = "tiny_cnn") -> dict:
    from edgedeploy.runtime.manifest import Manifest

    m = Manifest(labels=[str(i) for i in range(10)], input_height=image_size, input_width=image_size,
                 model_name=name, dataset="digits")
    return m.to_dict()


def write_run_files(run_dir: Path, image_size: int = IMAGE_SIZE, name: str = "tiny_cnn") -> None:
    """manifest.json, config.json and splits.json as train-model writes them."""
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "manifest.json").write_text(json.dumps(manifest_dict(image_size, name), indent=2))
    (run_dir / "config.json").write_text(json.dumps({"model": name, "dataset": "digits", "data_dir": None,
                                                     "image_size": image_size, "seed": 0}, indent=2))
    (run_dir / "splits.json").write_text(json.dumps({"dataset": "digits", "source": "edgedeploy.runtime.datasets.load_digits"}))


def train_tiny(run_dir: Path, epochs: int = 10, kind: str = "functional", lambda_layer: bool = False,
               image_size: int = IMAGE_SIZE, seed: int = 0) -> Path:
    """Train a tiny CNN on digits and write a run folder; returns run_dir."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import tensorflow as tf

    from edgedeploy.runtime.datasets import load_digits

    tr = load_digits("train")
    x = tf.image.resize(tr.images.astype(np.float32), (image_size, image_size), "bilinear").numpy()
    keras.utils.set_random_seed(seed)
    layers = keras.layers
    if kind == "small_cnn":  # the user's architecture, from train's model registry
        from edgedeploy.train.models.small_cnn import build

        model = build(10, image_size, weights="none", dropout=0.3)
    elif kind == "sequential":
        model = keras.Sequential([
            keras.Input((image_size, image_size, 3)),
            layers.Rescaling(1 / 255.0),
            layers.Conv2D(8, 3, padding="same", activation="relu"),
            layers.MaxPooling2D(),
            layers.Conv2D(16, 3, padding="same", activation="relu"),
            layers.MaxPooling2D(),
            layers.Flatten(),
            layers.Dense(10, activation="softmax"),
        ], name="tiny_seq")
    else:
        # Conv 8/16 + MaxPooling, Flatten, softmax: trains to about 98% on digits
        # in 10 epochs, and its float16 files stay within 1e-3 of Keras (a
        # barely trained model, or one with a hidden Dense layer, can sit
        # right at that limit: see export/parity.py).
        inp = keras.Input((image_size, image_size, 3), name="image")
        h = layers.Rescaling(1 / 255.0, name="rescale")(inp)
        if lambda_layer:
            h = layers.Lambda(lambda t: t * 1.0, name="identity_lambda")(h)
        h = layers.Conv2D(8, 3, padding="same", activation="relu", name="conv1")(h)
        h = layers.MaxPooling2D(name="pool1")(h)
        h = layers.Conv2D(16, 3, padding="same", activation="relu", name="conv2")(h)
        h = layers.MaxPooling2D(name="pool2")(h)
        h = layers.Flatten(name="flatten")(h)
        out = layers.Dense(10, activation="softmax", name="predictions")(h)
        model = keras.Model(inp, out, name="tiny_cnn")
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    if epochs:
        model.fit(x, tr.labels, epochs=epochs, batch_size=32, verbose=0)
    write_run_files(run_dir, image_size, model.name)
    model.save(run_dir / "model.keras")
    return run_dir


def tiny_run(kind: str = "chain", **kw) -> Path:
    """A trained run folder: train-model's own (kind "chain"), else one built here once per process."""
    if kind == "chain" and not kw:
        import model_fixtures

        return model_fixtures.test_models() / "run"
    if kind == "chain":
        kind = "functional"
    key = f"{kind}-{sorted(kw.items())}"
    if key not in _CACHE:
        base = _CACHE.setdefault("__base__", _base_dir())
        _CACHE[key] = train_tiny(base / f"run-{len(_CACHE)}", kind=kind, **kw)
    return _CACHE[key]


def copy_run(src: Path, dst: Path) -> Path:
    """A private copy of a run folder's inputs (not its exports)."""
    dst.mkdir(parents=True, exist_ok=True)
    for name in ("model.keras", "manifest.json", "config.json", "splits.json"):
        shutil.copy2(src / name, dst / name)
    return dst
