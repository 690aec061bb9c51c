"""The bad-input matrix for edge-infer: each row is one clear line on stderr, never a traceback or crash.

Rows: truncated .tflite, random bytes as .onnx and
.tflite, zero-byte image, text file named .jpg, huge image (pixel cap and a
decompression bomb header), a model with no manifest (runs, with a warning),
input size differing from the manifest, invalid-JSON manifest, manifest
missing fields, a class count differing from the manifest, --threads 0,
missing model path, directory as model path, unknown backend, bad flags.
"""
from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest

from edgedeploy.runtime.cli import main


def _run(capsys, argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def _one_line_error(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, f"expected one line on stderr, got: {err!r}"
    assert "Traceback" not in err
    assert lines[0].startswith("edge-infer: error: ")
    return lines[0]


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height, with a tiny (invalid) body: a bomb's first bytes."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


@pytest.fixture()
def image(edge_models, truth):
    return edge_models / "images" / sorted(truth)[0]


def _model_with_sidecar(tmp_path: Path, edge_models: Path, sidecar: str | None, name="m.tflite") -> Path:
    model = tmp_path / name
    model.write_bytes((edge_models / "model_nomanifest.tflite").read_bytes())
    if sidecar is not None:
        model.with_suffix(".json").write_text(sidecar)
    return model


# -- model files ------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["truncated_tflite", "random_tflite", "random_onnx", "truncated_onnx", "empty_tflite",
                                  "onnx_named_tflite", "tflite_named_onnx", "unknown_suffix"])
