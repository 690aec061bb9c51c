"""``train(config) -> run folder``: data, model, fit, checkpoints, reports.

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

Every file is written atomically. Checkpoints are saved at the end of every
epoch, so Ctrl-C or SIGTERM (turned into KeyboardInterrupt) leaves the last
good one; ``resume=True`` continues from it with the epoch counter, history,
early-stopping state and optimizer state restored.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import shutil
import signal
import sys
import tempfile
import threading
import warnings
from pathlib import Path
from typing import Any

from edge_runtime.errors import EdgeDeployError
from edge_runtime.io import atomic_write_json, atomic_write_text
from edge_runtime.manifest import MANIFEST_FILENAME, Manifest, sha256_file

from ._tf import import_keras, import_tf
from .checkpoints import (BEST, CHECKPOINT_DIR, CRITICAL, LAST, STATE, history_columns, load_weights, make_callback,
                          new_state, on_interrupt_signal, save_model_atomic)
from .config import TrainConfig, package_versions, resolve
from .data import CONFIG_FILENAME, DATASETS, SPLITS_FILENAME, read_run_json
from .finetune import apply_strategy, describe, phases, trainable_report
from .models import MODELS, build_model

MODEL_FILENAME = "model.keras"
RUN_FILES = (
    MODEL_FILENAME, MANIFEST_FILENAME, "history.json", "metrics.json", "metrics.md", CONFIG_FILENAME,
    SPLITS_FILENAME, "summary.txt", "accuracy.png", "loss.png", "confusion_matrix.png", "predictions.png",
)
# Settings that define what a run is; a resumed run must keep them.
IDENTITY = ("model", "dataset", "data_dir", "image_size", "weights", "finetune", "unfreeze_from", "dropout")


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM during training; the last good checkpoint is on disk."""

    def __init__(self, run_dir: Path, epoch: int):
        super().__init__(run_dir, epoch)
        self.run_dir = run_dir
        self.epoch = epoch

    def message(self) -> str:
        if self.epoch == 0:
            return (f"interrupted before the first epoch finished; nothing to resume from in {self.run_dir}; "
                    f"start again with --force --output {self.run_dir}")
        return (f"interrupted after epoch {self.epoch}; the last good checkpoint is in {self.run_dir / CHECKPOINT_DIR}; "
                f"continue with: train-model --resume --output {self.run_dir}")


def _say(msg: str) -> None:
    print(msg, flush=True)


def _warn(msg: str) -> None:
    print(f"warning: {msg}", file=sys.stderr, flush=True)


# -- run folder ---------------------------------------------------------------
def _prepare_run_dir(cfg: TrainConfig) -> Path:
    run = Path(cfg.output).expanduser()
    if run.exists() and not run.is_dir():
        raise EdgeDeployError(f"output path is a file, expected a run folder: {run}")
    if cfg.resume:
        if not (run / CHECKPOINT_DIR / STATE).is_file():
            raise EdgeDeployError(f"nothing to resume in {run}: no {CHECKPOINT_DIR}/{STATE} (start a new run without --resume)")
        return run
    if run.is_dir() and any(run.iterdir()):
        if not cfg.force:
            raise EdgeDeployError(f"run folder {run} already exists and is not empty; pass --force to overwrite it or --resume to continue it")
        for name in RUN_FILES:
            (run / name).unlink(missing_ok=True)
        for name in (CHECKPOINT_DIR, "cache"):
            if (run / name).is_dir():
                shutil.rmtree(run / name)
    try:
        (run / CHECKPOINT_DIR).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EdgeDeployError(f"cannot create run folder {run}: {exc.strerror}") from None
    if not os.access(run, os.W_OK):
        raise EdgeDeployError(f"run folder is not writable: {run}")
    return run


