"""Prove a model file is safe to load by loading it in a throwaway process first.

Why: LiteRT and ONNX Runtime are C++ and trust the file. A damaged file can
segfault the process, and no ``try`` catches a segfault. edgedeploy guards in
two layers:

1. **Verify before loading, in Python** (each format in ``edge_runtime/formats/``): every
   offset, index and length is bounds-checked, and tensor types, shapes,
   constant-buffer sizes and quantization parameters are checked for sane
   values. This rejects truncated, foreign and almost all damaged files with a
   one-line error, at no cost.
2. **Probe once in a subprocess** (this module): fuzzing showed that a
   verifier cannot catch everything, e.g. an operator whose code was swapped
   for another valid one still crashes LiteRT. So, the first time a file is
   opened, a child process loads it with the same backend and options and
   runs one inference. If the child dies (a signal) or hangs, the parent
   raises ``ModelError`` instead of crashing. A successful probe is remembered
   in ``~/.cache/edgedeploy/probed/`` under a name made of the file's device,
   inode, size and mtime and the backend options (the real path is stored
   inside and checked), so later loads (and a Pi's cold start) only pay a
   ``stat`` and a small read. A changed file is probed again.

Control with ``ImageClassifier(..., probe=...)`` or ``EDGEDEPLOY_PROBE``:
``auto`` (default: probe unseen files), ``always``, ``never`` (trusted files,
or a caller that isolates itself, like the fuzz worker).
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from edgedeploy.core.errors import EdgeDeployError, ModelError

from . import BACKENDS

PROBE_MODES = ("auto", "always", "never")
PROBE_TIMEOUT_S = 300.0
_EXIT_USER_ERROR = 3


def probe_mode(mode: str | None = None) -> str:
    """The effective mode: the argument, else ``EDGEDEPLOY_PROBE``, else "auto"."""
    mode = mode or os.environ.get("EDGEDEPLOY_PROBE") or "auto"
    if mode not in PROBE_MODES:
        raise EdgeDeployError(f"Received probe={mode!r}, expected one of {', '.join(PROBE_MODES)}")
    return mode


def _preferred_cache_dir() -> Path | None:
    """``$EDGEDEPLOY_CACHE``, else ``$XDG_CACHE_HOME/edgedeploy``, else ``~/.cache/edgedeploy``; None if no home."""
    base = os.environ.get("EDGEDEPLOY_CACHE")
    if not base:
        xdg = os.environ.get("XDG_CACHE_HOME")
        if not xdg:
            try:  # no HOME and no passwd entry (a container's arbitrary uid): RuntimeError or KeyError
                xdg = str(Path.home() / ".cache")
            except (RuntimeError, KeyError, OSError):
                return None
            if xdg.startswith("~"):  # expanduser could not expand it
                return None
        base = os.path.join(xdg, "edgedeploy")
    return Path(base) / "probed"


def _usable(folder: Path) -> bool:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    return folder.is_dir() and os.access(folder, os.W_OK | os.X_OK)


def _private_temp_dir() -> Path | None:
    """A per-user folder under the temp dir (0700, ours, not a symlink), or None."""
    import tempfile

    uid = os.getuid() if hasattr(os, "getuid") else 0
    folder = Path(tempfile.gettempdir()) / f"edgedeploy-{uid}" / "probed"
    try:
        folder.parent.mkdir(mode=0o700, exist_ok=True)
        st = os.lstat(folder.parent)
        if os.path.islink(folder.parent) or (hasattr(os, "getuid") and st.st_uid != uid) or st.st_mode & 0o077:
            return None  # someone else's folder: its markers cannot be trusted
        folder.mkdir(mode=0o700, exist_ok=True)
    except OSError:
        return None
    return folder


_CACHE_DIR: dict[str, Path | None] = {}


def cache_dir() -> Path | None:
    """Where proven probes are remembered; None means no cache (every load probes).

    When the home folder cannot be determined (no ``HOME`` and no passwd entry
    for the uid) or the cache folder is unusable (a file, read-only), this
    falls back to a private per-user folder in the temp dir, else to no cache,
    and warns ONCE per process, on one line.
    """
    preferred = _preferred_cache_dir()
    key = str(preferred)
    if key in _CACHE_DIR:
        return _CACHE_DIR[key]
    if preferred is not None and _usable(preferred):
        chosen = preferred
    else:
        import warnings

        chosen = _private_temp_dir()
        why = ("the home folder is unknown (no HOME, no passwd entry)" if preferred is None
               else f"cache folder {str(preferred)!r} is not usable")
        where = f"using {chosen}" if chosen else "probing every load (no cache)"
        warnings.warn(f"probe cache: {why}; {where}. Set EDGEDEPLOY_CACHE to choose one.", RuntimeWarning, stacklevel=2)
    _CACHE_DIR[key] = chosen
    return chosen


def _key(path: Path, backend: str, threads: int, xnnpack: bool) -> tuple[str, str]:
    """(marker file name, real path): the name encodes the file's identity and the options.

    No hashing on purpose: hashlib and subprocess are imported only when a
    probe actually runs, so a cached load costs a device no extra imports.
    """
    st = path.stat()
    name = f"{st.st_dev}-{st.st_ino}-{st.st_size}-{st.st_mtime_ns}-{backend}-t{threads}-x{int(xnnpack)}-py{sys.version_info[0]}{sys.version_info[1]}"
    return name, str(path.resolve())


def _proven(marker: Path, real: str) -> bool:
    try:
        return json.loads(marker.read_text()).get("path") == real
    except (OSError, ValueError, AttributeError):
        return False


def probe_model(path: Path, backend: str, threads: int, xnnpack: bool, mode: str | None = None,
                timeout: float = PROBE_TIMEOUT_S) -> bool:
    """Load and run ``path`` once in a child process unless already proven.

    Args:
        path: the model file (already verified by the Python checks).
        backend: registered backend name to probe with.
        threads, xnnpack: the options the caller will use.
        mode: "auto", "always" or "never" (None: ``EDGEDEPLOY_PROBE`` or "auto").
        timeout: seconds before a silent child counts as hung.

    Returns:
        True if a child process ran, False if skipped (mode or cache).

    Raises:
        ModelError: the child crashed, hung, or failed in an unexpected way.
            A plain user error in the child (an ``EdgeDeployError``) is not
            raised here: loading in-process reproduces it safely.
    """
    mode = probe_mode(mode)
    if mode == "never":
        return False
    name, real = _key(path, backend, threads, xnnpack)
    folder = cache_dir()
    marker = folder / name if folder is not None else None
    if mode == "auto" and marker is not None and _proven(marker, real):
        return False
    import subprocess

    env = dict(os.environ, EDGEDEPLOY_PROBE="never")
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    cmd = [sys.executable, "-m", "edgedeploy.runtime.backends.probe", str(path), backend, str(threads), str(int(xnnpack))]
    try:
        out = subprocess.run(cmd, env=env, capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise ModelError(f"{backend} hung for {timeout:.0f} s loading {path} in a test process; the file looks damaged") from None
    if out.returncode < 0:
        raise ModelError(f"{backend} crashed (signal {-out.returncode}) loading {path} in a test process; "
                         "the file is damaged or not a model this runtime can run") from None
    if out.returncode == _EXIT_USER_ERROR:
        return True
    if out.returncode != 0:
        tail = (out.stderr.decode("utf-8", "replace").strip().splitlines() or ["no message"])[-1]
        raise ModelError(f"{backend} failed (exit {out.returncode}) loading {path} in a test process: {tail[:200]}")
    if marker is not None:
        try:
            marker.parent.mkdir(parents=True, exist_ok=True)
            marker.write_text(json.dumps({"path": real, "backend": backend}) + "\n")
        except OSError:
            pass  # an unwritable cache only means probing again next time
    return True


def _child(argv: list[str]) -> int:
    path, backend, threads, xnnpack = argv[0], argv[1], int(argv[2]), bool(int(argv[3]))
    if os.environ.get("EDGEDEPLOY_PROBE_SELFTEST") == "crash":  # tests prove a crash is contained
        import signal

        os.kill(os.getpid(), signal.SIGSEGV)
    import numpy as np


    try:
        b = BACKENDS.get(backend)(path, threads=threads, xnnpack=xnnpack, probe="never")
        shape = tuple(d if d > 0 else 1 for d in b.input.shape)
        b.run(np.zeros(shape, b.input.dtype))
    except EdgeDeployError as exc:
        print(exc, file=sys.stderr)
        return _EXIT_USER_ERROR
    return 0


if __name__ == "__main__":
    sys.exit(_child(sys.argv[1:]))
