"""The parity gate rejects what does not answer like the Keras model.

A deliberately broken quantization (int8 calibrated on constant-black
images) must exit 3 with one line naming the file and the drop, keep the file
as ``.rejected`` and leave no accepted file. A float32 file that misses a
(deliberately impossible) probability tolerance is rejected the same way.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edgedeploy.export.cli import main

pytestmark = pytest.mark.tf


@pytest.fixture
def black_images(tmp_path: Path) -> Path:
    from PIL import Image

    d = tmp_path / "black"
    d.mkdir()
    for i in range(12):
        Image.new("RGB", (8, 8)).save(d / f"black_{i}.png")
    return d


def test_black_calibration_is_rejected(run: Path, black_images: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    rc = main([str(run), "--format", "tflite", "--quantize", "int8", "--calibration-data", str(black_images),
               "--output", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 3
    last = err[-1]
    assert last.startswith("export-model: error: parity gate rejected model_int8.tflite accuracy drop ")
    assert "kept as model_int8.tflite.rejected" in last
    assert not any("Traceback" in line for line in err)
    assert (out / "model_int8.tflite.rejected").is_file()
    assert not (out / "model_int8.tflite").exists() and not (out / "model_int8.tflite.json").exists()
    report = json.loads((out / "export_report.json").read_text())
    row = report["files"][0]
    assert row["file"] == "model_int8.tflite.rejected" and row["status"] == "rejected"
    assert row["accuracy_drop"] > 20 and "accuracy drop" in row["reason"]
    assert report["calibration"]["source"].startswith("folder ")
    # The stretch goal: the QuantizationDebugger's worst layers are reported.
    worst = report["worst_layers"]
    assert worst and len(worst) <= 5 and all("scope" in w and "rmse_over_scale" in w for w in worst)
    assert any("--keep-float" in line for line in err)
    # The rejected file still carries its manifest, with the verdict.
    from edgedeploy.runtime.formats.tflite import read_tflite_metadata
    from edgedeploy.runtime.manifest import EMBED_KEY

    meta = json.loads(read_tflite_metadata((out / "model_int8.tflite.rejected").read_bytes())[EMBED_KEY])
    assert meta["metrics"]["gate"]["passed"] is False


def test_diagnosis_names_the_file_that_failed(run: Path, black_images: Path, tmp_path: Path, capsys) -> None:
    """Only the ONNX int8 file fails: the debugger line names it, and says TFLite's debugger runs as a proxy."""
    out = tmp_path / "out"
    rc = main([str(run), "--format", "onnx", "--quantize", "int8", "--calibration-data", str(black_images),
               "--output", str(out), "--parity-samples", "200"])
    err = capsys.readouterr().err
    assert rc == 3
    assert ("model_int8.onnx.rejected failed the gate: running TFLite's QuantizationDebugger on the calibration data "
            "(a tflite int8 conversion of the same model, as a proxy") in err
    assert "int8 failed the gate" not in err
    report = json.loads((out / "export_report.json").read_text())
    assert report["diagnosis"] == {"file": "model_int8.onnx.rejected", "tool": "TFLite's QuantizationDebugger", "proxy": True,
                                   "proxy_format": "TFLite"}
    assert "For `model_int8.onnx.rejected` (measured on the TFLite conversion" in (out / "export_report.md").read_text()