def _resumed_config(cfg: TrainConfig, run: Path) -> TrainConfig:
    saved = read_run_json(run, CONFIG_FILENAME).get("config", {})
    for key in IDENTITY:
        if key in saved and saved[key] != getattr(cfg, key):
            raise EdgeDeployError(f"cannot change {key} when resuming {run}: the run has {saved[key]!r}, got {getattr(cfg, key)!r}")
    return cfg


def _is_chief() -> bool:
    try:
        task = json.loads(os.environ.get("TF_CONFIG", "{}")).get("task", {})
    except ValueError:
        return True
    kind, index = task.get("type"), task.get("index", 0)
    has_chief = "chief" in json.loads(os.environ.get("TF_CONFIG", "{}")).get("cluster", {})
    return kind in (None, "chief") or (kind == "worker" and index == 0 and not has_chief)


def make_strategy(kind: str) -> Any:
    tf = import_tf()
    if kind == "mirrored":
        return tf.distribute.MirroredStrategy()
    if kind == "multi-worker":
        raw = os.environ.get("TF_CONFIG")
        if not raw:
            _warn("TF_CONFIG is not set: multi-worker runs as a single worker")
        else:
            try:
                json.loads(raw)
            except ValueError as exc:
                raise EdgeDeployError(f"TF_CONFIG is not valid JSON: {exc}") from None
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


# -- the entry point ---------------------------------------------------------------
def train(config: TrainConfig) -> Path:
    """Train a model as ``config`` says; return the run folder.

    Raises:
        EdgeDeployError: a user error (bad data folder, offline ImageNet
            weights, existing run folder without force, ...), one line.
        TrainingInterrupted: Ctrl-C or SIGTERM; the last good checkpoint stays.
    """
    if config.resume and not config.output:
        raise EdgeDeployError("--resume needs --output RUN_FOLDER (the run to continue)")
    cfg = resolve(config)
    run = _prepare_run_dir(cfg)
    if cfg.resume:
        cfg = _resumed_config(cfg, run)
    chief = _is_chief()
    if not chief:  # multi-worker: only the chief writes the run folder
        run = Path(tempfile.mkdtemp(prefix="edgedeploy-worker-"))
        (run / CHECKPOINT_DIR).mkdir()

    handlers: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):  # both become KeyboardInterrupt, after any checkpoint write
            handlers[sig] = signal.signal(sig, on_interrupt_signal)
    state = new_state()
    try:
        return _run(cfg, run, chief, state)
    except KeyboardInterrupt:
        if chief and (run / CONFIG_FILENAME).is_file():
            with contextlib.suppress(Exception):
                info = json.loads((run / CONFIG_FILENAME).read_text(encoding="utf-8"))
                info.update(status="interrupted", epochs_done=state["epoch"])
                atomic_write_json(run / CONFIG_FILENAME, info, force=True)
        raise TrainingInterrupted(run, state["epoch"]) from None
    finally:
        CRITICAL.update(active=False, pending=False)
        for sig, old in handlers.items():
            signal.signal(sig, old)
        if not chief:
            shutil.rmtree(run, ignore_errors=True)


