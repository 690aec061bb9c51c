"""Integrity at run time: a model file against the SHA-256 in its sidecar manifest.

export-model writes each model file's SHA-256 into the sidecar manifest beside
it (``model_int8.tflite.json``, field ``sha256``): the file cannot carry its own
hash. ``ImageClassifier`` and ``edge-infer`` call :func:`verify_model_hash`
before the file reaches a runtime; a mismatch is one line naming the file (exit
2). No sidecar, or a sidecar without ``sha256`` (older exports), means nothing
to check. ``--no-verify-hash`` / ``verify_hash=False`` skip the check.

This guards against damage (a bad copy, a flipped bit on an SD card), not
against someone who can rewrite both the file and its sidecar.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from edgedeploy.core.errors import ModelError

from .manifest import sha256_file

__all__ = ["IntegrityError", "hash_sidecar", "recorded_sha256", "verify_model_hash"]


class IntegrityError(ModelError):
    """The model file's SHA-256 differs from the one recorded in its sidecar (exit 2)."""


def hash_sidecar(model_path: str | os.PathLike) -> Path:
    """The sidecar that may record a model's SHA-256: ``<file name>.json`` (``model_int8.tflite.json``).

    Only this name, as export-model writes it: the older ``<stem>.json`` may be shared by
    ``model_int8.tflite`` and ``model_int8.onnx``. (One place, so the format layer can own it.)
    """
    p = Path(model_path)
    return p.with_name(p.name + ".json")


def recorded_sha256(model_path: str | os.PathLike) -> tuple[str, Path] | None:
    """``(hex digest, sidecar path)`` recorded for ``model_path``, or None if none is."""
    sidecar = hash_sidecar(model_path)
    if not sidecar.is_file():
        return None
    try:
        data = json.loads(sidecar.read_bytes())
    except (OSError, ValueError, UnicodeDecodeError):
        return None  # an unreadable sidecar is the manifest reader's business, not a hash to check
    value = data.get("sha256") if isinstance(data, dict) else None
    if isinstance(value, str) and value:
        return value.lower(), sidecar
    return None


def verify_model_hash(model_path: str | os.PathLike) -> str | None:
    """Check ``model_path`` against the SHA-256 in its sidecar.

    Returns:
        The verified hex digest, or None when there is nothing to check (no
        file, no sidecar, or a sidecar without ``sha256``).

    Raises:
        IntegrityError: the file's SHA-256 differs from the recorded one.
    """
    path = Path(model_path)
    if not path.is_file():
        return None  # the loader gives the one-line "not found" error
    found = recorded_sha256(path)
    if found is None:
        return None
    expected, sidecar = found

    actual = sha256_file(path)
    if actual != expected:
        raise IntegrityError(f"{path}: SHA-256 {actual[:16]}... does not match {expected[:16]}... recorded in "
                             f"{sidecar.name}; the file is damaged or was changed (--no-verify-hash skips this check)")
    return actual
