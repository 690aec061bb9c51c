"""--watch follows subfolders, and Ctrl-C ends it cleanly (summary line, exit 130, no traceback)."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from edgedeploy.runtime.watch import watch_folder

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def test_watch_follows_new_and_existing_subfolders(tmp_path, edge_models):
    src = sorted((edge_models / "images").glob("*.png"))[0]
    (tmp_path / "old").mkdir()
    shutil.copy(src, tmp_path / "old" / "before.png")  # present at start: ignored
    seen: list[str] = []
    ready = threading.Event()

    def writer():
        ready.wait(10)
        (tmp_path / ".hidden").mkdir()
        shutil.copy(src, tmp_path / ".hidden" / "skip.png")  # hidden folder: ignored
        shutil.copy(src, tmp_path / "old" / "later.png")
        (tmp_path / "new" / "deeper").mkdir(parents=True)  # a folder made after the watch started
        time.sleep(0.3)
        shutil.copy(src, tmp_path / "new" / "deeper" / "frame.png")

    t = threading.Thread(target=writer)
    t.start()
    n = watch_folder(tmp_path, lambda p: seen.append(str(p.relative_to(tmp_path))), poll_interval=0.05,
                     settle=0.05, max_images=2, duration=20, on_ready=ready.set)
    t.join()
    assert n == 2
    assert sorted(seen) == [os.path.join("new", "deeper", "frame.png"), os.path.join("old", "later.png")]


def test_watch_can_stay_flat(tmp_path, edge_models):
    src = sorted((edge_models / "images").glob("*.png"))[0]
    (tmp_path / "sub").mkdir()
    seen: list[Path] = []
    stop = threading.Event()

    def writer():
        time.sleep(0.2)
        shutil.copy(src, tmp_path / "sub" / "x.png")
        time.sleep(0.5)
        stop.set()

    t = threading.Thread(target=writer)
    t.start()
    watch_folder(tmp_path, seen.append, poll_interval=0.05, settle=0.05, stop=stop, recursive=False)
    t.join()
    assert seen == []


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT to a child process")
def test_ctrl_c_in_watch_prints_the_summary_and_exits_130(tmp_path, edge_models, truth):
    name = sorted(truth)[0]
    proc = subprocess.Popen([sys.executable, "-m", "edgedeploy.runtime.cli", str(edge_models / "model_float32.tflite"),
                             "--watch", str(tmp_path), "--json", "--poll-interval", "0.05", "--settle", "0.05"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    try:
        deadline = time.time() + 60
        while "watching" not in (proc.stderr.readline() or "") and time.time() < deadline:
            pass
        (tmp_path / "sub").mkdir()
        (tmp_path / "sub" / "broken.jpg").write_text("not really a jpeg")  # an earlier failure
        shutil.copy(edge_models / "images" / name, tmp_path / "sub" / ("good" + Path(name).suffix))
        line = ""
        while time.time() < deadline and not line.strip():
            line = proc.stdout.readline()  # the good image was classified
        assert str(truth[name]) in line
        time.sleep(0.3)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert "broken.jpg" in err and "1 classified, 1 failed" in err and "interrupted" in err
