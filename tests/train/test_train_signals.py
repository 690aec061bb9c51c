"""SIGTERM and Ctrl-C during training (issue 23): exit 130 with one resume line, the checkpoint intact.

The lost signal: the old handler raised KeyboardInterrupt wherever Python ran
it, and Keras 3.15's ``pythonify_logs`` (run after every batch) converts the
logs inside a bare ``except: pass``; a signal handled there was swallowed and
the run went on to exit 0. A parent's blocked signal mask, inherited across
exec, made a run deaf to SIGTERM as well.

The stress test signals a training run at many points, for SIGTERM and SIGINT:
before the first checkpoint, during a checkpoint write, just after one,
mid-epoch, during validation, in the second phase of a two-phase run, and
inside ``pythonify_logs``' try-body itself, at seeded random delays, some of
them beside a CPU hog. Every run must exit 130 within seconds with one line
saying how to resume, and ``--resume`` must go on from the checkpoint and
finish.

Budget (about 2 minutes of wall time on 2 cores). A TensorFlow process start
costs about 4 s and a fresh model's first step trace about 1 s, so 32 signals
through 32 process starts plus their resumes would take 5 minutes or more. So:

- ONE worker process imports TensorFlow once and runs the command's own entry
  point (``train.cli.main``: run_command, train, the exit code and stderr line
  a user gets) once per signal. The runs form chains: each trial is the
  ``--resume`` of the trial before, so every interrupted run's resume is
  exercised by the next signal, and each chain's last resume (no signal) must
  finish. The signals are real (``os.kill`` of the worker from a timer thread,
  delivered by the kernel to whichever thread it picks).
- Only what needs a real exec gets a process of its own: the first run of
  each chain, started by a wrapper parent that blocks SIGTERM and SIGINT and
  ignores SIGINT (the inherited-mask case), signalled after its first
  checkpoint. Both run beside the worker, adding load.
- The small CNN on the digits (20 steps an epoch) gives most trials; VGG16 at
  32x32 on 18 images gives the two-phase chain (few trials: its checkpoint is
  170 MB). A chain that never gets a checkpoint takes the signals before the
  first one (cheap: they land in set-up and the first trace).
- The delays are small after well-defined anchors (hooks in the worker), so
  each trial ends in 1-3 s instead of waiting out a random point of a long
  run; a CPU hog runs beside 8 of them.
Measured on 2 cores shared with other jobs (load 3): 71-80 s of wall time and
73-80 CPU-seconds (the hog's included); 111 s beside a second, test-long CPU
hog. At load 5-8 from other jobs it took 136-350 s.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import random
import resource
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from train_helpers import ROOT, make_image_folder

SEED = 23
LATENCY_LIMIT = 15.0  # seconds from the signal to the command's return, at most (a busy CI machine stalls a process)
LATENCY_MEDIAN = 2.0  # ... and typically
EXIT_LIMIT = 120.0  # a real process, to its exit: a hang detector. TensorFlow's teardown after the answer takes
# 1-3 s (digits, VGG16), but 35-40 s for a niced process beside a CPU hog on a machine at load 8.
LOST_AFTER = 40.0  # the worker gives up on a trial whose signal changed nothing for this long
UNSENT_AFTER = 120.0  # ... or whose signal never went off (its anchor never came)
WORKER_LIMIT = 900.0
HERE = Path(__file__).resolve().parent
SIGNALS = {"SIGTERM": signal.SIGTERM, "SIGINT": signal.SIGINT}
HOG = "import os\np = os.getppid()\nwhile os.getppid() == p: pass\n"  # a busy loop that ends with its parent
# A parent that blocks SIGTERM and SIGINT, ignores SIGINT, says so, and execs train-model.
BLOCKING_PARENT = (
    "import os, signal, sys\n"
    "signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})\n"
    "signal.signal(signal.SIGINT, signal.SIG_IGN)\n"
    "print('parent mask:', sorted(int(s) for s in signal.pthread_sigmask(signal.SIG_BLOCK, [])), file=sys.stderr, flush=True)\n"
    "os.execv(sys.executable, [sys.executable, '-m', 'edgedeploy.train', *sys.argv[1:]])\n"
)


def _env() -> dict[str, str]:
    path = str(ROOT) + (os.pathsep + os.environ["PYTHONPATH"] if os.environ.get("PYTHONPATH") else "")
    return {**os.environ, "PYTHONPATH": path, "TF_CPP_MIN_LOG_LEVEL": "2"}


# -- the plan (built by the test, run by the worker) ------------------------------------------------
def _digits_args(run: Path) -> list[str]:
    return ["--epochs", "1000", "--patience", "0", "--batch-size", "64", "--output", str(run)]


def _two_phase_args(run: Path, folder: Path) -> list[str]:
    return ["--model", "vgg16", "--weights", "none", "--finetune", "two-phase", "--data", str(folder), "--image-size", "32",
            "--epochs", "1", "--fine-tune-epochs", "1000", "--batch-size", "8", "--patience", "0", "--output", str(run)]


# anchor -> (low, high) delay in seconds after it
DELAYS = {"start": (0.0, 0.6), "ckpt_write": (0.0, 0.05), "after_ckpt": (0.0, 0.3), "mid_epoch": (0.0, 0.02),
          "validation": (0.0, 0.02), "phase2": (0.0, 1.5), "keras_logs": (0.0, 0.0)}
ROUND = ("start", "ckpt_write", "after_ckpt", "mid_epoch", "validation", "keras_logs")


def _trial(rng: random.Random, chain: str, anchor: str, hog: bool) -> dict[str, Any]:
    low, high = DELAYS[anchor]
    return {"chain": chain, "anchor": anchor, "delay": round(rng.uniform(low, high), 3), "hog": hog,
            "signal": rng.choice(sorted(SIGNALS)), "batch": rng.randint(2, 17), "nth": rng.randint(1, 15)}


def _plan(tmp: Path, rng: random.Random, folder: Path) -> dict[str, Any]:
    """The worker's trials. The digits and two-phase chains start as the two real blocked-parent runs."""
    chains = {
        "fresh": {"fresh": _digits_args(tmp / "fresh"), "run": str(tmp / "fresh")},  # never gets a checkpoint
        "digits": {"fresh": _digits_args(tmp / "digits"), "run": str(tmp / "digits"), "final": "--epochs",
                   "wait_for": str(tmp / "digits.done")},
        "two_phase": {"fresh": _two_phase_args(tmp / "two_phase", folder), "run": str(tmp / "two_phase"),
                      "final": "--fine-tune-epochs", "wait_for": str(tmp / "two_phase.done")},
    }
    trials = [_trial(rng, "fresh", "start", hog) for hog in (False, True, False, True)]  # before the first checkpoint
    for hog in (False, True, False, False):
        trials += [_trial(rng, "digits", anchor, hog) for anchor in ROUND]
    trials += [_trial(rng, "two_phase", "phase2", False), _trial(rng, "two_phase", "mid_epoch", False)]
    trials[-1]["batch"] = 1  # 3 batches an epoch
    finals = [{"chain": name, "final": True} for name in ("digits", "two_phase")]
    return {"chains": chains, "trials": trials + finals}


