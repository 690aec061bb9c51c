"""Accuracy, per-class precision/recall/F1, confusion matrix and agreement with a reference model.

    python benchmarks/accuracy.py MODEL_OR_EXPORT_DIR... (--dataset digits | --data DIR | --run RUN)
        [--reference MODEL] [--limit N] [--threads N] [--backend NAME] [--json OUT] [--quick]

- ``--dataset digits``: the held-out test split of the embedded digits, the
  same split train/ holds out (``edge_runtime.datasets.load_digits("test")``).
- ``--data DIR``: one subfolder per class, named by the label. Every file in
  a class folder is tried; the ones that cannot be read as images are
  counted and listed with the reason. Symlinks that leave DIR are not followed.
- ``--run RUN``: the held-out test split of a train-model run folder, read
  from its ``splits.json`` (the digits split, or the listed files of a
  ``--data`` folder), so the training images are never scored.

A class of the data that a model's manifest does not list fails before any
model runs (one line).

Images are decoded once and preprocessed per model exactly as edge-infer
does (``edge_runtime.preprocess``), then run through ``ImageClassifier``.
All metrics are computed with numpy (no scikit-learn, which a Pi lacks).
Macro averages are over the classes that occur in the truth or the
predictions, as scikit-learn does. ``--quick`` scores the first 100 images
(round-robin over the classes for ``--data``); ``--limit N`` picks any N.
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any, Sequence

from edgedeploy.bench import _common as C
from edgedeploy.core.errors import EdgeDeployError, ImageError
from edgedeploy.core.metrics import classification_metrics
from edgedeploy.core.runfolder import SPLITS, RunFolder

PROG = "accuracy.py"
DATASETS = ("digits",)
QUICK_LIMIT = 100


# -- data ----------------------------------------------------------------------------
class EvalSet:
    """Decoded uint8 images (H, W, 3; sizes may differ), their true label names, and what was skipped."""

    def __init__(self, name: str, images: list, truth: list[str], class_names: list[str],
                 unreadable: list[dict[str, str]] | None = None, warnings: list[str] | None = None, files: list[str] | None = None):
        self.name, self.images, self.truth, self.class_names = name, images, truth, class_names
        self.unreadable = unreadable or []
        self.warnings = warnings or []
        self.files = files

    def limit(self, n: int | None) -> "EvalSet":
        if n is None or n >= len(self.images):
            return self
        return EvalSet(self.name, self.images[:n], self.truth[:n], self.class_names, self.unreadable, self.warnings,
                       self.files[:n] if self.files else None)

    def describe(self) -> dict[str, Any]:
        counts = {c: 0 for c in self.class_names}
        for t in self.truth:
            counts[t] = counts.get(t, 0) + 1
        return {"name": self.name, "n_images": len(self.images), "class_counts": counts, "n_unreadable": len(self.unreadable),
                "unreadable": self.unreadable, "warnings": self.warnings}


def load_dataset(name: str, split: str = "test") -> EvalSet:
    if name not in DATASETS:
        raise EdgeDeployError(f"unknown dataset {name!r}; expected one of: {', '.join(DATASETS)} (or --data DIR)")
    from edgedeploy.runtime.datasets import load_digits

    ds = load_digits(split)
    return EvalSet(f"digits ({split} split, {len(ds)} images)", list(ds.images), [ds.label_names[i] for i in ds.labels],
                   list(ds.label_names))


def load_run(run_dir: str | os.PathLike, split: str = "test") -> EvalSet:
    """The held-out ``split`` of a train-model run folder, read from its ``splits.json`` (no TensorFlow).

    train/ writes ``splits.json`` into the run folder: ``{"dataset": "digits", ...}``
    for the embedded digits (split by ``edge_runtime.datasets``), or, for
    ``--data DIR``, ``{"dataset": "folder", "root": DIR, "classes": [...],
    "splits": {"test": [[relative path, class index], ...], ...}}``. A TFDS run
    needs tensorflow-datasets to read its split, which benchmarks never import.
    """

    from edgedeploy.runtime.preprocess import load_image

    folder = RunFolder(run_dir)
    run = folder.path
    if not run.is_dir():
        raise EdgeDeployError(f"Received --run {str(run_dir)!r}, expected a train-model run folder (it holds {SPLITS})")
    if not folder.splits_path.is_file():
        raise EdgeDeployError(f"Received --run {str(run_dir)!r}, but it has no {SPLITS}; is it a train-model run folder?")
    record = folder.splits()
    name = record.get("dataset") if isinstance(record, dict) else None
    if name in DATASETS:
        data = load_dataset(name, split)
        data.name = f"{data.name} of run {run.name}"
        return data
    if name != "folder":
        raise EdgeDeployError(f"run {run} was trained on {name!r} (TensorFlow Datasets); benchmarks do not import TensorFlow, "
                              "so score it with --data DIR")
    try:
        root, classes, items = Path(record["root"]), list(record["classes"]), record["splits"][split]
    except (KeyError, TypeError):
        raise EdgeDeployError(f"{folder.splits_path} has no {split!r} split with root and classes; was it written by train-model?") from None
    if not root.is_dir():
        raise EdgeDeployError(f"the data folder of run {run} is gone: {root} (named in {folder.splits_path})")
    images, truth, files, unreadable = [], [], [], []
    for rel, y in items:
        f = root / rel
        try:
            images.append(load_image(f, 3))
        except ImageError as exc:
            unreadable.append({"path": str(f), "error": str(exc)})
            continue
        truth.append(classes[int(y)])
        files.append(str(f))
    if not images:
        raise EdgeDeployError(f"none of the {len(items)} {split} images of run {run} could be read (first: {unreadable[:1]})")
    return EvalSet(f"{split} split of run folder {run} ({len(images)} images from {root})", images, truth, classes, unreadable,
                   files=files)


def check_labels(models: Sequence[Path], data: EvalSet) -> None:
    """Fail before any timing when a model's manifest lacks a class of the data (one line)."""
    for m in models:
        manifest = C.read_manifest(m)
        if manifest is None:  # labels come from the runtime later; checked then
            continue
        missing = sorted(set(data.truth) - set(manifest.labels))
        if missing:
            labels = manifest.labels
            raise EdgeDeployError(f"class(es) {', '.join(repr(x) for x in missing[:8])}{', ...' if len(missing) > 8 else ''} "
                                  f"in {data.name} are not among the labels of {m.name} "
                                  f"({', '.join(labels[:12])}{', ...' if len(labels) > 12 else ''})")


