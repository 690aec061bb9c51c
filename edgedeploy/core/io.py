"""Atomic file writes: nothing is lost, nothing is half-written.

Everything the project writes (models, manifests, reports) goes through here:
write a temporary file in the same folder, fsync it, then ``os.replace`` it
onto the target. A crash or Ctrl-C mid-write leaves either no file or the
previous complete one. Existing files are only replaced with ``force=True``.
"""
from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator

from .errors import EdgeDeployError


def check_writable(path: str | os.PathLike, force: bool = False) -> Path:
    """Raise a one-line error if ``path`` exists (without force) or its folder is unwritable."""
    p = Path(path)
    if p.is_dir():
        raise EdgeDeployError(f"output path is a directory, expected a file: {p}")
    if p.exists() and not force:
        raise EdgeDeployError(f"refusing to overwrite existing file {p}; pass --force to replace it")
    ensure_writable_dir(p.parent if str(p.parent) else Path("."))
    return p


def ensure_writable_dir(folder: str | os.PathLike) -> Path:
    """Create ``folder`` if needed; a one-line error if that fails or it is not writable."""
    d = Path(folder)
    try:
        d.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EdgeDeployError(f"cannot create output folder {d}: {exc.strerror}") from None
    if not os.access(d, os.W_OK):
        raise EdgeDeployError(f"output folder is not writable: {d}")
    return d


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, force: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` on success.

    Use when a library insists on writing to a filename itself (a converter,
    ``model.save``). On any exception the temporary file is removed and the
    target is left untouched.
    """
    p = check_writable(path, force)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp" + p.suffix, dir=p.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    # mkstemp creates 0600; give the file the permissions a plain open() would.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp_path, 0o666 & ~umask)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as f:  # flush to disk before the rename makes it visible
            os.fsync(f.fileno())
        os.replace(tmp_path, p)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def atomic_write_bytes(path: str | os.PathLike, data: bytes, force: bool = False) -> Path:
    with atomic_path(path, force) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def atomic_write_with(path: str | os.PathLike, writer: Callable[[Any], None], force: bool = False, mode: str = "wb") -> Path:
    """Call ``writer(fileobj)`` on a temporary file, then rename it into place."""
    with atomic_path(path, force) as tmp:
        with open(tmp, mode) as f:
            writer(f)
    return Path(path)


def atomic_write_text(path: str | os.PathLike, text: str, force: bool = False) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"), force)


def atomic_write_json(path: str | os.PathLike, obj: Any, force: bool = False) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n", force)


def _json_default(o: Any) -> Any:
    # numpy scalars and arrays without importing numpy at module import time
    if hasattr(o, "tolist"):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")
