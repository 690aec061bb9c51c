"""Accuracy of a labelled folder: ``edge-infer MODEL DIR --labels-from-folders``.

Images sit under ``DIR/<label>/...`` (any depth below the label folder, the
same walk as edge-infer's folder input). Every label folder must name one of
the model's labels (exactly, else case-insensitively); an unknown folder is a
one-line error that lists the unknown names and the model's labels. The
answer is what ``yolo val`` prints for a classifier: accuracy, per-class
precision, recall, F1 and support, and the confusion matrix (rows = truth,
columns = prediction).

The metrics are ``edgedeploy.core.metrics.classification_metrics``, the one
definition train-model's metrics.json and benchmarks/accuracy.py use too
(numpy only: a Pi has no scikit-learn). Top-5 accuracy is reported only when
the model has more than 5 classes.
"""
from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

from edgedeploy.core.errors import EdgeDeployError
from edgedeploy.core.metrics import classification_metrics, top_k_accuracy

if TYPE_CHECKING:
    from .classifier import ImageClassifier

__all__ = ["scan_labelled_folder", "evaluate_folder", "FolderEvaluation", "format_evaluation", "run_labelled_folder"]
TOP_K = 5  # top-k accuracy, shown only for models with more classes than this


def _match_folders(names: Sequence[str], labels: Sequence[str], root: Path) -> dict[str, int]:
    """Folder name -> label index: exact first, else a unique case-insensitive match."""
    exact = {lab: i for i, lab in enumerate(labels)}
    folded: dict[str, list[int]] = {}
    for i, lab in enumerate(labels):
        folded.setdefault(lab.casefold(), []).append(i)
    out, unknown = {}, []
    for name in names:
        if name in exact:
            out[name] = exact[name]
        elif len(folded.get(name.casefold(), [])) == 1:
            out[name] = folded[name.casefold()][0]
        else:
            unknown.append(name)
    if unknown:
        shown = ", ".join(labels[:20]) + (", ..." if len(labels) > 20 else "")
        raise EdgeDeployError(f"Received folder(s) {', '.join(repr(u) for u in unknown)} under {root}, expected folders "
                              f"named by the model's labels: {shown}")
    return out


def scan_labelled_folder(root: str | os.PathLike, labels: Sequence[str],
                         walk: Callable[[Path], list[Path]]) -> list[tuple[Path, int]]:
    """(image path, true label index) for every image under ``root/<label>/``.

    Args:
        root: the folder; each subfolder (not hidden) is a label.
        labels: the model's labels.
        walk: lists the images under a folder (edge-infer's recursive walk).

    Raises:
        EdgeDeployError: ``root`` is not a folder, has no label folders or no
            images, or a folder names no label (one line listing them).
    """
    base = Path(root)
    if not base.is_dir():
        raise EdgeDeployError(f"Received {str(root)!r} with --labels-from-folders, expected a folder of label folders")
    real = base.resolve()
    folders = sorted(d for d in base.iterdir() if d.is_dir() and not d.name.startswith(".") and d.resolve().is_relative_to(real))
    if not folders:
        raise EdgeDeployError(f"Received {str(root)!r} with --labels-from-folders, expected one subfolder per label; found none")
    index = _match_folders([d.name for d in folders], labels, base)
    items = [(path, index[d.name]) for d in folders for path in walk(d)]
    if not items:
        raise EdgeDeployError(f"Received {str(root)!r} with --labels-from-folders: its label folders hold no images")
    return items


