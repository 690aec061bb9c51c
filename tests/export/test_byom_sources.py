"""Bring your own model (issue 21), the fast half: source readers, the manifest from flags, NCHW, bad input.

The files are real exports of the shared chain (tests/model_fixtures.py) turned into what another
tool hands over: the float ONNX behind a Transpose (NCHW, as torch.onnx.export lays it out) with its
manifest stripped, and the float TFLite with its edgedeploy manifest. The photo-sized proof (a CNN
trained on the shared photos as NCHW ONNX, .h5, SavedModel and a Model-Maker-style .tflite) is in
test_byom_photos.py.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edgedeploy.core.errors import EdgeDeployError
from edgedeploy.export.manifest_flags import parse_input_size, parse_labels, parse_normalize
from edgedeploy.runtime.manifest import Manifest

from byom_fixtures import digit_folder, nchw_onnx

DIGITS = ",".join(str(i) for i in range(10))


def export_model(*argv) -> int:
    from edgedeploy.export.cli import main

    return main([str(a) for a in argv])


def edge_infer(*argv) -> int:
    from edgedeploy.runtime.cli import main

    return main([str(a) for a in argv])


def one_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in err[0], err
    return err[0]


@pytest.fixture(scope="module")
def nchw(edge_models, tmp_path_factory) -> Path:
    return nchw_onnx(edge_models / "model_float32.onnx", tmp_path_factory.mktemp("nchw") / "digits_nchw.onnx")


@pytest.fixture(scope="module")
def digits(tmp_path_factory) -> Path:
    return digit_folder(tmp_path_factory.mktemp("digits") / "photos")


# -- the manifest from flags ----------------------------------------------------------
def test_normalize_presets_and_custom_values_are_on_0_1_pixels():
    n = parse_normalize("imagenet")
    assert not n.in_graph and n.mean == pytest.approx([123.675, 116.28, 103.53]) and n.std == pytest.approx([58.395, 57.12, 57.375])
    assert parse_normalize("0-255").in_graph
    assert (parse_normalize("0-1").mean, parse_normalize("0-1").std) == ([0.0] * 3, [255.0] * 3)
    assert (parse_normalize("-1-1").mean, parse_normalize("-1-1").std) == ([127.5] * 3, [127.5] * 3)
    custom = parse_normalize("mean=0.5,0.5,0.5:std=0.25")
    assert (custom.mean, custom.std) == ([127.5] * 3, [63.75] * 3)
    for bad in ("imagenett", "mean=1,2:std=1", "mean=0.5:std=0", "mean=a:std=1"):
        with pytest.raises(EdgeDeployError, match=f"Received --normalize '{bad}'"):
            parse_normalize(bad)


def test_input_size_and_labels(tmp_path):
    assert parse_input_size("224") == (224, 224) and parse_input_size("160x192") == (160, 192)
    with pytest.raises(EdgeDeployError, match="Received --input-size '0'"):
        parse_input_size("0")
    (tmp_path / "labels.txt").write_text("cat\n\ndog\n")
    assert parse_labels(str(tmp_path / "labels.txt")) == ["cat", "dog"] and parse_labels("cat, dog") == ["cat", "dog"]
    with pytest.raises(EdgeDeployError, match="a label given twice"):
        parse_labels("cat,cat")


def test_layout_defaults_to_nhwc_and_old_manifests_load(edge_models):
    old = json.loads((edge_models / "model_float32.onnx.json").read_text())
    old.pop("layout", None)  # a manifest written before issue 21
    m = Manifest.from_dict(old)
    assert m.layout == "nhwc" and m.input_shape == (m.input_height, m.input_width, m.input_channels)
    assert m.replace(layout="nchw").input_shape == (m.input_channels, m.input_height, m.input_width)
    with pytest.raises(EdgeDeployError, match="layout must be one of"):
        m.replace(layout="chw")


def test_the_calibration_data_split_is_seeded_balanced_and_never_overlaps(digits):
    from edgedeploy.export.sources._foreign import split_folder

    a, b = split_folder(digits, DIGITS.split(","), 40, seed=0), split_folder(digits, DIGITS.split(","), 40, seed=1)
    cal, held = {p for p, _ in a.calibration}, {p for p, _ in a.heldout}
    assert len(cal) == 40 and not cal & held and len(cal | held) == 120 and a.describe()["overlap"] == 0
    assert sorted(c for _, c in a.calibration) == sorted(list(range(10)) * 4)  # 4 per class
    assert a.calibration == split_folder(digits, DIGITS.split(","), 40, seed=0).calibration != b.calibration
    assert all(int(p.parent.name) == c for p, c in a.calibration + a.heldout)  # labelled by their folder


# -- the device side -----------------------------------------------------------------
def test_an_nchw_onnx_without_manifest_is_told_about_its_layout(nchw, capsys):
    assert edge_infer(nchw, "--info") == 2
    line = one_line(capsys)
    assert "looks NCHW" in line and "?x3x32x32" in line and "--layout nchw" in line and "export-model" in line


# -- export-model on an NCHW ONNX ------------------------------------------------------
@pytest.fixture(scope="module")
def nchw_export(nchw, digits, tmp_path_factory):
    out = tmp_path_factory.mktemp("out")
    code = export_model(nchw, "--labels", DIGITS, "--normalize", "0-255", "--calibration-data", digits,
                        "--calibration-samples", "40", "--quantize", "none,int8", "--output", out)
    return code, out


def test_nchw_onnx_exports_with_a_manifest_from_flags_and_a_seeded_split(nchw_export, nchw, digits):
    code, out = nchw_export
    assert code == 0
    report = json.loads((out / "export_report.json").read_text())
    assert [r["file"] for r in report["files"]] == ["model_float32.onnx", "model_int8.onnx"]
    assert all(r["verdict"] in ("accepted", "inconclusive") for r in report["files"])
    assert report["source"]["kind"] == "onnx" and report["source"]["reference_runtime"] == "ONNX Runtime"
    split = report["calibration"]["split"]
    assert split["labelled"] and split["calibration_images"] == 40 and split["heldout_images"] == 80
    assert report["parity"]["evidence_images"] == {"calibration-data": 80}  # the 80 the calibration did not see
    assert report["calibration"]["per_class"] == {str(i): 4 for i in range(10)}  # class-balanced
    f32 = report["files"][0]
    assert f32["top1_agreement"] == 100.0 and f32["max_abs_prob_diff"] < 1e-5  # the source itself, manifest added
    m = Manifest.from_json((out / "model_int8.onnx.json").read_text())
    assert (m.layout, m.labels, m.normalization.in_graph, m.format, m.quantize) == ("nchw", DIGITS.split(","), True, "onnx", "int8")


def test_the_exported_nchw_files_run_on_the_device_like_the_source(nchw_export, nchw, edge_models, truth, capsys):
    from edgedeploy.runtime import ImageClassifier

    _, out = nchw_export
    images = [edge_models / "images" / n for n in sorted(truth)]
    ref = ImageClassifier(edge_models / "model_float32.onnx")  # the NHWC original
    for name in ("model_float32.onnx", "model_int8.onnx"):
        clf = ImageClassifier(out / name)
        assert clf.preprocess(images[0]).shape == (3, 32, 32)
        got = [p.label for p in clf.predict_batch(images)]
        want = [p.label for p in ref.predict_batch(images)]
        assert np.mean(np.equal(got, want)) >= (1.0 if name == "model_float32.onnx" else 0.9)
    assert edge_infer(out / "model_int8.onnx", "--info") == 0
    info = capsys.readouterr().out
    assert "layout NCHW (channels first)" in info and "normalize 0-255" in info


def test_the_nchw_file_in_a_bundle(nchw_export, tmp_path, monkeypatch, digits):
    from edgedeploy.export.bundle import project_wheel

    _, out = nchw_export
    (tmp_path / "wheel").mkdir()
    monkeypatch.delenv("EDGEDEPLOY_BUNDLE_WHEEL", raising=False)
    monkeypatch.setenv("EDGEDEPLOY_BUNDLE_WHEEL", str(project_wheel(tmp_path / "wheel", lambda m: None)))
    assert export_model(out, "--model", out / "model_int8.onnx", "--bundle", tmp_path / "b", "--no-wheels",
                        "--calibration-data", digits, "--target", "x86_64") == 0
    info = json.loads((tmp_path / "b" / "bundle.json").read_text())
    assert info["model"]["file"] == "model_int8.onnx" and info["runtime"] == "onnxruntime" and len(info["samples"]) == 10
    assert {s["true_label"] for s in info["samples"]} <= set(DIGITS.split(","))


# -- a float .tflite through ai-edge-quantizer ---------------------------------------------
def test_a_float_tflite_quantizes_with_ai_edge_quantizer(edge_models, digits, tmp_path):
    pytest.importorskip("ai_edge_quantizer", reason="the export extra's ai-edge-quantizer is not installed")
    src = tmp_path / "digits.tflite"  # it carries its edgedeploy manifest: no flag needed
    src.write_bytes((edge_models / "model_float32.tflite").read_bytes())
    assert export_model(src, "--calibration-data", digits, "--calibration-samples", "40",
                        "--quantize", "weight-only,dynamic,int8", "--output", tmp_path / "out") == 0
    report = json.loads((tmp_path / "out" / "export_report.json").read_text())
    rows = {r["mode"]: r for r in report["files"]}
    assert set(rows) == {"weight-only", "dynamic", "int8"} and report["source"]["reference_runtime"] == "LiteRT"
    assert all(r["converter"].startswith("ai-edge-quantizer 0.10") for r in rows.values())
    assert rows["int8"]["input"]["dtype"] == "int8" and rows["weight-only"]["input"]["dtype"] == "float32"
    assert all(r["top1_agreement"] >= 95.0 and r["status"] == "accepted" for r in rows.values())
    assert (tmp_path / "out" / "model_weight-only.tflite").stat().st_size < 0.5 * src.stat().st_size


# -- bad input: one line naming the value, exit 2 -------------------------------------------
@pytest.mark.parametrize("case", ["no labels", "no normalize", "wrong layout", "labels count", "input size", "format",
                                  "int8 without data", "truncated", "foreign", "not hdf5", "tflite truncated"])
def test_bad_sources_and_flags_are_one_line(case, nchw, digits, tmp_path, capsys):
    bad = tmp_path / "bad"
    src, flags = nchw, ["--labels", DIGITS, "--normalize", "0-255", "--output", tmp_path / "out"]
    expect = {
        "no labels": ("carries no manifest: give --labels FILE|a,b,c (one per output, 10 here)",),
        "no normalize": ("--normalize 0-255|0-1|-1-1|imagenet",),
        "wrong layout": ("Received --layout nhwc", "which is NCHW"),
        "labels count": ("Received 3 labels (--labels), but digits_nchw.onnx has 10 outputs",),
        "input size": ("Received --input-size 64x64, but digits_nchw.onnx takes 32x32",),
        "format": ("--format tflite does not exist for a float32 .onnx file", "ONNX into TFLite"),
        "int8 without data": ("needs calibration images: give --calibration-data DIR",),
        "truncated": ("not a valid ONNX model", "bad.onnx"),
        "foreign": ("not a valid ONNX model", "bad.onnx"),
        "not hdf5": ("not an HDF5 file", "bad.h5"),
        "tflite truncated": ("not a valid TFLite model", "bad.tflite"),
    }[case]
    if case == "no labels":
        flags = ["--normalize", "0-255"]
    elif case == "no normalize":
        flags = ["--labels", DIGITS]
    elif case == "wrong layout":
        flags += ["--layout", "nhwc"]
    elif case == "labels count":
        flags[1] = "a,b,c"
    elif case == "input size":
        flags += ["--input-size", "64x64"]
    elif case == "format":
        flags += ["--format", "tflite"]
    elif case == "int8 without data":
        flags += ["--quantize", "int8"]
    elif case in ("truncated", "foreign"):
        src = bad.with_suffix(".onnx")
        src.write_bytes(nchw.read_bytes()[:300] if case == "truncated" else b"PK\x03\x04 not a model" * 20)
    elif case == "not hdf5":
        src = bad.with_suffix(".h5")
        src.write_bytes(b"not hdf5 at all" * 10)
    else:
        src = bad.with_suffix(".tflite")
        src.write_bytes(Path(str(nchw)).read_bytes()[:8] + b"TFL3" + b"\0" * 40)
    assert export_model(src, *flags) == 2
    line = one_line(capsys)
    assert all(e in line for e in expect), line
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
