"""export-model answers bad input with one line, exit 2, no traceback.

Most rows are caught before TensorFlow is imported (flags, paths, existing
files), so they run in milliseconds against a fake run folder whose
model.keras is a zip but not a model. The Lambda-layer row needs TensorFlow.
"""
from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from edgedeploy.export.cli import main

from export_helpers import ROOT, manifest_dict


@pytest.fixture
def fake_run(tmp_path: Path) -> Path:
    """A run folder that passes every check made before TensorFlow loads."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "manifest.json").write_text(json.dumps(manifest_dict()))
    (run / "config.json").write_text(json.dumps({"dataset": "digits", "image_size": 32}))
    (run / "splits.json").write_text(json.dumps({"dataset": "digits"}))
    with zipfile.ZipFile(run / "model.keras", "w") as z:
        z.writestr("config.json", "{}")
    return run


def _one_line_error(capsys, rc: int, expected_rc: int = 2) -> str:
    err = capsys.readouterr().err.strip()
    assert rc == expected_rc, err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("export-model: error: "), err
    assert "Traceback" not in err
    return lines[0]


CASES = {
    "unknown format": (["--format", "coreml"], "unknown format 'coreml'"),
    "unknown quantize": (["--quantize", "int4"], "unknown quantize mode 'int4'"),
    "unsupported combination": (["--format", "onnx", "--quantize", "int16x8"], "valid modes for onnx: none, float16, dynamic, int8"),
    "calibration-samples 0": (["--quantize", "int8", "--calibration-samples", "0"], "--calibration-samples 0"),
    "calibration-samples < classes": (["--quantize", "int8", "--calibration-samples", "5"], "fewer than the model's 10 classes"),
    "calibration-samples not a number": (["--calibration-samples", "many"], "invalid int value: 'many'"),
    "io without tflite int8": (["--format", "onnx", "--quantize", "int8", "--io", "int8"], "--io applies to TFLite int8 only"),
    "io unknown": (["--quantize", "int8", "--io", "int4"], "invalid choice: 'int4'"),
    "opset too old": (["--format", "onnx", "--opset", "11"], "--opset 11"),
    "negative max drop": (["--max-accuracy-drop", "-1"], "--max-accuracy-drop -1"),
    "keep-float on float32": (["--keep-float", "conv1"], "--keep-float applies to"),
    "missing calibration folder": (["--quantize", "int8", "--calibration-data", "/nonexistent/calib"], "--calibration-data folder not found"),
    "unknown flag": (["--frobnicate"], "unrecognized arguments: --frobnicate"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_bad_flags(name: str, fake_run: Path, capsys) -> None:
    args, expected = CASES[name]
    line = _one_line_error(capsys, main([str(fake_run), *args]))
    assert expected in line


def test_missing_run_dir(tmp_path: Path, capsys) -> None:
    line = _one_line_error(capsys, main([str(tmp_path / "no_such_run")]))
    assert "run folder or model not found" in line and "no_such_run" in line


def test_folder_without_model(tmp_path: Path, capsys) -> None:
    line = _one_line_error(capsys, main([str(tmp_path)]))
    assert "is not a run folder" in line


def test_keras_file_not_a_zip(fake_run: Path, capsys) -> None:
    (fake_run / "model.keras").write_bytes(b"this is not a zip archive\n" * 10)
    line = _one_line_error(capsys, main([str(fake_run / "model.keras")]))
    assert "not a valid .keras file" in line and "zip" in line


def test_empty_keras_file(fake_run: Path, capsys) -> None:
    (fake_run / "model.keras").write_bytes(b"")
    line = _one_line_error(capsys, main([str(fake_run)]))
    assert "not a valid .keras file" in line


def test_not_a_keras_file(fake_run: Path, capsys) -> None:
    line = _one_line_error(capsys, main([str(fake_run / "manifest.json")]))
    assert "expected a run folder or a .keras model file" in line


def test_missing_manifest(fake_run: Path, capsys) -> None:
    (fake_run / "manifest.json").unlink()
    line = _one_line_error(capsys, main([str(fake_run)]))
    assert "no manifest.json" in line


def test_invalid_manifest(fake_run: Path, capsys) -> None:
    (fake_run / "manifest.json").write_text("{not json")
    line = _one_line_error(capsys, main([str(fake_run)]))
    assert "not valid JSON" in line


@pytest.mark.parametrize("existing", ["model_float32.tflite", "model_float32.tflite.json", "model_float32.tflite.rejected"])
def test_existing_output_needs_force(fake_run: Path, tmp_path: Path, capsys, existing: str) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / existing).write_bytes(b"previous")
    line = _one_line_error(capsys, main([str(fake_run), "--output", str(out)]))
    assert "refusing to overwrite" in line and "--force" in line
    assert (out / existing).read_bytes() == b"previous"


def test_output_is_a_file(fake_run: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    out.write_text("x")
    line = _one_line_error(capsys, main([str(fake_run), "--output", str(out)]))
    assert "--output must be a folder" in line


def test_flag_errors_never_import_tensorflow(fake_run: Path) -> None:
    """Usage errors cost milliseconds: they are found before TensorFlow is imported."""
    code = (
        "import sys; from edgedeploy.export.cli import main\n"
        f"rc = main([{str(fake_run)!r}, '--format', 'onnx', '--quantize', 'int16x8'])\n"
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules, 'tensorflow was imported'\n"
        "sys.exit(rc)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120,
                       env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert r.returncode == 2, r.stderr
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr


def test_help_lists_formats_and_modes_without_tensorflow() -> None:
    code = (
        "import sys; from edgedeploy.export.cli import main\n"
        "rc = main(['--help'])\n"
        "assert 'tensorflow' not in sys.modules and 'tf2onnx' not in sys.modules and 'onnx' not in sys.modules\n"
        "sys.exit(rc)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120,
                       env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert r.returncode == 0, r.stderr
    out = r.stdout
    for word in ("tflite", "onnx", "none", "float16", "dynamic", "int8", "int16x8", "EXPERIMENTAL", "--keep-float", "--io"):
        assert word in out, word
    # the modes each format declares are listed under it
    onnx_block = out[out.index("  onnx (.onnx):"):]
    assert "int16x8" not in onnx_block.split("files:")[0]


@pytest.mark.tf
def test_lambda_model_refused_without_unsafe_load(tmp_path: Path, capsys) -> None:
    from export_helpers import train_tiny

    run = train_tiny(tmp_path / "lambda_run", epochs=0, lambda_layer=True)
    line = _one_line_error(capsys, main([str(run), "--output", str(tmp_path / "out")]))
    assert "Lambda layer" in line and "--unsafe-load" in line and "safe mode" in line
    assert not (tmp_path / "out" / "model_float32.tflite").exists()


@pytest.mark.tf
def test_lambda_model_loads_with_unsafe_load(tmp_path: Path, capsys) -> None:
    from export_helpers import train_tiny

    run = train_tiny(tmp_path / "lambda_run", epochs=2, lambda_layer=True)
    out = tmp_path / "out"
    rc = main([str(run), "--unsafe-load", "--output", str(out), "--parity-samples", "40"])
    assert rc == 0, capsys.readouterr().err
    assert (out / "model_float32.tflite").is_file()


def test_manifest_missing_fields(fake_run: Path, capsys) -> None:
    (fake_run / "manifest.json").write_text(json.dumps({"labels": ["a", "b"]}))
    line = _one_line_error(capsys, main([str(fake_run)]))
    assert "missing required field" in line and "input_height" in line


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    from edgedeploy.core.errors import EdgeDeployError

    with pytest.raises(EdgeDeployError, match="run folder or model not found"):
        main([str(tmp_path / "nope"), "--debug"])


@pytest.mark.tf
def test_model_with_other_class_count_than_manifest(tmp_path: Path, capsys) -> None:
    from export_helpers import copy_run, tiny_run

    run = copy_run(tiny_run(), tmp_path / "run")
    m = json.loads((run / "manifest.json").read_text())
    m["labels"] = ["cat", "dog", "bird"]
    (run / "manifest.json").write_text(json.dumps(m))
    line = _one_line_error(capsys, main([str(run), "--output", str(tmp_path / "out")]))
    assert "has 10 outputs but its manifest lists 3 labels" in line


@pytest.mark.tf
def test_keras_zip_that_is_not_a_model(fake_run: Path, capsys) -> None:
    line = _one_line_error(capsys, main([str(fake_run), "--output", str(fake_run / "out")]))
    assert line.startswith("export-model: error: could not load ") and "model.keras" in line
