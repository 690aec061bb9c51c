"""The end of a run: evaluate the best model on the test split and write the run folder's outputs.

Every worker evaluates (on a plain copy of the model, outside the distribution
strategy); only the chief writes ``model.keras``, the manifest, metrics,
history and plots.
"""
from __future__ import annotations

import datetime as _dt
import shutil
from pathlib import Path
from typing import Any

from edgedeploy.core.io import atomic_write_json
from edgedeploy.core.metrics import classification_metrics
from edgedeploy.core.runfolder import CONFIG, HISTORY, MANIFEST, MODEL
from edgedeploy.runtime.manifest import sha256_file

from . import plots
from ._tf import import_keras
from .checkpoints import CHECKPOINTS, STATE, save_model_atomic
from .evaluate import predict_dataset, write_metrics
from .finetune import trainable_report
from .macs import count_macs


def _say(msg: str) -> None:
    print(msg, flush=True)


def finish(session: Any) -> Path:
    """Evaluate, then (chief) save model, manifest, metrics, history, plots; mark the run complete."""
    import numpy as np



    keras = import_keras()
    cfg, state, run, data = session.cfg, session.state, session.run, session.data
    # A clean inference copy: plain variables, no optimizer or compile state.
    final = keras.Model.from_config(session.model.get_config())
    final.set_weights(session.model.get_weights())
    y_true, probs = predict_dataset(final, session.datasets["test"])
    y_pred = probs.argmax(axis=1) if len(probs) else np.zeros(0, np.int64)
    metrics = classification_metrics(y_true, y_pred, data.label_names)
    metrics.update(model=cfg.model, dataset=data.name, image_size=cfg.image_size, split="test",
                   best_epoch=state.best_epoch, epochs_trained=state.epoch)
    _say(f"test accuracy {metrics['accuracy'] * 100:.2f}% on {metrics['num_samples']} images "
         f"(macro F1 {metrics['macro_avg']['f1']:.4f}; best epoch {state.best_epoch})")
    if not session.chief:
        return run
    _write_model(session, final, metrics)
    _write_reports(session, metrics, y_true, y_pred, probs)
    state.complete = True
    state.save(run / CHECKPOINTS / STATE)
    session.info.update(status="complete", finished=_dt.datetime.now().isoformat(timespec="seconds"),
                        result={"test_accuracy": metrics["accuracy"], "epochs_trained": state.epoch,
                                "best_epoch": state.best_epoch, "macs": session.manifest.macs,
                                "trainable": trainable_report(session.model)})
    atomic_write_json(run / CONFIG, session.info, force=True)
    shutil.rmtree(run / "cache", ignore_errors=True)
    _say(f"run folder: {run}")
    return run


def _write_model(session: Any, final: Any, metrics: dict[str, Any]) -> None:

    run, manifest = session.run, session.manifest
    save_model_atomic(final, run / MODEL)
    manifest.source_sha256 = sha256_file(run / MODEL)
    manifest.macs = count_macs(final)
    manifest.metrics = {"test_accuracy": metrics["accuracy"], "test_macro_f1": metrics["macro_avg"]["f1"],
                        "test_samples": metrics["num_samples"]}
    manifest.save(run / MANIFEST, force=True)


def _write_reports(session: Any, metrics: dict[str, Any], y_true: Any, y_pred: Any, probs: Any) -> None:

    run, state = session.run, session.state
    write_metrics(run, metrics)
    history = state.history_columns()
    atomic_write_json(run / HISTORY, history, force=True)
    plots.plot_curve(history, "accuracy", run / "accuracy.png", state.fine_tune_start_epoch, best_epoch=state.best_epoch)
    plots.plot_curve(history, "loss", run / "loss.png", state.fine_tune_start_epoch, best_epoch=state.best_epoch)
    plots.plot_confusion(metrics["confusion_matrix"], session.data.label_names, run / "confusion_matrix.png")
    _plot_examples(run, session.data, y_true, y_pred, probs)


def _plot_examples(run: Path, data: Any, y_true: Any, y_pred: Any, probs: Any, count: int = 16, window: int = 200) -> None:
    """predictions.png: up to 4 mistakes and the rest right, from the first ``window`` test images."""

    n = min(len(y_true), window)
    if n == 0:
        return
    wrong = [i for i in range(n) if y_pred[i] != y_true[i]][:4]
    right = [i for i in range(n) if y_pred[i] == y_true[i]][: count - len(wrong)]
    wanted = wrong + right  # the mistakes first
    by_index = {}
    for i, (img, _) in enumerate(data.raw("test").take(max(wanted) + 1).as_numpy_iterator()):
        if i in wanted:
            by_index[i] = img
    images = [by_index[i] for i in wanted]
    scores = [float(probs[i, y_pred[i]]) for i in wanted]
    plots.plot_predictions(images, [y_true[i] for i in wanted], [y_pred[i] for i in wanted], scores,
                           data.label_names, run / "predictions.png")