def _inside(path: Path, root: Path) -> bool:
    try:
        path.resolve().relative_to(root)
        return True
    except ValueError:
        return False


def load_folder(folder: str | os.PathLike) -> EvalSet:
    """One subfolder per class; unreadable files counted, symlinks out of the folder skipped."""
    from edgedeploy.runtime.preprocess import load_image

    root = Path(folder)
    if not root.exists():
        raise EdgeDeployError(f"data folder not found: {root}")
    if not root.is_dir():
        raise EdgeDeployError(f"--data expects a folder with one subfolder per class, got a file: {root}")
    real_root = root.resolve()
    classes = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith(".") and _inside(d, real_root))
    if not classes:
        raise EdgeDeployError(f"data folder {root} has no class subfolders; expected one subfolder per class, named by the label")
    per_class: list[list[tuple[Path, Any]]] = []
    unreadable: list[dict[str, str]] = []
    warnings: list[str] = []
    for d in classes:
        got = []
        for f in sorted(d.iterdir()):
            if f.name.startswith(".") or f.is_dir():
                continue
            if not _inside(f, real_root):
                unreadable.append({"path": str(f), "error": "symlink pointing outside the data folder (not followed)"})
                continue
            try:
                got.append((f, load_image(f, 3)))
            except ImageError as exc:
                unreadable.append({"path": str(f), "error": str(exc)})
        if not got:
            warnings.append(f"class folder {d.name!r} has no readable images")
        per_class.append(got)
    # Round-robin over the classes, so that --limit keeps every class represented.
    images, truth, files = [], [], []
    for i in range(max(len(g) for g in per_class)):
        for d, g in zip(classes, per_class):
            if i < len(g):
                files.append(str(g[i][0]))
                images.append(g[i][1])
                truth.append(d.name)
    if not images:
        raise EdgeDeployError(f"data folder {root} has no readable images ({len(unreadable)} unreadable files)")
    return EvalSet(str(root), images, truth, [d.name for d in classes], unreadable, warnings, files)