@dataclass
class FolderEvaluation:
    """The outcome of one labelled folder: metrics plus what could not be read."""

    folder: str
    model: str
    metrics: dict[str, Any]
    seconds: float
    failed: list[dict[str, str]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        n = self.metrics["num_samples"]
        return {"folder": self.folder, "model": self.model, **self.metrics, "n_failed": len(self.failed),
                "failed": self.failed, "seconds": round(self.seconds, 3),
                "images_per_s": round(n / self.seconds, 1) if self.seconds > 0 else None}


def evaluate_folder(clf: "ImageClassifier", root: str | os.PathLike, walk: Callable[[Path], list[Path]],
                    batch_size: int = 8, on_error: Callable[[str, str], None] | None = None) -> FolderEvaluation:
    """Classify every image under ``root/<label>/`` and score the answers.

    Unreadable images are passed to ``on_error(path, reason)``, listed in
    ``failed`` and left out of the metrics.
    """
    import numpy as np

    labels = list(clf.manifest.labels)
    items = scan_labelled_folder(root, labels, walk)
    y_true: list[int] = []
    y_pred: list[int] = []
    scores: list[Any] = []
    failed: list[dict[str, str]] = []
    t0 = time.perf_counter()
    for start in range(0, len(items), batch_size):
        xs, truth = [], []
        for path, y in items[start:start + batch_size]:
            try:
                xs.append(clf.preprocess(path))
            except EdgeDeployError as exc:
                failed.append({"path": str(path), "error": str(exc)})
                if on_error:
                    on_error(str(path), str(exc))
                continue
            truth.append(y)
        if xs:
            probs = clf.predict_tensor(np.stack(xs), batch_size=batch_size)
            y_pred.extend(int(i) for i in probs.argmax(axis=1))
            y_true.extend(truth)
            scores.append(probs)
    seconds = time.perf_counter() - t0
    if not y_true:
        raise EdgeDeployError(f"no image under {root} could be read ({len(failed)} failed)")
    metrics = classification_metrics(y_true, y_pred, labels)
    top_k = top_k_accuracy(y_true, np.concatenate(scores), TOP_K)
    if top_k is not None:  # only when it can differ from 100%: more classes than k
        metrics[f"top{TOP_K}_accuracy"] = top_k
    return FolderEvaluation(str(root), str(clf.path), metrics, seconds, failed)


def format_evaluation(ev: FolderEvaluation, as_json: bool = False) -> str:
    """The report: a JSON object, or the yolo-val-like text block."""
    if as_json:
        return json.dumps(ev.to_dict())
    m = ev.metrics
    rows = [(name, c) for name, c in m["per_class"].items() if name in m["averaged_over"]]
    width = max([len("all")] + [len(name) for name, _ in rows])
    head = f"{'class':>{width}}  {'images':>7}  {'precision':>9}  {'recall':>7}  {'f1':>6}"
    macro = m["macro_avg"]
    lines = [f"{ev.model} on {ev.folder}: {m['num_samples']} images, {len(rows)} classes, {ev.seconds:.2f} s",
             head,
             f"{'all':>{width}}  {m['num_samples']:>7}  {macro['precision']:>9.3f}  {macro['recall']:>7.3f}  {macro['f1']:>6.3f}"]
    for name, c in rows:
        lines.append(f"{name:>{width}}  {c['support']:>7}  {c['precision']:>9.3f}  {c['recall']:>7.3f}  {c['f1']:>6.3f}")
    top = f", top-{TOP_K}: {m[f'top{TOP_K}_accuracy']:.4f}" if f"top{TOP_K}_accuracy" in m else ""
    lines.append(f"accuracy top-1: {m['accuracy']:.4f} ({m['correct']}/{m['num_samples']}){top}; 'all' is the macro average")
    keep = [m["labels"].index(name) for name, _ in rows]
    if len(keep) <= 20:
        names = [m["labels"][i] for i in keep]
        cw = max(5, max(len(n) for n in names), max(len(str(m["confusion_matrix"][i][j])) for i in keep for j in keep))
        lines.append("confusion matrix (rows: true label, columns: predicted)")
        lines.append(" " * (width + 2) + "  ".join(f"{n:>{cw}}" for n in names))
        for i in keep:
            lines.append(f"{m['labels'][i]:>{width}}  " + "  ".join(f"{m['confusion_matrix'][i][j]:>{cw}}" for j in keep))
    else:
        lines.append(f"confusion matrix: {len(keep)} classes, too wide to print; use --json")
    if ev.failed:
        lines.append(f"{len(ev.failed)} image(s) could not be read and were left out")
    return "\n".join(lines)


def run_labelled_folder(clf: "ImageClassifier", folder: str, as_json: bool, batch_size: int,
                        walk: Callable[[Path], list[Path]], prog: str, out=None, err=None) -> int:
    """The ``--labels-from-folders`` command: the report on ``out``; exit 1 when some images could not be read."""
    out, err = out or sys.stdout, err or sys.stderr

    def on_error(path: str, reason: str) -> None:
        print(f"{prog}: error: {reason}" if path in reason else f"{prog}: error: {path}: {reason}", file=err)

    ev = evaluate_folder(clf, folder, walk, batch_size, on_error)
    print(format_evaluation(ev, as_json), file=out, flush=True)
    return 1 if ev.failed else 0
