"""edge-infer --video: frames from a lossless video file answer like the same frames given as arrays."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgedeploy.core.errors import EdgeDeployError
from edgedeploy.runtime.cli import main
from edgedeploy.runtime.video import Frame, VideoOptions, classify_video, source_kind

ROOT = Path(__file__).resolve().parents[2]
W, H = 96, 72


def _photo_frames(photos_dir: Path, n: int = 6) -> list[np.ndarray]:
    from PIL import Image

    photos = sorted((photos_dir / "cat").glob("*.jpg"))[: n // 2] + sorted((photos_dir / "dog").glob("*.jpg"))[: n // 2]
    return [np.asarray(Image.open(p).convert("RGB").resize((W, H))) for p in photos]


@pytest.fixture(scope="module")
def video(tmp_path_factory, real_photos) -> tuple[Path, list[np.ndarray]]:
    cv2 = pytest.importorskip("cv2")
    frames = _photo_frames(real_photos)
    path = tmp_path_factory.mktemp("video") / "photos.mkv"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"FFV1"), 10, (W, H))  # lossless
    if not writer.isOpened():
        pytest.skip("this OpenCV build cannot write FFV1")
    for f in frames:
        writer.write(cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    writer.release()
    return path, frames


@pytest.mark.parametrize("model", ["model_int8.tflite", "model_float32.onnx"])
def test_each_frame_answers_like_the_same_array(capsys, edge_models, video, model):
    from edgedeploy.runtime import ImageClassifier

    path, frames = video
    assert main([str(edge_models / model), "--video", str(path), "--json", "--top-k", "3"]) == 0
    out, err = capsys.readouterr()
    rows = [json.loads(ln) for ln in out.splitlines()]
    assert [r["frame"] for r in rows] == list(range(len(frames)))
    assert [r["timestamp"] for r in rows] == pytest.approx([i / 10 for i in range(len(frames))], abs=1e-3)
    clf = ImageClassifier(edge_models / model, top_k=3)
    for r, f in zip(rows, frames):
        want = clf.predict(f)  # the RGB array itself: proves the BGR->RGB turn and a lossless read
        assert r["label"] == want.label and r["score"] == pytest.approx(want.score, abs=1e-6)
        assert [t["label"] for t in r["top_k"]] == [lab for lab, _ in want.top_k]
        assert set(r) >= {"frame", "timestamp", "label", "score", "top_k", "latency_ms"}
    assert f"{len(frames)} frame(s) classified of {len(frames)} read" in err and "frames/s" in err


def test_every_and_max_images(capsys, edge_models, video):
    path, frames = video
    assert main([str(edge_models / "model_int8.tflite"), "--video", str(path), "--json", "--every", "2"]) == 0
    assert [json.loads(ln)["frame"] for ln in capsys.readouterr().out.splitlines()] == [0, 2, 4]
    assert main([str(edge_models / "model_int8.tflite"), "--video", str(path), "--json", "--max-images", "2"]) == 0
    assert [json.loads(ln)["frame"] for ln in capsys.readouterr().out.splitlines()] == [0, 1]


class _Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self) -> float:
        return self.t

    def sleep(self, s: float) -> None:
        self.sleep_calls.append(s)
        self.t += s


class _Clf:
    def predict(self, rgb):
        from edgedeploy.runtime.classifier import Prediction

        return Prediction(label="x", score=1.0, index=0, top_k=[("x", 1.0)])


def _frames(n: int, clock: _Clock, gap: float):
    for i in range(n):
        yield Frame(i, clock.t, np.zeros((2, 2, 3), np.uint8))
        clock.t += gap


def test_fps_cap_sleeps_for_a_file_and_drops_for_a_live_source():
    clock = _Clock()
    clock.sleep_calls = []
    lines: list[str] = []
    stats = classify_video(_Clf(), VideoOptions("x", fps=2.0), lines.append, frames=_frames(5, clock, 0.1),
                           clock=clock, sleep=clock.sleep)
    assert stats.classified == 5 and len(clock.sleep_calls) == 4  # every frame kept, spaced 0.5 s
    assert clock.t == pytest.approx(0.5 * 4 + 0.1)  # the last frame at 2.0 s, then the source ends
    clock2 = _Clock()
    clock2.sleep_calls = []
    stats = classify_video(_Clf(), VideoOptions("x", fps=2.0), [].append, frames=_frames(20, clock2, 0.1),
                           clock=clock2, sleep=clock2.sleep, live=True)
    assert clock2.sleep_calls == [] and stats.read == 20 and stats.classified == 4  # t = 0, 0.5, 1.0, 1.5


def test_ctrl_c_stops_cleanly_and_releases_the_source():
    released = []

    def frames():
        try:
            yield Frame(0, 0.0, np.zeros((2, 2, 3), np.uint8))
            raise KeyboardInterrupt
        finally:
            released.append(True)

    lines: list[str] = []
    stats = classify_video(_Clf(), VideoOptions("x"), lines.append, frames=frames())
    assert stats.interrupted and stats.classified == 1 and released == [True] and len(lines) == 1
    assert "interrupted" in stats.summary("edge-infer")


def test_source_kinds_and_bad_values(tmp_path):
    f = tmp_path / "a.mp4"
    f.write_bytes(b"x")
    assert [source_kind(s) for s in ("0", "/dev/video2", "rtsp://cam/stream", "https://x/y.mjpg", str(f), "picamera")] == \
        ["camera", "camera", "url", "url", "file", "picamera"]
    with pytest.raises(EdgeDeployError, match="Received --video '/no/such.mp4'"):
        source_kind("/no/such.mp4")
    with pytest.raises(EdgeDeployError, match="--every 0"):
        VideoOptions("0", every=0)


def test_missing_video_is_one_line_before_the_model_loads(capsys, edge_models, tmp_path):
    assert main([str(edge_models / "model_int8.tflite"), "--video", str(tmp_path / "none.avi")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "none.avi" in err[0]
    assert main([str(edge_models / "model_int8.tflite"), "x.png", "--video", "0"]) == 2
    capsys.readouterr()
    assert main([str(edge_models / "model_int8.tflite"), "x.png", "--fps", "3"]) == 2
    assert "without --video" in capsys.readouterr().err


def test_without_opencv_the_error_names_the_extra(tmp_path, edge_models):
    block = tmp_path / "block" / "cv2"
    block.mkdir(parents=True)
    (block / "__init__.py").write_text("raise ImportError('blocked')\n")
    clip = tmp_path / "clip.avi"
    clip.write_bytes(b"whatever")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path / "block"), str(ROOT)])}
    proc = subprocess.run([sys.executable, "-m", "edgedeploy.runtime.cli", str(edge_models / "model_int8.tflite"), "--video", str(clip)],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == ["edge-infer: error: --video needs OpenCV, which is not installed: "
                                                "pip install 'edgedeploy[video]'"]


def test_cv2_is_not_imported_without_video(edge_models):
    code = ("import sys\nfrom edgedeploy.runtime.cli import main\n"
            f"main([{str(edge_models / 'model_int8.tflite')!r}, '--info'])\n"
            "print('cv2' in sys.modules, file=sys.stderr)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.stderr.strip().splitlines()[-1] == "False"


def test_sigint_in_a_real_process_exits_130_with_the_summary(tmp_path, edge_models, video):
    import signal

    cv2 = pytest.importorskip("cv2")
    _, frames = video
    path = tmp_path / "long.mkv"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"FFV1"), 10, (W, H))
    for i in range(40):
        writer.write(cv2.cvtColor(frames[i % len(frames)], cv2.COLOR_RGB2BGR))
    writer.release()
    proc = subprocess.Popen([sys.executable, "-m", "edgedeploy.runtime.cli", str(edge_models / "model_int8.tflite"), "--video",
                             str(path), "--json", "--fps", "4"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        first = proc.stdout.readline()  # the loop is running (4 frames/s: 10 s for the whole file)
        assert json.loads(first)["frame"] == 0
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130 and "Traceback" not in err, err
    lines = [json.loads(ln) for ln in out.splitlines()]
    assert len(lines) < 39  # stopped early
    assert "edge-infer: interrupted: " in err and "frames/s" in err