def _run(cfg: TrainConfig, run: Path, chief: bool, state: dict[str, Any]) -> Path:
    keras = import_keras()
    from .pipeline import build_dataset

    keras.utils.set_random_seed(cfg.seed)
    spec = MODELS.get(cfg.model)
    strategy = make_strategy(cfg.distribute)
    ckpt = run / CHECKPOINT_DIR
    if cfg.resume:
        state.update(json.loads((ckpt / STATE).read_text(encoding="utf-8")))
        state["complete"] = False

    record = read_run_json(run, SPLITS_FILENAME) if cfg.resume else None
    data = DATASETS.get(cfg.dataset).prepare(cfg, record)
    for note in data.notes:
        _warn(note)
    manifest = Manifest(
        labels=list(data.label_names), input_height=cfg.image_size, input_width=cfg.image_size,
        color_order=spec.color_order, resize_method="bilinear", normalization=spec.normalization(),
        model_name=cfg.model, dataset=data.name, format="keras",
    )
    info = {
        "config": cfg.to_dict(), "versions": package_versions(),
        "data": {"name": data.name, "labels": data.label_names, "counts": data.counts},
        "created": _dt.datetime.now().isoformat(timespec="seconds"), "status": "training",
        "distribute": {"strategy": cfg.distribute, "replicas": int(strategy.num_replicas_in_sync)},
    }
    if chief:
        if not cfg.resume:
            atomic_write_json(run / SPLITS_FILENAME, data.record, force=True)
        atomic_write_json(run / CONFIG_FILENAME, info, force=True)
    _say(f"data: {data.name}, {len(data.label_names)} classes, "
         + ", ".join(f"{s} {n}" for s, n in data.counts.items()) + f"; image size {cfg.image_size}")

    common = dict(manifest=manifest, batch_size=cfg.batch_size, cache_dir=run / "cache")
    train_ds = build_dataset(data.raw("train"), training=True, augment=bool(cfg.augment), flip=data.augment_flip,
                             seed=cfg.seed, num_examples=data.counts["train"], name="train", **common)
    val_ds = build_dataset(data.raw("validation"), training=False, num_examples=data.counts["validation"], name="validation", **common)
    test_ds = build_dataset(data.raw("test"), training=False, num_examples=data.counts["test"], name="test", **common)

    plan = phases(cfg)
    pretrained = cfg.weights != "none"
    with strategy.scope():
        if cfg.resume:
            model = keras.models.load_model(ckpt / LAST, compile=True)  # safe_mode: no Lambda layers
        else:
            model = build_model(cfg.model, len(data.label_names), cfg.image_size, cfg.weights, cfg.dropout)
            if spec.pretrained:
                apply_strategy(model, plan[0].strategy, plan[0].unfreeze_from, freeze_batchnorm=pretrained)
            _compile(model, cfg.optimizer, plan[0].lr)
    summary = [_summary_text(model)]
    _say(summary[0].rstrip())
    if cfg.resume:
        _say(f"resuming {run} after epoch {state['epoch']}")
    else:
        summary.append(describe(model, plan[0]))
        _say(summary[-1])
    if chief and not cfg.resume:
        atomic_write_text(run / "summary.txt", "\n".join(summary) + "\n", force=True)

    for index in range(state["phase_index"], len(plan)):
        phase = plan[index]
        if index != state["phase_index"]:  # entering the next phase: best weights, new trainable set
            if (ckpt / BEST).is_file():
                load_weights(model, ckpt / BEST)
            with strategy.scope():
                apply_strategy(model, phase.strategy, phase.unfreeze_from, freeze_batchnorm=pretrained)
                _compile(model, cfg.optimizer, phase.lr)
            state.update(phase_index=index, phase_epochs_done=0, phase_stopped=False, wait=0)
            if phase.name == "fine_tune":
                state["fine_tune_start_epoch"] = state["epoch"] + 1
            line = describe(model, phase)
            _say(line)
            if chief:
                old = (run / "summary.txt").read_text(encoding="utf-8") if (run / "summary.txt").is_file() else ""
                atomic_write_text(run / "summary.txt", old + line + "\n", force=True)
        remaining = phase.epochs - state["phase_epochs_done"]
        if state["phase_stopped"] or remaining <= 0:
            continue
        total = state["epoch"] + remaining + sum(p.epochs for p in plan[index + 1 :])
        callback = make_callback(run, state, phase, cfg.patience, total, chief)
        with warnings.catch_warnings():
            # Keras warns at the end of every dataset of unknown length (a folder's, after
            # filtering unreadable files); it is the normal end of an epoch here.
            warnings.filterwarnings("ignore", message="Your input ran out of data")
            model.fit(train_ds, validation_data=val_ds, initial_epoch=state["epoch"],
                      epochs=state["epoch"] + remaining, verbose=0, shuffle=False, callbacks=[callback])

    if (ckpt / BEST).is_file():
        load_weights(model, ckpt / BEST)
    return _finish(cfg, run, chief, state, model, manifest, data, test_ds, info)


