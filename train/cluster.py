"""Multi-worker training: TF_CONFIG, a supervisor process and its time limits.

``--distribute multi-worker`` runs ``tf.distribute.MultiWorkerMirroredStrategy``
with one process per worker, each started with ``TF_CONFIG`` (the cluster and
this process's task). TensorFlow's cluster set-up and its collective ops block
inside C++ while holding the GIL, and its preemption notifier swallows
SIGTERM; a process blocked there can neither time out nor be stopped from
Python. So each ``train-model`` process is a small supervisor that never
imports TensorFlow, and the training runs in a child process:

- the child reports its stage ("cluster" set-up, training steps, "finish") over
  a pipe; when set-up or a training step makes no progress for
  ``cluster_timeout`` seconds (``--cluster-timeout``, default 120 s, or the
  ``EDGEDEPLOY_CLUSTER_TIMEOUT`` variable) the supervisor kills it and fails
  with one line (exit 1): a peer never came, or died;
- SIGTERM or Ctrl-C to the supervisor is passed on as SIGINT (a checkpoint
  being written is finished first); a child that does not end within
  ``GRACE_SECONDS`` is killed. The supervisor exits 130 with one line.
- Only the chief writes the run folder ``--output``. Another worker trains in
  a temporary folder that the supervisor removes; with ``--resume`` it copies
  the chief's checkpoint from ``--output`` (a shared folder) into it.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgedeploy.core.command import RuntimeFailure
from edgedeploy.core.errors import EdgeDeployError
from edgedeploy.core.runfolder import CONFIG, SPLITS, RunFolder

DEFAULT_CLUSTER_TIMEOUT = 120.0
TIMEOUT_ENV = "EDGEDEPLOY_CLUSTER_TIMEOUT"
GRACE_SECONDS = 3.0
BEAT_SECONDS = 1.0


class ClusterError(RuntimeFailure):
    """The cluster did not form, or a peer stopped answering (exit 1)."""


@dataclass(frozen=True)
class ClusterTask:
    """This process's place in the cluster, from TF_CONFIG."""

    task_type: str | None
    index: int
    workers: int
    has_chief: bool

    @property
    def is_chief(self) -> bool:
        """The chief, or worker 0 when the cluster names no chief, writes the run folder."""
        if self.task_type is None or self.task_type == "chief":
            return True
        return self.task_type == "worker" and self.index == 0 and not self.has_chief

    @classmethod
    def from_environ(cls, environ: Any = None) -> "ClusterTask":
        raw = (os.environ if environ is None else environ).get("TF_CONFIG", "")
        if not raw.strip():
            return cls(None, 0, 1, False)
        try:
            data = json.loads(raw)
        except ValueError as exc:
            raise EdgeDeployError(f"Received TF_CONFIG {raw[:80]!r}, expected JSON ({exc})") from None
        cluster = data.get("cluster") if isinstance(data, dict) else None
        task = data.get("task") if isinstance(data, dict) else None
        if not isinstance(cluster, dict) or not isinstance(task, dict):
            raise EdgeDeployError(f"Received TF_CONFIG {raw[:80]!r}, expected {{\"cluster\": {{...}}, \"task\": {{\"type\": ..., \"index\": ...}}}}")
        kind, index = task.get("type"), task.get("index", 0)
        members = cluster.get(kind) if isinstance(kind, str) else None
        if not isinstance(members, list) or not isinstance(index, int) or not 0 <= index < len(members):
            raise EdgeDeployError(f"Received TF_CONFIG task {task!r}, expected a type and index listed in its cluster {sorted(cluster)}")
        workers = sum(len(v) for k, v in cluster.items() if k in ("chief", "worker") and isinstance(v, list))
        return cls(kind, index, workers, "chief" in cluster)


def cluster_timeout(value: float | None = None) -> float:
    """The flag's value, else ``EDGEDEPLOY_CLUSTER_TIMEOUT``, else 120 s."""
    if value is not None:
        return float(value)
    raw = os.environ.get(TIMEOUT_ENV)
    if raw is None:
        return DEFAULT_CLUSTER_TIMEOUT
    try:
        seconds = float(raw)
    except ValueError:
        raise EdgeDeployError(f"Received {TIMEOUT_ENV}={raw!r}, expected seconds > 0") from None
    if not seconds > 0:
        raise EdgeDeployError(f"Received {TIMEOUT_ENV}={raw!r}, expected seconds > 0")
    return seconds


class Reporter:
    """The child's side of the pipe: stage changes and (throttled) heartbeats."""

    def __init__(self, conn: Any = None):
        self._conn = conn
        self._last = 0.0

    def stage(self, name: str, **info: Any) -> None:
        if self._conn is not None:
            self._conn.send(("stage", name, info))

    def beat(self, epoch: int | None = None) -> None:
        now = time.monotonic()
        if self._conn is not None and (epoch is not None or now - self._last >= BEAT_SECONDS):
            self._last = now
            self._conn.send(("beat", epoch))


