"""Tiny exported models and images for the edge_runtime tests.

``build_edge_models(dest)`` trains a functional small CNN (Rescaling(1/255) in
the graph) for a few epochs on the embedded digits upscaled to 32x32, then
writes what export/ writes:

  model_float32.tflite   float32, dynamic batch, manifest embedded + sidecar
  model_int8.tflite      full-integer int8 with uint8 I/O, manifest embedded + sidecar
  model_float32.onnx     float32, dynamic batch, manifest in metadata_props + sidecar
  model_fixed1.tflite    float32, batch fixed at 1 (manifest embedded)
  model_fixed3.onnx      float32, batch fixed at 3 (manifest embedded)
  model_nomanifest.tflite  float32, no manifest anywhere
  fuzz_tiny*.tflite/.onnx  an untrained 8x8 CNN of a few KB, mostly structure
                         rather than weights: what the fuzz tests mutate
                         (float without manifest; int8 and ONNX with one)
  images/                a few digits as PNG and JPEG, with their labels

The build needs TensorFlow, tf2onnx and onnx; it runs once and is cached
under ``~/.cache/edgedeploy/test-models/<hash of the build code>`` (override with
EDGEDEPLOY_TEST_CACHE), so later runs and the edge-only subprocess tests only
read files. ``python tests/edge_fixtures.py DIR`` builds into DIR.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SIZE = 32
LABELS = [str(i) for i in range(10)]
FILES = ("model_float32.tflite", "model_int8.tflite", "model_float32.onnx", "model_fixed1.tflite",
         "model_fixed3.onnx", "model_nomanifest.tflite", "fuzz_tiny.tflite", "fuzz_tiny_int8.tflite", "fuzz_tiny.onnx")
TINY = 8


def cache_dir() -> Path:
    """Where the built models live, keyed by this file's content."""
    base = Path(os.environ.get("EDGEDEPLOY_TEST_CACHE", Path.home() / ".cache" / "edgedeploy" / "test-models"))
    import inspect

    # Keyed on the code that builds the files, so editing the pytest fixtures below does not rebuild.
    code = "".join(inspect.getsource(f) for f in (manifest_dict, embed_tflite_manifest, embed_onnx_manifest, _train,
                                                   build_edge_models, _tiny_models, _write_images))
    key = hashlib.sha256((code + repr(FILES)).encode()).hexdigest()[:12]
    return base / key


def manifest_dict(**over) -> dict:
    """The manifest export/ would write for the fixture model."""
    d = {"labels": LABELS, "input_height": SIZE, "input_width": SIZE, "input_channels": 3, "color_order": "RGB",
         "resize_method": "bilinear", "normalization": {"in_graph": True, "mean": [0.0] * 3, "std": [1.0] * 3},
         "input": {"dtype": "float32", "quantization": None}, "output": {"dtype": "float32", "quantization": None},
         "model_name": "tiny_cnn", "dataset": "digits", "format": "tflite", "quantize": "none", "source_sha256": "",
         "macs": None, "metrics": {}, "schema_version": 1}
    d.update(over)
    return d


