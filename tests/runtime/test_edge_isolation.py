"""edge_runtime and edge-infer never load TensorFlow, Keras, train or export, and work where they cannot."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN = ("tensorflow", "keras", "train", "export", "tf2onnx", "onnx")

BLOCKER = '''
import importlib.abc, sys
BLOCKED = {"tensorflow", "keras", "tf_keras", "tensorflow_datasets", "tf2onnx"}
class _Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"{name} is blocked in this test (an edge-only Pi has no TensorFlow)")
        return None
sys.meta_path.insert(0, _Block())
'''

RUN = '''
import json, sys
import edgedeploy.runtime as edge_runtime
from edgedeploy.runtime import ImageClassifier
from edgedeploy.runtime.cli import main
codes = [main(sys.argv[1:] + ["--json"])]
clf = ImageClassifier(sys.argv[1])
clf.predict_batch([sys.argv[2]] * 3, batch_size=2)
print(json.dumps({"codes": codes, "loaded": sorted(m for m in sys.modules if m.split(".")[0] in %r)}), file=sys.stderr)
''' % (FORBIDDEN,)


def _run(args, extra_path=None):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [extra_path, str(ROOT)]))}
    out = subprocess.run([sys.executable, "-c", RUN, *map(str, args)], cwd=ROOT, capture_output=True, text=True,
                         env=env, timeout=180)
    report = json.loads(out.stderr.strip().splitlines()[-1])
    return out, report


@pytest.mark.parametrize("model", ["model_float32.tflite", "model_int8.tflite", "model_float32.onnx"])
def test_running_edge_infer_loads_no_tensorflow_keras_train_or_export(edge_models, truth, model):
    image = edge_models / "images" / sorted(truth)[0]
    out, report = _run([edge_models / model, image])
    assert report["codes"] == [0], out.stderr
    assert report["loaded"] == [], f"edge side loaded {report['loaded']}"
    assert json.loads(out.stdout.splitlines()[0])["label"] == str(truth[image.name])


def test_edge_infer_works_where_tensorflow_cannot_be_imported(edge_models, truth, tmp_path):
    (tmp_path / "sitecustomize.py").write_text(BLOCKER)
    probe = subprocess.run([sys.executable, "-c", "import tensorflow"], capture_output=True, text=True,
                           env={**os.environ, "PYTHONPATH": str(tmp_path)}, timeout=60)
    assert probe.returncode != 0 and "blocked in this test" in probe.stderr  # the shim works
    image = edge_models / "images" / sorted(truth)[1]
    for model in ("model_float32.tflite", "model_float32.onnx"):
        out, report = _run([edge_models / model, image], extra_path=str(tmp_path))
        assert report["codes"] == [0] and report["loaded"] == [], out.stderr
        assert json.loads(out.stdout.splitlines()[0])["label"] == str(truth[image.name])


def test_cold_import_stays_light():
    """`import edge_runtime` pulls in no numpy, Pillow or runtime; the CLI module neither."""
    code = ("import sys, edge_runtime, edge_runtime.cli\n"
            "print(sorted(m for m in ('numpy', 'PIL', 'ai_edge_litert', 'onnxruntime', 'tflite_runtime') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0 and out.stdout.strip() == "[]", out.stdout + out.stderr


def test_tensor_path_does_not_import_pillow(edge_models):
    code = ("import sys, numpy as np\nfrom edgedeploy.runtime import ImageClassifier\n"
            f"c = ImageClassifier({str(edge_models / 'model_float32.tflite')!r})\n"
            "c.predict_tensor(np.zeros((1, 32, 32, 3), np.float32))\n"
            "print('PIL' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0 and out.stdout.strip() == "False", out.stderr