def test_rejection_with_force_replaces_an_earlier_accepted_file(run: Path, black_images: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert main([str(run), "--quantize", "int8", "--output", str(out), "--parity-samples", "60"]) == 0
    assert (out / "model_int8.tflite").is_file()
    rc = main([str(run), "--quantize", "int8", "--calibration-data", str(black_images), "--output", str(out),
               "--parity-samples", "60", "--force"])
    assert rc == 3
    # nothing downstream can pick up the earlier file as if it were this run's
    assert not (out / "model_int8.tflite").exists() and not (out / "model_int8.tflite.json").exists()
    assert (out / "model_int8.tflite.rejected").is_file()
    rows = json.loads((out / "export_report.json").read_text())["files"]
    assert [r["file"] for r in rows] == ["model_int8.tflite.rejected"]


def test_float32_probability_tolerance_is_enforced(run: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    rc = main([str(run), "--format", "onnx", "--output", str(out), "--max-prob-diff", "1e-12", "--parity-samples", "40"])
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert rc == 3
    assert "model_float32.onnx max probability difference" in last and "float32" in last
    assert (out / "model_float32.onnx.rejected").is_file() and not (out / "model_float32.onnx").exists()


def test_keep_float_leaves_named_layers_in_float(run: Path, tmp_path: Path) -> None:
    from edgedeploy.runtime import ImageClassifier

    out = tmp_path / "out"
    rc = main([str(run), "--format", "all", "--quantize", "int8", "--keep-float", "predictions", "--output", str(out),
               "--parity-samples", "80", "--max-accuracy-drop", "5"])
    assert rc == 0
    rows = {r["file"]: r for r in json.loads((out / "export_report.json").read_text())["files"]}
    for name in ("model_int8.tflite", "model_int8.onnx"):
        assert rows[name]["kept_float"], name
        assert all("predictions" in n for n in rows[name]["kept_float"])
        # the kept layers travel in the manifest and the report
        manifest = json.loads((out / f"{name}.json").read_text())
        assert manifest["metrics"]["kept_float"] == {"requested": ["predictions"], "nodes": rows[name]["kept_float"]}
    md = (out / "export_report.md").read_text()
    assert "## Kept in float (--keep-float predictions)" in md and rows["model_int8.tflite"]["kept_float"][0] in md
    clf = ImageClassifier(out / "model_int8.tflite")
    ops = [op["op_name"] for op in clf.backend._it._get_ops_details()]
    assert "DEQUANTIZE" in ops  # the kept layer runs in float between (de)quantize ops
    assert clf.backend.input.dtype == np.uint8  # --io still honoured
    import onnx

    graph = onnx.load(str(out / "model_int8.onnx")).graph
    kept = set(rows["model_int8.onnx"]["kept_float"])
    assert any(n.name in kept and n.op_type in ("MatMul", "Gemm", "Softmax") for n in graph.node)


def test_misspelled_keep_float_is_a_usage_error_before_any_file(run: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    rc = main([str(run), "--format", "all", "--quantize", "none,int8", "--keep-float", "predictons", "--output", str(out),
               "--parity-samples", "40"])
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert rc == 2
    assert last.startswith("export-model: error: Received --keep-float 'predictons', which matches no layer")
    assert "predictions" in last  # the layer names it could have meant
    assert not any(p.suffix in (".tflite", ".onnx", ".rejected") for p in out.iterdir())


def test_keep_float_on_the_first_layer_says_the_input_type_changed(run: Path, tmp_path: Path, capsys) -> None:
    from edgedeploy.runtime import ImageClassifier

    out = tmp_path / "out"
    rc = main([str(run), "--quantize", "int8", "--keep-float", "conv1", "--output", str(out), "--parity-samples", "60",
               "--max-accuracy-drop", "5"])
    err = capsys.readouterr().err
    assert rc == 0
    assert str(ImageClassifier(out / "model_int8.tflite").backend.input.dtype) == "float32"
    expected = "tflite int8: input type is float32, not uint8 as --io asks: --keep-float conv1 keeps the layer"
    assert f"note: {expected}" in err
    row = json.loads((out / "export_report.json").read_text())["files"][0]
    assert any(n.startswith(expected) for n in row["notes"]) and row["input"]["dtype"] == "float32"
    assert expected in (out / "export_report.md").read_text()


@pytest.mark.parametrize("io", ["int8", "float32"])
def test_tflite_int8_io_types(run: Path, tmp_path: Path, io: str) -> None:
    from edgedeploy.runtime import ImageClassifier

    out = tmp_path / "out"
    assert main([str(run), "--quantize", "int8", "--io", io, "--output", str(out), "--parity-samples", "60",
                 "--max-accuracy-drop", "5"]) == 0
    clf = ImageClassifier(out / "model_int8.tflite")
    assert str(clf.backend.input.dtype) == io and str(clf.backend.output.dtype) == io
    assert clf.manifest.input.dtype == io
    assert (clf.manifest.input.quantization is None) == (io == "float32")


def test_gate_policies_on_thin_evidence(run: Path, tmp_path: Path, capsys) -> None:
    """40 images prove nothing either way: evidence accepts with one warning, strict rejects, point accepts silently."""
    rc = main([str(run), "--output", str(tmp_path / "e"), "--parity-samples", "40"])
    err = capsys.readouterr().err
    assert rc == 0 and err.count("warning: model_float32.tflite: inconclusive, accepted under --gate evidence") == 1
    row = json.loads((tmp_path / "e" / "export_report.json").read_text())["files"][0]
    assert (row["status"], row["verdict"], row["inconclusive"]) == ("accepted", "inconclusive", True)
    assert "more images like these would settle it" in row["gate"]["settle"]
    assert "## Inconclusive" in (tmp_path / "e" / "export_report.md").read_text()

    rc = main([str(run), "--output", str(tmp_path / "s"), "--parity-samples", "40", "--gate", "strict"])
    assert rc == 3 and "inconclusive under --gate strict" in capsys.readouterr().err.splitlines()[-1]
    assert (tmp_path / "s" / "model_float32.tflite.rejected").is_file()

    rc = main([str(run), "--output", str(tmp_path / "p"), "--parity-samples", "40", "--gate", "point"])
    assert rc == 0 and "warning:" not in capsys.readouterr().err


def test_parity_data_adds_labelled_evidence(run: Path, tmp_path: Path, capsys) -> None:
    from PIL import Image

    from edgedeploy.runtime.datasets import load_digits

    extra = tmp_path / "extra"
    ds = load_digits("validation")
    for i, (img, lab) in enumerate(zip(ds.images[:50], ds.labels[:50])):
        (extra / str(int(lab))).mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(extra / str(int(lab)) / f"{i}.png")
    for i, img in enumerate(ds.images[50:80]):  # loose images: unlabelled, they count for the disagreement only
        Image.fromarray(img).save(extra / f"loose_{i}.png")
    (extra / "broken.png").write_bytes(b"not an image")  # counted, not silently dropped
    (extra / "0" / "truncated.png").write_bytes(b"\x89PNG\r\n")
    out = tmp_path / "out"
    assert main([str(run), "--output", str(out), "--parity-samples", "400", "--parity-data", str(extra)]) == 0
    report = json.loads((out / "export_report.json").read_text())
    ev = report["parity"]["evidence_images"]
    assert ev["parity-data"] == 50 and ev["parity-data-unlabelled"] == 30
    assert ev["test"] == 269
    assert report["parity"]["split"] == "test+parity-data+validation"
    row = report["files"][0]
    train = ev.get("train", 0)
    assert row["parity_samples"] == 400 - train - 30  # labelled held-out only
    assert row["agreement_samples"] == 400 - train  # every held-out image, labelled or not
    assert row["unreadable_parity_images"] == 2 and row["gate"]["unreadable_parity_images"] == 2
    if train:
        assert row["diagnosis_train"]["images"] == train  # shown, never weighed
    bad = tmp_path / "bad"
    (bad / "cat").mkdir(parents=True)
    rc = main([str(run), "--output", str(tmp_path / "o2"), "--parity-data", str(bad)])
    assert rc == 2 and "Received --parity-data" in capsys.readouterr().err and not (tmp_path / "o2" / "model_float32.tflite").exists()


@pytest.mark.slow
def test_photo_run_good_int8_accepted_and_grey_calibration_rejected(tmp_path: Path) -> None:
    """train-model on the real photos (small, quick), then a faithful and a grey-calibrated int8 export."""
    import subprocess
    import sys

    from PIL import Image

    from train_helpers import PHOTOS_REASON, SHARED_PHOTOS

    if not SHARED_PHOTOS.is_dir():
        pytest.skip(PHOTOS_REASON)
    run = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-m", "edgedeploy.train.cli", "--model", "small_cnn", "--data", str(SHARED_PHOTOS),
                           "--image-size", "64", "--epochs", "15", "--no-augment", "--output", str(run)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    good = tmp_path / "good"
    assert main([str(run), "--format", "all", "--quantize", "int8", "--output", str(good)]) == 0
    rows = json.loads((good / "export_report.json").read_text())["files"]
    assert all(r["status"] == "accepted" and r["verdict"] != "rejected" for r in rows)
    grey = tmp_path / "grey"
    grey.mkdir()
    for i in range(40):
        Image.new("RGB", (64, 64), (128, 128, 128)).save(grey / f"g{i}.png")
    bad = tmp_path / "bad"
    assert main([str(run), "--format", "all", "--quantize", "int8", "--calibration-data", str(grey),
                 "--parity-samples", "80", "--output", str(bad)]) == 3
    rows = json.loads((bad / "export_report.json").read_text())["files"]
    assert all(r["status"] == "rejected" for r in rows), [(r["file"], r["top1_disagreement"]) for r in rows]
