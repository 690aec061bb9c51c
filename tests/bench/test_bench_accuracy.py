"""benchmarks/accuracy.py: figures equal to ones computed independently through ImageClassifier."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

from bench_helpers import bench_export_dir, run_script


def _independent(model, images, truth_idx):
    """Accuracy, predictions and confusion matrix straight from ImageClassifier.predict_batch."""
    from edgedeploy.runtime import ImageClassifier

    preds = np.array([p.index for p in ImageClassifier(model).predict_batch(list(images))])
    cm = np.zeros((10, 10), int)
    for t, p in zip(truth_idx, preds):
        cm[t, p] += 1
    return float((preds == truth_idx).mean()), preds, cm


def test_digits_quick_matches_imageclassifier(tmp_path):
    from edgedeploy.runtime.datasets import load_digits

    d = bench_export_dir()
    out = tmp_path / "acc.json"
    proc = run_script("accuracy", d, "--dataset", "digits", "--reference", d / "model_float32.tflite", "--quick", "--json", out)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(out.read_text())
    n = report["settings"]["limit"]
    assert n == 100 and report["dataset"]["n_images"] == 100
    ds = load_digits("test")
    images, truth = ds.images[:n], ds.labels[:n]
    _, ref_preds, _ = _independent(d / "model_float32.tflite", images, truth)
    rows = {r["variant"]: r for r in report["results"]}
    assert set(rows) == {"model_float32.tflite", "model_int8.tflite", "model_float32.onnx"}
    for name, r in rows.items():
        acc, preds, cm = _independent(d / name, images, truth)
        assert r["accuracy"] == pytest.approx(acc, abs=1e-12)
        assert r["correct"] == int((preds == truth).sum())
        assert r["confusion_matrix"] == cm.tolist()
        assert r["agreement"] == pytest.approx(float((preds == ref_preds).mean()))
        assert r["accuracy"] > 0.8  # the tiny CNN learns digits
        assert sum(c["support"] for c in r["per_class"].values()) == n
        assert 0 <= r["macro_avg"]["f1"] <= 1
    assert rows["model_float32.tflite"]["agreement"] == 1.0
    assert "Accuracy %" in proc.stdout


def _write_folder(root, n_per_class=4):
    from PIL import Image

    from edgedeploy.runtime.datasets import load_digits

    ds = load_digits("test")
    files = []
    for c in range(10):
        (root / str(c)).mkdir(parents=True)
        idx = np.flatnonzero(ds.labels == c)[:n_per_class]
        for k, i in enumerate(idx):
            p = root / str(c) / f"img{k}.png"
            Image.fromarray(ds.images[i]).resize((24, 24), Image.NEAREST).save(p)
            files.append((p, c))
    return files


def test_data_folder_counts_unreadable_files(tmp_path):
    root = tmp_path / "data"
    files = _write_folder(root)
    (root / "3" / "empty.png").write_bytes(b"")
    (root / "3" / "notes.txt").write_text("not an image")
    (root / "4" / "truncated.png").write_bytes(files[0][0].read_bytes()[:40])
    outside = tmp_path / "outside.png"
    outside.write_bytes(files[1][0].read_bytes())
    os.symlink(outside, root / "5" / "link.png")
    out = tmp_path / "acc.json"
    model = bench_export_dir() / "model_int8.tflite"
    proc = run_script("accuracy", model, "--data", root, "--json", out)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(out.read_text())
    ds = report["dataset"]
    assert ds["n_images"] == 40 and ds["n_unreadable"] == 4
    bad = {os.path.basename(u["path"]): u["error"] for u in ds["unreadable"]}
    assert set(bad) == {"empty.png", "notes.txt", "truncated.png", "link.png"}
    assert "outside" in bad["link.png"]
    assert "4 unreadable" in proc.stderr
    acc, _, _ = _independent(model, [str(p) for p, _ in files], np.array([c for _, c in files]))
    assert report["results"][0]["accuracy"] == pytest.approx(acc)


def test_empty_class_folder_is_a_warning(tmp_path):
    root = tmp_path / "data"
    _write_folder(root, 2)
    (root / "extra").mkdir()
    proc = run_script("accuracy", bench_export_dir() / "model_int8.tflite", "--data", root)
    # 'extra' has no images (a warning), and so it does not fail the label check either
    assert proc.returncode == 0, proc.stderr
    assert "class folder 'extra' has no readable images" in proc.stderr


def test_a_rejected_file_opens_when_named_explicitly(tmp_path):
    """export-model keeps a gate failure as model_<mode>.<ext>.rejected: a folder skips it, its name opens it."""
    import shutil

    d = bench_export_dir()
    folder = tmp_path / "models"
    folder.mkdir()
    shutil.copy2(d / "model_int8.tflite", folder / "model_int8.tflite.rejected")
    shutil.copy2(d / "model_float32.tflite", folder / "model_float32.tflite")
    out = tmp_path / "acc.json"
    proc = run_script("accuracy", folder / "model_int8.tflite.rejected", "--dataset", "digits", "--quick", "--json", out)
    assert proc.returncode == 0, proc.stderr
    assert "failed export-model's parity gate" in proc.stderr
    rows = json.loads(out.read_text())["results"]
    assert [r["variant"] for r in rows] == ["model_int8.rejected.tflite"] and rows[0]["accuracy"] > 0.5
    out2 = tmp_path / "acc2.json"
    proc = run_script("accuracy", folder, "--dataset", "digits", "--quick", "--json", out2)
    assert proc.returncode == 0, proc.stderr
    assert [r["variant"] for r in json.loads(out2.read_text())["results"]] == ["model_float32.tflite"]
