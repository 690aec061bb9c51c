"""The test-split reports written to a run folder: metrics.json and metrics.md.

The numbers come from ``edgedeploy.core.metrics.classification_metrics``, the one
definition ``edge-infer --labels-from-folders`` and the benchmarks use too.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edgedeploy.core.io import atomic_write_json, atomic_write_text
from edgedeploy.core.runfolder import METRICS, METRICS_MD

__all__ = ["metrics_markdown", "write_metrics", "predict_dataset"]


def metrics_markdown(metrics: dict[str, Any], title: str = "Test-split metrics") -> str:
    """A readable report: headline, per-class table, confusion matrix."""
    lines = [f"# {title}", ""]
    lines.append(f"- accuracy: **{metrics['accuracy'] * 100:.2f}%** on {metrics['num_samples']} images")
    m = metrics["macro_avg"]
    lines.append(f"- macro average: precision {m['precision']:.4f}, recall {m['recall']:.4f}, F1 {m['f1']:.4f} "
                 f"(over the {len(metrics['averaged_over'])} classes present in the truth or the predictions)")
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
    atomic_write_json(run / METRICS, metrics, force=True)
    atomic_write_text(run / METRICS_MD, metrics_markdown(metrics), force=True)


def predict_dataset(model: Any, dataset: Any) -> tuple[np.ndarray, np.ndarray]:
    """(true labels, class probabilities) over a batched (x, y) dataset."""
    ys, probs = [], []
    for x, y in dataset:
        probs.append(np.asarray(model(x, training=False)))
        ys.append(np.asarray(y))
    if not ys:
        return np.zeros(0, np.int64), np.zeros((0, 0), np.float32)
    return np.concatenate(ys).astype(np.int64), np.concatenate(probs).astype(np.float32)
