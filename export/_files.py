"""Atomic writes (edge_runtime.io) with the usual file mode.

``edge_runtime.io.atomic_path`` creates its temporary file with ``mkstemp``,
which is mode 0600; exported models, sidecars and reports are meant to be
copied around and read by others, so they get ``0666 & ~umask`` (0644)
before the rename makes them visible.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from edge_runtime.io import _json_default, atomic_path


def make_readable(path: Path) -> None:
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(path, 0o666 & ~mask)


def write_bytes(path: Path, data: bytes, force: bool = False) -> Path:
    with atomic_path(path, force) as tmp:
        tmp.write_bytes(data)
        make_readable(tmp)
    return Path(path)


def write_text(path: Path, text: str, force: bool = False) -> Path:
    return write_bytes(path, text.encode("utf-8"), force)


def write_json(path: Path, obj: Any, force: bool = False) -> Path:
    return write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n", force)
