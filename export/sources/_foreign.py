"""Data for a model that came without a run folder: ``--calibration-data`` split, ``--parity-data`` added.

There is no train/test split to read, so the folder the user gives is split here, seeded:

- ``--calibration-data DIR``: with one subfolder per class, named by the labels, it is labelled;
  ``--calibration-samples`` images (class-balanced when labelled) calibrate, and the rest are
  held-out evidence for the gate (labelled: accuracy and agreement; unlabelled: agreement only).
  The two parts never share an image; the split (seed, counts, a hash of the calibration file
  list) goes into the report;
- ``--parity-data DIR``: more evidence, labelled (class subfolders, ``parity.load_labelled_folder``)
  or not (every image in it, agreement only).

Images are preprocessed by the device's own code (``edge_runtime.preprocess``), the path every
exported file is measured through, so the reference and the exports differ only by the conversion;
for an NCHW model the calibration tensors are channels first.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from edgedeploy.core.errors import EdgeDeployError, ImageError
from edgedeploy.runtime.manifest import Manifest

from ..parity import NO_LABEL, UNLABELLED, load_parity_data
from .base import Source

if TYPE_CHECKING:
    from ..calibration import Calibration
    from ..options import ExportOptions
    from ..parity import Reference

HELDOUT_ORIGIN = "calibration-data"  # the labelled part of --calibration-data kept out of calibration


@dataclass
class FolderSplit:
    """The seeded split of a --calibration-data folder: calibration files and held-out files (never both)."""

    folder: Path
    labelled: bool
    calibration: list[tuple[Path, int]] = field(default_factory=list)  # (file, class index or -1)
    heldout: list[tuple[Path, int]] = field(default_factory=list)
    seed: int = 0

    def describe(self) -> dict[str, Any]:
        names = "\n".join(str(p.relative_to(self.folder)) for p, _ in self.calibration)
        return {"folder": str(self.folder), "seed": self.seed, "labelled": self.labelled,
                "calibration_images": len(self.calibration), "heldout_images": len(self.heldout),
                "calibration_files_sha256": hashlib.sha256(names.encode()).hexdigest(),
                "overlap": len({p for p, _ in self.calibration} & {p for p, _ in self.heldout})}


def labelled_files(folder: Path, labels: Sequence[str], flag: str) -> tuple[bool, list[tuple[Path, int]]]:
    """(labelled?, [(file, class index or -1)]): labelled when its subfolders holding images are all named by labels."""
    from ..calibration import list_images

    files = list_images(folder)
    if not files:
        raise EdgeDeployError(f"Received {flag} {str(folder)!r}: the folder holds no images")
    tops = {p.relative_to(folder).parts[0] if len(p.relative_to(folder).parts) > 1 else None for p in files}
    labelled = None not in tops and tops <= set(labels)
    if labelled:
        return True, [(p, list(labels).index(p.relative_to(folder).parts[0])) for p in files]
    return False, [(p, -1) for p in files]


def split_folder(folder: str | Path, labels: Sequence[str], n: int, seed: int) -> FolderSplit:
    """Seeded: ``n`` calibration files (class-balanced when labelled), the rest held out."""
    d = Path(folder)
    labelled, files = labelled_files(d, labels, "--calibration-data")
    rng = np.random.default_rng(seed)
    order = [files[i] for i in rng.permutation(len(files))]
    if labelled:
        per_class: dict[int, list[tuple[Path, int]]] = {}
        for item in order:
            per_class.setdefault(item[1], []).append(item)
        take: list[tuple[Path, int]] = []
        while len(take) < min(n, len(order)):  # round-robin over the classes: balanced
            for c in sorted(per_class):
                if per_class[c] and len(take) < n:
                    take.append(per_class[c].pop(0))
        chosen = {p for p, _ in take}
    else:
        take = order[:n]
        chosen = {p for p, _ in take}
    rest = [item for item in order if item[0] not in chosen]
    return FolderSplit(d, labelled, sorted(take), sorted(rest), seed)


def read_images(items: Sequence[tuple[Path, int]], channels: int) -> tuple[list[np.ndarray], np.ndarray, int]:
    """Decoded images, their labels, and how many files could not be read (skipped)."""
    from edgedeploy.runtime.preprocess import load_image

    images, labels, skipped = [], [], 0
    for p, c in items:
        try:
            images.append(load_image(p, channels=channels))
        except ImageError:
            skipped += 1
            continue
        labels.append(c)
    return images, np.asarray(labels, dtype=np.int64), skipped


def model_input(images: Sequence[np.ndarray], manifest: Manifest) -> np.ndarray:
    """Device preprocessing (edge_runtime.preprocess), stacked, in the model's layout."""
    from edgedeploy.runtime.preprocess import preprocess

    h, w, c = manifest.input_height, manifest.input_width, manifest.input_channels
    x = np.stack([preprocess(im, manifest) for im in images]) if len(images) else np.zeros((0, h, w, c), np.float32)
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2)) if manifest.layout == "nchw" else x


