"""``edge-infer MODEL --video SOURCE``: classify frames from a file, a camera or a stream.

SOURCE is one of:

- a video file (anything OpenCV's FFmpeg build reads: .mp4, .avi, .mkv, ...);
- a camera: an index (``0``) or a V4L2 device (``/dev/video0``);
- a stream URL: ``rtsp://``, ``rtmp://``, ``http://`` or ``https://``;
- ``picamera``: a Raspberry Pi camera through picamera2 (installed with
  ``sudo apt install python3-picamera2``; use a venv made with
  ``--system-site-packages``). Not testable off a Pi.

OpenCV (``pip install 'edgedeploy[video]'``, opencv-python-headless) is
imported only here and only when ``--video`` is used: it costs 33-57 ms
once numpy is loaded and 17 MB of peak RSS (one run on the 2-core build
machine: reports/video_cv2_import.txt), which ``edge-infer photo.jpg`` never
pays.

Frames are classified every ``--every N`` frames, at most ``--fps`` per
second; one line per classified frame (``--json``: the prediction's JSON
plus ``frame``, ``timestamp`` and ``latency_ms``). The frames per second are
reported on stderr at the end. Ctrl-C stops cleanly: the source is released,
the summary printed, and the exit code is 130.

OpenCV delivers BGR frames; they are turned into RGB before the classifier's
preprocessing, which expects RGB uint8 arrays (edge_runtime/preprocess.py).
"""
from __future__ import annotations

import json
import os
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

from edgedeploy.core.errors import EdgeDeployError
from edgedeploy.core.flags import flag, int_at_least, positive_float

if TYPE_CHECKING:
    import numpy as np

    from .classifier import ImageClassifier, Prediction

INSTALL_HINT = "pip install 'edgedeploy[video]'"
PICAMERA = "picamera"
_URL = re.compile(r"^(rtsp|rtsps|rtmp|http|https|udp|tcp)://", re.IGNORECASE)
_DEVICE = re.compile(r"^/dev/video\d+$")


@dataclass(frozen=True)
class VideoOptions:
    """How to read a source; validates itself (``source_kind`` checks the source itself).

    ``max_frames`` and ``duration`` come from edge-infer's shared ``--max-images`` and ``--duration``.
    """

    source: str = flag("--video", default="", metavar="SOURCE",
                       help="a video file, a camera index or /dev/videoN, an rtsp:// or http(s):// URL, or picamera (Pi); "
                            "--max-images and --duration stop it too")
    every: int = flag("--every", default=1, type=int_at_least(1), metavar="N", help="classify every Nth frame (default 1)")
    fps: float | None = flag("--fps", type=positive_float, metavar="F", help="classify at most F frames per second")
    max_frames: int | None = None
    duration: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.every, int) or self.every < 1:
            raise EdgeDeployError(f"Received --every {self.every!r}, expected an integer >= 1")
        if self.fps is not None and not self.fps > 0:
            raise EdgeDeployError(f"Received --fps {self.fps!r}, expected a number > 0")
        if not str(self.source).strip():
            raise EdgeDeployError("Received --video '', expected a video file, a camera index, /dev/videoN, a URL or picamera")


@dataclass
class Frame:
    """One frame: its index in the source, its time in seconds, and RGB uint8 pixels (H, W, 3)."""

    index: int
    timestamp: float
    rgb: "np.ndarray"


def import_cv2() -> Any:
    """OpenCV, or a one-line error naming the extra that installs it."""
    os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")  # its WARN lines would break our one-line errors
    try:
        import cv2
    except ImportError:
        raise EdgeDeployError(f"--video needs OpenCV, which is not installed: {INSTALL_HINT}") from None
    return cv2


def source_kind(source: str) -> str:
    """'picamera', 'camera' (index or /dev/videoN), 'url' or 'file'; a missing file is an error."""
    s = str(source).strip()
    if s.lower() == PICAMERA:
        return "picamera"
    if s.isdigit() or _DEVICE.match(s):
        return "camera"
    if _URL.match(s):
        return "url"
    p = Path(s)
    if p.is_file():
        return "file"
    raise EdgeDeployError(f"Received --video {s!r}, expected a video file, a camera index (0) or /dev/videoN, "
                          f"an rtsp:// or http(s):// URL, or picamera" + ("; that path is a folder" if p.is_dir() else ""))


