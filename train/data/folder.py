"""folder: ``--data DIR`` with one subfolder per class (``DIR/cat/*.jpg``, ``DIR/dog/*.jpg``).

- Images are decoded with ``edge_runtime.preprocess.load_image`` (Pillow,
  EXIF orientation, any mode -> RGB), the device's own decoder, so training
  and the device see the same pixels.
- Every file is decoded once up front. Zero-byte, truncated, corrupt and
  non-image files are skipped, counted and listed in ``splits.json``; they
  never crash a run. Hidden files (``.DS_Store``) are ignored.
- Symlinks (files or folders) that point outside DIR are not followed.
- An empty folder, a single class or a class with no readable image is a
  one-line ``EdgeDeployError``.
- The split is stratified per class, seeded (``SPLIT_SEED``) and
  deterministic: 80% train, 10% validation, 10% test, at least one image of
  each class in validation and test when the class has three or more.
"""
from __future__ import annotations

import os
import sys
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgedeploy.core.errors import EdgeDeployError, ImageError
from edgedeploy.runtime.preprocess import load_image

from .._tf import import_tf
from . import DATASETS, SPLITS, DataSpec, Prepared, SplitSource

SPLIT_SEED = 1234
FRACTIONS = {"train": 0.8, "validation": 0.1, "test": 0.1}


@dataclass
class Scan:
    root: Path
    classes: list[str]
    files: dict[str, list[str]]  # class -> readable files, relative to root (posix)
    skipped: list[dict[str, str]] = field(default_factory=list)  # {"path", "reason"}

    def summary(self) -> str:
        total = sum(len(v) for v in self.files.values()) + len(self.skipped)
        kinds = Counter(s["reason"].split(":")[0] for s in self.skipped)
        parts = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))
        return f"skipped {len(self.skipped)} of {total} files in {self.root}: {parts}"


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def _reason(exc: Exception) -> str:
    msg = str(exc)
    if "empty" in msg:
        kind = "empty file"
    elif "not a recognised image" in msg:
        kind = "not an image"
    elif "pixels, more than" in msg:
        kind = "too large"
    else:
        kind = "corrupt or truncated"
    return f"{kind}: {msg}"


def _check(path: str) -> str | None:
    try:
        load_image(path)
    except ImageError as exc:
        return _reason(exc)
    except Exception as exc:  # never let one file stop the scan
        return f"unreadable: {type(exc).__name__}: {exc}"
    return None


def class_folders(root: str | os.PathLike) -> tuple[list[str], list[dict[str, str]]]:
    """The class subfolders of ``root`` and the entries skipped at its top level; raises on a folder
    that cannot be a dataset (missing, a file, no class subfolders, one class).

    Reads one directory listing and imports no TensorFlow: ``train-model`` calls it before training
    starts (``DataSpec.check_data_dir``), so a wrong ``--data`` is refused in well under a second.
    """
    base = Path(root).expanduser()
    if not base.exists():
        raise EdgeDeployError(f"data folder not found: {base}")
    if not base.is_dir():
        raise EdgeDeployError(f"--data expects a folder with one subfolder per class, got a file: {base}")
    real_root = os.path.realpath(base)
    skipped: list[dict[str, str]] = []
    classes: list[str] = []
    loose = 0
    for entry in sorted(os.scandir(real_root), key=lambda e: e.name):
        if entry.name.startswith("."):
            continue
        real = os.path.realpath(entry.path)
        if entry.is_symlink() and not _inside(real, real_root):
            skipped.append({"path": entry.name, "reason": "symlink outside the data folder: not followed"})
            continue
        if os.path.isdir(real):
            classes.append(entry.name)
        else:
            loose += 1
    if not classes:
        what = "has no class subfolders" if loose else "is empty"
        raise EdgeDeployError(f"data folder {base} {what}; expected one subfolder per class, e.g. {base}/cat/ and {base}/dog/")
    if len(classes) == 1:
        raise EdgeDeployError(f"data folder {base} has only one class folder ({classes[0]!r}); a classifier needs at least 2")
    return classes, skipped


def scan_folder(root: str | os.PathLike, workers: int = 2) -> Scan:
    """List the classes and readable images of ``root``; see the module docstring."""
    base = Path(root).expanduser()
    classes, skipped = class_folders(base)
    real_root = os.path.realpath(base)

    candidates: list[tuple[str, str]] = []  # (class, relative path)
    for cls in classes:
        visited: set[str] = set()
        for dirpath, dirnames, filenames in os.walk(os.path.join(real_root, cls), followlinks=True):
            real_dir = os.path.realpath(dirpath)
            if real_dir in visited:  # a symlink loop
                dirnames[:] = []
                continue
            visited.add(real_dir)
            keep = []
            for d in sorted(dirnames):
                full = os.path.join(dirpath, d)
                if d.startswith("."):
                    continue
                if not _inside(os.path.realpath(full), real_root):
                    skipped.append({"path": os.path.relpath(full, real_root), "reason": "symlink outside the data folder: not followed"})
                    continue
                keep.append(d)
            dirnames[:] = keep
            for f in sorted(filenames):
                if f.startswith("."):
                    continue
                full = os.path.join(dirpath, f)
                rel = Path(os.path.relpath(full, real_root)).as_posix()
                real = os.path.realpath(full)
                if not _inside(real, real_root):
                    skipped.append({"path": rel, "reason": "symlink outside the data folder: not followed"})
                elif not os.path.isfile(real):
                    skipped.append({"path": rel, "reason": "broken symlink: target missing"})
                else:
                    candidates.append((cls, rel))

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:  # Pillow decodes outside the GIL
        results = list(pool.map(lambda c: _check(os.path.join(real_root, c[1])), candidates))
    files: dict[str, list[str]] = {c: [] for c in classes}
    for (cls, rel), bad in zip(candidates, results):
        if bad:
            skipped.append({"path": rel, "reason": bad})
        else:
            files[cls].append(rel)
    empty = [c for c in classes if not files[c]]
    if empty:
        raise EdgeDeployError(
            f"class folder {base / empty[0]} has no readable images"
            + (f" ({len(empty) - 1} more class folder(s) likewise)" if len(empty) > 1 else "")
        )
    return Scan(Path(real_root), classes, files, skipped)