class ForeignSource(Source):
    """A source without a run folder: data from --calibration-data / --parity-data; ``predict`` is its runtime."""

    _split: FolderSplit | None = None

    def predict(self, model: Any, x: np.ndarray) -> np.ndarray:
        """The float source's outputs (N, classes) for model-ready input ``x`` (the manifest's layout)."""
        raise NotImplementedError

    def folder_split(self, opts: "ExportOptions") -> FolderSplit | None:
        if opts.calibration_data is None:
            return None
        if self._split is None:
            self._split = split_folder(opts.calibration_data, self.manifest.labels, opts.calibration_samples, opts.seed)
        return self._split

    def calibration(self, opts: "ExportOptions") -> "Calibration":
        from ..calibration import Calibration

        split = self.folder_split(opts)
        if split is None:
            raise EdgeDeployError(f"static int8 of {self.path.name} needs calibration images: give --calibration-data DIR "
                                  "(a folder of images like the ones it will see; class subfolders named by the labels "
                                  "also give labelled evidence)")
        images, labels, skipped = read_images(split.calibration, self.manifest.input_channels)
        if not images:
            raise EdgeDeployError(f"--calibration-data folder {split.folder}: none of its calibration images could be read")
        per_class = {}
        if split.labelled:
            per_class = {name: int(np.sum(labels == i)) for i, name in enumerate(self.manifest.labels)}
        how = "class-balanced" if split.labelled else "seeded"
        return Calibration(x=model_input(images, self.manifest), per_class=per_class, skipped=skipped, raw_images=images,
                           source=f"folder {split.folder} ({how} split, seed {split.seed}: {len(split.calibration)} "
                                  f"calibrate, {len(split.heldout)} held out as evidence)", split=split.describe())

    def evidence(self, opts: "ExportOptions") -> tuple[list[np.ndarray], np.ndarray, np.ndarray, int]:
        """(images, labels or -1, origin, unreadable): the held-out part of --calibration-data, then --parity-data."""
        budget = opts.parity_samples if opts.parity_samples is not None else 10**12
        rng = np.random.default_rng(opts.seed)
        images: list[np.ndarray] = []
        labels: list[np.ndarray] = []
        origin: list[str] = []

        def add(imgs: Sequence[np.ndarray], labs: np.ndarray, tags: Sequence[str]) -> None:
            room = budget - len(images)
            keep = np.arange(len(imgs)) if len(imgs) <= room else np.sort(rng.permutation(len(imgs))[:max(room, 0)])
            images.extend(imgs[int(i)] for i in keep)
            labels.append(np.asarray(labs)[keep])
            origin.extend(tags[int(i)] for i in keep)

        split = self.folder_split(opts)
        if split is not None:
            items = split.heldout
            if len(items) > budget:
                items = [items[int(i)] for i in np.sort(rng.permutation(len(items))[:budget])]
            imgs, labs, _ = read_images(items, self.manifest.input_channels)
            add(imgs, labs, [HELDOUT_ORIGIN if lab >= 0 else UNLABELLED for lab in labs])
        unreadable = 0
        if opts.parity_data is not None:
            imgs, labs, tags, unreadable = self._parity_data(opts.parity_data)
            add(imgs, labs, tags)
        if not images:
            raise EdgeDeployError(f"the parity gate needs evidence images for {self.path.name}: give --calibration-data DIR "
                                  "with more images than --calibration-samples, or --parity-data DIR")
        return images, np.concatenate(labels), np.asarray(origin), unreadable

    def _parity_data(self, folder: str) -> tuple[list[np.ndarray], np.ndarray, list[str], int]:
        """``--parity-data``, read as for a run (parity.load_parity_data): class subfolders labelled, loose images not."""
        data = load_parity_data(folder, list(self.manifest.labels))
        labelled = list(data.labelled.images) if len(data.labelled.labels) else []
        images = labelled + list(data.unlabelled)
        labels = np.concatenate([np.asarray(data.labelled.labels, np.int64)[:len(labelled)],
                                 np.full(len(data.unlabelled), NO_LABEL, np.int64)])
        return images, labels, ["parity-data"] * len(labelled) + [UNLABELLED] * len(data.unlabelled), data.unreadable

    def reference(self, model: Any, opts: "ExportOptions", exclude: list) -> "Reference":
        from ..parity import Reference

        images, labels, origin, unreadable = self.evidence(opts)
        outs = [self.predict(model, model_input(images[i:i + 32], self.manifest)) for i in range(0, len(images), 32)]
        probs = np.concatenate(outs).astype(np.float32)
        if probs.shape != (len(images), self.manifest.num_classes):
            raise EdgeDeployError(f"{self.path.name} returned shape {probs.shape} for {len(images)} images of "
                                  f"{self.manifest.num_classes} classes")
        return Reference(images=images, labels=labels, label_names=list(self.manifest.labels), keras_probs=probs,
                         origin=origin, unreadable=unreadable)

