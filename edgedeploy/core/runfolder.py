"""The run folder, one owner for its contract: file names, config, splits and checkpoint state.

``train-model`` writes it; ``export-model``, ``compare.py --run``, ``accuracy.py --run`` and the
device bundle read it. Every file name lives here and nowhere else::

    RUN/model.keras        the trained model
    RUN/manifest.json      the contract with the device (edgedeploy.runtime.manifest)
    RUN/config.json        the resolved training config, versions, status
    RUN/splits.json        how the data was split (file lists for --data DIR)
    RUN/metrics.json/.md   test-split metrics (edgedeploy.core.metrics)
    RUN/history.json, summary.txt, accuracy.png, loss.png, confusion_matrix.png, predictions.png
    RUN/checkpoints/       last.keras, best.weights.npz, state.json (what --resume continues from)

Standard library only: reading a run folder needs no TensorFlow.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import EdgeDeployError
from .io import atomic_write_json

__all__ = ["RunFolder", "MODEL", "MANIFEST", "CONFIG", "SPLITS", "METRICS", "CHECKPOINTS", "STATE", "LAST", "BEST"]

MODEL = "model.keras"
MANIFEST = "manifest.json"
CONFIG = "config.json"
SPLITS = "splits.json"
METRICS = "metrics.json"
METRICS_MD = "metrics.md"
HISTORY = "history.json"
SUMMARY = "summary.txt"
PLOTS = ("accuracy.png", "loss.png", "confusion_matrix.png", "predictions.png")
CHECKPOINTS = "checkpoints"
STATE = "state.json"  # inside checkpoints/
LAST = "last.keras"  # inside checkpoints/
BEST = "best.weights.npz"  # inside checkpoints/
CACHE = "cache"  # the tf.data cache of a running run
RUN_FILES = (MODEL, MANIFEST, HISTORY, METRICS, METRICS_MD, CONFIG, SPLITS, SUMMARY, *PLOTS)


@dataclass(frozen=True)
class RunFolder:
    """A run folder at ``path`` (it need not exist yet)."""

    path: Path

    def __init__(self, path: str | os.PathLike) -> None:
        object.__setattr__(self, "path", Path(path).expanduser())

    # -- paths ---------------------------------------------------------------------------
    @property
    def model(self) -> Path:
        return self.path / MODEL

    @property
    def manifest(self) -> Path:
        return self.path / MANIFEST

    @property
    def config_path(self) -> Path:
        return self.path / CONFIG

    @property
    def splits_path(self) -> Path:
        return self.path / SPLITS

    @property
    def checkpoints(self) -> Path:
        return self.path / CHECKPOINTS

    @property
    def state_path(self) -> Path:
        return self.checkpoints / STATE

    def __truediv__(self, name: str) -> Path:
        return self.path / name

    # -- reading -------------------------------------------------------------------------
    def is_run(self) -> bool:
        """A finished or interrupted run: the folder holds model.keras or a checkpoint."""
        return self.model.is_file() or self.has_checkpoint()

    def has_checkpoint(self) -> bool:
        return self.state_path.is_file()

    def read_json(self, name: str) -> dict[str, Any]:
        """A JSON object from the run folder, or one line naming the file and what is wrong."""
        p = self.path / name
        if not self.path.is_dir():
            raise EdgeDeployError(f"run folder not found: {self.path}")
        if not p.is_file():
            raise EdgeDeployError(f"{p} not found: is {self.path} a run folder written by train-model?")
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            raise EdgeDeployError(f"{p} is not valid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise EdgeDeployError(f"{p} must hold a JSON object, got {type(data).__name__}")
        return data

    def config(self, missing_ok: bool = False) -> dict[str, Any]:
        """config.json (``{}`` when absent and ``missing_ok``)."""
        if missing_ok and not self.config_path.is_file():
            return {}
        return self.read_json(CONFIG)

    def splits(self) -> dict[str, Any]:
        return self.read_json(SPLITS)

    # -- writing (train-model) -------------------------------------------------------------
    def prepare(self, force: bool = False, resume: bool = False) -> str | None:
        """Check or create the folder for a new run (or a resumed one); return what this run owns.

        ``"folder"``: the folder is new; ``"files"``: it existed (empty, or emptied by
        ``force``); ``None``: ``resume``, the files belong to an earlier run.
        """
        run = self.path
        if run.exists() and not run.is_dir():
            raise EdgeDeployError(f"output path is a file, expected a run folder: {run}")
        if resume:
            if not self.has_checkpoint():
                raise EdgeDeployError(f"nothing to resume in {run}: no {CHECKPOINTS}/{STATE} (start a new run without --resume)")
            return None
        owned = "files" if run.is_dir() else "folder"
        if run.is_dir() and any(run.iterdir()):
            if not force:
                raise EdgeDeployError(f"run folder {run} already exists and is not empty; pass --force to overwrite it "
                                      "or --resume to continue it")
            self.remove_run_files()
        try:
            self.checkpoints.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise EdgeDeployError(f"cannot create run folder {run}: {exc.strerror}") from None
        if not os.access(run, os.W_OK):
            raise EdgeDeployError(f"run folder is not writable: {run}")
        return owned

    def remove_run_files(self) -> None:
        """The files a run writes (other files in the folder are left alone)."""
        for name in RUN_FILES:
            (self.path / name).unlink(missing_ok=True)
        for name in (CHECKPOINTS, CACHE):
            if (self.path / name).is_dir():
                shutil.rmtree(self.path / name)

    def discard_failed(self, owned: str | None = "folder") -> None:
        """Undo a run that failed before its first checkpoint, so the same command can run again.

        Removes the run's files, and the folder too when this run made it (``owned="folder"``) and it is empty.
        """
        if not owned:
            return
        with contextlib.suppress(OSError):
            self.remove_run_files()
            if owned == "folder" and not any(self.path.iterdir()):
                self.path.rmdir()

    def update_config(self, **fields: Any) -> None:
        """Merge ``fields`` into config.json (best effort: an interrupted run must still exit cleanly)."""
        with contextlib.suppress(Exception):
            info = self.read_json(CONFIG)
            info.update(fields)
            atomic_write_json(self.config_path, info, force=True)
