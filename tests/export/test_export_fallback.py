"""The Keras 3 fallback paths of both converters run, and still pass the gate.

- ONNX: tf2onnx's ``from_keras`` fails on a Keras 3 Sequential model
  (``KeyError: 'keras_tensor_N'``), so the ``tf.function`` + ``from_function``
  path runs by itself; on a functional model it is forced.
- TFLite: ``from_keras_model`` is forced to fail; ``model.export`` +
  ``from_saved_model`` takes over.
- When both paths fail: one line, exit 1, no file.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgedeploy.export.cli import main

from export_helpers import copy_run, tiny_run

pytestmark = pytest.mark.tf


def _rows(out: Path) -> dict:
    return {r["file"]: r for r in json.loads((out / "export_report.json").read_text())["files"]}


def test_sequential_model_takes_the_tf2onnx_fallback(tmp_path: Path) -> None:
    run = copy_run(tiny_run("sequential", epochs=6), tmp_path / "run")
    out = tmp_path / "out"
    assert main([str(run), "--format", "onnx", "--quantize", "none,int8", "--output", str(out),
                 "--parity-samples", "80", "--max-accuracy-drop", "5"]) == 0
    rows = _rows(out)
    for name in ("model_float32.onnx", "model_int8.onnx"):
        conv = rows[name]["converter"]
        assert conv.startswith("tf2onnx.from_function (from_keras failed: KeyError"), conv
    assert rows["model_float32.onnx"]["max_abs_prob_diff"] <= 1e-5


def test_forced_tf2onnx_fallback_on_functional_model(tmp_path: Path, monkeypatch) -> None:
    import edgedeploy.export.formats.onnx as onnx_fmt

    def broken(*args, **kwargs):
        raise KeyError("keras_tensor_7")

    monkeypatch.setattr(onnx_fmt, "_onnx_from_keras", broken)
    run = copy_run(tiny_run(), tmp_path / "run")
    out = tmp_path / "out"
    assert main([str(run), "--format", "onnx", "--output", str(out), "--parity-samples", "60"]) == 0
    row = _rows(out)["model_float32.onnx"]
    assert row["converter"] == "tf2onnx.from_function (from_keras failed: KeyError: 'keras_tensor_7')"
    assert row["max_abs_prob_diff"] <= 1e-5


def test_forced_tflite_saved_model_fallback(tmp_path: Path, monkeypatch) -> None:
    import edgedeploy.export.formats.tflite as tflite_fmt

    def broken(model):
        raise RuntimeError("from_keras_model is broken on this Keras")

    monkeypatch.setattr(tflite_fmt, "from_keras_model", broken)
    run = copy_run(tiny_run(), tmp_path / "run")
    out = tmp_path / "out"
    # MODEL.keras inside a run folder works as well as the folder itself
    assert main([str(run / "model.keras"), "--quantize", "none,int8", "--output", str(out), "--parity-samples", "60",
                 "--max-accuracy-drop", "5"]) == 0
    rows = _rows(out)
    for name in ("model_float32.tflite", "model_int8.tflite"):
        assert rows[name]["converter"].startswith("saved_model (from_keras_model failed: RuntimeError"), rows[name]["converter"]
    assert rows["model_float32.tflite"]["max_abs_prob_diff"] <= 1e-5
    assert rows["model_int8.tflite"]["input"]["dtype"] == "uint8"
    assert not list(out.glob("saved_model*"))  # the SavedModel went to scratch space


def test_both_paths_failing_is_one_line_exit_1(tmp_path: Path, monkeypatch, capsys) -> None:
    import edgedeploy.export.formats.onnx as onnx_fmt

    def broken(*args, **kwargs):
        raise ValueError("unsupported op FancyOp")

    monkeypatch.setattr(onnx_fmt, "_onnx_from_keras", broken)
    monkeypatch.setattr(onnx_fmt, "_onnx_from_function", broken)
    run = copy_run(tiny_run(), tmp_path / "run")
    out = tmp_path / "out"
    rc = main([str(run), "--format", "all", "--quantize", "none", "--output", str(out), "--parity-samples", "40"])
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert rc == 1
    assert last.startswith("export-model: error: export failed for model_float32.onnx: conversion failed: ONNX conversion failed")
    assert "FancyOp" in last
    # The other format still went through, and nothing partial was written for ONNX.
    assert (out / "model_float32.tflite").is_file()
    assert not (out / "model_float32.onnx").exists() and not (out / "model_float32.onnx.rejected").exists()
    assert _rows(out)["model_float32.onnx"]["status"] == "failed"


def test_opset_flag_reaches_the_onnx_file(tmp_path: Path) -> None:
    import onnx

    run = copy_run(tiny_run(), tmp_path / "run")
    out = tmp_path / "out"
    assert main([str(run), "--format", "onnx", "--opset", "13", "--output", str(out), "--parity-samples", "40"]) == 0
    model = onnx.load(str(out / "model_float32.onnx"))
    assert {o.domain: o.version for o in model.opset_import}[""] == 13
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param  # dynamic batch