# -- running models ---------------------------------------------------------------------
def predict_probs(model: Path, data: EvalSet, threads: int | None = None, backend: str = "auto", batch_size: int = 32):
    """Probabilities (N, classes) of one model over the set, the model's labels, and the seconds it took."""
    import numpy as np

    from edgedeploy.runtime.classifier import ImageClassifier

    clf = ImageClassifier(model, threads=threads, backend=backend)
    t0 = time.perf_counter()
    x = np.stack([clf.preprocess(im) for im in data.images])
    probs = clf.predict_tensor(x, batch_size=batch_size)
    return probs, list(clf.manifest.labels), time.perf_counter() - t0, clf.backend.name


def _backend_for(model: Path, backend: str) -> str:
    """The named backend where it reads this file type, else auto (a folder may mix .tflite and .onnx)."""
    from edgedeploy.runtime.backends import BACKENDS

    if backend == "auto" or BACKENDS.get(backend).reads(model):
        return backend
    return "auto"


def _truth_indices(data: EvalSet, labels: list[str], model: Path):
    import numpy as np

    index = {lab: i for i, lab in enumerate(labels)}
    missing = sorted(set(data.truth) - set(index))
    if missing:
        raise EdgeDeployError(f"class(es) {', '.join(repr(m) for m in missing)} in {data.name} are not among the labels of "
                              f"{model.name} ({', '.join(labels[:12])}{', ...' if len(labels) > 12 else ''})")
    return np.array([index[t] for t in data.truth], np.int64)


def evaluate(models: Sequence[Path], data: EvalSet, reference: Path | None = None, threads: int | None = None,
             backend: str = "auto", progress: bool = True) -> list[dict[str, Any]]:
    """Score every model on ``data``; with a reference, also top-1 agreement and probability differences."""
    import numpy as np

    ref_probs = None
    todo = list(models)
    ref_in_models = reference is not None and any(m.resolve() == reference.resolve() for m in todo)
    bar = C.Progress(len(todo) + (reference is not None and not ref_in_models), "accuracy", enabled=progress)
    cache: dict[Path, tuple] = {}
    if reference is not None:
        cache[reference.resolve()] = predict_probs(reference, data, threads, _backend_for(reference, backend))
        ref_probs = cache[reference.resolve()][0]
        if not ref_in_models:
            bar.update()
    rows = []
    for m in todo:
        probs, labels, secs, bname = cache.get(m.resolve()) or predict_probs(m, data, threads, _backend_for(m, backend))
        y_true = _truth_indices(data, labels, m)
        y_pred = probs.argmax(axis=1)
        row = {**{k: v for k, v in C.variant_info(m).items() if k not in ("export_metrics",)}, "backend": bname}
        row.update(classification_metrics(y_true, y_pred, labels))
        row["eval_seconds"] = secs
        row["images_per_s"] = len(y_true) / secs if secs > 0 else None
        if ref_probs is not None:
            if ref_probs.shape != probs.shape:
                raise EdgeDeployError(f"reference {reference.name} has {ref_probs.shape[1]} classes, {m.name} has {probs.shape[1]}")
            row["reference"] = str(reference)
            row["agreement"] = float((ref_probs.argmax(1) == y_pred).mean())
            diff = np.abs(ref_probs - probs)
            row["max_abs_prob_diff"] = float(diff.max())
            row["mean_abs_prob_diff"] = float(diff.mean())
        else:
            row["reference"] = row["agreement"] = row["max_abs_prob_diff"] = row["mean_abs_prob_diff"] = None
        rows.append(row)
        bar.update()
    bar.close()
    return rows