def split_files(scan: Scan, seed: int = SPLIT_SEED) -> dict[str, list[tuple[str, int]]]:
    """Stratified, seeded train/validation/test split of ``scan``'s files."""
    rng = np.random.default_rng(seed)
    out: dict[str, list[tuple[str, int]]] = {s: [] for s in SPLITS}
    for label, cls in enumerate(scan.classes):
        files = sorted(scan.files[cls])
        order = rng.permutation(len(files))
        n = len(files)
        n_val = int(round(FRACTIONS["validation"] * n))
        n_test = int(round(FRACTIONS["test"] * n))
        if n >= 3:
            n_val, n_test = max(1, n_val), max(1, n_test)
        n_train = n - n_val - n_test
        picked = [files[i] for i in order]
        out["train"] += [(f, label) for f in picked[:n_train]]
        out["validation"] += [(f, label) for f in picked[n_train : n_train + n_val]]
        out["test"] += [(f, label) for f in picked[n_train + n_val :]]
    for s in SPLITS:  # mix the classes, deterministically
        out[s] = [out[s][i] for i in rng.permutation(len(out[s]))]
    return out


def _load_for_tf(path: Any) -> tuple[np.ndarray, np.bool_]:
    if isinstance(path, np.ndarray):
        path = path.item()
    p = path.decode() if isinstance(path, bytes) else str(path)
    try:
        return load_image(p), np.bool_(True)
    except ImageError as exc:  # the file changed since the scan: skip it, say so
        print(f"warning: skipping {exc}", file=sys.stderr)
        return np.zeros((1, 1, 3), np.uint8), np.bool_(False)


def prepare(cfg: Any, record: dict[str, Any] | None = None) -> Prepared:

    if record is None:
        scan = scan_folder(cfg.data_dir)
        splits = split_files(scan)
        record = {
            "dataset": "folder",
            "root": str(scan.root),
            "classes": scan.classes,
            "labels": scan.classes,
            "split_seed": SPLIT_SEED,
            "fractions": dict(FRACTIONS),
            "counts": {s: len(splits[s]) for s in SPLITS},
            "splits": {s: [[f, y] for f, y in splits[s]] for s in SPLITS},
            "skipped": scan.skipped,
        }
        notes = [scan.summary() + " (listed in splits.json)"] if scan.skipped else []
    else:
        notes = []
    root = Path(record["root"])
    labels = list(record["classes"])

    def raw(split: str) -> Any:
        tf = import_tf()
        items = record["splits"][split]
        paths = [str(root / f) for f, _ in items]
        ys = np.asarray([y for _, y in items], dtype=np.int32)
        ds = tf.data.Dataset.from_tensor_slices((paths, ys))

        def decode(path: Any, y: Any) -> Any:
            img, ok = tf.numpy_function(_load_for_tf, [path], (tf.uint8, tf.bool), stateful=False)
            img.set_shape([None, None, 3])
            ok.set_shape([])
            return img, y, ok

        ds = ds.map(decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        return ds.filter(lambda img, y, ok: ok).map(lambda img, y, ok: (img, y))

    name = f"folder:{root.name}"
    return Prepared(name, labels, dict(record["counts"]), record, raw, augment_flip=True, notes=notes)


def split_source(record: dict[str, Any], split: str) -> SplitSource:
    root = Path(record["root"])
    items = record["splits"][split]
    labels = np.asarray([y for _, y in items], dtype=np.int64)

    def load(idx: np.ndarray) -> list[np.ndarray]:
        paths = [root / items[int(i)][0] for i in idx]
        if paths and not root.is_dir():
            raise EdgeDeployError(f"data folder of this run not found: {root}")
        with ThreadPoolExecutor(max_workers=2) as pool:
            return list(pool.map(load_image, paths))

    return SplitSource(labels, list(record["classes"]), load)


DATASETS.register("folder")(
    DataSpec(
        name="folder",
        description="--data DIR: your images, one subfolder per class",
        prepare=prepare,
        split_source=split_source,
        default_image_size=160,
        default_augment=True,
        default_epochs=20,
        needs_data_dir=True,
        accepts_data_dir=True,
        check_data_dir=class_folders,
    )
)
