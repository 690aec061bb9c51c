"""edge-infer --info (no image; readable block; --json raw; the accelerator really used) and --labels-from-folders."""
from __future__ import annotations

import json

import pytest

from edgedeploy.core.metrics import classification_metrics
from edgedeploy.runtime.cli import main


# -- --info -------------------------------------------------------------------------
def test_info_alone_prints_a_readable_block_on_stdout(capsys, edge_models):
    code = main([str(edge_models / "model_int8.tflite"), "--info", "--threads", "1"])
    out, err = capsys.readouterr()
    assert code == 0, err
    block = dict(line.split(":", 1) for line in out.strip().splitlines())
    block = {k.strip(): v.strip() for k, v in block.items()}
    assert set(block) >= {"model", "format", "backend", "threads", "accelerator", "input", "output", "labels", "manifest"}
    assert block["format"] == "tflite" and block["backend"] == "litert" and block["threads"] == "1"
    assert block["accelerator"] == "XNNPACK"
    assert block["input"].startswith("?x32x32x3 uint8, quantized scale=")
    assert block["labels"].startswith("10: 0, 1, 2")
    assert "quantize int8" in block["manifest"] and "dataset digits" in block["manifest"]


def test_info_json_is_the_raw_form(capsys, edge_models):
    assert main([str(edge_models / "model_float32.tflite"), "--info", "--json", "--no-xnnpack"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["backend"] == "litert" and info["xnnpack"] is False
    assert info["delegate_applied"] is False and info["accelerator"] == "none (built-in CPU kernels)"
    assert info["input"]["shape"][1:] == [32, 32, 3] and info["output"]["dtype"] == "float32"
    assert info["manifest"]["found"] is True and info["labels"] == [str(i) for i in range(10)]


def test_onnxruntime_reports_its_providers_and_never_xnnpack(capsys, edge_models):
    assert main([str(edge_models / "model_float32.onnx"), "--info", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["backend"] == "onnxruntime"
    assert info["providers"] == ["CPUExecutionProvider"] and info["accelerator"] == "CPUExecutionProvider"
    assert info["xnnpack"] is False  # it was True before: a TFLite flag echoed for ONNX Runtime


def test_info_without_a_manifest_says_so(capsys, edge_models):
    assert main([str(edge_models / "model_nomanifest.tflite"), "--info"]) == 0
    out = capsys.readouterr().out
    assert "manifest:" in out and "none in the file" in out


def test_no_input_and_no_info_is_still_a_usage_error(capsys, edge_models):
    assert main([str(edge_models / "model_int8.tflite")]) == 2
    assert "--info" in capsys.readouterr().err


# -- --labels-from-folders ---------------------------------------------------------------
@pytest.fixture
def labelled(tmp_path, edge_models, truth):
    """edge_models' images sorted into DIR/<label>/ (one of them a level deeper)."""
    root = tmp_path / "labelled"
    for i, (name, lab) in enumerate(sorted(truth.items())):
        d = root / str(lab) / ("deeper" if i == 0 else "")
        d.mkdir(parents=True, exist_ok=True)
        (d / name).write_bytes((edge_models / "images" / name).read_bytes())
    return root


def _expected(edge_models, truth, model: str) -> dict:
    """The metrics from edge-infer's own per-image answers (an independent path)."""
    from edgedeploy.runtime import ImageClassifier

    clf = ImageClassifier(edge_models / model)
    labels = clf.manifest.labels
    names = sorted(truth)
    preds = [labels.index(clf.predict(edge_models / "images" / n).label) for n in names]
    return classification_metrics([truth[n] for n in names], preds, labels)


@pytest.mark.parametrize("model", ["model_int8.tflite", "model_float32.onnx"])
def test_labels_from_folders_json(capsys, edge_models, truth, labelled, model):
    code = main([str(edge_models / model), str(labelled), "--labels-from-folders", "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    got = json.loads(out)
    want = _expected(edge_models, truth, model)
    assert got["num_samples"] == len(truth) and got["n_failed"] == 0
    assert got["accuracy"] == pytest.approx(want["accuracy"]) and got["confusion_matrix"] == want["confusion_matrix"]
    assert got["per_class"] == want["per_class"] and got["macro_avg"] == want["macro_avg"]
    assert sum(map(sum, got["confusion_matrix"])) == len(truth)
    assert 0 <= got["accuracy"] <= got["top5_accuracy"] <= 1  # 10 classes: top-5 means something


def test_labels_from_folders_text_like_yolo_val(capsys, edge_models, truth, labelled):
    assert main([str(edge_models / "model_float32.tflite"), str(labelled), "--labels-from-folders"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[1].split() == ["class", "images", "precision", "recall", "f1"]
    assert lines[2].split()[:2] == ["all", str(len(truth))]
    assert any(ln.startswith("accuracy top-1: ") for ln in lines)
    assert "confusion matrix (rows: true label, columns: predicted)" in out
    present = sorted({str(v) for v in truth.values()})
    header = lines[lines.index("confusion matrix (rows: true label, columns: predicted)") + 1].split()
    assert header == present  # only the classes that occur


def test_unknown_folder_names_are_one_line_error(capsys, edge_models, labelled):
    (labelled / "cat").mkdir()
    (labelled / "Dog").mkdir()
    assert main([str(edge_models / "model_int8.tflite"), str(labelled), "--labels-from-folders"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "'Dog', 'cat'" in err[0] and "0, 1, 2" in err[0]


def test_labels_from_folders_needs_one_folder(capsys, edge_models, labelled):
    assert main([str(edge_models / "model_int8.tflite"), str(labelled), str(labelled), "--labels-from-folders"]) == 2
    assert "expected one folder" in capsys.readouterr().err
    assert main([str(edge_models / "model_int8.tflite"), str(labelled / "nothing"), "--labels-from-folders"]) == 2


def test_an_unreadable_image_is_reported_and_left_out(capsys, edge_models, truth, labelled):
    (labelled / "3" / "broken.png").write_bytes(b"not a png")
    code = main([str(edge_models / "model_int8.tflite"), str(labelled), "--labels-from-folders", "--json"])
    out, err = capsys.readouterr()
    assert code == 1 and "broken.png" in err
    got = json.loads(out)
    assert got["n_failed"] == 1 and got["num_samples"] == len(truth)


@pytest.mark.parametrize("classes, shown", [(2, False), (5, False), (6, True)])
def test_top5_accuracy_only_when_the_model_has_more_than_5_classes(tmp_path, classes, shown):
    """--labels-from-folders printed top-5 accuracy for a 2-class model (always 100%): text and JSON leave it out."""
    from types import SimpleNamespace

    import numpy as np

    from edgedeploy.runtime.evaluate import evaluate_folder, format_evaluation

    labels = [f"c{i}" for i in range(classes)]
    for lab in labels[:2]:
        (tmp_path / lab).mkdir()
        for k in range(3):
            (tmp_path / lab / f"{k}.png").write_bytes(b"x")

    def preprocess(path):
        return np.array([labels.index(path.parent.name)], dtype=np.float32)

    def predict_tensor(xs, batch_size=8):  # right on c0, top-2 on c1
        out = np.full((len(xs), classes), 0.01, dtype=np.float32)
        out[:, 0], out[:, 1] = 0.9, 0.5
        return out

    clf = SimpleNamespace(manifest=SimpleNamespace(labels=labels), preprocess=preprocess, predict_tensor=predict_tensor,
                          path=tmp_path / "m.tflite")
    ev = evaluate_folder(clf, tmp_path, lambda d: sorted(d.glob("*.png")))
    text, as_json = format_evaluation(ev), json.loads(format_evaluation(ev, as_json=True))
    assert ("top-5" in text) is shown and ("top5_accuracy" in as_json) is shown
    if shown:
        assert as_json["top5_accuracy"] == 1.0 and as_json["accuracy"] == 0.5