def digit_images(split: str = "test", n: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Digits as uint8 RGB (N, 8, 8, 3) and their labels."""
    from edge_runtime.datasets import load_digits

    ds = load_digits(split)
    return ds.images[:n], ds.labels[:n]


def embed_tflite_manifest(src: Path, dst: Path, manifest_json: str) -> None:
    """Append the manifest as a TFLite metadata entry (no TensorFlow needed)."""
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils as fbu

    model = fbu.read_model(str(src))
    buf = schema.BufferT()
    buf.data = np.frombuffer(manifest_json.encode(), np.uint8)
    model.buffers.append(buf)
    meta = schema.MetadataT()
    meta.name = "edgedeploy.manifest"
    meta.buffer = len(model.buffers) - 1
    model.metadata = (model.metadata or []) + [meta]
    fbu.write_model(model, str(dst))


def embed_onnx_manifest(model_proto, manifest_json: str):
    entry = model_proto.metadata_props.add()
    entry.key, entry.value = "edgedeploy.manifest", manifest_json
    return model_proto


def _train():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(0)
    x, y = digit_images("train")
    x = tf.image.resize(x.astype("float32"), (SIZE, SIZE)).numpy()
    inp = keras.Input((SIZE, SIZE, 3))
    h = keras.layers.Rescaling(1 / 255)(inp)
    for f in (8, 16):
        h = keras.layers.MaxPooling2D()(keras.layers.Conv2D(f, 3, padding="same", activation="relu")(h))
    h = keras.layers.Dense(32, activation="relu")(keras.layers.Flatten()(h))
    model = keras.Model(inp, keras.layers.Dense(len(LABELS), activation="softmax")(h))
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, epochs=6, batch_size=32, verbose=0)
    return model, x


def build_edge_models(dest: Path) -> Path:
    """Train and export the fixture models into ``dest`` (see the module docstring)."""
    import onnx
    import tensorflow as tf
    import tf2onnx

    dest.mkdir(parents=True, exist_ok=True)
    model, xtrain = _train()
    tmp = Path(tempfile.mkdtemp())

    def tflite(conv, name, manifest):
        raw = tmp / f"raw_{name}"
        raw.write_bytes(conv.convert())
        if manifest is None:
            shutil.copy(raw, dest / name)
        else:
            embed_tflite_manifest(raw, dest / name, json.dumps(manifest))
            (dest / name).with_suffix(".json").write_text(json.dumps(manifest, indent=2))

    tflite(tf.lite.TFLiteConverter.from_keras_model(model), "model_float32.tflite", manifest_dict())
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = lambda: ([xtrain[i:i + 1]] for i in range(0, 400, 2))
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = conv.inference_output_type = tf.uint8
    int8 = conv.convert()
    (tmp / "int8.tflite").write_bytes(int8)
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_content=int8)
    (iscale, izp), (oscale, ozp) = it.get_input_details()[0]["quantization"], it.get_output_details()[0]["quantization"]
    m8 = manifest_dict(quantize="int8", input={"dtype": "uint8", "quantization": {"scale": iscale, "zero_point": izp}},
                       output={"dtype": "uint8", "quantization": {"scale": oscale, "zero_point": ozp}})
    embed_tflite_manifest(tmp / "int8.tflite", dest / "model_int8.tflite", json.dumps(m8))
    (dest / "model_int8.json").write_text(json.dumps(m8, indent=2))

    import keras

    inp1 = keras.Input((SIZE, SIZE, 3), batch_size=1)
    fixed = keras.Model(inp1, model(inp1))
    tflite(tf.lite.TFLiteConverter.from_keras_model(fixed), "model_fixed1.tflite", manifest_dict())
    (dest / "model_fixed1.json").unlink()  # embedded only
    tflite(tf.lite.TFLiteConverter.from_keras_model(model), "model_nomanifest.tflite", None)

    for name, batch in (("model_float32.onnx", None), ("model_fixed3.onnx", 3)):
        fn = tf.function(lambda x: model(x, training=False), input_signature=[tf.TensorSpec([batch, SIZE, SIZE, 3], tf.float32, name="image")])
        proto, _ = tf2onnx.convert.from_function(fn, input_signature=fn.input_signature, opset=17)
        md = manifest_dict(format="onnx")
        onnx.checker.check_model(proto)
        onnx.save(embed_onnx_manifest(proto, json.dumps(md)), str(dest / name))
        if batch is None:
            (dest / name).with_suffix(".json").write_text(json.dumps(md, indent=2))

    _tiny_models(dest, tmp)
    # Keras reference probabilities on the test digits, for parity tests.
    xt, yt = digit_images("test")
    xt32 = tf.image.resize(xt.astype("float32"), (SIZE, SIZE)).numpy()
    np.savez(dest / "reference.npz", probs=model.predict(xt32, verbose=0), labels=yt)
    _write_images(dest / "images")
    shutil.rmtree(tmp, ignore_errors=True)
    return dest


def _tiny_models(dest: Path, tmp: Path) -> None:
    import keras
    import onnx
    import tensorflow as tf
    import tf2onnx

    keras.utils.set_random_seed(1)
    inp = keras.Input((TINY, TINY, 3))
    h = keras.layers.Rescaling(1 / 255)(inp)
    h = keras.layers.MaxPooling2D()(keras.layers.Conv2D(4, 3, padding="same", activation="relu")(h))
    tiny = keras.Model(inp, keras.layers.Dense(len(LABELS), activation="softmax")(keras.layers.Flatten()(h)))
    md = json.dumps(manifest_dict(input_height=TINY, input_width=TINY))
    (dest / "fuzz_tiny.tflite").write_bytes(tf.lite.TFLiteConverter.from_keras_model(tiny).convert())
    conv = tf.lite.TFLiteConverter.from_keras_model(tiny)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    rng = np.random.default_rng(0)
    conv.representative_dataset = lambda: ([rng.uniform(0, 255, (1, TINY, TINY, 3)).astype("float32")] for _ in range(20))
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = conv.inference_output_type = tf.uint8
    (tmp / "tiny_int8.tflite").write_bytes(conv.convert())
    embed_tflite_manifest(tmp / "tiny_int8.tflite", dest / "fuzz_tiny_int8.tflite", md)
    fn = tf.function(lambda x: tiny(x, training=False), input_signature=[tf.TensorSpec([None, TINY, TINY, 3], tf.float32, name="image")])
    proto, _ = tf2onnx.convert.from_function(fn, input_signature=fn.input_signature, opset=17)
    onnx.save(embed_onnx_manifest(proto, md), str(dest / "fuzz_tiny.onnx"))


def _write_images(folder: Path) -> None:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    xs, ys = digit_images("test", 12)
    truth = {}
    for i, (img, lab) in enumerate(zip(xs, ys)):
        pil = Image.fromarray(img).resize((40, 40), Image.NEAREST)
        name = f"digit{i:02d}_{lab}." + ("png" if i % 2 == 0 else "jpg")
        pil.save(folder / name, quality=95)
        truth[name] = int(lab)
    (folder / "truth.json").write_text(json.dumps(truth))


def ensure_edge_models() -> Path:
    """The cached fixture folder, building it (atomically) the first time."""
    final = cache_dir()
    if all((final / f).is_file() for f in FILES) and (final / "images" / "truth.json").is_file():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(dir=final.parent, prefix=".build-"))
    try:
        build_edge_models(work)
        if final.exists():
            shutil.rmtree(final)
        os.replace(work, final)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return final


def _has(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


try:  # pytest fixtures; the module also runs as a plain script
    import pytest

    @pytest.fixture(scope="session")
    def edge_models() -> Path:
        """The fixture model folder; built with TensorFlow the first time, then cached."""
        final = cache_dir()
        if all((final / f).is_file() for f in FILES):
            return final
        missing = [m for m in ("tensorflow", "tf2onnx", "onnx") if not _has(m)]
        if missing:
            pytest.skip(f"building the test models needs {', '.join(missing)} (not installed here)")
        return ensure_edge_models()

    @pytest.fixture(scope="session")
    def truth(edge_models) -> dict:
        """image file name -> true digit, for the images in edge_models/images."""
        return json.loads((edge_models / "images" / "truth.json").read_text())

except ImportError:  # pragma: no cover
    pass


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    out = build_edge_models(Path(sys.argv[1])) if len(sys.argv) > 1 else ensure_edge_models()
    print(out)
