"""Classification metrics with numpy, and the reports written to a run folder.

``classification_metrics`` computes, from true and predicted class indices:
accuracy, the confusion matrix (rows = true class, columns = predicted),
per-class precision, recall, F1 and support, and macro and weighted
averages. A class never predicted has precision 0; a class absent from the
labels has recall 0 (scikit-learn's ``zero_division=0``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from edgedeploy.core.io import atomic_write_json, atomic_write_text


def confusion_matrix(y_true: Sequence[int], y_pred: Sequence[int], num_classes: int) -> np.ndarray:
    t = np.asarray(y_true, dtype=np.int64).ravel()
    p = np.asarray(y_pred, dtype=np.int64).ravel()
    if t.shape != p.shape:
        raise ValueError(f"y_true and y_pred differ in length: {t.shape[0]} vs {p.shape[0]}")
    if t.size and (t.min() < 0 or p.min() < 0 or t.max() >= num_classes or p.max() >= num_classes):
        raise ValueError(f"class indices must be in [0, {num_classes})")
    cm = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(cm, (t, p), 1)
    return cm


def _div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    return np.divide(a, b, out=np.zeros_like(a), where=b > 0)


def classification_metrics(y_true: Sequence[int], y_pred: Sequence[int], label_names: Sequence[str]) -> dict[str, Any]:
    """Accuracy, per-class precision/recall/F1/support, macro/weighted averages, confusion matrix."""
    k = len(label_names)
    cm = confusion_matrix(y_true, y_pred, k)
    tp = np.diag(cm).astype(np.float64)
    support = cm.sum(axis=1)
    predicted = cm.sum(axis=0)
    precision = _div(tp, predicted)
    recall = _div(tp, support)
    f1 = _div(2 * precision * recall, precision + recall)
    n = int(cm.sum())
    weights = _div(support, np.full(k, n)) if n else np.zeros(k)
    per_class = {
        str(name): {
            "precision": float(precision[i]),
            "recall": float(recall[i]),
            "f1": float(f1[i]),
            "support": int(support[i]),
        }
        for i, name in enumerate(label_names)
    }
    return {
        "accuracy": float(tp.sum() / n) if n else 0.0,
        "num_samples": n,
        "labels": [str(x) for x in label_names],
        "per_class": per_class,
        "macro_avg": {
            "precision": float(precision.mean()) if k else 0.0,
            "recall": float(recall.mean()) if k else 0.0,
            "f1": float(f1.mean()) if k else 0.0,
        },
        "weighted_avg": {
            "precision": float((precision * weights).sum()),
            "recall": float((recall * weights).sum()),
            "f1": float((f1 * weights).sum()),
        },
        "confusion_matrix": cm.tolist(),
    }


def metrics_markdown(metrics: dict[str, Any], title: str = "Test-split metrics") -> str:
    """A readable report: headline, per-class table, confusion matrix."""
    lines = [f"# {title}", ""]
    lines.append(f"- accuracy: **{metrics['accuracy'] * 100:.2f}%** on {metrics['num_samples']} images")
    m = metrics["macro_avg"]
    lines.append(f"- macro average: precision {m['precision']:.4f}, recall {m['recall']:.4f}, F1 {m['f1']:.4f}")
    extra = {k: v for k, v in metrics.items() if k in ("model", "dataset", "image_size", "split")}
    for k, v in extra.items():
        lines.append(f"- {k}: {v}")
    lines += ["", "| class | precision | recall | F1 | support |", "| --- | ---: | ---: | ---: | ---: |"]
    for name, row in metrics["per_class"].items():
        lines.append(f"| {name} | {row['precision']:.4f} | {row['recall']:.4f} | {row['f1']:.4f} | {row['support']} |")
    lines.append(f"| **macro avg** | {m['precision']:.4f} | {m['recall']:.4f} | {m['f1']:.4f} | {metrics['num_samples']} |")
    w = metrics["weighted_avg"]
    lines.append(f"| weighted avg | {w['precision']:.4f} | {w['recall']:.4f} | {w['f1']:.4f} | {metrics['num_samples']} |")
    labels = metrics["labels"]
    lines += ["", "## Confusion matrix", "", "Rows: true class. Columns: predicted class.", ""]
    lines.append("| true \\ predicted | " + " | ".join(labels) + " |")
    lines.append("| --- | " + " | ".join("---:" for _ in labels) + " |")
    for name, row in zip(labels, metrics["confusion_matrix"]):
        lines.append(f"| {name} | " + " | ".join(str(v) for v in row) + " |")
    return "\n".join(lines) + "\n"


def write_metrics(run_dir: str | Path, metrics: dict[str, Any]) -> None:
    """``metrics.json`` and ``metrics.md`` in ``run_dir`` (atomic, replacing)."""
    run = Path(run_dir)
    atomic_write_json(run / "metrics.json", metrics, force=True)
    atomic_write_text(run / "metrics.md", metrics_markdown(metrics), force=True)


def predict_dataset(model: Any, dataset: Any) -> tuple[np.ndarray, np.ndarray]:
    """(true labels, class probabilities) over a batched (x, y) dataset."""
    ys, probs = [], []
    for x, y in dataset:
        probs.append(np.asarray(model(x, training=False)))
        ys.append(np.asarray(y))
    if not ys:
        return np.zeros(0, np.int64), np.zeros((0, 0), np.float32)
    return np.concatenate(ys).astype(np.int64), np.concatenate(probs).astype(np.float32)