def test_broken_model_files(capsys, tmp_path, edge_models, image, kind):
    tflite = (edge_models / "model_float32.tflite").read_bytes()
    onnx = (edge_models / "model_float32.onnx").read_bytes()
    rnd = np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes()
    name, data, fragment = {
        "truncated_tflite": ("m.tflite", tflite[: len(tflite) // 3], "not a valid TFLite model"),
        "random_tflite": ("m.tflite", rnd, "not a valid TFLite model"),
        "random_onnx": ("m.onnx", rnd, "not a valid ONNX model"),
        "truncated_onnx": ("m.onnx", onnx[: len(onnx) // 2], "not a valid ONNX model"),
        "empty_tflite": ("m.tflite", b"", "empty (0 bytes)"),
        "onnx_named_tflite": ("m.tflite", onnx, "not a valid TFLite model"),
        "tflite_named_onnx": ("m.onnx", tflite, "not a valid ONNX model"),
        "unknown_suffix": ("m.pb", tflite, "unsupported model file type '.pb'"),
    }[kind]
    (tmp_path / name).write_bytes(data)
    code, out, err = _run(capsys, [tmp_path / name, image])
    line = _one_line_error(err)
    assert code == 2 and out == ""
    assert fragment in line and name in line


def test_missing_model_path(capsys, image):
    code, _, err = _run(capsys, ["/no/such/model.tflite", image])
    assert code == 2 and "model file not found: /no/such/model.tflite" in _one_line_error(err)


def test_directory_as_model_path(capsys, tmp_path, image):
    code, _, err = _run(capsys, [tmp_path, image])
    assert code == 2 and f"got a directory: {tmp_path}" in _one_line_error(err)


# -- manifests --------------------------------------------------------------------
def test_model_without_manifest_runs_with_index_labels_and_a_warning(capsys, tmp_path, edge_models, image, truth):
    model = _model_with_sidecar(tmp_path, edge_models, None)
    code, out, err = _run(capsys, [model, image, "--json"])
    assert code == 0
    warn = [ln for ln in err.splitlines() if "warning" in ln]
    assert len(warn) == 1 and "carries no manifest" in warn[0] and "class indices" in warn[0]
    assert json.loads(out)["label"] == str(truth[image.name])


@pytest.mark.parametrize("sidecar, fragment", [
    ("{not json", "is not valid JSON"),
    ('{"labels": ["a", "b"]}', "missing required field(s): input_height, input_width"),
    ('{"labels": "abc", "input_height": 32, "input_width": 32}', "labels must be a non-empty list"),
])
def test_bad_manifests(capsys, tmp_path, edge_models, image, sidecar, fragment):
    model = _model_with_sidecar(tmp_path, edge_models, sidecar)
    code, _, err = _run(capsys, [model, image])
    assert code == 2 and fragment in _one_line_error(err)


def test_manifest_input_size_differs_from_the_model(capsys, tmp_path, edge_models, image):
    side = json.loads((edge_models / "model_float32.tflite.json").read_text())
    side.update(input_height=64, input_width=48)
    model = _model_with_sidecar(tmp_path, edge_models, json.dumps(side))
    code, _, err = _run(capsys, [model, image])
    assert code == 2 and "model input is 32x32x3 but its manifest says 64x48x3" in _one_line_error(err)


def test_manifest_class_count_differs_from_the_model(capsys, tmp_path, edge_models, image):
    side = json.loads((edge_models / "model_float32.tflite.json").read_text())
    side["labels"] = ["cat", "dog"]
    model = _model_with_sidecar(tmp_path, edge_models, json.dumps(side))
    code, _, err = _run(capsys, [model, image])
    assert code == 2 and "model has 10 outputs but its manifest lists 2 labels" in _one_line_error(err)


# -- images: reported per file, the rest still run, exit 1 -------------------------
@pytest.mark.parametrize("kind, fragment", [
    ("zero_byte", "empty (0 bytes)"),
    ("text_as_jpg", "not a recognised image file"),
    ("truncated_png", "corrupt or truncated image"),
    ("bomb_header", "more than the limit of 50000000"),  # Pillow refuses it at open(): still our message
    ("directory_named_jpg", "folder holds no images"),
])
def test_bad_images_are_reported_and_the_rest_run(capsys, tmp_path, edge_models, image, kind, fragment):
    bad = tmp_path / {"text_as_jpg": "notes.jpg", "bomb_header": "bomb.png"}.get(kind, f"{kind}.png")
    if kind == "zero_byte":
        bad.write_bytes(b"")
    elif kind == "text_as_jpg":
        bad.write_text("this is not an image\n")
    elif kind == "truncated_png":
        bad.write_bytes(image.read_bytes()[:60] if image.suffix == ".png" else png_header_only(40, 40)[:40])
    elif kind == "bomb_header":
        bad.write_bytes(png_header_only(100_000, 100_000))
    else:
        bad = tmp_path / "frames.jpg"
        bad.mkdir()
    code, out, err = _run(capsys, [edge_models / "model_float32.tflite", image, bad, "--json"])
    assert code == 1
    errors = [ln for ln in err.splitlines() if ln.startswith("edge-infer: error:")]
    assert len(errors) == 1 and fragment in errors[0] and str(bad) in errors[0]
    assert "Traceback" not in err and "1 classified, 1 failed" in err
    assert json.loads(out)["path"] == str(image)  # the good image still ran


def test_max_pixels_flag_caps_images(capsys, edge_models, image):
    code, _, err = _run(capsys, [edge_models / "model_float32.tflite", image, "--max-pixels", "100"])
    assert code == 1 and "more than the limit of 100" in err


# -- flags ------------------------------------------------------------------------
@pytest.mark.parametrize("flags, fragment", [
    (["--threads", "0"], "argument --threads: Received 0, expected an integer >= 1"),
    (["--threads", "two"], "argument --threads: Received 'two'"),
    (["--top-k", "0"], "argument --top-k: Received 0"),
    (["--batch-size", "-3"], "argument --batch-size: Received -3"),
    (["--backend", "tensorflow"], "Received --backend 'tensorflow', expected one of auto, litert, tflite-runtime, onnxruntime"),
    (["--backend", "onnxruntime"], "backend 'onnxruntime' reads .onnx files"),
    (["--bogus"], "unrecognized arguments: --bogus"),
])
def test_bad_flags(capsys, edge_models, image, flags, fragment):
    try:  # argparse errors exit through SystemExit(2), like any console script
        code = main([str(edge_models / "model_float32.tflite"), str(image), *flags])
    except SystemExit as exc:
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2 and fragment in _one_line_error(err)


def test_no_inputs_is_a_usage_error(capsys, edge_models):
    code, _, err = _run(capsys, [edge_models / "model_float32.tflite"])
    assert code == 2 and "no INPUT given" in _one_line_error(err)


def test_debug_shows_the_traceback(edge_models, image):
    from edgedeploy.core.errors import ModelError

    with pytest.raises(ModelError):
        main(["/no/such/model.tflite", str(image), "--debug"])
