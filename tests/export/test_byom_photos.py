"""Bring your own model (issue 21), the proof on the 800 shared photos: four float files made elsewhere.

A small CNN trained by train-model on the photos, handed over as a PyTorch-style NCHW ONNX (ImageNet
mean/std folded in front), a Keras 2 .h5, a SavedModel and a Model-Maker-style .tflite with standard
metadata (tests/byom_fixtures.py, built once and cached). Each is quantized to int8 with
--calibration-data, gated, selected and bundled by one export-model command; then edge-infer on the
int8 file must give the float source's top-1 on at least 99% of the 800 photos. The NCHW int8 file
also runs through --serve and --video.
"""
from __future__ import annotations

import http.client
import json
from pathlib import Path

import numpy as np
import pytest

from edgedeploy.runtime.manifest import Manifest

from byom_fixtures import byom_models

pytestmark = pytest.mark.slow
MIN_AGREEMENT = 0.99

# source file -> (flags that describe it, the format of its int8 file)
SOURCES = {
    "model_nchw.onnx": (["--labels", "cat,dog", "--normalize", "imagenet"], "onnx"),
    "model.tflite": ([], "tflite"),  # labels and normalization from its standard metadata
    "model.h5": (["--labels", "cat,dog", "--normalize", "0-255"], "tflite"),
    "saved_model": (["--labels", "cat,dog", "--normalize", "0-255", "--format", "onnx"], "onnx"),
}


def cli(module: str, *argv) -> int:
    import importlib

    return importlib.import_module(module).main([str(a) for a in argv])


@pytest.fixture(scope="module")
def byom(real_photos) -> Path:
    return byom_models(real_photos)


@pytest.fixture(scope="module")
def photos(real_photos) -> list[Path]:
    found = sorted(real_photos.glob("*/*.jpg"))
    assert len(found) == 800
    return found


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    import os

    from edgedeploy.export.bundle import project_wheel

    os.environ.pop("EDGEDEPLOY_BUNDLE_WHEEL", None)
    return project_wheel(tmp_path_factory.mktemp("wheel"), lambda m: None)


def float_top1(byom: Path, name: str, manifest: Manifest, photos: list[Path]) -> list[str]:
    """The float source's own answers: its runtime (ONNX Runtime, LiteRT, TensorFlow) on the device's preprocessing."""
    floats = manifest.replace(quantize="none", input={"dtype": "float32"}, output={"dtype": "float32"})
    if name.endswith((".onnx", ".tflite")):
        from edgedeploy.runtime import ImageClassifier

        return [p.label for p in ImageClassifier(byom / name, manifest=floats).predict_batch(photos, batch_size=1)]
    import keras

    from edgedeploy.runtime.preprocess import preprocess

    if name.endswith(".h5"):
        model = keras.saving.load_model(byom / name, compile=False)
    else:
        model = keras.layers.TFSMLayer(str(byom / name), call_endpoint="serving_default")
    out = []
    for i in range(0, len(photos), 64):
        y = model(np.stack([preprocess(p, floats) for p in photos[i:i + 64]]))
        y = next(iter(y.values())) if isinstance(y, dict) else y
        out += [floats.labels[k] for k in np.asarray(y).argmax(1)]
    return out


def edge_infer_top1(model: Path, folder: Path, capsys) -> dict[str, str]:
    capsys.readouterr()
    assert cli("edgedeploy.runtime.cli", model, folder, "--json") == 0
    return {json.loads(ln)["path"]: json.loads(ln)["label"] for ln in capsys.readouterr().out.splitlines()}


