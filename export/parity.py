"""The parity gate's measurements: does the exported file still answer like the trained model?

Each file is run through ``edge_runtime.ImageClassifier``, the code path the
device runs (its own numpy resize, normalization and quantization of the
input), on raw images; the Keras model gets the same images preprocessed as
at training (``train.preprocess_tf.preprocess_images``).

The evidence images (``load_evidence``), up to ``--parity-samples``:

- the labelled held-out images: the run's test and validation splits, and the
  images in the class subfolders of ``--parity-data DIR``. The accuracy drop
  is measured on these only (``parity_samples``, ``parity_split``);
- the unlabelled held-out images: loose images at the top of
  ``--parity-data DIR`` (photos from the deployment camera, say). They need no
  label to show a disagreement, so the disagreement rate and the probability
  differences are measured on every held-out image, labelled or not
  (``agreement_samples``);
- the run's train images outside the calibration sample: a diagnosis only. A
  model has fit its training images, so a quantized file rarely changes its
  answer there; their disagreements are counted on their own
  (``diagnosis_train``) and never enter a verdict.

A ``--parity-data`` file that cannot be read is not evidence, but it is
counted (``unreadable_parity_images``), not dropped in silence.

Measured per file (``compare``; the keys are the report's and the manifest's;
unrounded, the report rounds for display):

- ``top1_agreement`` (%), ``top1_disagreements``, ``max_abs_prob_diff``,
  ``mean_abs_prob_diff``: on every held-out image (``agreement_samples``);
- ``accuracy`` and ``keras_accuracy`` (%), ``accuracy_drop`` in points
  (Keras minus export; positive is worse), the paired counts behind it
  (``paired_counts``: n, b, c and both_wrong), and ``per_class_accuracy_drop``
  with its worst class: on the labelled held-out images.

``gate.py`` weighs these counts into a verdict; ``gate()`` below is the rule
before intervals (``--gate point``).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, Sequence

import numpy as np

from edgedeploy.core.errors import EdgeDeployError
from edgedeploy.runtime.manifest import Manifest

from .gate import DEFAULT_MAX_ACCURACY_DROP, DEFAULT_MAX_PROB_DIFF, FLOAT_MODES, Agreement, ClassEvidence, Evidence, PairedCounts  # noqa: F401 (re-exported)

# Evidence images by default (held-out first, then train images outside the
# calibration sample, a diagnosis): the raw images stay in memory for every file.
DEFAULT_PARITY_SAMPLES = 1000
# Where an evidence image came from. The labelled held-out ones carry the
# accuracy figures; every held-out one (labelled or not) the disagreement rate.
# "calibration-data": the labelled part of --calibration-data kept out of calibration (a source without a run folder).
HELDOUT = ("test", "parity-data", "validation", "calibration-data")
UNLABELLED = "parity-data-unlabelled"  # loose images of --parity-data DIR (label -1)
TRAIN_OUTSIDE_CALIBRATION = "train"
NO_LABEL = -1


@dataclass
class Reference:
    """The evidence images (raw uint8), their labels, where each came from, and Keras's answers."""

    images: Sequence[np.ndarray]
    labels: np.ndarray  # NO_LABEL (-1) for unlabelled images
    label_names: list[str]
    keras_probs: np.ndarray
    origin: np.ndarray | None = None  # per image: HELDOUT, UNLABELLED or "train"; None: all "test"
    unreadable: int = 0  # --parity-data files that could not be read

    def __post_init__(self) -> None:
        if self.origin is None:
            self.origin = np.array(["test"] * len(self.labels))
        self.origin = np.asarray(self.origin)
        self.labels = np.asarray(self.labels, dtype=np.int64)

    @property
    def heldout(self) -> np.ndarray:
        """Mask of the labelled held-out images (the accuracy figures use these only)."""
        return np.isin(self.origin, HELDOUT) & (self.labels >= 0)

    @property
    def heldout_all(self) -> np.ndarray:
        """Mask of every held-out image, labelled or not (the disagreement rate)."""
        return np.isin(self.origin, (*HELDOUT, UNLABELLED))

    @property
    def train(self) -> np.ndarray:
        """Mask of the train images (a diagnosis, never in a verdict)."""
        return self.origin == TRAIN_OUTSIDE_CALIBRATION

    def accuracy_on(self, mask: np.ndarray) -> float:
        return float(np.mean(self.keras_probs.argmax(1)[mask] == self.labels[mask]) * 100.0) if mask.any() else 0.0

    @property
    def keras_accuracy(self) -> float:
        """Keras accuracy (%) on the labelled held-out images."""
        return self.accuracy_on(self.heldout)

    @property
    def test_accuracy(self) -> float:
        return self.accuracy_on(self.origin == "test")

    def counts(self) -> dict[str, int]:
        """Images per origin, in the order HELDOUT, unlabelled, train, then any other origin."""
        known = (*HELDOUT, UNLABELLED, TRAIN_OUTSIDE_CALIBRATION)
        others = sorted(set(self.origin.tolist()) - set(known))
        return {o: int(np.sum(self.origin == o)) for o in (*known, *others) if np.any(self.origin == o)}

    @property
    def heldout_split(self) -> str:
        """The labelled held-out origins joined by "+" ("test+validation"): the report's ``parity_split``."""
        return "+".join(o for o in HELDOUT if np.any((self.origin == o) & (self.labels >= 0)))

    def __len__(self) -> int:
        return len(self.labels)


