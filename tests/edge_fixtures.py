"""The hand-made fuzz seeds and the chain folder for scripts (tests/model_fixtures.py builds the chain).

``edge_models`` is the chain folder: train-model -> export-model output, its
mutations (no manifest, fixed batch), Keras reference probabilities and a few
digit images (``truth`` maps their names to the digit). See model_fixtures.py.

The one thing here that the real commands do NOT make: ``fuzz_tiny*``, the
fuzz seeds. They are an untrained 8x8 CNN of a few KB, mostly structure rather
than weights, so that random mutations hit the graph instead of the weights.
train-model refuses inputs below 32x32 (and small_cnn alone is ~600 KB of
weights), so these are converted by hand below; ``tests/runtime/test_edge_backends.py``
also pins one mutation of ``fuzz_tiny.tflite`` (VERIFIER_GAP) to these bytes.
``python tests/edge_fixtures.py --fuzz-tiny DIR`` writes them (the chain runs it
in a subprocess, so pytest itself never imports TensorFlow).
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
TINY = 8
LABELS = [str(i) for i in range(10)]


def _tiny_manifest() -> str:
    from edgedeploy.runtime.manifest import Manifest

    return Manifest(labels=LABELS, input_height=TINY, input_width=TINY, model_name="tiny_cnn", dataset="digits").to_json()


def build_fuzz_seeds(dest: Path) -> None:
    """fuzz_tiny.tflite (float, no manifest), fuzz_tiny_int8.tflite and fuzz_tiny.onnx (manifest embedded)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import onnx
    import tensorflow as tf
    import tf2onnx

    from edgedeploy.export.embed import embed_onnx, embed_tflite

    keras.utils.set_random_seed(1)
    # The names the first version's seeds had (built after another model in one process): the bytes stay
    # the same, so the pinned VERIFIER_GAP mutation in test_edge_backends.py still lands where it did.
    inp = keras.Input((TINY, TINY, 3), name="keras_tensor_18")
    h = keras.layers.Rescaling(1 / 255, name="rescaling_1")(inp)
    h = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="conv2d_2")(h)
    h = keras.layers.Flatten(name="flatten_1")(keras.layers.MaxPooling2D(name="max_pooling2d_2")(h))
    tiny = keras.Model(inp, keras.layers.Dense(len(LABELS), activation="softmax", name="dense_2")(h), name="functional_2")
    md = _tiny_manifest()
    (dest / "fuzz_tiny.tflite").write_bytes(tf.lite.TFLiteConverter.from_keras_model(tiny).convert())
    conv = tf.lite.TFLiteConverter.from_keras_model(tiny)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    rng = np.random.default_rng(0)
    conv.representative_dataset = lambda: ([rng.uniform(0, 255, (1, TINY, TINY, 3)).astype("float32")] for _ in range(20))
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = conv.inference_output_type = tf.uint8
    (dest / "fuzz_tiny_int8.tflite").write_bytes(embed_tflite(conv.convert(), md))
    fn = tf.function(lambda x: tiny(x, training=False), input_signature=[tf.TensorSpec([None, TINY, TINY, 3], tf.float32, name="image")])
    proto, _ = tf2onnx.convert.from_function(fn, input_signature=fn.input_signature, opset=17)
    (dest / "fuzz_tiny.onnx").write_bytes(embed_onnx(proto.SerializeToString(), md))
    onnx.checker.check_model(str(dest / "fuzz_tiny.onnx"))


def ensure_edge_models() -> Path:
    """The chain folder, built the first time (scripts/pi_emulation_host.py hands it to the Pi)."""
    import model_fixtures

    return model_fixtures.build_cached()


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))  # model_fixtures, beside this file
    if len(sys.argv) == 3 and sys.argv[1] == "--fuzz-tiny":
        build_fuzz_seeds(Path(sys.argv[2]))
    else:
        print(ensure_edge_models())
