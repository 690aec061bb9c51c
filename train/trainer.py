"""Training in this process, ``train_here``: data, model, fit, checkpoints, reports.

``edgedeploy.train.train(config)`` (train/api.py) prepares the run folder and calls it, or hands
a multi-worker run to cluster.py, whose supervised child calls it too.

The run folder (``config.output``)::

    model.keras          the best model (inference only, no optimizer state)
    manifest.json        edge_runtime Manifest: labels, input, normalization, macs, sha256
    history.json         per-epoch loss/accuracy/val_loss/val_accuracy, phase, lr, seconds
    metrics.json/.md     test split: accuracy, per-class P/R/F1, macro avg, confusion matrix
    config.json          the resolved config, data counts, package versions, status
    splits.json          how the data was split (the file lists, for --data DIR)
    summary.txt          Model.summary() and the trainable layers of each phase
    accuracy.png  loss.png  confusion_matrix.png  predictions.png
    checkpoints/         last.keras (resume), best.weights.npz, state.json

Every file is written atomically. A run that fails or is interrupted before
its first checkpoint removes what it wrote, so the same command can simply be
run again. Checkpoints are saved at the end of every
epoch, so Ctrl-C or SIGTERM leaves the last good one; ``resume=True``
continues from it with the epoch counter, history, early-stopping state and
optimizer state restored.

Ctrl-C and SIGTERM are recorded by ``checkpoints.InterruptGuard`` and never
lost: inside ``model.fit`` the run's callback stops at the next batch or epoch
boundary; outside it a KeyboardInterrupt is raised at once, and every step of
``_Session.execute`` checks the record again, in case a library swallowed it.
Any error that ends a run after a stop was requested counts as the interruption.
"""
from __future__ import annotations

import datetime as _dt
import os
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgedeploy.core.errors import EdgeDeployError
from edgedeploy.core.io import atomic_write_json, atomic_write_text
from edgedeploy.core.runfolder import CONFIG, SPLITS, RunFolder
from edgedeploy.runtime.manifest import Manifest

from ._tf import import_keras, import_tf
from .checkpoints import BEST, CHECKPOINTS, LAST, STATE, InterruptGuard, TrainState, load_weights, make_callback
from .config import TrainConfig, package_versions
from .data import DATASETS
from .distributed_fit import fit_distributed
from .finetune import Phase, apply_strategy, describe, phases
from .models import MODELS, build_model, quiet_keras_warnings
from .outputs import finish
from .pipeline import build_dataset

