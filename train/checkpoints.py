"""Checkpoints, early stopping and the per-epoch progress line of a training run.

``checkpoints/`` in the run folder holds, after every epoch:

- ``last.keras``: the whole model with its optimizer state (what ``--resume`` loads);
- ``best.weights.npz``: the weights of the epoch with the lowest val_loss so far;
- ``state.json``: epochs done, phase, best val_loss, early-stopping counter and
  the history so far.

Each file is written atomically (temporary file, then rename), and Ctrl-C or
SIGTERM never cuts into the writing of the three (``InterruptGuard``), so
an interrupt leaves a consistent checkpoint. (A hard kill between two renames
can leave ``best``/``last`` one epoch ahead of ``state.json``; resuming then
repeats that epoch.)
"""
from __future__ import annotations

import contextlib
import json
import signal
import sys
import threading
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Iterator

from edgedeploy.core.io import atomic_path, atomic_write_json, atomic_write_with

# best.weights.npz holds model weights only (Keras' .weights.h5 would carry the optimizer)
from edgedeploy.core.runfolder import BEST, CHECKPOINTS, LAST, STATE

from ._tf import import_keras
from .finetune import Phase

# Test hook: called with the number of completed epochs after each checkpoint.
AFTER_EPOCH_HOOK: Callable[[int], None] | None = None


class StopRequested(KeyboardInterrupt):
    """Ctrl-C or SIGTERM, raised by our own code at a safe point (``InterruptGuard.check``)."""


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class InterruptGuard:
    """Ctrl-C/SIGTERM during training: recorded first, raised only where nothing can swallow it.

    ``on_signal`` is the handler. It always records the signal in ``requested``,
    which is never cleared, so a stop cannot be lost. Outside ``deferred()``
    (our own set-up and finishing code) it then raises KeyboardInterrupt at
    once, so a long import or download stops quickly. Inside ``deferred()``
    (``model.fit``) it only records: an exception raised asynchronously inside
    Keras can be swallowed (Keras 3.15's ``pythonify_logs``, run after every
    batch, wraps its tensor conversion in a bare ``except: pass``, which lost
    SIGTERMs; issue 23), so there the run's callback calls ``check()`` at every
    batch and epoch boundary and after each checkpoint instead. Two exceptions:
    inside ``critical()`` (a checkpoint write) it never raises, and during a
    step that may trace and compile the model (``raising(True)``, the first of
    each loop; seconds for a big model) it raises as outside. A
    KeyboardInterrupt that a library swallowed is caught up by the next
    ``check()``.

    ``pending``/``raise_pending`` keep the older one-shot interface: a signal
    recorded and not raised (in ``critical()`` or ``deferred()``) is raised
    once by ``raise_pending``.
    """

    def __init__(self) -> None:
        self.requested: int | None = None
        self.pending = False
        self._deferred = 0
        self._critical = 0
        self._raising = False
        self._installed = False

    def on_signal(self, signum: int, frame: Any) -> None:
        self.requested = self.requested or signum
        if self._critical or (self._deferred and not self._raising):
            self.pending = True
            return
        raise KeyboardInterrupt

    def raising(self, on: bool) -> None:
        """Inside ``deferred()``: raise at once again (a library call that cannot be polled, e.g. a trace)."""
        self._raising = on

    def check(self) -> None:
        """Raise ``StopRequested`` if SIGINT or SIGTERM came at any time since ``installed()``."""
        if self.requested:
            self.pending = False
            raise StopRequested(self.requested)

    def reassert(self) -> None:
        """Our handler for SIGINT and SIGTERM, and both unblocked (main thread only).

        Called at every epoch begin, in case a library replaced the handler or blocked the signals.
        """
        if self._installed and threading.current_thread() is threading.main_thread():
            for sig in STOP_SIGNALS:
                signal.signal(sig, self.on_signal)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        """SIGINT and SIGTERM go to ``on_signal`` (main thread only) until the block ends; re-entrant."""
        if self._installed:
            yield
            return
        handlers: dict[int, Any] = {}
        mask = None
        unraisable = sys.unraisablehook
        if threading.current_thread() is threading.main_thread():
            for sig in STOP_SIGNALS:
                handlers[sig] = signal.signal(sig, self.on_signal)
            mask = signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
            sys.unraisablehook = self._unraisable(unraisable)
        self._installed = True
        try:
            yield
        finally:
            self._installed = False
            self._deferred = self._critical = 0
            self._raising = self.pending = False
            for sig, old in handlers.items():
                signal.signal(sig, old)
            if mask is not None:
                signal.pthread_sigmask(signal.SIG_SETMASK, mask)
                sys.unraisablehook = unraisable

    def _unraisable(self, previous: Callable[[Any], None]) -> Callable[[Any], None]:
        """Python drops an exception raised in a finalizer (``__del__``) and prints it; our own
        KeyboardInterrupt there is noise: the recorded request stops the run at the next check."""

        def hook(info: Any) -> None:
            if not (self.requested and isinstance(info.exc_value, KeyboardInterrupt)):
                previous(info)

        return hook

    @contextlib.contextmanager
    def deferred(self) -> Iterator[None]:
        """Signals are only recorded in the block; ``check()`` at its end raises a recorded one."""
        self._deferred += 1
        try:
            yield
        finally:
            self._deferred -= 1
        if not self._deferred:
            self.check()

    @contextlib.contextmanager
    def critical(self) -> Iterator[None]:
        """A checkpoint write: signals are recorded, never raised inside it."""
        self._critical += 1
        try:
            yield
        finally:
            self._critical -= 1

    def raise_pending(self) -> None:
        if self.pending:
            self.pending = False
            raise KeyboardInterrupt