# -- the worker ---------------------------------------------------------------------------------------------
class _Sender:
    """Sends the trial's signal to this process: ``delay`` seconds after its anchor event, once."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.trial: dict[str, Any] | None = None
        self.timer: threading.Timer | None = None
        self.sent_at: float | None = None
        self.calls = 0

    def arm(self, trial: dict[str, Any] | None) -> None:
        with self.lock:
            self.trial, self.timer, self.sent_at, self.calls = trial, None, None, 0
        if trial and trial["anchor"] == "start":
            self.anchor("start")

    def disarm(self) -> None:
        with self.lock:
            self.trial = None
            if self.timer is not None:
                self.timer.cancel()

    def anchor(self, name: str) -> None:
        with self.lock:
            if self.trial is None or self.trial["anchor"] != name or self.timer is not None or self.sent_at:
                return
            self.timer = threading.Timer(self.trial["delay"], self.send)
            self.timer.start()

    def keras_logs(self) -> None:
        """Called inside pythonify_logs' try-body (main thread): the signal goes off right here, on the nth call."""
        if self.trial is None or self.trial["anchor"] != "keras_logs" or self.sent_at:
            return
        self.calls += 1
        if self.calls >= self.trial["nth"]:
            self.send()

    def send(self) -> None:
        with self.lock:
            if self.trial is None or self.sent_at:
                return
            self.sent_at = time.monotonic()
            os.kill(os.getpid(), SIGNALS[self.trial["signal"]])


