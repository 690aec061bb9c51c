"""edge_runtime on what train-model and export-model really write (the end-to-end contract).

Uses the shared chain (tests/model_fixtures.py): the small CNN trained on
digits for a few epochs with ``train-model``, exported to TFLite and ONNX
(float32 and int8) with ``export-model``. Checks that
every backend reads the same files the same way: identical top-1 and
probabilities within 1e-3 between LiteRT and ONNX Runtime on the float32
exports, the manifest read from the file alone, and edge-infer on the int8
files.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from edgedeploy.runtime import ImageClassifier
from edgedeploy.runtime.datasets import load_digits

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def exported() -> Path:
    """export-model's folder from the shared real-command chain (tests/model_fixtures.py)."""
    import model_fixtures

    return model_fixtures.test_models()


def test_litert_and_onnxruntime_agree_on_exported_float32(exported):
    ds = load_digits("test")
    lite = ImageClassifier(exported / "model_float32.tflite", backend="litert")
    ort = ImageClassifier(exported / "model_float32.onnx", backend="onnxruntime")
    a = np.stack([p.probabilities for p in lite.predict_batch(list(ds.images), batch_size=32)])
    b = np.stack([p.probabilities for p in ort.predict_batch(list(ds.images), batch_size=32)])
    assert np.array_equal(a.argmax(1), b.argmax(1))
    assert np.abs(a - b).max() < 1e-3


@pytest.mark.parametrize("name", ["model_float32.tflite", "model_int8.tflite", "model_float32.onnx", "model_int8.onnx"])
def test_the_model_file_alone_is_enough(exported, tmp_path, name):
    alone = tmp_path / name
    shutil.copy(exported / name, alone)  # no sidecar beside it
    clf = ImageClassifier(alone)
    assert clf.manifest_found and clf.manifest.labels == [str(i) for i in range(10)]
    ds = load_digits("test")
    preds = clf.predict_batch(list(ds.images[:100]), batch_size=16)
    assert np.mean([p.index == y for p, y in zip(preds, ds.labels[:100])]) > 0.8


def test_sidecar_named_like_export_writes_it_is_read(exported, tmp_path):
    side = exported / "model_float32.tflite.json"
    assert side.is_file() and not (exported / "model_float32.json").exists()  # no colliding model_<mode>.json
    assert (exported / "model_float32.onnx.json").is_file()
    m = json.loads(side.read_text())
    assert m["labels"] == [str(i) for i in range(10)]


def test_edge_infer_on_int8_exports(exported, tmp_path, capsys):
    from PIL import Image

    from edgedeploy.runtime.cli import main

    ds = load_digits("test")
    for i in range(6):
        Image.fromarray(ds.images[i]).resize((48, 48)).save(tmp_path / f"d{i}_{ds.labels[i]}.png")
    for name in ("model_int8.tflite", "model_int8.onnx"):
        assert main([str(exported / name), str(tmp_path), "--json"]) == 0
        rows = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
        assert len(rows) == 6
        assert sum(r["label"] == Path(r["path"]).stem.split("_")[1] for r in rows) >= 4
