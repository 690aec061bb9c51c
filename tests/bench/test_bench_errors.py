"""Bad input to the benchmark scripts: one line naming the problem, exit 2, no traceback; --debug shows one."""
from __future__ import annotations

import pytest

from bench_helpers import assert_one_line_error, bench_export_dir, run_script


def _m(name="model_int8.tflite"):
    return bench_export_dir() / name


CASES = [
    ("latency-missing-model", "latency", lambda t: ["/nonexistent/model.tflite", "--quick"], ["not found", "/nonexistent/model.tflite"]),
    ("latency-unknown-backend", "latency", lambda t: [_m(), "--backend", "tensorrt", "--quick"], ["unknown backend 'tensorrt'", "litert"]),
    ("latency-backend-wrong-type", "latency", lambda t: [_m(), "--backend", "onnxruntime", "--quick"], ["none of the backends", "model_int8.tflite"]),
    ("latency-threads-0", "latency", lambda t: [_m(), "--threads", "0"], ["--threads='0'"]),
    ("latency-threads-text", "latency", lambda t: [_m(), "--threads", "two"], ["--threads='two'"]),
    ("latency-runs-0", "latency", lambda t: [_m(), "--runs", "0"], ["--runs='0'"]),
    ("latency-empty-folder", "latency", lambda t: [t / "empty"], ["no .tflite or .onnx models"]),
    ("latency-not-a-model", "latency", lambda t: [t / "x.txt"], ["unsupported model file", "x.txt"]),
    ("latency-random-bytes", "latency", lambda t: [t / "bad.tflite", "--quick"], ["not a valid TFLite model", "bad.tflite"]),
    ("latency-truncated-onnx", "latency", lambda t: [t / "trunc.onnx", "--quick"], ["ONNX", "trunc.onnx"]),
    ("latency-unknown-flag", "latency", lambda t: [_m(), "--frobnicate"], ["unrecognized arguments: --frobnicate"]),
    ("accuracy-missing-data", "accuracy", lambda t: [_m(), "--data", t / "nope"], ["data folder not found", "nope"]),
    ("accuracy-data-is-file", "accuracy", lambda t: [_m(), "--data", t / "x.txt"], ["got a file"]),
    ("accuracy-empty-data", "accuracy", lambda t: [_m(), "--data", t / "empty"], ["no class subfolders"]),
    ("accuracy-no-images", "accuracy", lambda t: [_m(), "--data", t / "noimg"], ["no readable images"]),
    ("accuracy-foreign-labels", "accuracy", lambda t: [_m(), "--data", t / "cats"], ["'cat'", "not among the labels"]),
    ("accuracy-no-data-given", "accuracy", lambda t: [_m()], ["--dataset digits or --data DIR"]),
    ("accuracy-unknown-dataset", "accuracy", lambda t: [_m(), "--dataset", "imagenet"], ["unknown dataset 'imagenet'"]),
    ("accuracy-missing-model", "accuracy", lambda t: [t / "gone.onnx", "--dataset", "digits"], ["not found", "gone.onnx"]),
    ("accuracy-unknown-backend", "accuracy", lambda t: [_m(), "--dataset", "digits", "--backend", "x"], ["unknown backend 'x'"]),
    ("compare-missing-model", "compare", lambda t: [t / "nothere", "--out", t / "r"], ["not found", "nothere"]),
    ("compare-missing-data", "compare", lambda t: [_m(), "--data", t / "nope", "--out", t / "r"], ["data folder not found"]),
    ("compare-unknown-backend", "compare", lambda t: [_m(), "--backend", "gpu", "--out", t / "r"], ["unknown backend 'gpu'"]),
    ("compare-out-is-file", "compare", lambda t: [_m(), "--out", t / "x.txt"], ["--out must be a folder"]),
    ("compare-bad-peak", "compare", lambda t: [_m(), "--peak-gflops", "-3", "--out", t / "r"], ["--peak-gflops=-3"]),
    ("merge-missing-report", "merge", lambda t: [t / "none.json"], ["report not found"]),
    ("merge-not-json", "merge", lambda t: [t / "x.txt"], ["not valid JSON"]),
    ("merge-foreign-json", "merge", lambda t: [t / "foreign.json"], ["not an edgedeploy benchmark report"]),
    ("soak-missing-model", "soak", lambda t: ["/nonexistent.onnx", "--quick"], ["not found"]),
    ("soak-warmup-too-long", "soak", lambda t: [_m(), "--predictions", "10", "--warmup", "10"], ["--warmup=10"]),
    ("soak-unknown-backend", "soak", lambda t: [_m(), "--backend", "npu", "--quick"], ["unknown backend 'npu'"]),
]


@pytest.fixture
def bad_inputs(tmp_path):
    (tmp_path / "x.txt").write_text("hello")
    (tmp_path / "empty").mkdir()
    (tmp_path / "noimg" / "3").mkdir(parents=True)
    (tmp_path / "noimg" / "3" / "a.png").write_bytes(b"not a png")
    (tmp_path / "bad.tflite").write_bytes(bytes(range(256)) * 8)
    (tmp_path / "trunc.onnx").write_bytes(_m("model_float32.onnx").read_bytes()[:1000])
    (tmp_path / "foreign.json").write_text('{"hello": 1}')
    from PIL import Image

    (tmp_path / "cats" / "cat").mkdir(parents=True)
    Image.new("RGB", (16, 16), "white").save(tmp_path / "cats" / "cat" / "a.png")
    return tmp_path


@pytest.mark.parametrize("case,script,argv,fragments", CASES, ids=[c[0] for c in CASES])
def test_one_line_error(bad_inputs, case, script, argv, fragments):
    proc = run_script(script, *argv(bad_inputs), cwd=bad_inputs)
    assert_one_line_error(proc, *fragments)


def test_debug_shows_the_traceback(tmp_path):
    proc = run_script("latency", tmp_path / "missing.tflite", "--debug")
    assert proc.returncode != 0 and "Traceback" in proc.stderr
