"""PNG plots for a run folder (matplotlib, Agg backend, written atomically).

- ``accuracy.png``: accuracy and val_accuracy per epoch;
- ``loss.png``: loss and val_loss per epoch;
- ``confusion_matrix.png``: the test-split confusion matrix with counts;
- ``predictions.png``: a grid of test images, the mistakes first, titled predicted / true label.
- every epoch axis has integer ticks, and a star marks the best epoch (lowest val_loss).
A dashed line marks where fine-tuning started in a two-phase run.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from edgedeploy.core.io import atomic_write_with


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: str | Path) -> Path:
    plt = _plt()
    try:
        atomic_write_with(path, lambda f: fig.savefig(f, format="png", dpi=110, bbox_inches="tight"), force=True)
    finally:
        plt.close(fig)
    return Path(path)


TITLES = {"accuracy": "Accuracy per epoch (train and validation)", "loss": "Loss per epoch (train and validation)"}


def plot_curve(history: dict[str, list], key: str, path: str | Path, fine_tune_start: int | None = None,
               best_epoch: int | None = None) -> Path:
    """``key`` and ``val_<key>`` against the epoch number (integer ticks), the best epoch marked."""
    return _save(curve_figure(history, key, fine_tune_start, best_epoch), path)


def curve_figure(history: dict[str, list], key: str, fine_tune_start: int | None = None, best_epoch: int | None = None) -> Any:
    plt = _plt()
    from matplotlib.ticker import MaxNLocator

    fig, ax = plt.subplots(figsize=(6, 4))
    epochs = history.get("epoch") or list(range(1, len(history.get(key, [])) + 1))
    for k, style, name in ((key, "-o", "train"), ("val_" + key, "-s", "validation")):
        vals = history.get(k) or []
        if vals:
            ax.plot(epochs[: len(vals)], vals, style, markersize=4, label=name)
    val = history.get("val_" + key) or []
    if best_epoch and best_epoch in epochs[: len(val)]:
        y = val[epochs.index(best_epoch)]
        ax.plot([best_epoch], [y], marker="*", markersize=16, color="#d62728", linestyle="none", zorder=5,
                label=f"best epoch {best_epoch} (lowest val_loss)")
    if fine_tune_start:
        ax.axvline(fine_tune_start - 0.5, color="gray", linestyle="--", linewidth=1, label="fine-tuning starts")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if len(epochs) == 1:
        ax.set_xlim(epochs[0] - 1, epochs[0] + 1)
    ax.set_xlabel("epoch")
    ax.set_ylabel(key)
    ax.set_title(TITLES.get(key, f"{key} per epoch"))
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    return fig


def plot_confusion(cm: Sequence[Sequence[int]], labels: Sequence[str], path: str | Path) -> Path:
    plt = _plt()
    cm = np.asarray(cm)
    k = len(labels)
    size = max(4.0, min(14.0, 0.6 * k + 2))
    fig, ax = plt.subplots(figsize=(size, size))
    im = ax.imshow(cm, cmap="Blues")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    tilt = k > 4 and max((len(str(x)) for x in labels), default=0) > 3  # long names only
    ax.set_xticks(range(k), labels=list(labels), rotation=45 if tilt else 0, ha="right" if tilt else "center")
    ax.set_yticks(range(k), labels=list(labels))
    ax.set_xlabel("predicted label")
    ax.set_ylabel("true label")
    total = int(cm.sum()) if cm.size else 0
    right = int(np.trace(cm)) if cm.size else 0
    ax.set_title(f"Confusion matrix, test split: {right} of {total} right")
    if k <= 30:
        mid = (cm.min() + cm.max()) / 2 if cm.size else 0  # the colour scale spans min..max
        for i in range(k):
            for j in range(k):
                ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=8,
                        color="white" if cm.size and cm.max() > cm.min() and cm[i, j] > mid else "black")
    return _save(fig, path)


def plot_predictions(
    images: Sequence[np.ndarray],
    y_true: Sequence[int],
    y_pred: Sequence[int],
    scores: Sequence[float],
    labels: Sequence[str],
    path: str | Path,
    cols: int = 4,
) -> Path:
    """A grid of uint8 test images, each titled "predicted <label> (<confidence>)" over "true <label>".

    Green titles are right, red ones wrong; the suptitle says how many of each
    the grid holds (a sample, not the accuracy).
    """
    return _save(predictions_figure(images, y_true, y_pred, scores, labels, cols), path)


def predictions_figure(images: Sequence[np.ndarray], y_true: Sequence[int], y_pred: Sequence[int], scores: Sequence[float],
                       labels: Sequence[str], cols: int = 4) -> Any:
    plt = _plt()
    n = len(images)
    rows = max(1, int(np.ceil(n / cols)))
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 2.4, rows * 2.6 + 0.6), layout="constrained")
    wrong = 0
    for ax, i in zip(np.ravel(axes), range(rows * cols)):
        ax.axis("off")
        if i >= n:
            continue
        img = np.asarray(images[i])
        ax.imshow(img.squeeze(), cmap="gray" if img.ndim == 2 or img.shape[-1] == 1 else None,
                  interpolation="nearest" if max(img.shape[:2]) < 64 else "antialiased")
        ok = int(y_pred[i]) == int(y_true[i])
        wrong += not ok
        ax.set_title(f"predicted {labels[int(y_pred[i])]} ({scores[i]:.2f})\ntrue {labels[int(y_true[i])]}",
                     fontsize=9, color="green" if ok else "red")
    fig.suptitle(f"Test images: {n - wrong} predicted right (green), {wrong} wrong (red)\n"
                 f"title: predicted label (confidence), then the true label", fontsize=11)
    return fig