def load_eval_set(dataset: str | None, data_dir: str | None, limit: int | None, run_dir: str | None = None) -> EvalSet:
    if sum(x is not None for x in (dataset, data_dir, run_dir)) != 1:
        raise EdgeDeployError("give one of --dataset digits or --data DIR (or --run RUN: a run folder's held-out test split)")
    if run_dir is not None:
        data = load_run(run_dir)
    else:
        data = load_folder(data_dir) if data_dir is not None else load_dataset(dataset)
    for w in data.warnings:
        print(f"warning: {w}", file=sys.stderr)
    if data.unreadable:
        print(f"warning: {len(data.unreadable)} unreadable file(s) in {data.name} skipped (listed in the JSON report)", file=sys.stderr)
    return data.limit(limit)


def table_rows(rows: Sequence[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    header = ["Variant", "Images", "Accuracy %", "Macro P", "Macro R", "Macro F1", "Agreement %"]
    out = [[r["variant"], r["num_samples"], C.fmt(100 * r["accuracy"], 2), C.fmt(r["macro_avg"]["precision"], 3),
            C.fmt(r["macro_avg"]["recall"], 3), C.fmt(r["macro_avg"]["f1"], 3),
            C.fmt(None if r["agreement"] is None else 100 * r["agreement"], 2)] for r in rows]
    return header, out


def build_parser() -> C.ArgumentParser:
    p = C.ArgumentParser(prog=PROG, description="Accuracy, per-class P/R/F1, confusion matrix and agreement with a reference model.")
    p.add_argument("models", nargs="+", metavar="MODEL", help=".tflite/.onnx files or export folders")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--dataset", default=None, help="an embedded dataset: digits (its held-out test split)")
    src.add_argument("--data", default=None, metavar="DIR", help="a folder with one subfolder per class, named by the label")
    src.add_argument("--run", default=None, metavar="RUN", help="a train-model run folder: score its held-out test split")
    p.add_argument("--reference", default=None, metavar="MODEL", help="report top-1 agreement with this model (e.g. the float32 one)")
    p.add_argument("--limit", type=C.positive_int("--limit", 1), default=None, help=f"score only the first N images (--quick: {QUICK_LIMIT})")
    p.add_argument("--threads", type=C.positive_int("--threads", 1), default=None, help="runtime threads (default all cores)")
    p.add_argument("--backend", default="auto", help="auto or a backend name")
    p.add_argument("--json", metavar="OUT", default=None, help="write the report as JSON")
    C.add_common_args(p)
    return p


def _main(argv: Sequence[str]) -> int:
    args = build_parser().parse_args(argv)
    C.check_backend_names([args.backend])
    C.check_outputs([args.json], args.force)
    models = C.discover_models(args.models)
    reference = C.discover_models([args.reference])[0] if args.reference else None
    limit = args.limit if args.limit is not None else (QUICK_LIMIT if args.quick else None)
    data = load_eval_set(args.dataset, args.data, limit, args.run)
    check_labels(models + ([reference] if reference else []), data)
    rows = evaluate(models, data, reference, args.threads, args.backend)
    report = {"tool": "accuracy", "schema": C.REPORT_SCHEMA, "created": C.now_iso(), "environment": C.environment(),
              "settings": {"quick": args.quick, "limit": limit, "reference": args.reference, "threads": args.threads,
                           "backend": args.backend},
              "dataset": data.describe(), "results": rows}
    header, body = table_rows(rows)
    print(C.table(header, body))
    if data.unreadable:
        print(f"{len(data.unreadable)} unreadable file(s) skipped")
    if args.json:
        C.write_json(args.json, report, args.force)
        print(f"wrote {args.json}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return C.run_main(_main, argv, PROG)


if __name__ == "__main__":
    sys.exit(main())
