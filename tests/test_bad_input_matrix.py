"""Bad paths, across every command: one line, a non-zero exit, no traceback.

The per-package suites hold the rest of the matrix (tests/test_*_bad_inputs.py,
test_*_errors.py, test_train_config.py, test_train_data.py). These rows are the
ones that cut across commands: a file where a folder is needed and the
reverse, and an output folder that cannot be created. (Tests run as root here,
so "unwritable" is made real by asking for a folder beneath a regular file.)
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _cli(module: str, *args: str) -> subprocess.CompletedProcess:
    code = f"import sys; from {module} import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.run([sys.executable, "-c", code, *map(str, args)], cwd=ROOT, capture_output=True, text=True, timeout=300)


def _script(name: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "benchmarks" / f"{name}.py"), *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)


def _assert_one_line_error(proc: subprocess.CompletedProcess, *fragments: str) -> None:
    """Non-zero exit, no traceback, ONE line, and that line says what is wrong: the
    program, the complaint and the bad value (every case passes fragments)."""
    assert fragments, "say what the line must contain"
    err = proc.stderr.strip()
    assert proc.returncode != 0, proc.stdout
    assert "Traceback" not in err, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    for f in fragments:
        assert f in lines[0], lines[0]


@pytest.fixture
def a_file(tmp_path) -> Path:
    p = tmp_path / "plain.txt"
    p.write_text("not a folder")
    return p


def test_edge_infer_model_path_is_a_directory(tmp_path):
    proc = _cli("edgedeploy.runtime.cli", tmp_path, tmp_path)
    _assert_one_line_error(proc, "edge-infer: error:", "got a directory", str(tmp_path))
    assert proc.returncode == 2


def test_edge_infer_missing_model():
    proc = _cli("edgedeploy.runtime.cli", "no/such/model.tflite", "x.jpg")
    _assert_one_line_error(proc, "edge-infer: error:", "not found", "no/such/model.tflite")
    assert proc.returncode == 2


@pytest.mark.tf
def test_train_model_data_is_a_file_not_a_folder(a_file, tmp_path):
    proc = _cli("train.cli", "--data", a_file, "--output", tmp_path / "run")
    _assert_one_line_error(proc, "train-model: error:", "--data expects a folder", str(a_file))
    assert proc.returncode == 2


@pytest.mark.tf
def test_train_model_output_folder_cannot_be_created(a_file):
    proc = _cli("train.cli", "--epochs", "1", "--output", a_file / "run")
    _assert_one_line_error(proc, "train-model: error:", "cannot create run folder", str(a_file / "run"), "Not a directory")
    assert proc.returncode == 2


@pytest.mark.tf
def test_export_model_source_is_a_plain_file(a_file):
    proc = _cli("export.cli", a_file)
    _assert_one_line_error(proc, "export-model: error:", "expected a run folder", str(a_file))
    assert proc.returncode == 2


def test_compare_output_folder_cannot_be_created(a_file):
    proc = _script("compare", ROOT / "no-such-models", "--out", a_file / "report")
    _assert_one_line_error(proc, "compare.py: error:", "cannot create output folder", str(a_file / "report"))
    assert proc.returncode == 2


def test_latency_model_is_a_directory_without_models(tmp_path):
    proc = _script("latency", tmp_path, "--quick")
    _assert_one_line_error(proc, "latency.py: error:", "no .tflite or .onnx models", str(tmp_path))
    assert proc.returncode == 2
