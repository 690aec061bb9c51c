"""Watch a folder and hand each new image to a callback, once it is complete.

The usual Pi set-up is a camera or capture script dropping frames into a
folder. Polling (``os.scandir`` every ``poll_interval`` seconds) works on every
filesystem, SD cards and network shares included, with no inotify
dependency. A file is handed over only when it is *stable*: not empty, its
size and modification time unchanged across two consecutive scans, and not
modified for ``settle`` seconds (default 0.5), so a frame still being
written, even by a writer that pauses, is not read half-way. Hidden files
(``.name``, the usual temporary name of a writer that renames into place)
and ``*.part``/``*.tmp`` files are ignored. Files already present when the
watch starts are ignored: only new images are classified. Subfolders are
watched too (hidden ones and symlinked ones excepted), as folder input
searches them.
"""
from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from edgedeploy.core.errors import EdgeDeployError
from edgedeploy.core.flags import flag, positive_float

from .inputs import is_image_path

_TEMP_SUFFIXES = (".part", ".tmp", ".partial", ".crdownload")


@dataclass(frozen=True)
class WatchOptions:
    """``edge-infer MODEL --watch DIR``: which folder, how often to look, how long a file must rest."""

    folder: str | None = flag("--watch", metavar="DIR", help="classify new images as they appear in DIR (Ctrl-C stops)")
    poll_interval: float = flag("--poll-interval", default=0.5, type=positive_float, metavar="S",
                                help="seconds between scans (default 0.5)")
    settle: float = flag("--settle", default=0.5, type=positive_float, metavar="S",
                         help="a new file must be unmodified this long before it is read (default 0.5)")

    def __post_init__(self) -> None:
        if self.folder is not None and not Path(self.folder).is_dir():
            raise EdgeDeployError(f"--watch needs an existing folder, got {self.folder!r}")
        for name in ("poll_interval", "settle"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and value > 0):
                raise EdgeDeployError(f"Received {name}={value!r}, expected a number > 0")


def _scan(folder: Path, recursive: bool = True) -> dict[Path, tuple[int, int]]:
    """Stable-file candidates under ``folder``: path -> (size, mtime_ns).

    Subfolders are searched when ``recursive``, as folder input is: hidden
    folders are skipped and symlinked folders are not followed (no cycles).
    """
    out: dict[Path, tuple[int, int]] = {}
    stack = [folder]
    while stack:
        current = stack.pop()
        try:
            entries = list(os.scandir(current))
        except OSError:  # the folder vanished or is unreadable for a moment
            continue
        for e in entries:
            name = e.name
            if name.startswith("."):
                continue
            try:
                if e.is_dir(follow_symlinks=False):
                    if recursive:
                        stack.append(Path(e.path))
                    continue
                if name.lower().endswith(_TEMP_SUFFIXES) or not is_image_path(name):
                    continue
                if not e.is_file(follow_symlinks=False):
                    continue
                st = e.stat(follow_symlinks=False)
            except OSError:  # deleted between listing and stat
                continue
            out[Path(e.path)] = (st.st_size, st.st_mtime_ns)
    return out


def watch_folder(folder: str | os.PathLike, on_image: Callable[[Path], None], poll_interval: float = 0.5,
                 max_images: int | None = None, duration: float | None = None,
                 stop: threading.Event | None = None, include_existing: bool = False,
                 settle: float = 0.5, on_ready: Callable[[], None] | None = None, recursive: bool = True,
                 reraise_interrupt: bool = False) -> int:
    """Call ``on_image(path)`` for every new, completely written image in ``folder``.

    Args:
        folder: the folder to watch; new images in its subfolders count too.
        on_image: called once per new image, in order of appearance.
        poll_interval: seconds between scans.
        max_images: stop after this many images (None: no limit).
        duration: stop after this many seconds (None: no limit).
        stop: an event that ends the watch when set (another thread, a test).
        include_existing: also hand over the images present at the start.
        settle: seconds a file must have gone unmodified before it is handed over.
        on_ready: called once the files already present have been noted, so
            a caller can announce the watch without racing the first scan.
        recursive: also watch subfolders, including ones created later
            (hidden and symlinked folders excepted), like folder input.
        reraise_interrupt: re-raise Ctrl-C after stopping, so a command can
            print its summary and exit 130; by default Ctrl-C ends quietly.

    Returns:
        How many images were handed to ``on_image``. Ctrl-C ends the watch
        quietly and returns the count (unless ``reraise_interrupt``).
    """
    folder = Path(folder)
    stop = stop or threading.Event()
    done: set[Path] = set() if include_existing else set(_scan(folder, recursive))
    if on_ready is not None:
        on_ready()
    pending: dict[Path, tuple[int, int]] = {}
    handed = 0
    deadline = time.monotonic() + duration if duration else None
    try:
        while not stop.is_set():
            current = _scan(folder, recursive)
            done &= set(current)  # a deleted file may come back under the same name later
            for path in sorted(current, key=lambda p: (current[p][1], p.name)):
                if path in done:
                    continue
                sig = current[path]
                settled = time.time_ns() - sig[1] >= settle * 1e9
                if sig[0] > 0 and pending.get(path) == sig and settled:  # unchanged and quiet
                    done.add(path)
                    pending.pop(path, None)
                    on_image(path)
                    handed += 1
                    if max_images is not None and handed >= max_images:
                        return handed
                else:
                    pending[path] = sig
            for gone in set(pending) - set(current):
                pending.pop(gone)
            if deadline is not None and time.monotonic() >= deadline:
                break
            stop.wait(poll_interval)
    except KeyboardInterrupt:
        if reraise_interrupt:
            raise
    return handed
