"""Checkpoints, early stopping and the per-epoch progress line of a training run.

``checkpoints/`` in the run folder holds, after every epoch:

- ``last.keras``: the whole model with its optimizer state (what ``--resume`` loads);
- ``best.weights.npz``: the weights of the epoch with the lowest val_loss so far;
- ``state.json``: epochs done, phase, best val_loss, early-stopping counter and
  the history so far.

Each file is written atomically (temporary file, then rename), and Ctrl-C or
SIGTERM arriving while the three are written waits until all three agree, so
an interrupt leaves a consistent checkpoint. (A hard kill between two renames
can leave ``best``/``last`` one epoch ahead of ``state.json``; resuming then
repeats that epoch.)
"""
from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any, Callable

from edge_runtime.io import atomic_path, atomic_write_json, atomic_write_with

from ._tf import import_keras
from .finetune import Phase

CHECKPOINT_DIR = "checkpoints"
LAST = "last.keras"
BEST = "best.weights.npz"  # model weights only (Keras' .weights.h5 would carry the optimizer)
STATE = "state.json"

# Test hook: called with the number of completed epochs after each checkpoint.
AFTER_EPOCH_HOOK: Callable[[int], None] | None = None

# While a checkpoint is being written, Ctrl-C/SIGTERM only set "pending"; the
# interrupt is raised once best, last and state agree (see on_interrupt_signal).
CRITICAL = {"active": False, "pending": False}


def on_interrupt_signal(signum: int, frame: Any) -> None:
    """Signal handler for SIGINT and SIGTERM during training."""
    if CRITICAL["active"]:
        CRITICAL["pending"] = True
        return
    raise KeyboardInterrupt


def _say(msg: str) -> None:
    print(msg, flush=True)


def save_weights_atomic(model: Any, path: Path) -> None:
    import numpy as np

    weights = model.get_weights()
    atomic_write_with(path, lambda f: np.savez(f, *weights), force=True)


def load_weights(model: Any, path: Path) -> None:
    import numpy as np

    with np.load(path, allow_pickle=False) as z:
        model.set_weights([z[f"arr_{i}"] for i in range(len(z.files))])


def save_model_atomic(model: Any, path: Path) -> None:
    with atomic_path(path, force=True) as tmp:  # temp name ends in .keras, as Keras requires
        model.save(tmp)


def _learning_rate(model: Any) -> float:
    try:
        return float(import_keras().ops.convert_to_numpy(model.optimizer.learning_rate))
    except Exception:
        return float("nan")


def make_callback(run: Path, state: dict[str, Any], phase: Phase, patience: int, total_epochs: int, chief: bool) -> Any:
    keras = import_keras()
    ckpt = run / CHECKPOINT_DIR
    tty = sys.stderr.isatty()

    class RunCallback(keras.callbacks.Callback):
        """Checkpoints, early stopping, history and the progress display."""

        def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
            self._t0 = time.perf_counter()
            self._steps = self.params.get("steps") if isinstance(self.params, dict) else None

        def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
            if tty:
                total = f"/{self._steps}" if self._steps else ""
                print(f"\r  epoch {state['epoch'] + 1}/{total_epochs}  batch {batch + 1}{total}  loss {float((logs or {}).get('loss', 0)):.4f}",
                      end="", file=sys.stderr, flush=True)

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            logs = {k: float(v) for k, v in (logs or {}).items()}
            if tty:
                print("\r" + " " * 70 + "\r", end="", file=sys.stderr, flush=True)
            val_loss = logs.get("val_loss", logs.get("loss", float("inf")))
            best = state["best"]
            improved = best is None or val_loss < best
            row = {
                "epoch": epoch + 1, "phase": phase.name, "lr": _learning_rate(self.model),
                "seconds": round(time.perf_counter() - self._t0, 3),
                **{k: logs[k] for k in ("loss", "accuracy", "val_loss", "val_accuracy") if k in logs},
            }
            state["history"].append(row)
            state["epoch"] = epoch + 1
            state["phase_epochs_done"] += 1
            if improved:
                state["best"], state["best_epoch"], state["wait"] = val_loss, epoch + 1, 0
            else:
                state["wait"] += 1
            if patience and state["wait"] >= patience:
                self.model.stop_training = True
                state["phase_stopped"] = True
            if chief:
                CRITICAL["active"] = True
                try:
                    if improved:
                        save_weights_atomic(self.model, ckpt / BEST)
                    save_model_atomic(self.model, ckpt / LAST)
                    atomic_write_json(ckpt / STATE, state, force=True)
                finally:
                    CRITICAL["active"] = False
            acc = f"acc {logs['accuracy']:.4f}  " if "accuracy" in logs else ""
            vacc = f"val_acc {logs['val_accuracy']:.4f}  " if "val_accuracy" in logs else ""
            _say(f"epoch {epoch + 1:>3}/{total_epochs}  loss {logs.get('loss', float('nan')):.4f}  {acc}"
                 f"val_loss {val_loss:.4f}  {vacc}{row['seconds']:.1f}s" + ("  *best" if improved else "")
                 + ("  (early stop)" if state["phase_stopped"] else ""))
            if CRITICAL["pending"]:
                CRITICAL["pending"] = False
                raise KeyboardInterrupt
            if AFTER_EPOCH_HOOK is not None:
                AFTER_EPOCH_HOOK(state["epoch"])

    return RunCallback()


def new_state() -> dict[str, Any]:
    return {"epoch": 0, "phase_index": 0, "phase_epochs_done": 0, "phase_stopped": False, "best": None,
            "best_epoch": None, "wait": 0, "history": [], "fine_tune_start_epoch": None, "complete": False}


def history_columns(state: dict[str, Any]) -> dict[str, Any]:
    rows = state["history"]
    keys = ("epoch", "phase", "loss", "accuracy", "val_loss", "val_accuracy", "lr", "seconds")
    out: dict[str, Any] = {k: [r.get(k) for r in rows] for k in keys}
    out.update(best_epoch=state["best_epoch"], best_val_loss=state["best"], fine_tune_start_epoch=state["fine_tune_start_epoch"])
    return out