def _finish(cfg: TrainConfig, run: Path, chief: bool, state: dict[str, Any], model: Any, manifest: Manifest,
            data: Any, test_ds: Any, info: dict[str, Any]) -> Path:
    import numpy as np

    keras = import_keras()
    from . import plots
    from .evaluate import classification_metrics, predict_dataset, write_metrics
    from .macs import count_macs

    # A clean inference copy: plain variables, no optimizer or compile state.
    final = keras.Model.from_config(model.get_config())
    final.set_weights(model.get_weights())
    y_true, probs = predict_dataset(final, test_ds)
    y_pred = probs.argmax(axis=1) if len(probs) else np.zeros(0, np.int64)
    metrics = classification_metrics(y_true, y_pred, data.label_names)
    metrics.update(model=cfg.model, dataset=data.name, image_size=cfg.image_size, split="test",
                   best_epoch=state["best_epoch"], epochs_trained=state["epoch"])
    _say(f"test accuracy {metrics['accuracy'] * 100:.2f}% on {metrics['num_samples']} images "
         f"(macro F1 {metrics['macro_avg']['f1']:.4f}; best epoch {state['best_epoch']})")
    if not chief:
        return run

    save_model_atomic(final, run / MODEL_FILENAME)
    manifest.source_sha256 = sha256_file(run / MODEL_FILENAME)
    manifest.macs = count_macs(final)
    manifest.metrics = {"test_accuracy": metrics["accuracy"], "test_macro_f1": metrics["macro_avg"]["f1"],
                        "test_samples": metrics["num_samples"]}
    manifest.save(run / MANIFEST_FILENAME, force=True)
    write_metrics(run, metrics)
    history = history_columns(state)
    atomic_write_json(run / "history.json", history, force=True)
    plots.plot_curve(history, "accuracy", run / "accuracy.png", state["fine_tune_start_epoch"])
    plots.plot_curve(history, "loss", run / "loss.png", state["fine_tune_start_epoch"])
    plots.plot_confusion(metrics["confusion_matrix"], data.label_names, run / "confusion_matrix.png")
    _plot_examples(run, data, y_true, y_pred, probs)

    state["complete"] = True
    atomic_write_json(run / CHECKPOINT_DIR / STATE, state, force=True)
    info.update(status="complete", finished=_dt.datetime.now().isoformat(timespec="seconds"),
                result={"test_accuracy": metrics["accuracy"], "epochs_trained": state["epoch"],
                        "best_epoch": state["best_epoch"], "macs": manifest.macs,
                        "trainable": trainable_report(model)})
    atomic_write_json(run / CONFIG_FILENAME, info, force=True)
    shutil.rmtree(run / "cache", ignore_errors=True)
    _say(f"run folder: {run}")
    return run


def _plot_examples(run: Path, data: Any, y_true: Any, y_pred: Any, probs: Any, count: int = 16, window: int = 200) -> None:
    """predictions.png: up to 4 mistakes and the rest right, from the first ``window`` test images."""
    from . import plots

    n = min(len(y_true), window)
    if n == 0:
        return
    wrong = [i for i in range(n) if y_pred[i] != y_true[i]][:4]
    right = [i for i in range(n) if y_pred[i] == y_true[i]][: count - len(wrong)]
    wanted = sorted(wrong + right)
    images = []
    for i, (img, _) in enumerate(data.raw("test").take(max(wanted) + 1).as_numpy_iterator()):
        if i in wanted:
            images.append(img)
    scores = [float(probs[i, y_pred[i]]) for i in wanted]
    plots.plot_predictions(images, [y_true[i] for i in wanted], [y_pred[i] for i in wanted], scores,
                           data.label_names, run / "predictions.png")