def _take(images: Any, labels: Any, idx: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
    return [images[int(i)] for i in idx], np.asarray(labels, dtype=np.int64)[idx]


def _fingerprint(image: np.ndarray) -> bytes:
    import hashlib

    a = np.ascontiguousarray(image)
    return hashlib.sha1(str(a.shape).encode() + a.tobytes()).digest()


class EvidenceImages(NamedTuple):
    images: list
    labels: np.ndarray  # NO_LABEL for the unlabelled ones
    origin: np.ndarray
    label_names: list[str]
    unreadable: int  # --parity-data files that could not be read


def load_evidence(run_dir: Path, manifest: Manifest, config: dict | None = None,
                  max_samples: int | None = DEFAULT_PARITY_SAMPLES, seed: int = 0,
                  exclude: Sequence[np.ndarray] = (), parity_data: str | Path | None = None) -> EvidenceImages:
    """The evidence images, held-out first: (images, labels, origin, label names, unreadable).

    Up to ``max_samples`` in all: the test split, ``parity_data`` (its class
    subfolders, then its loose unlabelled images), the validation split, then
    train images; any image equal to one in ``exclude`` (the calibration
    sample) is left out. A source larger than what is left of the budget
    contributes a seeded subset.
    """
    from .data import load_split

    budget = max_samples if max_samples is not None else 10**12
    images: list[np.ndarray] = []
    labels: list[np.ndarray] = []
    origin: list[str] = []
    names: list[str] = []
    banned = {_fingerprint(im) for im in exclude}
    rng = np.random.default_rng(seed)

    def add(imgs: Any, labs: Any, tag: str) -> None:
        keep = [i for i in range(len(labs)) if not banned or _fingerprint(imgs[i]) not in banned]
        room = budget - len(origin)
        if len(keep) > room:
            keep = sorted(rng.permutation(keep)[:room].tolist()) if room > 0 else []
        got, lab = _take(imgs, labs, np.asarray(keep, dtype=np.int64))
        images.extend(got)
        labels.append(lab)
        origin.extend([tag] * len(got))

    test = load_split(run_dir, "test", max_samples=max_samples, balanced=False, seed=seed, config=config)
    if len(test) == 0:
        raise EdgeDeployError(f"the test split of {run_dir} is empty; the parity gate needs held-out images")
    names = list(test.label_names) if test.label_names else list(manifest.labels)
    add(test.images, test.labels, "test")
    unreadable = 0
    if parity_data is not None:
        folder = load_parity_data(parity_data, names)
        unreadable = folder.unreadable
        if len(folder.labelled):
            add(folder.labelled.images, folder.labelled.labels, "parity-data")
        if folder.unlabelled:
            add(folder.unlabelled, np.full(len(folder.unlabelled), NO_LABEL, np.int64), UNLABELLED)
    for split, tag in (("validation", "validation"), ("train", TRAIN_OUTSIDE_CALIBRATION)):
        room = budget - len(origin)
        if room <= 0:
            break
        try:
            part = load_split(run_dir, split, max_samples=room + len(banned), balanced=False, seed=seed, config=config)
        except EdgeDeployError:
            continue  # a run without that split: fewer evidence images, said in the report
        add(part.images, part.labels, tag)
    return EvidenceImages(images, np.concatenate(labels) if labels else np.zeros(0, np.int64), np.asarray(origin),
                          names, unreadable)


class ParityData(NamedTuple):
    labelled: Any  # ImageSet of the class subfolders' images
    unlabelled: list  # the loose images at the top of the folder
    unreadable: int  # files with an image suffix that could not be read


def load_parity_data(folder: str | Path, label_names: list[str]) -> ParityData:
    """``--parity-data DIR``: class subfolders named by the model's labels (labelled images), and/or
    loose images at the top of the folder (unlabelled: they count for the disagreement only).

    An unreadable file is not evidence; it is counted, not dropped in silence.
    """
    from edgedeploy.core.errors import ImageError
    from edgedeploy.runtime.datasets import ImageSet
    from edgedeploy.runtime.preprocess import load_image

    from .calibration import list_images

    d = Path(folder)
    if not d.is_dir():
        raise EdgeDeployError(f"Received --parity-data {str(folder)!r}, expected a folder of images, or of one "
                              "subfolder per class")
    subdirs = sorted(p.name for p in d.iterdir() if p.is_dir())
    unknown = [s for s in subdirs if s not in label_names]
    loose = [p for p in list_images(d) if p.parent == d]
    if unknown or not (subdirs or loose):
        raise EdgeDeployError(f"Received --parity-data {str(folder)!r} with class folders {subdirs or '(none)'}; "
                              f"expected loose images and/or subfolders named by the model's labels: {', '.join(label_names)}")
    unreadable = 0

    def read(p: Path) -> np.ndarray | None:
        nonlocal unreadable
        try:
            return load_image(p, channels=3)
        except ImageError:
            unreadable += 1
            return None

    images, labels = [], []
    for name in subdirs:
        for p in list_images(d / name):
            img = read(p)
            if img is not None:
                images.append(img)
                labels.append(label_names.index(name))
    unlabelled = [img for img in (read(p) for p in loose) if img is not None]
    if not images and not unlabelled:
        raise EdgeDeployError(f"Received --parity-data {str(folder)!r}: no readable image ({unreadable} unreadable)")
    return ParityData(ImageSet(images, np.asarray(labels, dtype=np.int64), list(label_names)), unlabelled, unreadable)


def load_labelled_folder(folder: str | Path, label_names: list[str]) -> Any:
    """The labelled part of ``--parity-data DIR`` (its class subfolders) as an ImageSet."""
    return load_parity_data(folder, label_names).labelled


def keras_reference(model: Any, run_dir: Path, manifest: Manifest, config: dict | None = None,
                    max_samples: int | None = DEFAULT_PARITY_SAMPLES, seed: int = 0, batch_size: int = 64,
                    exclude: Sequence[np.ndarray] = (), parity_data: str | Path | None = None) -> Reference:
    """Load the evidence images (``load_evidence``) and run Keras on them."""
    from .data import preprocess_images

    images, labels, origin, names, unreadable = load_evidence(run_dir, manifest, config, max_samples, seed, exclude,
                                                              parity_data)
    outs = []
    for i in range(0, len(images), batch_size):  # preprocessed a chunk at a time: photos are large
        x = preprocess_images(images[i : i + batch_size], manifest)
        outs.append(np.asarray(model(x, training=False), dtype=np.float32))
    probs = np.concatenate(outs)
    if probs.shape != (len(images), manifest.num_classes):
        raise EdgeDeployError(f"the Keras model returned shape {probs.shape} for {len(images)} images of {manifest.num_classes} classes")
    return Reference(images=images, labels=labels, label_names=names, keras_probs=probs, origin=origin,
                     unreadable=unreadable)


def open_classifier(path: Path, threads: int | None = None) -> Any:
    """``edge_runtime.ImageClassifier`` on a file this run just wrote.

    The subprocess crash probe is skipped: the file comes straight from the
    converter in this process, not from an untrusted source.
    """
    import inspect

    from edgedeploy.runtime import ImageClassifier

    kwargs: dict[str, Any] = {"threads": threads}
    if "probe" in inspect.signature(ImageClassifier.__init__).parameters:
        kwargs["probe"] = "never"
    return ImageClassifier(path, **kwargs)


def run_file(path: Path, ref: Reference, threads: int | None = None, batch_size: int = 1) -> tuple[Any, np.ndarray]:
    """Run ``path`` through ImageClassifier on the raw evidence images; return (classifier, probs)."""
    clf = open_classifier(path, threads)
    preds = clf.predict_batch(ref.images, batch_size=batch_size)
    return clf, np.stack([p.probabilities for p in preds]).astype(np.float32)


def evidence(probs: np.ndarray, ref: Reference) -> Evidence:
    """The counts the gate weighs: paired on the labelled held-out images, disagreements on every held-out
    image; the train images' disagreements apart, as a diagnosis."""
    kp, labels = ref.keras_probs, ref.labels
    top_e, top_k = probs.argmax(1), kp.argmax(1)
    held, held_all = ref.heldout, ref.heldout_all

    def paired(mask: np.ndarray) -> PairedCounts:
        ke, ee = top_k[mask] == labels[mask], top_e[mask] == labels[mask]
        return PairedCounts(n=int(mask.sum()), keras_right_export_wrong=int(np.sum(ke & ~ee)),
                            keras_wrong_export_right=int(np.sum(~ke & ee)), both_wrong=int(np.sum(~ke & ~ee)),
                            keras_right=int(np.sum(ke)))

    def agree(mask: np.ndarray) -> Agreement:
        return Agreement(n=int(mask.sum()), disagreements=int(np.sum(top_e[mask] != top_k[mask])))

    per_class = [ClassEvidence(name, paired(held & (labels == c)), agree(held & (labels == c)))
                 for c, name in enumerate(ref.label_names) if np.any(held & (labels == c))]
    diff = np.abs(probs[held_all] - kp[held_all])
    train = ref.train
    return Evidence(labelled=paired(held), agreement=agree(held_all), per_class=per_class,
                    max_abs_prob_diff=float(diff.max()) if diff.size else 0.0,
                    mean_abs_prob_diff=float(diff.mean()) if diff.size else 0.0,
                    diagnosis=agree(train) if train.any() else None, unreadable=int(ref.unreadable))


def compare(probs: np.ndarray, ref: Reference) -> dict[str, Any]:
    """Parity metrics of ``probs`` (N, classes) against the Keras reference (the report's keys), unrounded."""
    ev = evidence(probs, ref)
    kp, labels, held = ref.keras_probs, ref.labels, ref.heldout
    top_e, top_k = probs.argmax(1), kp.argmax(1)
    acc_e = float(np.mean(top_e[held] == labels[held]) * 100.0) if held.any() else 0.0
    acc_k = ref.keras_accuracy
    per_class: dict[str, float] = {}
    for c, name in enumerate(ref.label_names):
        mask = held & (labels == c)
        if mask.any():
            per_class[name] = float((np.mean(top_k[mask] == c) - np.mean(top_e[mask] == c)) * 100.0)
    worst = max(per_class, key=lambda k: per_class[k]) if per_class else None
    if worst is not None and per_class[worst] <= 0:
        worst = None  # no class lost accuracy
    lab, agr = ev.labelled, ev.agreement
    diag = ev.diagnosis
    return {
        "parity_split": ref.heldout_split,
        "parity_samples": lab.n,
        "agreement_samples": agr.n,
        "evidence_images": ref.counts(),
        "top1_agreement": 100.0 * (1 - agr.disagreements / agr.n) if agr.n else 0.0,
        "top1_disagreements": agr.disagreements,
        "max_abs_prob_diff": ev.max_abs_prob_diff,
        "mean_abs_prob_diff": ev.mean_abs_prob_diff,
        "accuracy": acc_e,
        "keras_accuracy": acc_k,
        "accuracy_drop": acc_k - acc_e,
        "paired_counts": {"n": lab.n, "keras_right_export_wrong": lab.keras_right_export_wrong,
                          "keras_wrong_export_right": lab.keras_wrong_export_right, "both_wrong": lab.both_wrong},
        "worst_class": worst,
        "worst_class_accuracy_drop": per_class.get(worst, 0.0) if worst is not None else 0.0,
        "per_class_accuracy_drop": per_class,
        "unreadable_parity_images": ev.unreadable,
        "diagnosis_train": None if diag is None else {"images": diag.n, "disagreements": diag.disagreements,
                                                      "note": "training images: shown, never part of a verdict"},
    }


def gate(metrics: dict[str, Any], mode: str, max_accuracy_drop: float = DEFAULT_MAX_ACCURACY_DROP,
         max_prob_diff: float = DEFAULT_MAX_PROB_DIFF) -> str | None:
    """Why the file fails the point rule (``--gate point``), or None when it passes."""
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
