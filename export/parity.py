"""The parity gate: does the exported file still answer like the trained model?

After a file is written it is run through ``edge_runtime.ImageClassifier``,
the code path the device runs (its own decoding-free numpy resize,
normalization and quantization of the input), on the raw images of the run's
held-out TEST split. The Keras model gets the same images preprocessed as at
training (``train.preprocess_tf.preprocess_images``). Measured:

- ``top1_agreement``: % of images where both pick the same class;
- ``max_abs_prob_diff`` / ``mean_abs_prob_diff``: over every class probability;
- ``accuracy`` and ``keras_accuracy`` (%), ``accuracy_drop`` in points
  (Keras minus export; positive is worse);
- ``per_class_accuracy_drop`` and its worst class: a model can hold its
  average while one class collapses, and that is what users get bitten by.

The gate fails a file when its accuracy drop exceeds ``--max-accuracy-drop``
(default 1.0 point), or when a float32/float16 file differs from Keras by more
than ``--max-prob-diff`` (default 1e-3) in any probability. For float32 a
difference is a bug, not a trade-off (measured: about 1e-6). For float16 it is
mostly the weights' rounding: 3e-4 on the digits small_cnn, but 0.5e-3 to
1.4e-3 on barely trained tiny CNNs, whose borderline images sit where the
softmax is steepest; such a model needs a looser ``--max-prob-diff``.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from edge_runtime.errors import EdgeDeployError
from edge_runtime.manifest import Manifest

DEFAULT_MAX_ACCURACY_DROP = 1.0
DEFAULT_MAX_PROB_DIFF = 1e-3
FLOAT_MODES = ("none", "float16")
# Test images used by the gate by default (a seeded subset of larger splits):
# the raw images stay in memory for every file, and 1,000 already resolve an
# accuracy drop of 0.1 point. digits' test split (269) is used whole.
DEFAULT_PARITY_SAMPLES = 1000


@dataclass
class Reference:
    """The test images (raw uint8), their labels and the Keras model's answers."""

    images: Sequence[np.ndarray]
    labels: np.ndarray
    label_names: list[str]
    keras_probs: np.ndarray

    @property
    def keras_accuracy(self) -> float:
        return float(np.mean(self.keras_probs.argmax(1) == self.labels) * 100.0)

    def __len__(self) -> int:
        return len(self.labels)


def keras_reference(model: Any, run_dir: Path, manifest: Manifest, config: dict | None = None,
                    max_samples: int | None = DEFAULT_PARITY_SAMPLES, seed: int = 0, batch_size: int = 64) -> Reference:
    """Load the run's test split (a seeded subset if larger than ``max_samples``) and run Keras on it."""
    from .data import load_split, preprocess_images

    split = load_split(run_dir, "test", max_samples=max_samples, balanced=False, seed=seed, config=config)
    if len(split) == 0:
        raise EdgeDeployError(f"the test split of {run_dir} is empty; the parity gate needs held-out images")
    images = list(split.images)
    outs = []
    for i in range(0, len(images), batch_size):  # preprocessed a chunk at a time: photos are large
        x = preprocess_images(images[i : i + batch_size], manifest)
        outs.append(np.asarray(model(x, training=False), dtype=np.float32))
    probs = np.concatenate(outs)
    if probs.shape != (len(images), manifest.num_classes):
        raise EdgeDeployError(f"the Keras model returned shape {probs.shape} for {len(images)} images of {manifest.num_classes} classes")
    names = list(split.label_names) if split.label_names else list(manifest.labels)
    return Reference(images=images, labels=np.asarray(split.labels, dtype=np.int64), label_names=names, keras_probs=probs)


def open_classifier(path: Path, threads: int | None = None) -> Any:
    """``edge_runtime.ImageClassifier`` on a file this run just wrote.

    The subprocess crash probe is skipped: the file comes straight from the
    converter in this process, not from an untrusted source.
    """
    import inspect

    from edge_runtime import ImageClassifier

    kwargs: dict[str, Any] = {"threads": threads}
    if "probe" in inspect.signature(ImageClassifier.__init__).parameters:
        kwargs["probe"] = "never"
    return ImageClassifier(path, **kwargs)


def run_file(path: Path, ref: Reference, threads: int | None = None, batch_size: int = 1) -> tuple[Any, np.ndarray]:
    """Run ``path`` through ImageClassifier on the raw test images; return (classifier, probs)."""
    clf = open_classifier(path, threads)
    preds = clf.predict_batch(ref.images, batch_size=batch_size)
    return clf, np.stack([p.probabilities for p in preds]).astype(np.float32)


def compare(probs: np.ndarray, ref: Reference) -> dict[str, Any]:
    """Parity metrics of ``probs`` (N, classes) against the Keras reference."""
    kp, labels = ref.keras_probs, ref.labels
    diff = np.abs(probs - kp)
    top_e, top_k = probs.argmax(1), kp.argmax(1)
    acc_e = float(np.mean(top_e == labels) * 100.0)
    acc_k = float(np.mean(top_k == labels) * 100.0)
    per_class: dict[str, float] = {}
    for c, name in enumerate(ref.label_names):
        mask = labels == c
        if mask.any():
            per_class[name] = round(float((np.mean(top_k[mask] == c) - np.mean(top_e[mask] == c)) * 100.0), 3)
    worst = max(per_class, key=lambda k: per_class[k]) if per_class else None
    if worst is not None and per_class[worst] <= 0:
        worst = None  # no class lost accuracy
    return {
        "parity_split": "test",
        "parity_samples": int(len(labels)),
        "top1_agreement": round(float(np.mean(top_e == top_k) * 100.0), 3),
        "max_abs_prob_diff": float(f"{diff.max():.3g}") if diff.size else 0.0,
        "mean_abs_prob_diff": float(f"{diff.mean():.3g}") if diff.size else 0.0,
        "accuracy": round(acc_e, 3),
        "keras_accuracy": round(acc_k, 3),
        "accuracy_drop": round(acc_k - acc_e, 3),
        "worst_class": worst,
        "worst_class_accuracy_drop": per_class.get(worst, 0.0) if worst is not None else 0.0,
        "per_class_accuracy_drop": per_class,
    }


def gate(metrics: dict[str, Any], mode: str, max_accuracy_drop: float = DEFAULT_MAX_ACCURACY_DROP,
         max_prob_diff: float = DEFAULT_MAX_PROB_DIFF) -> str | None:
    """Why the file fails the gate, or None when it passes."""
    drop = metrics["accuracy_drop"]
    if drop > max_accuracy_drop:
        return f"accuracy drop {drop:.2f} points > {max_accuracy_drop:g} (accuracy {metrics['accuracy']:.2f}% vs Keras {metrics['keras_accuracy']:.2f}%)"
    diff = metrics["max_abs_prob_diff"]
    if mode == "none" and diff > max_prob_diff:
        return f"max probability difference {diff:.2g} > {max_prob_diff:g} for a float32 model (a conversion bug)"
    if mode == "float16" and diff > max_prob_diff:
        return (f"max probability difference {diff:.2g} > {max_prob_diff:g} for a float16 model "
                "(float16 weights alone move borderline probabilities by about 1e-3; see --max-prob-diff)")
    return None