def _opencv_frames(source: str, kind: str) -> Iterator[Frame]:
    cv2 = import_cv2()
    cap = cv2.VideoCapture(int(source) if source.isdigit() else source)
    try:
        if not cap.isOpened():
            raise EdgeDeployError(f"Received --video {source!r}, but OpenCV could not open it as a {kind}")
        t0 = time.monotonic()
        index = 0
        while True:
            ok, bgr = cap.read()
            if not ok or bgr is None:
                return
            # A file's own clock (its position in the video); a live source's wall clock.
            ts = cap.get(cv2.CAP_PROP_POS_MSEC) / 1000.0 if kind == "file" else time.monotonic() - t0
            yield Frame(index, ts, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
            index += 1
    finally:
        cap.release()


def _picamera_frames() -> Iterator[Frame]:  # pragma: no cover - needs a Raspberry Pi camera
    try:
        from picamera2 import Picamera2
    except ImportError:
        raise EdgeDeployError("--video picamera needs picamera2: on Raspberry Pi OS `sudo apt install python3-picamera2` "
                              "and a venv made with --system-site-packages") from None
    cam = Picamera2()
    # libcamera's "RGB888" is stored B, G, R per pixel (OpenCV order): flipped below.
    cam.configure(cam.create_video_configuration(main={"format": "RGB888", "size": (640, 480)}))
    cam.start()
    try:
        t0 = time.monotonic()
        index = 0
        while True:
            bgr = cam.capture_array()
            yield Frame(index, time.monotonic() - t0, bgr[..., 2::-1].copy())
            index += 1
    finally:
        cam.stop()
        cam.close()


def open_frames(source: str) -> Iterator[Frame]:
    """Frames of ``source`` (see the module docstring); the source is checked before the first frame."""
    kind = source_kind(source)
    if kind == "picamera":
        return _picamera_frames()
    import_cv2()  # the install hint before anything else
    return _opencv_frames(str(source).strip(), kind)


def frame_line(frame: Frame, pred: "Prediction", latency_ms: float, as_json: bool) -> str:
    """One output line per classified frame."""
    if as_json:
        d = pred.to_dict()
        d = {"frame": frame.index, "timestamp": round(frame.timestamp, 4), **d, "latency_ms": round(latency_ms, 3)}
        return json.dumps(d)
    rest = ", ".join(f"{lab} {s:.1%}" for lab, s in pred.top_k[1:3])
    return (f"frame {frame.index} @ {frame.timestamp:.3f}s: {pred.label} {pred.score:.1%}"
            + (f"  (then {rest})" if rest else "") + f"  [{latency_ms:.1f} ms]")


@dataclass
class VideoStats:
    read: int = 0
    classified: int = 0
    seconds: float = 0.0
    interrupted: bool = False

    def summary(self, prog: str) -> str:
        rate = self.classified / self.seconds if self.seconds > 0 else 0.0
        how = "interrupted: " if self.interrupted else ""
        return (f"{prog}: {how}{self.classified} frame(s) classified of {self.read} read in {self.seconds:.2f} s "
                f"({rate:.1f} frames/s classified, {self.read / self.seconds if self.seconds > 0 else 0.0:.1f} read)")


def classify_video(clf: "ImageClassifier", opts: VideoOptions, emit: Callable[[str], None], as_json: bool = False,
                   frames: Iterator[Frame] | None = None, clock: Callable[[], float] = time.monotonic,
                   sleep: Callable[[float], None] = time.sleep, live: bool = False) -> VideoStats:
    """Classify the frames of ``opts.source`` and ``emit`` one line each; Ctrl-C ends the loop cleanly.

    ``--every N`` keeps frames whose index is a multiple of N. ``--fps F``
    spaces classified frames at least 1/F s apart: a file waits (sleeps), a
    ``live`` source drops the frames that come too early.

    Returns the counts; ``interrupted`` is True when Ctrl-C stopped it.
    """
    frames = frames if frames is not None else open_frames(opts.source)
    stats = VideoStats()
    t0 = clock()
    min_gap = 1.0 / opts.fps if opts.fps else 0.0
    next_due = t0
    try:
        for frame in frames:
            stats.read += 1
            if frame.index % opts.every:
                continue
            now = clock()
            if opts.duration is not None and now - t0 >= opts.duration:
                break
            if min_gap:
                if now < next_due:
                    if live:  # a camera keeps going: skip to a fresh frame rather than fall behind
                        continue
                    sleep(next_due - now)  # a file waits: replayed at the capped rate
                next_due = max(next_due + min_gap, clock())
            t = time.perf_counter()
            pred = clf.predict(frame.rgb)
            emit(frame_line(frame, pred, (time.perf_counter() - t) * 1000, as_json))
            stats.classified += 1
            if opts.max_frames is not None and stats.classified >= opts.max_frames:
                break
    except KeyboardInterrupt:
        stats.interrupted = True
    finally:
        close = getattr(frames, "close", None)
        if close is not None:
            close()  # releases the capture (the generator's finally)
        stats.seconds = clock() - t0
    return stats


def run_video(clf: "ImageClassifier", opts: VideoOptions, as_json: bool, prog: str, out=None, err=None) -> int:
    """The ``--video`` command: lines on ``out``, the frames per second on ``err``; exit 0, or 130 on Ctrl-C."""
    out, err = out or sys.stdout, err or sys.stderr
    live = source_kind(opts.source) != "file"
    frames = open_frames(opts.source)

    def emit(line: str) -> None:
        print(line, file=out, flush=True)

    stats = classify_video(clf, opts, emit, as_json, frames=frames, live=live)
    print(stats.summary(prog), file=err, flush=True)
    if stats.read == 0 and not stats.interrupted:
        raise EdgeDeployError(f"Received --video {opts.source!r}, but it gave no frames")
    return 130 if stats.interrupted else 0