# -- the child ----------------------------------------------------------------
def _quiet_fd2() -> None:
    """TensorFlow's C++ logs go to fd 2; Python's own lines keep the real stderr."""
    if os.environ.get("EDGEDEPLOY_DEBUG"):
        return
    sys.stderr.flush()
    sys.stderr = os.fdopen(os.dup(2), "w", buffering=1)
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 2)
    os.close(null)


def _die_with_parent() -> None:
    """Linux: the kernel kills this child when its supervisor dies (even by SIGKILL)."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _child(cfg: Any, run: str, chief: bool, created: str | None, conn: Any) -> None:
    _die_with_parent()
    _quiet_fd2()
    from .trainer import TrainingInterrupted, train_here

    try:
        train_here(cfg, Path(run), chief=chief, created=created, reporter=Reporter(conn))
        conn.send(("done",))
    except TrainingInterrupted as exc:
        conn.send(("interrupted", exc.epoch))
    except KeyboardInterrupt:
        conn.send(("interrupted", 0))
    except EdgeDeployError as exc:
        conn.send(("error", str(exc), exc.exit_code))
    except BaseException as exc:  # a TensorFlow error (a peer went away) or a bug
        kind = "peer" if type(exc).__name__ in PEER_ERRORS else "crash"
        conn.send((kind, f"{type(exc).__name__}: {_reason(exc)}", traceback.format_exc()))


# TensorFlow's errors when a collective loses a peer (its heartbeats stop, or it aborts).
PEER_ERRORS = ("UnavailableError", "DeadlineExceededError", "AbortedError", "CancelledError")


# TensorFlow's wrapping around the reason of an op error: its header, the node tags and its advice.
_TF_NOISE = (r"^Graph execution error:", r"\[\[\{\{[^}]*\}\}\]\]", r"\{\{[^}]*\}\}", r"\[Op:[^\]]*\]",
             r"The error could be from a previous operation\. Restart your program to reset\.")


def _reason(exc: BaseException, limit: int = 200) -> str:
    """Why ``exc`` happened, on one line of at most ``limit`` characters.

    A TensorFlow graph error starts with "Detected at node X defined at (most
    recent call last):" and the Python stack that built the node; that stack
    (indented lines) is dropped, so the line keeps the reason that follows it.
    """
    import re

    kept, in_stack = [], False
    for line in str(exc).splitlines():
        if line.startswith("Detected at node"):
            in_stack = True
        elif in_stack and (not line.strip() or line[:1].isspace()):
            continue
        else:
            in_stack = False
            kept.append(line)
    text = " ".join(" ".join(kept).split())
    for noise in _TF_NOISE:
        text = re.sub(noise, "", text)
    text = re.sub(r"^[\w/.-]+:\d+: ", "", " ".join(text.split())) or type(exc).__name__  # "file.cc:12: why"
    return text if len(text) <= limit else text[:limit].rsplit(" ", 1)[0] + " ..."


# -- the supervisor --------------------------------------------------------------
def _worker_dir(cfg: Any) -> Path:
    """A non-chief's private run folder; with --resume, a copy of the chief's checkpoint."""
    tmp = Path(tempfile.mkdtemp(prefix="edgedeploy-worker-"))
    mine = RunFolder(tmp)
    mine.checkpoints.mkdir()
    if cfg.resume:
        chief = RunFolder(cfg.output)
        src = chief.path
        if not chief.has_checkpoint():
            shutil.rmtree(tmp, ignore_errors=True)
            raise EdgeDeployError(f"nothing to resume in {src}: a worker resumes from the chief's checkpoint, so --output "
                                  f"must be the chief's run folder (on a shared file system)")
        shutil.copytree(chief.checkpoints, mine.checkpoints, dirs_exist_ok=True)
        for name in (CONFIG, SPLITS):
            if (src / name).is_file():
                shutil.copy2(src / name, tmp / name)
    return tmp


def train_multi_worker(cfg: Any) -> Path:
    """Run one worker of a multi-worker training in a supervised child process."""
    import multiprocessing

    from .trainer import TrainingInterrupted

    task = ClusterTask.from_environ()
    timeout = cluster_timeout(cfg.cluster_timeout)
    if task.is_chief:
        run = RunFolder(cfg.output).path
        created = RunFolder(run).prepare(force=bool(cfg.force), resume=bool(cfg.resume))
    else:  # after the chief check: a worker never touches --output
        run, created = _worker_dir(cfg), None  # removed as a whole below
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(cfg, str(run), task.is_chief, created, child), name="edgedeploy-worker")
    output = Path(cfg.output).expanduser()
    state = {"epoch": 0, "stage": "start", "deadline": None, "result": None}
    previous = _interrupt_on_sigterm()
    try:
        proc.start()
        child.close()
        try:
            _supervise(proc, parent, state, timeout, task)
        except KeyboardInterrupt:
            _stop(proc, signal.SIGINT)
            _drain(parent, state)
            raise TrainingInterrupted(output, state["epoch"], chief=task.is_chief) from None
        _raise_outcome(state, task, output, proc.exitcode)
        return output  # the cluster's run folder (the chief's)
    except (EdgeDeployError, KeyboardInterrupt):
        if task.is_chief and not RunFolder(run).has_checkpoint():
            RunFolder(run).discard_failed(created)
        raise
    finally:
        if proc.is_alive():
            proc.kill()
            proc.join(5)
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        if not task.is_chief:
            shutil.rmtree(run, ignore_errors=True)


def _raise_outcome(state: dict[str, Any], task: ClusterTask, output: Path, exitcode: int | None) -> None:
    """Turn the child's last message into this process's outcome: return (done) or raise one line."""
    from .trainer import TrainingInterrupted

    result = state["result"]
    if result is None:
        raise ClusterError(f"the training process of this {_who(task)} ended with exit code {exitcode} "
                           f"during {state['stage']} and said nothing (see --debug)")
    kind = result[0]
    if kind == "done":
        return
    if kind == "interrupted":
        raise TrainingInterrupted(output, result[1], chief=task.is_chief)
    if kind == "error":
        err = EdgeDeployError(result[1])
        err.exit_code = result[2]
        raise err
    if os.environ.get("EDGEDEPLOY_DEBUG"):
        print(result[2], file=sys.stderr, end="")
    if kind == "peer":
        raise ClusterError(f"a peer worker stopped or is unreachable {_where(state)} ({result[1]}); "
                           f"restart every worker (with --resume once a checkpoint exists)")
    raise ClusterError(f"{_who(task)} failed during {state['stage']}: {result[1]}")


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def _interrupt_on_sigterm() -> Any:
    """SIGTERM becomes KeyboardInterrupt in the supervisor (main thread only); returns the old handler."""
    try:
        return signal.signal(signal.SIGTERM, _raise_interrupt)
    except ValueError:
        return None


def _who(task: ClusterTask) -> str:
    return f"{task.task_type or 'worker'} {task.index}"


def _supervise(proc: Any, conn: Any, state: dict[str, Any], timeout: float, task: ClusterTask) -> None:
    while True:
        if conn.poll(0.2):
            try:
                msg = conn.recv()
            except EOFError:
                break
            _note(msg, state, timeout)
            continue
        if not proc.is_alive():
            _drain(conn, state)
            break
        deadline = state["deadline"]
        if deadline is not None and time.monotonic() > deadline:
            proc.kill()
            proc.join(5)
            if state["result"] is not None or state["stage"] == "finish":
                break  # the outcome is known; only TensorFlow's shutdown hung
            if state["stage"] == "cluster":
                raise ClusterError(f"the cluster did not form within --cluster-timeout {timeout:g} s: {_who(task)} of "
                                   f"{task.workers} waited for its peers (is every worker in TF_CONFIG started?)")
            raise ClusterError(f"no progress from the cluster for --cluster-timeout {timeout:g} s {_where(state)}: a peer "
                               f"worker stopped or is unreachable; restart every worker (with --resume once a checkpoint exists)")


def _where(state: dict[str, Any]) -> str:
    return f"after epoch {state['epoch']}" if state["epoch"] else "before the first epoch finished"


def _note(msg: tuple, state: dict[str, Any], timeout: float) -> None:
    kind = msg[0]
    now = time.monotonic()
    if kind == "stage":
        state["stage"] = msg[1]
        state["deadline"] = now + timeout if msg[1] in ("cluster", "train", "finish") else None
    elif kind == "beat":
        if msg[1] is not None:
            state["epoch"] = msg[1]
        state["deadline"] = now + timeout
    else:  # the outcome: done, interrupted, error, peer, crash
        state["result"] = msg
        state["deadline"] = now + timeout
        state["stage"] = "finish" if kind == "done" else state["stage"]


def _drain(conn: Any, state: dict[str, Any]) -> None:
    try:
        while conn.poll(0):
            _note(conn.recv(), state, 0)
    except (EOFError, OSError):
        pass


def _stop(proc: Any, sig: int) -> None:
    """Ask the child to stop (a checkpoint in progress finishes), then kill it."""
    if proc.is_alive() and proc.pid:
        try:
            os.kill(proc.pid, sig)
        except ProcessLookupError:
            return
    proc.join(GRACE_SECONDS)
    if proc.is_alive():
        proc.kill()
        proc.join(5)