def _install_hooks(sender: _Sender) -> None:
    """Anchor events in the training code (test-only wrappers)."""
    from keras.src import backend as keras_backend

    from edgedeploy.train import checkpoints, trainer

    save_model = checkpoints.save_model_atomic

    def save_model_atomic(model: Any, path: Path) -> None:  # the checkpoint's last.keras
        sender.anchor("ckpt_write")
        save_model(model, path)

    make_callback = trainer.make_callback

    def make_callback_hooked(*args: Any, **kw: Any) -> Any:
        cb = make_callback(*args, **kw)
        train_begin, test_begin = cb.on_train_batch_begin, cb.on_test_batch_begin

        def on_train_batch_begin(batch: int, logs: Any = None) -> None:
            if sender.trial and batch == sender.trial["batch"]:
                sender.anchor("mid_epoch")
            train_begin(batch, logs)

        def on_test_batch_begin(batch: int, logs: Any = None) -> None:
            sender.anchor("validation")
            test_begin(batch, logs)

        cb.on_train_batch_begin, cb.on_test_batch_begin = on_train_batch_begin, on_test_batch_begin
        return cb

    train_phase = trainer._Session._train_phase

    def train_phase_hooked(self: Any, plan: Any, index: int) -> None:  # entering or resuming the second phase
        if index >= 1:
            sender.anchor("phase2")
        train_phase(self, plan, index)

    is_tensor = keras_backend.is_tensor

    def is_tensor_hooked(x: Any) -> bool:  # keras' pythonify_logs calls it first thing in its try-body
        if threading.current_thread() is threading.main_thread() and sys._getframe(1).f_code.co_name == "pythonify_logs":
            sender.keras_logs()
        return is_tensor(x)

    checkpoints.save_model_atomic = save_model_atomic
    checkpoints.AFTER_EPOCH_HOOK = lambda epoch: sender.anchor("after_ckpt")
    trainer.make_callback = make_callback_hooked
    trainer._Session._train_phase = train_phase_hooked
    keras_backend.is_tensor = is_tensor_hooked


def _facts(run: Path) -> dict[str, Any]:
    """What an interrupted or finished run left on disk."""
    ckpt = run / "checkpoints"
    out: dict[str, Any] = {"folder": run.exists(), "files": sorted(p.name for p in ckpt.iterdir()) if ckpt.is_dir() else []}
    if (ckpt / "state.json").is_file():
        state = json.loads((ckpt / "state.json").read_text())
        out.update(epoch=state["epoch"], history=len(state["history"]), phase_index=state["phase_index"],
                   phase_done=state["phase_epochs_done"])
    if (run / "config.json").is_file():
        out["status"] = json.loads((run / "config.json").read_text()).get("status")
    if (run / "history.json").is_file():
        history = json.loads((run / "history.json").read_text())
        out.update(history_epochs=history["epoch"], phases=history["phase"])
    out["model"] = (run / "model.keras").is_file()
    return out


def _argv(chain: dict[str, Any], final: bool) -> list[str]:
    run = Path(chain["run"])
    if not final:
        return ["--resume", "--output", str(run)] if (run / "checkpoints/state.json").is_file() else chain["fresh"]
    facts = _facts(run)
    more = facts["epoch"] + 1 if chain["final"] == "--epochs" else (facts["phase_done"] if facts["phase_index"] else 0) + 1
    return ["--resume", "--output", str(run), chain["final"], str(more)]


