"""Writes are atomic: an export that dies mid-write leaves no partial file.

Three ways to die half-way through writing ``model_float32.tflite``:
a writer that raises after half the bytes (disk full), SIGTERM, and SIGKILL.
Afterwards the target is either absent or the previous complete file, never a
partial one; the first two also leave no temporary files behind (SIGKILL
cannot run clean-up code: its temporary is a hidden dot-file, and the target
is still intact).
"""
from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from export_helpers import ROOT, copy_run, tiny_run

pytestmark = pytest.mark.tf


def _temporaries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".") or ".tmp" in p.name)


def _half_then_fail(tmp: Path, data: bytes) -> None:
    with open(tmp, "wb") as f:
        f.write(data[: len(data) // 2])
        f.flush()
    raise OSError(errno.ENOSPC, "No space left on device")


@pytest.mark.parametrize("previous", [False, True], ids=["fresh", "over-previous"])
def test_writer_failing_half_way_leaves_no_partial_file(tmp_path: Path, monkeypatch, capsys, previous: bool) -> None:
    import edgedeploy.export.pipeline as pipeline
    from edgedeploy.export.cli import main

    run = copy_run(tiny_run(), tmp_path / "run")
    out = tmp_path / "out"
    target = out / "model_float32.tflite"
    before = None
    if previous:
        assert main([str(run), "--output", str(out), "--parity-samples", "40"]) == 0
        before = target.read_bytes()
        sidecar_before = (out / "model_float32.tflite.json").read_bytes()
    monkeypatch.setattr(pipeline, "write_model", _half_then_fail)
    capsys.readouterr()
    rc = main([str(run), "--output", str(out), "--parity-samples", "40", "--force"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "No space left on device" in err and "Traceback" not in err
    assert len(err.splitlines()[-1:]) == 1 and err.splitlines()[-1].startswith("export-model: error: could not write")
    if previous:
        assert target.read_bytes() == before  # the previous complete file, untouched
        assert (out / "model_float32.tflite.json").read_bytes() == sidecar_before
    else:
        assert not target.exists()
    assert _temporaries(out) == []


DRIVER = r"""
import sys, time
import edgedeploy.export.pipeline as pipeline
from edgedeploy.export.cli import main

def slow_writer(tmp, data):
    with open(tmp, "wb") as f:
        f.write(data[: len(data) // 2])
        f.flush()
        print("HALF-WRITTEN", flush=True)
        time.sleep(120)
        f.write(data[len(data) // 2:])

pipeline.write_model = slow_writer
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_killed_mid_write_leaves_previous_file(tmp_path: Path, sig: int) -> None:
    from edgedeploy.export.cli import main

    run = copy_run(tiny_run(), tmp_path / "run")
    out = tmp_path / "out"
    assert main([str(run), "--output", str(out), "--parity-samples", "30"]) == 0
    target = out / "model_float32.tflite"
    before = target.read_bytes()

    env = dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.Popen([sys.executable, "-c", DRIVER, str(run), "--output", str(out), "--parity-samples", "30", "--force"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    try:
        deadline = time.time() + 300
        line = ""
        while time.time() < deadline:
            line = proc.stdout.readline()
            if "HALF-WRITTEN" in line or not line:
                break
        assert "HALF-WRITTEN" in line, proc.stderr.read()
        partial = [p for p in out.iterdir() if ".tmp" in p.name]
        assert partial, "the half-written temporary file should exist while the writer sleeps"
        proc.send_signal(sig)
        rc = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert target.read_bytes() == before  # never the half-written bytes
    if sig == signal.SIGTERM:
        assert rc == 130
        assert "interrupted" in proc.stderr.read()
        assert _temporaries(out) == []
    else:
        assert rc == -signal.SIGKILL
