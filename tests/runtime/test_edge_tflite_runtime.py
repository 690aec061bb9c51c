"""The legacy tflite-runtime 2.14 backend (numpy<2), proven in its own cached venv.

tflite-runtime 2.14 cannot live beside numpy 2, so this test builds a
separate virtual environment once, in ``~/.cache/edgedeploy/venv-tflite-runtime``
(override with EDGEDEPLOY_TFLITE_RUNTIME_VENV), with ``tflite-runtime==2.14.*``,
``numpy<2`` and Pillow, and no ai-edge-litert. The checkout is put on its
PYTHONPATH, so it runs this edge_runtime exactly as a legacy Pi would. It must
give the same top-1 as LiteRT here, and probabilities within 1e-3 for the
float model. When the wheel cannot be had (no network, no cp3xx wheel for
this platform), the test skips and says why.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgedeploy.runtime import ImageClassifier

ROOT = Path(__file__).resolve().parents[2]
VENV = Path(os.environ.get("EDGEDEPLOY_TFLITE_RUNTIME_VENV", Path.home() / ".cache/edgedeploy/venv-tflite-runtime"))
REQS = ["tflite-runtime==2.14.*", "numpy<2", "pillow"]

RUN = r'''
import json, sys, numpy as np
from edgedeploy.runtime import ImageClassifier
out = {"numpy": np.__version__, "litert_present": True}
try:
    import ai_edge_litert  # noqa: F401
except ImportError:
    out["litert_present"] = False
images = sorted(__import__("glob").glob(sys.argv[2] + "/*.*g"))
for model in sys.argv[3:]:
    clf = ImageClassifier(model, backend=sys.argv[1], threads=1)
    preds = clf.predict_batch(images, batch_size=4)
    out[model] = {"backend": clf.backend.name, "delegate": clf.backend.delegate_applied,
                  "probs": [p.probabilities.tolist() for p in preds]}
print(json.dumps(out))
'''


def _venv_python() -> Path:
    py = VENV / "bin" / "python"
    stamp = VENV / ".edgedeploy-ok"
    if stamp.exists() and py.exists():
        return py
    try:
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(VENV)], check=True, capture_output=True, timeout=300)
        pip = subprocess.run([str(py), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *REQS],
                             capture_output=True, text=True, timeout=900)
    except (subprocess.SubprocessError, OSError) as exc:
        pytest.skip(f"could not build the tflite-runtime venv: {exc}")
    if pip.returncode != 0:
        last = (pip.stderr.strip().splitlines() or ["no output"])[-1]
        pytest.skip(f"tflite-runtime 2.14 could not be installed here ({last})")
    stamp.write_text(" ".join(REQS) + "\n")
    return py


@pytest.mark.slow
def test_tflite_runtime_matches_litert(edge_models):
    py = _venv_python()
    models = [str(edge_models / "model_float32.tflite"), str(edge_models / "model_int8.tflite")]
    for backend in ("tflite-runtime", "auto"):  # auto must pick tflite-runtime where LiteRT is absent
        out = subprocess.run([str(py), "-c", RUN, backend, str(edge_models / "images"), *models], capture_output=True, text=True, timeout=300,
                             env={**os.environ, "PYTHONPATH": str(ROOT), "EDGEDEPLOY_PROBE": "never"})
        assert out.returncode == 0, out.stderr[-2000:]
        got = json.loads(out.stdout.strip().splitlines()[-1])
        assert got["numpy"].startswith("1.") and got["litert_present"] is False
        images = sorted((edge_models / "images").glob("*.*g"))
        for model in models:
            legacy = np.asarray(got[model]["probs"])
            assert got[model]["backend"] == "tflite-runtime" and legacy.shape == (len(images), 10)
            ref = np.stack([p.probabilities for p in ImageClassifier(model, backend="litert").predict_batch(images)])
            assert np.array_equal(legacy.argmax(1), ref.argmax(1)), model
            # int8: the two runtimes ship different int8 kernels; allow a few output quantization steps.
            tol = 1e-3 if "float32" in model else 3 / 256
            assert np.abs(legacy - ref).max() <= tol, model


@pytest.mark.slow
def test_tflite_runtime_with_numpy2_refuses_with_the_fix(edge_models, tmp_path):
    """The real wheel beside numpy 2: our guard answers before the import can crash."""
    py = _venv_python()
    site = subprocess.run([str(py), "-c", "import tflite_runtime, os; print(os.path.dirname(os.path.dirname(tflite_runtime.__file__)))"],
                          capture_output=True, text=True, timeout=60).stdout.strip()
    link = tmp_path / "tflite_runtime"
    link.symlink_to(Path(site) / "tflite_runtime")  # only this package, on the numpy-2 interpreter
    code = ("from edgedeploy.runtime import ImageClassifier\n"
            f"ImageClassifier({str(edge_models / 'model_float32.tflite')!r}, backend='tflite-runtime', probe='never')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{tmp_path}"})
    assert out.returncode != 0
    last = out.stderr.strip().splitlines()[-1]
    assert "tflite-runtime 2.14 needs numpy<2, found numpy 2." in last and 'pip install "tflite-runtime==2.14.*" "numpy<2"' in last