@pytest.mark.parametrize("name", list(SOURCES))
def test_int8_from_a_float_source_is_gated_selected_bundled_and_agrees_on_the_photos(name, byom, real_photos, photos,
                                                                                      wheel, tmp_path, monkeypatch, capsys):
    if name in ("model.h5", "saved_model"):
        pytest.importorskip("tensorflow")
    monkeypatch.setenv("EDGEDEPLOY_BUNDLE_WHEEL", str(wheel))
    flags, fmt = SOURCES[name]
    out, bundle = tmp_path / "out", tmp_path / "pi-bundle"
    assert cli("edgedeploy.export.cli", byom / name, *flags, "--calibration-data", real_photos, "--quantize", "int8",
               "--select", "smallest", "--bundle", bundle, "--no-wheels", "--target", "x86_64", "--output", out) == 0
    report = json.loads((out / "export_report.json").read_text())
    [row] = report["files"]
    assert row["file"] == f"model_int8.{fmt}" and row["verdict"] in ("accepted", "inconclusive") and row["status"] == "accepted"
    assert row["parity_samples"] == 600 and report["calibration"]["split"]["calibration_images"] == 200
    assert report["selection"]["chosen"] == f"model_int8.{fmt}" and (out / f"selected.{fmt}").is_file()
    assert json.loads((bundle / "bundle.json").read_text())["model"]["file"] == f"selected.{fmt}"
    int8 = out / f"model_int8.{fmt}"
    manifest = Manifest.from_json((out / f"model_int8.{fmt}.json").read_text())
    assert manifest.labels == ["cat", "dog"] and manifest.layout == ("nchw" if name.endswith(".onnx") else "nhwc")
    got = edge_infer_top1(int8, real_photos, capsys)
    want = float_top1(byom, name, manifest, photos)
    agree = np.mean([got[str(p)] == w for p, w in zip(photos, want)])
    print(f"{name}: int8 agrees with the float source on {agree:.2%} of {len(photos)} photos")
    assert agree >= MIN_AGREEMENT


@pytest.fixture(scope="module")
def nchw_int8(byom, real_photos, tmp_path_factory) -> Path:
    """The issue's done-when command, verbatim."""
    out = tmp_path_factory.mktemp("done") / "OUT"
    assert cli("edgedeploy.export.cli", byom / "model_nchw.onnx", "--labels", "cat,dog", "--normalize", "imagenet",
               "--calibration-data", real_photos, "--format", "onnx", "--quantize", "int8", "--output", out) == 0
    report = json.loads((out / "export_report.json").read_text())
    assert report["files"][0]["gate"]["verdict"] in ("accepted", "inconclusive")
    return out / "model_int8.onnx"


def test_the_nchw_int8_file_serves_like_it_classifies(nchw_int8, photos):
    pytest.importorskip("uvicorn", reason="the serve extra is not installed")
    from edgedeploy.runtime import ImageClassifier
    from edgedeploy.runtime.serve import ServeOptions
    from edgedeploy.runtime.serve.server import BackgroundServer

    clf = ImageClassifier(nchw_int8, top_k=2)
    with BackgroundServer(clf, ServeOptions(port=0)) as srv:
        for p in photos[::200]:
            conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=20)
            conn.request("POST", f"/predict?name={p.name}", body=p.read_bytes())
            resp = conn.getresponse()
            body = json.loads(resp.read())
            conn.close()
            want = clf.predict(p)
            assert resp.status == 200 and body["label"] == want.label and body["score"] == pytest.approx(want.score, abs=1e-6)


def test_the_nchw_int8_file_classifies_video_frames(nchw_int8, photos, tmp_path, capsys):
    cv2 = pytest.importorskip("cv2")
    from PIL import Image

    from edgedeploy.runtime import ImageClassifier

    frames = [np.asarray(Image.open(p).convert("RGB").resize((160, 120))) for p in photos[::160]]
    path = tmp_path / "photos.mkv"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"FFV1"), 10, (160, 120))
    if not writer.isOpened():
        pytest.skip("this OpenCV build cannot write FFV1")
    for f in frames:
        writer.write(cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    writer.release()
    assert cli("edgedeploy.runtime.cli", nchw_int8, "--video", path, "--json") == 0
    rows = [json.loads(ln) for ln in capsys.readouterr().out.splitlines()]
    clf = ImageClassifier(nchw_int8)
    assert [r["label"] for r in rows] == [clf.predict(f).label for f in frames] and len(rows) == len(frames)
