"""--distribute multi-worker: two real worker processes on localhost with TF_CONFIG.

The cluster-level behaviour is checked end to end: both workers train and exit
0, only the chief writes its run folder, a worker resumes from the chief's
checkpoint, a worker whose peer dies or never comes stops within
--cluster-timeout with one line, and SIGTERM during cluster set-up ends the
process within seconds. The TF-free parts (TF_CONFIG parsing, the timeout
setting) are unit tests at the end.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edgedeploy.core.errors import EdgeDeployError

from train_helpers import ROOT  # noqa: F401  (autouse: no inherited --debug)


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def _start(ports: list[int], index: int, output: Path, tmp: Path, *args: str) -> subprocess.Popen:
    tf_config = {"cluster": {"worker": [f"localhost:{p}" for p in ports]}, "task": {"type": "worker", "index": index}}
    env = dict(os.environ, TF_CONFIG=json.dumps(tf_config), TMPDIR=str(tmp),
               PYTHONPATH=str(ROOT) + (os.pathsep + os.environ["PYTHONPATH"] if os.environ.get("PYTHONPATH") else ""))
    cmd = [sys.executable, "-m", "edgedeploy.train", "--distribute", "multi-worker", "--output", str(output), "--batch-size", "64",
           "--patience", "0", *args]
    return subprocess.Popen(cmd, cwd=str(ROOT), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def _finish(procs: list[subprocess.Popen], timeout: float = 400) -> list[tuple[int, str, str]]:
    out = []
    for p in procs:
        try:
            so, se = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            so, se = p.communicate()
        out.append((p.returncode, so, se))
    return out


def _wait_for(pred, timeout: float) -> bool:
    end = time.time() + timeout
    while time.time() < end:
        if pred():
            return True
        time.sleep(0.2)
    return False


def _epoch_logs(stdout: str) -> list[str]:
    """The epoch lines without their timing: 'epoch 1/2 loss .. acc .. val_loss .. val_acc ..'."""
    return [" ".join(line.split()[:10]) for line in stdout.splitlines() if line.startswith("epoch ")]


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("localhost", port)) == 0


@pytest.mark.slow
@pytest.mark.tf
def test_two_workers_train_and_resume(tmp_path):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    chief_out, worker_out = tmp_path / "chief", tmp_path / "worker"
    ports = _free_ports(2)
    results = _finish([_start(ports, 0, chief_out, tmp, "--epochs", "2"), _start(ports, 1, worker_out, tmp, "--epochs", "2")])
    for rc, so, se in results:
        assert rc == 0, se[-2000:]
        assert "epoch   2/2" in so and "test accuracy" in so
    assert (chief_out / "model.keras").is_file() and (chief_out / "manifest.json").is_file()
    assert not worker_out.exists(), "a non-chief worker wrote its --output"
    assert list(tmp.iterdir()) == [], "the worker's temporary folder was not removed"
    info = json.loads((chief_out / "config.json").read_text())
    assert info["status"] == "complete" and info["distribute"] == {"strategy": "multi-worker", "replicas": 2}
    # Every worker computed the same (all-reduced) epoch logs.
    assert _epoch_logs(results[0][1]) == _epoch_logs(results[1][1]) and len(_epoch_logs(results[0][1])) == 2

    # --resume: the chief continues its run, the worker resumes from the chief's (shared) checkpoint.
    ports = _free_ports(2)
    results = _finish([_start(ports, 0, chief_out, tmp, "--resume", "--epochs", "3"),
                       _start(ports, 1, chief_out, tmp, "--resume", "--epochs", "3")])
    for rc, so, se in results:
        assert rc == 0, se[-2000:]
        assert "resuming" in so and "after epoch 2" in so and "epoch   3/3" in so
    assert json.loads((chief_out / "history.json").read_text())["epoch"] == [1, 2, 3]
    assert list(tmp.iterdir()) == []


@pytest.mark.slow
@pytest.mark.tf
def test_worker_stops_when_its_peer_dies(tmp_path):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    chief_out = tmp_path / "chief"
    ports = _free_ports(2)
    chief = _start(ports, 0, chief_out, tmp, "--epochs", "200", "--cluster-timeout", "30")
    worker = _start(ports, 1, tmp_path / "worker", tmp, "--epochs", "200", "--cluster-timeout", "30")
    try:
        assert _wait_for(lambda: (chief_out / "checkpoints/state.json").is_file(), 300), "training never started"
        os.killpg(worker.pid, signal.SIGKILL)  # the worker and its training process die at once
        killed = time.time()
        rc, so, se = _finish([chief], timeout=60)[0]
    finally:
        for p in (chief, worker):
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
        worker.communicate()
    assert time.time() - killed < 30 + 30
    assert rc == 1, se
    lines = se.strip().splitlines()
    assert len(lines) == 1, se
    # Either TensorFlow notices the missing heartbeats, or --cluster-timeout runs out: one line either way.
    assert ("a peer worker stopped or is unreachable after epoch" in lines[0]
            or "no progress from the cluster for --cluster-timeout 30 s after epoch" in lines[0]), lines[0]
    assert "--resume" in lines[0] and "Traceback" not in se
    assert json.loads((chief_out / "checkpoints/state.json").read_text())["epoch"] >= 1  # the checkpoint is kept


@pytest.mark.slow
@pytest.mark.tf
def test_peer_never_comes_then_sigterm_during_set_up(tmp_path):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    ports = _free_ports(2)
    # A worker whose peer never comes stops after --cluster-timeout with one line.
    rc, so, se = _finish([_start(ports, 1, tmp_path / "w1", tmp, "--cluster-timeout", "8")], timeout=240)[0]
    assert rc == 1 and len(se.strip().splitlines()) == 1, se
    assert "the cluster did not form within --cluster-timeout 8 s: worker 1 of 2 waited for its peers" in se
    assert not (tmp_path / "w1").exists() and list(tmp.iterdir()) == []

    # SIGTERM while TensorFlow blocks in the cluster set-up (its gRPC server is up, the peer is missing).
    ports = _free_ports(2)
    p = _start(ports, 0, tmp_path / "w0", tmp, "--cluster-timeout", "600")
    try:
        assert _wait_for(lambda: _listening(ports[0]), 240), "the worker never started its server"
        time.sleep(1.0)
        p.send_signal(signal.SIGTERM)
        sent = time.time()
        rc, so, se = _finish([p], timeout=30)[0]
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
    assert time.time() - sent < 10
    assert rc == 130 and len(se.strip().splitlines()) == 1 and "interrupted" in se, se
    assert not (tmp_path / "w0").exists(), "the interrupted run left its folder behind"


# -- TF-free units --------------------------------------------------------------------
def test_cluster_task_from_tf_config():
    from edgedeploy.train.cluster import ClusterTask

    cluster = {"worker": ["a:1", "b:2", "c:3"]}
    assert ClusterTask.from_environ({}).is_chief
    w0 = ClusterTask.from_environ({"TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": 0}})})
    w2 = ClusterTask.from_environ({"TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": 2}})})
    assert (w0.is_chief, w2.is_chief, w2.workers) == (True, False, 3)
    with_chief = {"chief": ["x:0"], **cluster}
    w0c = ClusterTask.from_environ({"TF_CONFIG": json.dumps({"cluster": with_chief, "task": {"type": "worker", "index": 0}})})
    chief = ClusterTask.from_environ({"TF_CONFIG": json.dumps({"cluster": with_chief, "task": {"type": "chief", "index": 0}})})
    assert (w0c.is_chief, chief.is_chief, chief.workers) == (False, True, 4)
    with pytest.raises(EdgeDeployError, match=r"Received TF_CONFIG '\{oops', expected JSON"):
        ClusterTask.from_environ({"TF_CONFIG": "{oops"})
    with pytest.raises(EdgeDeployError, match=r"Received TF_CONFIG task .*'index': 5.*expected a type and index"):
        ClusterTask.from_environ({"TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": 5}})})


def test_cluster_timeout_setting(monkeypatch):
    from edgedeploy.train.cluster import DEFAULT_CLUSTER_TIMEOUT, TIMEOUT_ENV, cluster_timeout
    from edgedeploy.train.config import TrainConfig

    monkeypatch.delenv(TIMEOUT_ENV, raising=False)
    assert cluster_timeout(None) == DEFAULT_CLUSTER_TIMEOUT == 120.0
    monkeypatch.setenv(TIMEOUT_ENV, "30")
    assert cluster_timeout(None) == 30.0 and cluster_timeout(5) == 5.0  # the flag wins
    monkeypatch.setenv(TIMEOUT_ENV, "soon")
    with pytest.raises(EdgeDeployError, match=f"Received {TIMEOUT_ENV}='soon', expected seconds > 0"):
        cluster_timeout(None)
    with pytest.raises(EdgeDeployError, match="Received cluster_timeout=0.0, expected > 0"):
        TrainConfig(cluster_timeout=0).checked()


def test_cli_cluster_timeout_flag_reaches_the_config():
    from edgedeploy.train.cli import build_parser, config_from_args

    cfg = config_from_args(build_parser().parse_args(["--distribute", "multi-worker", "--cluster-timeout", "45"]))
    assert cfg.cluster_timeout == 45.0 and cfg.distribute == "multi-worker"


class _FakeProc:
    """Stands in for the training process: alive until killed."""

    def __init__(self):
        self.killed = False
        self.exitcode = None

    def is_alive(self):
        return not self.killed

    def kill(self):
        self.killed, self.exitcode = True, -9

    def join(self, timeout=None):
        pass


@pytest.mark.parametrize("messages, expected", [
    ([("stage", "cluster", {})], "the cluster did not form within --cluster-timeout 0.5 s: worker 1 of 2"),
    ([("stage", "train", {}), ("beat", 3)], "no progress from the cluster for --cluster-timeout 0.5 s after epoch 3"),
    ([("stage", "train", {})], "no progress from the cluster for --cluster-timeout 0.5 s before the first epoch finished"),
])
def test_supervisor_stops_a_silent_training_process(messages, expected):
    import multiprocessing

    from edgedeploy.train.cluster import ClusterError, ClusterTask, _supervise

    parent, child = multiprocessing.Pipe(duplex=False)
    for msg in messages:
        child.send(msg)
    proc = _FakeProc()
    state = {"epoch": 0, "stage": "start", "deadline": None, "result": None}
    t0 = time.monotonic()
    with pytest.raises(ClusterError) as e:
        _supervise(proc, parent, state, 0.5, ClusterTask("worker", 1, 2, False))
    assert expected in str(e.value) and proc.killed and e.value.exit_code == 1
    assert time.monotonic() - t0 < 5


def test_supervisor_accepts_a_done_child_that_hangs_on_exit():
    import multiprocessing

    from edgedeploy.train.cluster import ClusterTask, _supervise

    parent, child = multiprocessing.Pipe(duplex=False)
    child.send(("stage", "finish", {}))
    child.send(("done",))
    proc = _FakeProc()
    state = {"epoch": 2, "stage": "start", "deadline": None, "result": None}
    _supervise(proc, parent, state, 0.5, ClusterTask("worker", 0, 2, False))  # no error: the work was done
    assert proc.killed and state["result"] == ("done",)


def test_peer_error_reason_is_the_why_not_tensorflows_stack():
    from edgedeploy.train.cluster import _reason

    # The surviving worker's UnavailableError when its peer was killed (TF 2.x, CollectiveReduceV2).
    message = ("Graph execution error:\n\nDetected at node adam/CollectiveReduceV2 defined at (most recent call last):\n"
               '  File "<string>", line 1, in <module>\n\n'
               '  File "/work/main/train/distributed_fit.py", line 62, in train_step\n\n'
               "Collective ops is aborted by: recvmsg:Connection reset by peer\n"
               "Additional GRPC error information from remote target /job:worker/replica:0/task:1 while calling "
               "/tensorflow.WorkerService/RecvBuf:\n"
               ':UNKNOWN:Error received from peer  {grpc_status:14, grpc_message:"recvmsg:Connection reset by peer"}\n'
               "The error could be from a previous operation. Restart your program to reset.\n"
               "\t [[{{node adam/CollectiveReduceV2}}]] [Op:__inference_train_step_1228]")
    reason = _reason(Exception(message))
    assert reason.startswith("Collective ops is aborted by: recvmsg:Connection reset by peer Additional GRPC"), reason
    assert "\n" not in reason and len(reason) <= 200 and reason.endswith(" ...")
    for noise in ("Graph execution", "Detected at node", "File ", "Restart your program", "[[", "[Op:"):
        assert noise not in reason, (noise, reason)
    short = "Graph execution error:\n\nDetected at node x defined at (most recent call last):\n  File \"a.py\", line 1\n\n" \
            "Socket closed [[{{node x}}]] [Op:f]"
    assert _reason(Exception(short)) == "Socket closed"
    assert _reason(Exception("tensorflow/core/x.cc:12: peer gone\n")) == "peer gone"
    assert _reason(Exception("")) == "Exception"