# Settings that define what a run is; a resumed run must keep them.
IDENTITY = ("model", "dataset", "data_dir", "image_size", "weights", "finetune", "unfreeze_from", "dropout")


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM during training; the last good checkpoint is on disk."""

    def __init__(self, run_dir: Path, epoch: int, chief: bool = True):
        super().__init__(run_dir, epoch)
        self.run_dir = run_dir
        self.epoch = epoch
        self.chief = chief

    def message(self) -> str:
        if not self.chief:  # a multi-worker non-chief: the checkpoint is the chief's
            return (f"interrupted after epoch {self.epoch}; this worker keeps no checkpoint (the chief does); continue "
                    f"with: train-model --resume --output CHIEF_RUN_FOLDER (shared), on every worker")
        if self.epoch == 0:
            return (f"interrupted before the first epoch finished; nothing was kept in {self.run_dir}; "
                    f"run the same command again to start over")
        return (f"interrupted after epoch {self.epoch}; the last good checkpoint is in {self.run_dir / CHECKPOINTS}; "
                f"continue with: train-model --resume --output {self.run_dir}")


def _say(msg: str) -> None:
    print(msg, flush=True)


def _warn(msg: str) -> None:
    print(f"warning: {msg}", file=sys.stderr, flush=True)


def _resumed_config(cfg: TrainConfig, run: Path) -> TrainConfig:
    saved = RunFolder(run).config().get("config", {})
    for key in IDENTITY:
        if key in saved and saved[key] != getattr(cfg, key):
            raise EdgeDeployError(f"cannot change {key} when resuming {run}: the run has {saved[key]!r}, got {getattr(cfg, key)!r}")
    return cfg


def make_strategy(kind: str) -> Any:
    tf = import_tf()
    if kind == "mirrored":
        return tf.distribute.MirroredStrategy()
    if kind == "multi-worker":
        if not os.environ.get("TF_CONFIG"):
            _warn("TF_CONFIG is not set: multi-worker runs as a single worker")
        return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.get_strategy()


# -- model helpers --------------------------------------------------------------
def _compile(model: Any, optimizer: str, lr: float) -> None:
    keras = import_keras()
    opt = {
        "adam": lambda: keras.optimizers.Adam(learning_rate=lr),
        "rmsprop": lambda: keras.optimizers.RMSprop(learning_rate=lr),
        "sgd": lambda: keras.optimizers.SGD(learning_rate=lr, momentum=0.9),
    }[optimizer]()
    model.compile(optimizer=opt, loss="sparse_categorical_crossentropy", metrics=["accuracy"])


def _summary_text(model: Any) -> str:
    lines: list[str] = []
    saved = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "120"  # rich sizes the table to the terminal (80 when piped)
    try:
        model.summary(print_fn=lambda text, line_break=True: lines.append(text), line_length=110)
    finally:
        if saved is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = saved
    return "\n".join(lines).rstrip() + "\n"


class _NoReporter:
    """Single-process runs report to nobody (see cluster.Reporter)."""

    def stage(self, name: str, **info: Any) -> None:
        pass

    def beat(self, epoch: int | None = None) -> None:
        pass


# -- the entry point (edgedeploy.train.api.train dispatches here or to cluster.py) ----
def train_here(cfg: TrainConfig, run: Path | None, chief: bool = True, created: str | None = None,
               reporter: Any = None) -> Path:
    """Train in this process into ``run`` (None: the run folder ``cfg.output``, checked or created here,
    inside the interrupt guard, so a signal right after it is created removes it again).

    ``created`` (from ``RunFolder.prepare``): what to remove if the run fails before its first checkpoint.
    """
    state = TrainState()
    guard = InterruptGuard()
    try:
        with guard.installed():
            if run is None:
                with guard.critical():  # made whole before a signal is acted on
                    folder = RunFolder(cfg.output)
                    created = folder.prepare(force=bool(cfg.force), resume=bool(cfg.resume))
                    run = folder.path
            guard.check()
            if cfg.resume:
                cfg = _resumed_config(cfg, run)
            out = _Session(cfg, run, chief, state, guard, reporter or _NoReporter()).execute()
            guard.check()
            return out
    except BaseException as exc:
        if not (isinstance(exc, KeyboardInterrupt) or guard.requested):
            if run is not None and chief and not RunFolder(run).has_checkpoint():
                RunFolder(run).discard_failed(created)
            raise
    # Ctrl-C or SIGTERM, or an error after one (a library may turn the KeyboardInterrupt into another exception)
    if run is None:  # stopped before the run folder was looked at: nothing in it was touched
        folder = RunFolder(cfg.output)
        raise TrainingInterrupted(folder.path, _saved_epoch(folder, 0) if cfg.resume and folder.has_checkpoint() else 0) from None
    folder = RunFolder(run)
    if not chief:
        raise TrainingInterrupted(run, state.epoch) from None
    if folder.has_checkpoint():
        epoch = _saved_epoch(folder, state.epoch)  # a resumed run's state may not be loaded yet
        folder.update_config(status="interrupted", epochs_done=epoch)
        raise TrainingInterrupted(run, epoch) from None
    folder.discard_failed(created)
    raise TrainingInterrupted(run, 0) from None


def _saved_epoch(folder: RunFolder, default: int) -> int:
    """The epoch of the checkpoint on disk."""
    try:
        return TrainState.load(folder.state_path).epoch
    except (OSError, ValueError, TypeError):
        return default


@dataclass
class _Session:
    """One training run in this process: the steps of ``train`` as small methods."""

    cfg: TrainConfig
    run: Path
    chief: bool
    state: TrainState
    guard: InterruptGuard
    reporter: Any
    strategy: Any = None
    data: Any = None
    manifest: Manifest | None = None
    model: Any = None
    datasets: dict[str, Any] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def ckpt(self) -> Path:
        return self.run / CHECKPOINTS

    def execute(self) -> Path:
        check = self.guard.check  # a Ctrl-C/SIGTERM that a library swallowed is caught up here
        import_keras().utils.set_random_seed(self.cfg.seed)
        check()
        self.reporter.stage("cluster")
        self.strategy = make_strategy(self.cfg.distribute)
        self.reporter.stage("prepare")
        if self.cfg.resume:
            self.state = _adopt(self.state, TrainState.load(self.ckpt / STATE))
        self._load_data()
        check()
        self._write_start_files()
        self.reporter.stage("train")
        plan = phases(self.cfg)
        self._build_model(plan[0])
        for index in range(self.state.phase_index, len(plan)):
            check()
            self._train_phase(plan, index)
        check()
        if (self.ckpt / BEST).is_file():
            load_weights(self.model, self.ckpt / BEST)
        self.reporter.stage("finish")

        return finish(self)

    def _load_data(self) -> None:
        cfg = self.cfg
        record = RunFolder(self.run).splits() if cfg.resume else None
        self.data = data = DATASETS.get(cfg.dataset).prepare(cfg, record)
        for note in data.notes:
            _warn(note)
        spec = MODELS.get(cfg.model)
        self.manifest = Manifest(
            labels=list(data.label_names), input_height=cfg.image_size, input_width=cfg.image_size,
            color_order=spec.color_order, resize_method="bilinear", normalization=spec.normalization(),
            model_name=cfg.model, dataset=data.name, format="keras",
        )

        common = dict(manifest=self.manifest, batch_size=cfg.batch_size, cache_dir=self.run / "cache")
        self.datasets = {
            "train": build_dataset(data.raw("train"), training=True, augment=bool(cfg.augment), flip=data.augment_flip,
                                   seed=cfg.seed, num_examples=data.counts["train"], name="train", **common),
            **{s: build_dataset(data.raw(s), training=False, num_examples=data.counts[s], name=s, **common)
               for s in ("validation", "test")},
        }
        _say(f"data: {data.name}, {len(data.label_names)} classes, "
             + ", ".join(f"{s} {n}" for s, n in data.counts.items()) + f"; image size {cfg.image_size}")

    def _write_start_files(self) -> None:
        cfg, data = self.cfg, self.data
        self.info = {
            "config": cfg.to_dict(), "versions": package_versions(),
            "data": {"name": data.name, "labels": data.label_names, "counts": data.counts},
            "created": _dt.datetime.now().isoformat(timespec="seconds"), "status": "training",
            "distribute": {"strategy": cfg.distribute, "replicas": int(self.strategy.num_replicas_in_sync)},
        }
        if self.chief:
            if not cfg.resume:
                atomic_write_json(self.run / SPLITS, data.record, force=True)
            atomic_write_json(self.run / CONFIG, self.info, force=True)

    def _build_model(self, first: Phase) -> None:
        cfg = self.cfg
        with self.strategy.scope():
            if cfg.resume:
                self.model = import_keras().models.load_model(self.ckpt / LAST, compile=True)  # safe_mode: no Lambda layers
            else:

                with quiet_keras_warnings():
                    self.model = build_model(cfg.model, len(self.data.label_names), cfg.image_size, cfg.weights, cfg.dropout)
                if MODELS.get(cfg.model).pretrained:
                    apply_strategy(self.model, first.strategy, first.unfreeze_from, freeze_batchnorm=cfg.weights != "none")
                _compile(self.model, cfg.optimizer, first.lr)
        summary = [_summary_text(self.model)]
        _say(summary[0].rstrip())
        if cfg.resume:
            _say(f"resuming {self.run} after epoch {self.state.epoch}")
            return
        summary.append(describe(self.model, first))
        _say(summary[-1])
        if self.chief:
            atomic_write_text(self.run / "summary.txt", "\n".join(summary) + "\n", force=True)

    def _enter_phase(self, phase: Phase, index: int) -> None:
        """Best weights so far, the phase's trainable set and learning rate."""
        if (self.ckpt / BEST).is_file():
            load_weights(self.model, self.ckpt / BEST)
        with self.strategy.scope():
            apply_strategy(self.model, phase.strategy, phase.unfreeze_from, freeze_batchnorm=self.cfg.weights != "none")
            _compile(self.model, self.cfg.optimizer, phase.lr)
        self.state.enter_phase(index, fine_tune=phase.name == "fine_tune")
        line = describe(self.model, phase)
        _say(line)
        if self.chief:
            path = self.run / "summary.txt"
            old = path.read_text(encoding="utf-8") if path.is_file() else ""
            atomic_write_text(path, old + line + "\n", force=True)

    def _train_phase(self, plan: list[Phase], index: int) -> None:
        phase, state = plan[index], self.state
        if index != state.phase_index:
            self._enter_phase(phase, index)
            self.guard.check()
        remaining = phase.epochs - state.phase_epochs_done
        if state.phase_stopped or remaining <= 0:
            return
        total = state.epoch + remaining + sum(p.epochs for p in plan[index + 1:])
        callback = make_callback(self.run, state, phase, self.cfg.patience, total, self.chief, self.guard)
        end = state.epoch + remaining
        # Inside fit a signal is only recorded; the callback acts on it at the next batch or epoch boundary.
        with self.guard.deferred():
            if self.cfg.distribute == "multi-worker":

                fit_distributed(self.model, self.strategy, self.datasets["train"], self.datasets["validation"],
                                state.epoch, end, callback, self.reporter)
                return
            with warnings.catch_warnings():
                # Keras warns at the end of every dataset of unknown length (a folder's, after
                # filtering unreadable files); it is the normal end of an epoch here.
                warnings.filterwarnings("ignore", message="Your input ran out of data")
                self.model.fit(self.datasets["train"], validation_data=self.datasets["validation"],
                               initial_epoch=state.epoch, epochs=end, verbose=0, shuffle=False, callbacks=[callback])


def _adopt(state: TrainState, saved: TrainState) -> TrainState:
    """Copy a resumed state into the session's (the same object the interrupt handler reports)."""
    for key, value in saved.to_dict().items():
        setattr(state, key, value)
    state.complete = False
    return state
