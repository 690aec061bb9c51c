"""Float models "made elsewhere", made here from one real train-model run on the shared photos (issue 21).

``byom_models(photos)`` returns a folder built once and cached (like tests/model_fixtures.py):

1. ``train-model --model small_cnn --data PHOTOS --image-size 64 --epochs 20 --no-augment`` -> ``run/``
   (cat/dog; the small CNN rescales pixels in its graph);
2. from ``run/model.keras``, each as another tool would hand it over, with no edgedeploy manifest:
   - ``model_nchw.onnx``: what ``torch.onnx.export`` gives for a torchvision-style classifier: NCHW
     float32 input 1x3x64x64 normalized with ImageNet mean/std on 0..1 pixels (folded in front of
     the Keras model, converted by tf2onnx with ``inputs_as_nchw``), fixed batch 1, no labels;
   - ``model.h5``: the same model saved as Keras 2 HDF5;
   - ``saved_model/``: the same model as a TensorFlow SavedModel (``model.export``);
   - ``model.tflite``: a float32 TFLite of the model taking -1..1 pixels, as Model Maker makes them,
     with the standard TFLite metadata (NormalizationOptions mean 127.5 std 127.5, labels.txt packed)
     written by the project's own writer (export/formats/_tflite_metadata.py, checked against
     MediaPipe's reader in tests/export/test_tflite_metadata.py);

Cached under ``cache_base()/byom-<key>``, where the key hashes train/, this file and the photo list:
export/ and edge_runtime/ changes do not retrain it. If it cannot be built, the test FAILS with the
command and its stderr tail.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from model_fixtures import ROOT, BuildError, _env, cache_base

SIZE = 64
EPOCHS = 20
LABELS = ("cat", "dog")
FILES = ("model_nchw.onnx", "model.h5", "saved_model", "model.tflite")
COMPLETE = "COMPLETE"

CONVERT = r'''
import sys, numpy as np, keras, tensorflow as tf, tf2onnx
from pathlib import Path
out = Path(sys.argv[1]); model = keras.saving.load_model(out / "run" / "model.keras", compile=False)
size = %(size)d
model.save(out / "model.h5")
model.export(str(out / "saved_model"), format="tf_saved_model", verbose=False)
# a PyTorch-style file: ImageNet mean/std on 0..1 pixels in front, channels first, batch 1
sig = (tf.TensorSpec((1, size, size, 3), tf.float32, name="input"),)
def torchlike(x):  # the constants made inside the trace: captured eager tensors would become graph inputs
    return model((x * tf.constant([0.229, 0.224, 0.225]) + tf.constant([0.485, 0.456, 0.406])) * 255.0, training=False)
fn = tf.function(torchlike, input_signature=sig)
proto, _ = tf2onnx.convert.from_function(fn, input_signature=sig, opset=17, inputs_as_nchw=["input:0"])
(out / "model_nchw.onnx").write_bytes(proto.SerializeToString())
# a Model-Maker-style .tflite: -1..1 pixels in, float32
inp = keras.Input((size, size, 3), batch_size=1, name="image")
pets = keras.Model(inp, model(keras.layers.Rescaling(127.5, offset=127.5)(inp)), name="pets")
(out / "bare.tflite").write_bytes(tf.lite.TFLiteConverter.from_keras_model(pets).convert())
''' % {"size": SIZE}

METADATA = r'''
import sys
from pathlib import Path
from edgedeploy.export.formats._tflite_metadata import add
from edgedeploy.runtime.manifest import Manifest, Normalization
out = Path(sys.argv[1])
m = Manifest(labels=["cat", "dog"], input_height=%(size)d, input_width=%(size)d, model_name="pets_model_maker",
             normalization=Normalization(in_graph=False, mean=[127.5] * 3, std=[127.5] * 3))
(out / "model.tflite").write_bytes(add((out / "bare.tflite").read_bytes(), m))
(out / "bare.tflite").unlink()
''' % {"size": SIZE}


def photos_list(photos: Path) -> list[Path]:
    return sorted(photos.glob("*/*.jpg"))


@functools.lru_cache(maxsize=None)
def cache_key(photos: Path) -> str:
    h = hashlib.sha256()
    for p in sorted((ROOT / "train").rglob("*.py")) + [Path(__file__)]:
        h.update(str(p.name).encode() + p.read_bytes())
    h.update("\n".join(str(p.relative_to(photos)) for p in photos_list(photos)).encode())
    return h.hexdigest()[:16]


def _run(*args: str, what: str, timeout: int = 900) -> None:
    cmd = [sys.executable, *args]
    proc = subprocess.run(cmd, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-15:])
        raise BuildError(f"{what} exited {proc.returncode}: {' '.join(map(str, cmd))}\n{tail}")


def build(dest: Path, photos: Path) -> Path:
    _run("-m", "edgedeploy.train", "--model", "small_cnn", "--data", str(photos), "--image-size", str(SIZE),
         "--epochs", str(EPOCHS), "--no-augment", "--seed", "0", "--patience", "0", "--output", str(dest / "run"), what="train-model")
    shutil.rmtree(dest / "run" / "checkpoints", ignore_errors=True)
    _run("-c", CONVERT, str(dest), what="the float conversions (h5, SavedModel, NCHW ONNX, TFLite)")
    _run("-c", METADATA, str(dest), what="the standard TFLite metadata")
    (dest / COMPLETE).write_text(json.dumps({"key": cache_key(photos), "size": SIZE, "epochs": EPOCHS}))
    return dest


def byom_models(photos: Path) -> Path:
    """The cached folder (see the module docstring); the calling test fails if it cannot be built."""
    final = cache_base() / f"byom-{cache_key(photos)}"
    if (final / COMPLETE).is_file():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    with open(final.parent / f".{final.name}.lock", "w") as lock:
        import fcntl

        fcntl.flock(lock, fcntl.LOCK_EX)
        if (final / COMPLETE).is_file():
            return final
        work = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}-build-"))
        try:
            build(work, photos)
            shutil.rmtree(final, ignore_errors=True)
            os.replace(work, final)
        except (BuildError, subprocess.TimeoutExpired) as exc:
            pytest.fail(f"the bring-your-own-model files could not be built: {exc}", pytrace=False)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return final


def nchw_onnx(src: Path, dst: Path) -> Path:
    """A copy of an NHWC float ONNX export behind a Transpose, as ``torch.onnx.export`` lays out its input:
    NCHW, input named ``input``, no metadata (no edgedeploy manifest); the batch dimension is kept."""
    import onnx
    from onnx import helper

    m = onnx.load(str(src))
    del m.metadata_props[:]
    old = m.graph.input[0]
    n, h, w, c = old.type.tensor_type.shape.dim
    new = helper.make_tensor_value_info("input", old.type.tensor_type.elem_type, [n.dim_param or n.dim_value,
                                        c.dim_value, h.dim_value, w.dim_value])
    m.graph.node.insert(0, helper.make_node("Transpose", ["input"], [old.name], perm=[0, 2, 3, 1], name="nchw_to_nhwc"))
    m.graph.input.remove(old)
    m.graph.input.insert(0, new)
    onnx.checker.check_model(m)
    dst.write_bytes(m.SerializeToString())
    return dst


def digit_folder(dst: Path, per_class: int = 12) -> Path:
    """``dst/<digit>/*.png``: test digits as a labelled image folder (class subfolders named by the labels)."""
    from PIL import Image

    from edgedeploy.runtime.datasets import load_digits

    ds = load_digits("test")
    counts: dict[int, int] = {}
    for i, (img, lab) in enumerate(zip(ds.images, ds.labels)):
        if counts.get(int(lab), 0) >= per_class:
            continue
        counts[int(lab)] = counts.get(int(lab), 0) + 1
        (dst / str(lab)).mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(dst / str(lab) / f"d{i:04d}.png")
    return dst
