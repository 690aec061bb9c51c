"""The one ``classification_metrics``: train-model's metrics.json, ``edge-infer --labels-from-folders``,
``benchmarks/accuracy.py`` and ``compare.py`` all call it, so they give the same numbers on the same predictions.

From true and predicted class indices it computes accuracy, the confusion matrix (rows = true class,
columns = predicted), per-class precision, recall, F1 and support, and macro and weighted averages.

Conventions (scikit-learn's defaults, ``labels=None, zero_division=0``):

- a class never predicted has precision 0; a class with no true image has recall 0;
- the macro and weighted averages run over the classes that occur in the truth or in the
  predictions (``averaged_over``). A 10-class model scored on a 2-class folder is averaged over
  those 2 classes, not diluted by 8 classes it never saw;
- top-k accuracy is reported only when k < the number of classes (at k >= classes it is 100% by definition).

The schema (``SCHEMA_KEYS``) is the one every report writes.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

__all__ = ["classification_metrics", "confusion_matrix", "top_k_accuracy", "SCHEMA_KEYS"]

SCHEMA_KEYS = ("accuracy", "num_samples", "correct", "labels", "per_class", "macro_avg", "weighted_avg",
               "averaged_over", "confusion_matrix")


def confusion_matrix(y_true: Sequence[int], y_pred: Sequence[int], num_classes: int) -> np.ndarray:
    """``cm[i, j]``: images of true class i predicted as class j."""
    t = np.asarray(y_true, dtype=np.int64).ravel()
    p = np.asarray(y_pred, dtype=np.int64).ravel()
    if t.shape != p.shape:
        raise ValueError(f"y_true and y_pred differ in length: {t.shape[0]} vs {p.shape[0]}")
    if t.size and (t.min() < 0 or p.min() < 0 or t.max() >= num_classes or p.max() >= num_classes):
        raise ValueError(f"class indices must be in [0, {num_classes}), got {t.min()}..{t.max()} and {p.min()}..{p.max()}")
    cm = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(cm, (t, p), 1)
    return cm


def _div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    return np.divide(a, b, out=np.zeros_like(a), where=np.asarray(b) > 0)


def _average(values: np.ndarray, mask: np.ndarray, weights: np.ndarray | None = None) -> float:
    if not mask.any():
        return 0.0
    w = None if weights is None else weights[mask]
    if w is not None and w.sum() == 0:
        return 0.0
    return float(np.average(values[mask], weights=w))


def classification_metrics(y_true: Sequence[int], y_pred: Sequence[int], labels: Sequence[str]) -> dict[str, Any]:
    """Accuracy, per-class precision/recall/F1/support, macro/weighted averages, confusion matrix.

    Args:
        y_true, y_pred: class indices into ``labels``.
        labels: the class names, in index order.

    Returns:
        A dict with ``SCHEMA_KEYS``; ``per_class`` maps each label to its precision, recall,
        f1, support (true images) and predicted (images predicted as it).
    """
    k = len(labels)
    cm = confusion_matrix(y_true, y_pred, k)
    tp = np.diag(cm).astype(np.float64)
    support = cm.sum(axis=1).astype(np.float64)
    predicted = cm.sum(axis=0).astype(np.float64)
    precision, recall = _div(tp, predicted), _div(tp, support)
    f1 = _div(2 * precision * recall, precision + recall)
    present = (support > 0) | (predicted > 0)
    n = int(cm.sum())
    per_class = {str(name): {"precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]),
                             "support": int(support[i]), "predicted": int(predicted[i])}
                 for i, name in enumerate(labels)}
    return {
        "accuracy": float(tp.sum() / n) if n else 0.0,
        "num_samples": n,
        "correct": int(tp.sum()),
        "labels": [str(x) for x in labels],
        "per_class": per_class,
        "macro_avg": {"precision": _average(precision, present), "recall": _average(recall, present),
                      "f1": _average(f1, present)},
        "weighted_avg": {"precision": _average(precision, present, support), "recall": _average(recall, present, support),
                         "f1": _average(f1, present, support)},
        "averaged_over": [str(labels[i]) for i in np.flatnonzero(present)],
        "confusion_matrix": cm.tolist(),
    }


def top_k_accuracy(y_true: Sequence[int], scores: np.ndarray, k: int) -> float | None:
    """Share of rows whose true class is among the k highest scores; None when k >= the number of classes."""
    s = np.asarray(scores)
    if s.ndim != 2 or k >= s.shape[1]:
        return None
    t = np.asarray(y_true, dtype=np.int64)
    if t.size == 0:
        return 0.0
    top = np.argpartition(-s, k - 1, axis=1)[:, :k]
    return float((top == t[:, None]).any(axis=1).mean())