@dataclass
class TrainState:
    """Where a run is: epochs, phase, early stopping, history (``state.json``)."""

    epoch: int = 0
    phase_index: int = 0
    phase_epochs_done: int = 0
    phase_stopped: bool = False
    best: float | None = None
    best_epoch: int | None = None
    wait: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    fine_tune_start_epoch: int | None = None
    complete: bool = False

    @classmethod
    def load(cls, path: Path) -> "TrainState":
        data = json.loads(path.read_text(encoding="utf-8"))
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def save(self, path: Path) -> None:
        atomic_write_json(path, self.to_dict(), force=True)

    def record_epoch(self, row: dict[str, Any], val_loss: float, patience: int, phase_epochs: int | None = None) -> bool:
        """Add one finished epoch; return whether val_loss improved.

        Sets ``phase_stopped`` on an early stop: patience ran out with epochs of the phase
        (``phase_epochs``, when given) still to go. Running out on the phase's last epoch is
        the planned end, not an early stop.
        """
        improved = self.best is None or val_loss < self.best
        self.history.append(row)
        self.epoch = row["epoch"]
        self.phase_epochs_done += 1
        if improved:
            self.best, self.best_epoch, self.wait = val_loss, self.epoch, 0
        else:
            self.wait += 1
        if patience and self.wait >= patience and (phase_epochs is None or self.phase_epochs_done < phase_epochs):
            self.phase_stopped = True
        return improved

    def enter_phase(self, index: int, fine_tune: bool) -> None:
        self.phase_index, self.phase_epochs_done, self.phase_stopped, self.wait = index, 0, False, 0
        if fine_tune:
            self.fine_tune_start_epoch = self.epoch + 1

    def history_columns(self) -> dict[str, Any]:
        """history.json: one list per column, plus the best epoch."""
        keys = ("epoch", "phase", "loss", "accuracy", "val_loss", "val_accuracy", "lr", "seconds")
        out: dict[str, Any] = {k: [r.get(k) for r in self.history] for k in keys}
        out.update(best_epoch=self.best_epoch, best_val_loss=self.best, fine_tune_start_epoch=self.fine_tune_start_epoch)
        return out


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


def make_callback(run: Path, state: TrainState, phase: Phase, patience: int, total_epochs: int, chief: bool,
                  guard: InterruptGuard) -> Any:
    keras = import_keras()
    ckpt = run / CHECKPOINTS
    tty = sys.stderr.isatty()
    traced = {"train": False, "test": False}  # the first step of each loop has run (this fit call)

    class RunCallback(keras.callbacks.Callback):
        """Checkpoints, early stopping, history and the progress display.

        Also where a Ctrl-C/SIGTERM recorded by ``guard`` stops ``fit``: at every batch (training and
        validation) and epoch boundary, and after each checkpoint. A stop before an epoch's checkpoint
        drops that epoch (``--resume`` runs it again). The first step of the training and of the
        validation loop may trace and compile for seconds, so a signal there raises at once
        (``guard.raising``). The batch hooks run in the main thread: Keras runs ``on_*_batch_begin``
        there always, and ``on_*_batch_end`` because they are overridden.
        """

        def _begin(self, loop: str) -> None:
            guard.check()
            if not traced[loop]:
                guard.raising(True)

        def _end(self, loop: str) -> None:
            if not traced[loop]:
                traced[loop] = True
                guard.raising(False)
            guard.check()

        def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
            guard.reassert()
            guard.check()
            self._t0 = time.perf_counter()
            self._steps = self.params.get("steps") if isinstance(self.params, dict) else None

        def on_train_batch_begin(self, batch: int, logs: Any = None) -> None:
            self._begin("train")

        def on_test_batch_begin(self, batch: int, logs: Any = None) -> None:
            self._begin("test")

        def on_test_batch_end(self, batch: int, logs: Any = None) -> None:
            self._end("test")

        def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
            self._end("train")
            if tty:
                total = f"/{self._steps}" if self._steps else ""
                print(f"\r  epoch {state.epoch + 1}/{total_epochs}  batch {batch + 1}{total}  loss {float((logs or {}).get('loss', 0)):.4f}",
                      end="", file=sys.stderr, flush=True)

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            logs = {k: float(v) for k, v in (logs or {}).items()}
            if tty:
                print("\r" + " " * 70 + "\r", end="", file=sys.stderr, flush=True)
            val_loss = logs.get("val_loss", logs.get("loss", float("inf")))
            row = {
                "epoch": epoch + 1, "phase": phase.name, "lr": _learning_rate(self.model),
                "seconds": round(time.perf_counter() - self._t0, 3),
                **{k: logs[k] for k in ("loss", "accuracy", "val_loss", "val_accuracy") if k in logs},
            }
            improved = state.record_epoch(row, val_loss, patience, phase.epochs)
            if state.phase_stopped:
                self.model.stop_training = True
            if chief:
                with guard.critical():
                    if improved:
                        save_weights_atomic(self.model, ckpt / BEST)
                    save_model_atomic(self.model, ckpt / LAST)
                    state.save(ckpt / STATE)
            acc = f"acc {logs['accuracy']:.4f}  " if "accuracy" in logs else ""
            vacc = f"val_acc {logs['val_accuracy']:.4f}  " if "val_accuracy" in logs else ""
            _say(f"epoch {epoch + 1:>3}/{total_epochs}  loss {logs.get('loss', float('nan')):.4f}  {acc}"
                 f"val_loss {val_loss:.4f}  {vacc}{row['seconds']:.1f}s" + ("  *best" if improved else "")
                 + ("  (early stop)" if state.phase_stopped else ""))
            guard.check()
            if AFTER_EPOCH_HOOK is not None:
                AFTER_EPOCH_HOOK(state.epoch)

    return RunCallback()
