"""Backends and ImageClassifier: parity across runtimes, batching, quantized I/O, delegate, probe."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from edgedeploy.core.errors import BackendError, EdgeDeployError, ModelError
from edgedeploy.runtime import ImageClassifier
from edgedeploy.runtime.backends import BACKENDS, resolve_backend
from edgedeploy.runtime.backends.probe import cache_dir, probe_model
from edgedeploy.runtime.datasets import load_digits

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def digits():
    ds = load_digits("test")
    return ds.images[:120], ds.labels[:120]


def _probs(clf, images, batch_size=16):
    return np.stack([p.probabilities for p in clf.predict_batch(list(images), batch_size=batch_size)])


def test_litert_and_onnxruntime_agree_on_the_same_float_model(edge_models, digits):
    images, labels = digits
    lite = ImageClassifier(edge_models / "model_float32.tflite", backend="litert")
    ort = ImageClassifier(edge_models / "model_float32.onnx", backend="onnxruntime")
    a, b = _probs(lite, images), _probs(ort, images)
    assert np.array_equal(a.argmax(1), b.argmax(1))
    assert np.abs(a - b).max() < 1e-3
    assert (a.argmax(1) == labels).mean() > 0.85  # the model really learned digits


def test_runtime_matches_keras_reference(edge_models):
    ref = np.load(edge_models / "reference.npz")
    ds = load_digits("test")
    clf = ImageClassifier(edge_models / "model_float32.tflite")
    got = _probs(clf, ds.images, batch_size=64)
    assert np.abs(got - ref["probs"]).max() < 1e-3
    assert np.array_equal(got.argmax(1), ref["probs"].argmax(1))


def test_int8_model_takes_images_and_returns_probabilities(edge_models, digits):
    images, labels = digits
    clf = ImageClassifier(edge_models / "model_int8.tflite")
    assert clf.backend.input.dtype == np.uint8 and clf.backend.input.quantized
    p = _probs(clf, images)
    assert p.dtype == np.float32 and p.min() >= 0 and p.max() <= 1.0
    assert np.allclose(p.sum(1), 1.0, atol=0.05)
    ref = _probs(ImageClassifier(edge_models / "model_float32.tflite"), images)
    assert (p.argmax(1) == ref.argmax(1)).mean() >= 0.95


@pytest.mark.parametrize("name", ["model_fixed1.tflite", "model_fixed3.onnx"])
def test_fixed_batch_models_are_looped_and_padded(edge_models, digits, name):
    images, _ = digits
    fixed = ImageClassifier(edge_models / name)
    assert not fixed.backend.dynamic_batch
    ref = _probs(ImageClassifier(edge_models / "model_float32.tflite"), images[:7])
    for bs in (1, 2, 5, 8):  # 7 images: chunks that do not divide the fixed batch
        got = _probs(fixed, images[:7], batch_size=bs)
        assert got.shape == (7, 10)
        assert np.abs(got - ref).max() < 1e-3


def test_dynamic_batch_resizes_once_per_batch_size(edge_models, digits):
    images, _ = digits
    clf = ImageClassifier(edge_models / "model_float32.tflite")
    assert clf.backend.dynamic_batch
    x = np.stack([clf.preprocess(im) for im in images[:10]])
    one_by_one = np.concatenate([clf.predict_tensor(x[i:i + 1]) for i in range(10)])
    for bs in (3, 10, 32):
        assert np.abs(clf.predict_tensor(x, batch_size=bs) - one_by_one).max() < 1e-5
    assert clf.predict_tensor(x[:0]).shape == (0, 10)


def test_predict_accepts_path_bytes_pil_and_array(edge_models, truth):
    from PIL import Image

    clf = ImageClassifier(edge_models / "model_float32.tflite", top_k=3)
    path = edge_models / "images" / sorted(truth)[0]
    preds = [clf.predict(path), clf.predict(str(path)), clf.predict(path.read_bytes()),
             clf.predict(Image.open(path)), clf.predict(np.asarray(Image.open(path).convert("RGB")))]
    assert len({p.label for p in preds}) == 1
    assert preds[0].label == str(truth[path.name])
    assert len(preds[0].top_k) == 3 and preds[0].top_k[0] == (preds[0].label, preds[0].score)


def test_xnnpack_on_by_default_and_reported(edge_models):
    on = ImageClassifier(edge_models / "model_float32.tflite")
    off = ImageClassifier(edge_models / "model_float32.tflite", xnnpack=False)
    assert on.backend.delegate_applied is True
    assert off.backend.delegate_applied is False
    assert on.describe()["delegate_applied"] is True
    assert ImageClassifier(edge_models / "model_float32.onnx").backend.delegate_applied is None


def test_threads_are_passed_and_validated(edge_models):
    assert ImageClassifier(edge_models / "model_float32.tflite", threads=1).backend.threads == 1
    for bad in (0, -2, 1.5, True):
        with pytest.raises(EdgeDeployError, match="threads"):
            ImageClassifier(edge_models / "model_float32.tflite", threads=bad)


def test_auto_picks_by_suffix(edge_models):
    assert resolve_backend(edge_models / "model_float32.tflite").name == "litert"
    assert resolve_backend(edge_models / "model_float32.onnx").name == "onnxruntime"
    with pytest.raises(BackendError, match="reads .onnx files"):
        resolve_backend(edge_models / "model_float32.tflite", "onnxruntime")
    with pytest.raises(EdgeDeployError, match="unknown backend 'tensorflow'; expected one of"):
        resolve_backend(edge_models / "model_float32.tflite", "tensorflow")


def test_missing_runtime_names_the_pip_command(edge_models, monkeypatch):
    monkeypatch.setattr(BACKENDS.get("litert"), "available", classmethod(lambda cls: False))
    monkeypatch.setattr(BACKENDS.get("tflite-runtime"), "available", classmethod(lambda cls: False))
    with pytest.raises(BackendError) as err:
        ImageClassifier(edge_models / "model_float32.tflite")
    assert "pip install ai-edge-litert" in str(err.value) and "\n" not in str(err.value)
    monkeypatch.setattr(BACKENDS.get("onnxruntime"), "available", classmethod(lambda cls: False))
    with pytest.raises(BackendError, match="pip install onnxruntime"):
        ImageClassifier(edge_models / "model_float32.onnx", backend="onnxruntime")


def test_auto_falls_back_to_tflite_runtime_when_litert_is_absent(edge_models, monkeypatch):
    monkeypatch.setattr(BACKENDS.get("litert"), "available", classmethod(lambda cls: False))
    monkeypatch.setattr(BACKENDS.get("tflite-runtime"), "available", classmethod(lambda cls: True))
    assert resolve_backend(edge_models / "model_float32.tflite").name == "tflite-runtime"


def test_tflite_runtime_under_numpy2_says_numpy_lt_2(edge_models, monkeypatch):
    # A fake tflite_runtime package: the real wheel cannot be installed beside numpy 2.
    fake = types.ModuleType("tflite_runtime")
    fake.__path__ = []
    monkeypatch.setitem(sys.modules, "tflite_runtime", fake)
    monkeypatch.setitem(sys.modules, "tflite_runtime.interpreter", types.ModuleType("tflite_runtime.interpreter"))
    monkeypatch.setattr(BACKENDS.get("tflite-runtime"), "available", classmethod(lambda cls: True))
    if int(np.__version__.split(".")[0]) < 2:
        pytest.skip("numpy < 2 here: the guard does not apply")
    with pytest.raises(BackendError) as err:
        ImageClassifier(edge_models / "model_float32.tflite", backend="tflite-runtime", probe="never")
    msg = str(err.value)
    assert "numpy<2" in msg and np.__version__ in msg and "--backend litert" in msg and "\n" not in msg


def test_embedded_manifest_wins_and_sidecar_is_a_fallback(edge_models, tmp_path):
    clf = ImageClassifier(edge_models / "model_fixed1.tflite")  # embedded only, no sidecar
    assert clf.manifest_found and clf.manifest.labels[3] == "3"
    # A file without embedded manifest but with a sidecar MODEL.json next to it.
    model = tmp_path / "plain.tflite"
    model.write_bytes((edge_models / "model_nomanifest.tflite").read_bytes())
    side = json.loads((edge_models / "model_float32.tflite.json").read_text())
    side["labels"] = [f"digit-{i}" for i in range(10)]
    (tmp_path / "plain.json").write_text(json.dumps(side))
    clf = ImageClassifier(model)
    assert clf.manifest_found and clf.predict(np.zeros((8, 8, 3), np.uint8)).label.startswith("digit-")


# -- the subprocess probe (backends/probe.py) -----------------------------------------
def test_probe_contains_a_native_crash(edge_models, tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEDEPLOY_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("EDGEDEPLOY_PROBE_SELFTEST", "crash")  # the child segfaults on purpose
    with pytest.raises(ModelError) as err:
        ImageClassifier(edge_models / "model_float32.tflite", probe="always")
    assert "crashed (signal 11)" in str(err.value) and "\n" not in str(err.value)


def test_probe_runs_once_per_file_then_is_cached(edge_models, tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEDEPLOY_CACHE", str(tmp_path / "cache"))
    model = tmp_path / "m.tflite"
    model.write_bytes((edge_models / "model_float32.tflite").read_bytes())
    assert probe_model(model, "litert", 1, True, "auto") is True
    assert len(list(cache_dir().iterdir())) == 1
    assert probe_model(model, "litert", 1, True, "auto") is False  # cached
    assert probe_model(model, "litert", 1, True, "never") is False
    os.utime(model, ns=(1, 1))  # a changed file is probed again
    assert probe_model(model, "litert", 1, True, "auto") is True
    with pytest.raises(EdgeDeployError, match="probe='sometimes'"):
        probe_model(model, "litert", 1, True, "sometimes")


def test_probe_leaves_plain_model_errors_to_the_in_process_load(edge_models, tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEDEPLOY_CACHE", str(tmp_path / "cache"))
    bad = tmp_path / "bad.tflite"
    data = bytearray((edge_models / "fuzz_tiny.tflite").read_bytes())
    bad.write_bytes(bytes(data[:len(data) // 2]))
    with pytest.raises(ModelError, match="not a valid TFLite model"):
        ImageClassifier(bad, probe="always")  # caught by the verifier before any probe
    assert not cache_dir().exists() or not any(cache_dir().iterdir())


def test_edge_runtime_runs_from_a_clean_interpreter(edge_models):
    code = ("import sys; from edgedeploy.runtime import ImageClassifier; import numpy as np\n"
            f"c = ImageClassifier({str(edge_models / 'model_float32.onnx')!r})\n"
            "print(c.predict(np.zeros((8, 8, 3), np.uint8)).label)\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() in [str(i) for i in range(10)]


def test_damaged_onnx_metadata_entry_is_a_model_error(edge_models, tmp_path):
    from edgedeploy.runtime.formats import get_format

    read_onnx_metadata = get_format("onnx").read_metadata
    bad = tmp_path / "m.onnx"
    # a well-formed top level whose metadata_props entry (field 14) holds a truncated message
    bad.write_bytes((edge_models / "model_float32.onnx").read_bytes() + bytes([114, 3, 0x0A, 0x05, 0x41]))
    with pytest.raises(ModelError, match="metadata_props are corrupt"):
        read_onnx_metadata(bad)
    assert read_onnx_metadata(edge_models / "model_float32.onnx")["edgedeploy.manifest"].startswith("{")


# A one-word change fuzzing found (LiteRT 2.3): it repoints the graph input at another
# tensor, passes every structural check, and crashes LiteRT with SIGSEGV on invoke.
# The default load must turn that into a one-line ModelError.
VERIFIER_GAP = ("fuzz_tiny.tflite", [("int32", 0.7162006428382554, 55690)])


def test_probe_contains_a_real_runtime_crash_the_verifier_cannot_see(edge_models, tmp_path, monkeypatch):
    from edgedeploy.bench.fuzzing import FuzzWorker, apply_mutations
    from edgedeploy.runtime.formats import get_format

    check = get_format("tflite").check_bytes  # raises ValueError with the verifier's reason

    name, mutations = VERIFIER_GAP
    data = apply_mutations((edge_models / name).read_bytes(), mutations)
    try:
        check(data)
    except ValueError as exc:
        pytest.skip(f"the verifier now rejects this case ({exc}); find a new gap with benchmarks/fuzz.py")
    monkeypatch.setenv("EDGEDEPLOY_CACHE", str(tmp_path / "cache"))  # nothing proven yet
    with FuzzWorker(edge_models / "model_float32.tflite") as worker:
        unguarded = worker.run("model", data, ".tflite", probe="raw")  # straight to LiteRT
        if unguarded.outcome != "crash":
            pytest.skip(f"this LiteRT no longer crashes on the case ({unguarded.outcome})")
        guarded = worker.run("model", data, ".tflite", probe="auto")  # what users get by default
        assert worker.restarts == 1  # only the unguarded run killed the worker
    assert guarded.outcome == "error" and "ModelError" in guarded.detail and "crashed (signal 11)" in guarded.detail
    # and in this very process, a one-line error instead of a dead interpreter:
    bad = tmp_path / "damaged.tflite"
    bad.write_bytes(data)
    with pytest.raises(ModelError, match=r"crashed \(signal 11\)"):
        ImageClassifier(bad)