def _wait_for(path: str | None, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while path and not Path(path).exists() and time.monotonic() < deadline:
        time.sleep(0.2)


def _watchdog(sender: _Sender, state: dict[str, Any], out: Any) -> None:
    """A signal that changed nothing (the bug) would leave the run training for 1000 epochs: report it and stop."""
    while True:
        time.sleep(0.5)
        sent, trial, now = sender.sent_at, state.get("trial"), time.monotonic()
        if trial is None or not state.get("running"):
            continue
        if sent and now - sent > LOST_AFTER:
            print(json.dumps({**trial, "lost": True}), file=out, flush=True)
            os._exit(3)
        if not sent and not trial.get("final") and now - state["t0"] > UNSENT_AFTER:
            print(json.dumps({**trial, "unsent": True}), file=out, flush=True)
            os._exit(4)


LATE: list[int] = []


def _start_clean() -> None:
    """Between trials, what a new process would not carry over: the previous run's garbage. Left to Python,
    a full collection later ran its TensorFlow finalizers inside a trial (26 s on a busy machine, with
    500,000 objects tracked). Collected here, outside any trial; what survives is frozen, so later
    collections scan only what the next run makes, as in a fresh process."""
    import gc

    gc.collect()
    gc.freeze()


def _late(signum: int, frame: Any) -> None:
    LATE.append(signum)


def worker(plan_file: str) -> None:
    """Run the plan's trials in this process, one JSON line each on stdout."""
    from edgedeploy.train._tf import import_keras
    from edgedeploy.train.cli import main

    import_keras()
    plan = json.loads(Path(plan_file).read_text())
    sender, state = _Sender(), {}
    _install_hooks(sender)
    for sig in SIGNALS.values():
        signal.signal(sig, _late)  # between trials: a late signal is recorded, not raised
    out = sys.stdout
    threading.Thread(target=_watchdog, args=(sender, state, out), daemon=True).start()
    hog = None
    for trial in plan["trials"]:
        chain = plan["chains"][trial["chain"]]
        _wait_for(chain.get("wait_for"))
        if trial.get("hog") and hog is None:
            hog = subprocess.Popen([sys.executable, "-c", HOG])
        elif not trial.get("hog") and hog is not None:
            hog.kill()
            hog.wait()
            hog = None
        argv = _argv(chain, bool(trial.get("final")))
        err = io.StringIO()
        LATE.clear()
        t0 = time.monotonic()
        state.update(trial=trial, running=True, t0=t0)
        sender.arm(None if trial.get("final") else trial)
        try:
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
                rc = main(argv)
        except BaseException as exc:  # noqa: BLE001  (a KeyboardInterrupt that escaped main: reported, then failed on)
            rc = f"escaped {type(exc).__name__}"
        done = time.monotonic()
        state["running"] = False
        sender.disarm()
        sent = sender.sent_at
        record = {**trial, "run": chain["run"], "argv": argv, "rc": rc, "stderr": err.getvalue(), "late": list(LATE), "sent": sent is not None,
                  "offset": round(sent - t0, 3) if sent else None, "latency": round(done - sent, 3) if sent else None,
                  "seconds": round(done - t0, 3), **_facts(Path(chain["run"]))}
        print(json.dumps(record), file=out, flush=True)
        _start_clean()
    if hog is not None:
        hog.kill()


# -- the test ---------------------------------------------------------------------------------------------
def _signal_blocked_runs(tmp: Path, rng: random.Random, folder: Path) -> list[dict[str, Any]]:
    """Two real runs whose parent blocked SIGTERM and SIGINT (and ignored SIGINT), signalled after their first checkpoint.

    They start the worker's digits (SIGTERM) and two-phase (SIGINT, in the head phase's checkpoint or the
    set-up of the second phase) chains, which the worker resumes to the end.
    """
    runs = {"digits": ("SIGTERM", _digits_args(tmp / "digits")), "two_phase": ("SIGINT", _two_phase_args(tmp / "two_phase", folder))}
    procs = {name: subprocess.Popen([sys.executable, "-c", BLOCKING_PARENT, *args], cwd=str(ROOT), env=_env(),
                                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
             for name, (_, args) in runs.items()}
    lines: dict[str, list[tuple[float, str]]] = {name: [] for name in procs}
    readers = [threading.Thread(target=lambda p, out: out.extend((time.monotonic(), ln) for ln in p.stderr),
                                args=(proc, lines[name]), daemon=True) for name, proc in procs.items()]
    for reader in readers:
        reader.start()
    records = []
    for (name, proc), reader in zip(procs.items(), readers):
        sig, state = runs[name][0], tmp / name / "checkpoints/state.json"
        deadline = time.monotonic() + 300
        while not state.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        offset = round(rng.uniform(0.0, 0.3), 3)
        time.sleep(offset)
        alive = proc.poll() is None
        sent = time.monotonic()
        proc.send_signal(SIGNALS[sig])
        try:
            proc.wait(timeout=EXIT_LIMIT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        exited = time.monotonic() - sent
        reader.join(10)
        said = [t for t, ln in lines[name] if "interrupted" in ln]  # the command's answer; then TensorFlow's teardown
        records.append({"chain": name, "run": str(tmp / name), "anchor": "after_ckpt, real process", "signal": sig,
                        "delay": offset, "hog": False, "rc": proc.returncode, "stderr": "".join(ln for _, ln in lines[name]),
                        "sent": alive, "late": [], "offset": None, "exit": round(exited, 3),
                        "latency": round(said[0] - sent, 3) if said else None, **_facts(tmp / name)})
        (tmp / f"{name}.done").touch()
    return records


def _problems(r: dict[str, Any]) -> list[str]:
    """What is wrong with one trial's record (empty: all good)."""
    run = Path(r["run"]) if "run" in r else None
    if r.get("lost"):
        return [f"signal lost: still training {LOST_AFTER:.0f} s after it"]
    if r.get("unsent"):
        return [f"its anchor never came in {UNSENT_AFTER:.0f} s (the run trained on without the signal)"]
    if r.get("final"):
        want = list(range(1, r.get("epoch", 0) + 1))
        ok = r["rc"] == 0 and r.get("history_epochs") == want and r["model"] and r.get("status") == "complete"
        return [] if ok else [f"final resume: exit {r['rc']}, epochs {r.get('history_epochs')} (want {want}), "
                              f"status {r.get('status')}: {r['stderr'][-300:]}"]
    bad = []
    lines = [ln for ln in r["stderr"].splitlines() if ln.strip() and not ln.startswith(("warning: ", "parent mask:"))]
    if r["rc"] != 130 or not r["sent"] or r["late"]:
        bad.append(f"exit {r['rc']} (signal sent: {r['sent']}, late: {r['late']})")
    if len(lines) != 1 or "Traceback" in r["stderr"]:
        bad.append(f"stderr is not one line: {r['stderr'][-400:]!r}")
    elif "epoch" in r:
        want = (f"train-model: interrupted after epoch {r['epoch']}; the last good checkpoint is in {run / 'checkpoints'}; "
                f"continue with: train-model --resume --output {run}")
        if lines[0] != want:
            bad.append(f"resume line {lines[0]!r}, want {want!r}")
        if r["files"] != ["best.weights.npz", "last.keras", "state.json"] or r["history"] != r["epoch"]:
            bad.append(f"checkpoint not intact: files {r['files']}, history {r['history']} for epoch {r['epoch']}")
        if r.get("status") != "interrupted":
            bad.append(f"config.json status {r.get('status')}")
    elif "nothing was kept" not in lines[0] or "run the same command again" not in lines[0] or r["folder"]:
        bad.append(f"no checkpoint, but: {lines[0]!r}, run folder left: {r['folder']}")
    if r["latency"] is None or r["latency"] > LATENCY_LIMIT:
        bad.append(f"took {r['latency']} s after the signal (limit {LATENCY_LIMIT:.0f} s)")
    if r.get("exit", 0) > EXIT_LIMIT:
        bad.append(f"the process exited {r['exit']} s after the signal (limit {EXIT_LIMIT:.0f} s)")
    return bad


def _table(records: list[dict[str, Any]]) -> str:
    rows = [f"{'#':>2} {'chain':<15} {'signal':<7} {'anchor':<26} {'delay':>6} {'offset':>7} {'hog':<3} {'exit':>4} "
            f"{'epoch':>5} {'latency':>7}  (offset: trial start to signal; latency: signal to the command's answer)"]
    for i, r in enumerate(records):
        rows.append(f"{i:>2} {r['chain']:<15} {r.get('signal', '-') if not r.get('final') else '-':<7} "
                    f"{r.get('anchor', 'final --resume') if not r.get('final') else 'final --resume':<26} "
                    f"{r.get('delay', 0) if not r.get('final') else 0:>6} {r.get('offset') or '-':>7} "
                    f"{'yes' if r.get('hog') else '':<3} {str(r.get('rc')):>4} {r.get('epoch', '-'):>5} {r.get('latency') or '-':>7}"
                    + (f"  (process exit {r['exit']} s)" if "exit" in r else ""))
    return "\n".join(rows)


@pytest.mark.slow
@pytest.mark.tf
def test_signals_at_seeded_points_exit_130_and_resume_finishes(tmp_path):
    """32 signals (SIGTERM and SIGINT, seeded) at every kind of point; every run exits 130, every chain finishes."""
    rng = random.Random(SEED)
    folder = make_image_folder(tmp_path / "colours", ("red", "green", "blue"), per_class=8)
    plan = _plan(tmp_path, rng, folder)
    (tmp_path / "plan.json").write_text(json.dumps(plan))
    started, cpu = time.monotonic(), resource.getrusage(resource.RUSAGE_CHILDREN)
    log = (tmp_path / "worker.out").open("w")
    worker_proc = subprocess.Popen([sys.executable, "-c", f"import sys; sys.path[:0] = [{str(HERE)!r}, {str(HERE.parent)!r}]; "
                                    f"import test_train_signals as t; t.worker({str(tmp_path / 'plan.json')!r})"],
                                   cwd=str(ROOT), env=_env(), stdout=log, stderr=subprocess.DEVNULL)
    try:
        blocked = _signal_blocked_runs(tmp_path, rng, folder)
        with contextlib.suppress(subprocess.TimeoutExpired):
            worker_proc.wait(timeout=WORKER_LIMIT)
    finally:
        if worker_proc.poll() is None:
            worker_proc.kill()
        log.close()
    done = [json.loads(ln) for ln in (tmp_path / "worker.out").read_text().splitlines() if ln.strip()]
    records = blocked + done
    signalled = [r for r in records if not r.get("final")]
    table = _table(records)
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    latencies = sorted(r.get("latency") or 0.0 for r in signalled)
    summary = (f"{len(signalled)} signals ({sum(r.get('signal') == 'SIGTERM' for r in signalled)} SIGTERM, "
               f"{sum(bool(r.get('hog')) for r in signalled)} beside a CPU hog), seed {SEED}: "
               f"{time.monotonic() - started:.0f} s wall, {used.ru_utime + used.ru_stime - cpu.ru_utime - cpu.ru_stime:.0f} s CPU "
               f"(hog included); latency median {latencies[len(latencies) // 2]:.2f} s, max {latencies[-1]:.2f} s; "
               f"worker exit {worker_proc.returncode}")
    print(summary + "\n" + table)
    problems = [f"#{i} {r['chain']} {r.get('signal')} at {r.get('anchor')} (delay {r.get('delay')}): {p}"
                for i, r in enumerate(records) for p in _problems(r)]
    assert len(records) == len(plan["trials"]) + len(blocked), (
        f"the worker stopped early (exit {worker_proc.returncode})\n{summary}\n{table}\n" + "\n".join(problems))
    assert not problems and len(signalled) >= 30, "\n".join(problems) + f"\n{summary}\n{table}"
    assert latencies[len(latencies) // 2] <= LATENCY_MEDIAN, f"median latency {latencies[len(latencies) // 2]} s\n{table}"
    for r in blocked:
        assert "parent mask: [2, 15]" in r["stderr"], r["stderr"]  # the parent really blocked both (and they were exec'd)
    assert [r["phases"] for r in records if r.get("final") and r["chain"] == "two_phase"][0][:2] == ["head", "fine_tune"]


# -- the guard and the runner, without TensorFlow ------------------------------------------------------
def test_guard_records_every_signal_and_raises_only_where_nothing_can_swallow_it():
    from edgedeploy.train.checkpoints import InterruptGuard, StopRequested

    guard = InterruptGuard()
    with pytest.raises(StopRequested):
        with guard.deferred():  # inside fit: recorded only
            guard.on_signal(signal.SIGTERM, None)
            assert guard.requested == signal.SIGTERM
            guard.raising(True)  # the first step's trace: raised at once
            with pytest.raises(KeyboardInterrupt):
                guard.on_signal(signal.SIGINT, None)
            with guard.critical():  # a checkpoint write: never raised, not even while tracing
                guard.on_signal(signal.SIGINT, None)
            guard.raising(False)
    for _ in range(2):  # the record is never cleared: every later check raises
        with pytest.raises(StopRequested):
            guard.check()
    assert guard.requested == signal.SIGTERM  # the first signal is the one reported
    with pytest.raises(KeyboardInterrupt):
        guard.on_signal(signal.SIGTERM, None)  # outside fit: at once


@pytest.fixture()
def saved_signal_state():
    """Restore the mask, SIGINT/SIGTERM handlers and unraisablehook of this (pytest's main) thread."""
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, [])
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    hook = sys.unraisablehook
    yield
    for s, h in handlers.items():
        signal.signal(s, h)
    signal.pthread_sigmask(signal.SIG_SETMASK, mask)
    sys.unraisablehook = hook


def test_guard_unblocks_reasserts_and_restores(saved_signal_state):
    from edgedeploy.train.checkpoints import InterruptGuard

    stop = {signal.SIGINT, signal.SIGTERM}
    signal.pthread_sigmask(signal.SIG_BLOCK, stop)  # as a parent's mask would leave them
    guard = InterruptGuard()
    with guard.installed():
        assert not stop & signal.pthread_sigmask(signal.SIG_BLOCK, [])
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a library replaces the handler and blocks the signal
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
        guard.reassert()  # at every epoch begin
        assert signal.getsignal(signal.SIGTERM) == guard.on_signal == signal.getsignal(signal.SIGINT)
        assert not stop & signal.pthread_sigmask(signal.SIG_BLOCK, [])
    assert stop <= signal.pthread_sigmask(signal.SIG_BLOCK, [])  # the caller's mask and handlers come back
    assert signal.getsignal(signal.SIGTERM) != guard.on_signal


def test_guard_hides_only_its_own_interrupt_raised_in_a_finalizer(saved_signal_state):
    from edgedeploy.train.checkpoints import InterruptGuard

    class Finalized:
        def __init__(self, exc: BaseException) -> None:
            self.exc = exc

        def __del__(self) -> None:
            raise self.exc

    seen: list[BaseException] = []
    sys.unraisablehook = lambda info: seen.append(info.exc_value)
    guard = InterruptGuard()
    with guard.installed():
        Finalized(KeyboardInterrupt())  # no signal came: reported
        guard.requested = signal.SIGTERM
        Finalized(KeyboardInterrupt())  # ours, and the record stops the run anyway: hidden
        Finalized(ValueError("a real bug"))  # still reported
    assert [type(e) for e in seen] == [KeyboardInterrupt, ValueError]


def test_run_command_unblocks_and_unignores_stop_signals_for_the_command(saved_signal_state):
    from edgedeploy.core.command import _on_sigterm, run_command

    stop = {signal.SIGINT, signal.SIGTERM}
    signal.pthread_sigmask(signal.SIG_BLOCK, stop)  # what a parent's mask and `cmd &` leave behind
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    seen = {}

    def body(args: Any) -> int:
        seen.update(blocked=stop & signal.pthread_sigmask(signal.SIG_BLOCK, []), sigint=signal.getsignal(signal.SIGINT),
                    sigterm=signal.getsignal(signal.SIGTERM))
        return 0

    assert run_command("prog", argparse.ArgumentParser, body, []) == 0
    assert seen == {"blocked": set(), "sigint": signal.default_int_handler, "sigterm": _on_sigterm}
    assert stop <= signal.pthread_sigmask(signal.SIG_BLOCK, [])  # an in-process caller gets its state back
    assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN


@pytest.mark.parametrize("where", ["RunFolder.prepare", "import_keras"])
def test_an_interrupt_before_a_resumed_run_is_loaded_names_the_checkpoint_on_disk(tmp_path, monkeypatch, where):
    """Found by the stress test: a signal early in a --resume (while TensorFlow is imported, or before the
    folder is checked) said "nothing was kept ... start over" although epoch 7's checkpoint was there."""
    from edgedeploy.core.runfolder import RunFolder
    from edgedeploy.train import api, trainer
    from edgedeploy.train.checkpoints import TrainState

    from train_helpers import tiny_config

    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    TrainState(epoch=7, phase_epochs_done=7, history=[{"epoch": e} for e in range(1, 8)]).save(run / "checkpoints/state.json")
    (run / "config.json").write_text(json.dumps({"config": {}, "status": "interrupted", "epochs_done": 7}))

    def signalled(*args: Any, **kwargs: Any) -> None:
        raise KeyboardInterrupt  # what the handler raises there

    if where == "RunFolder.prepare":
        monkeypatch.setattr(RunFolder, "prepare", signalled)
    else:
        monkeypatch.setattr(trainer, where, signalled)
    with pytest.raises(trainer.TrainingInterrupted) as e:
        api.train(tiny_config(tmp_path, resume=True))
    assert e.value.epoch == 7, e.value.message()
    assert e.value.message() == (f"interrupted after epoch 7; the last good checkpoint is in {run / 'checkpoints'}; "
                                 f"continue with: train-model --resume --output {run}")
    assert json.loads((run / "config.json").read_text())["epochs_done"] == 7
    assert (run / "checkpoints/state.json").is_file()
