"""The project's error classes.

Every user-facing mistake (a bad path, a corrupt image, a foreign model file,
an impossible flag combination) is raised as an ``EdgeDeployError``. The CLIs
catch exactly this class, print its message on one line and exit with its
``exit_code``; anything else is a bug and keeps its traceback.
"""
from __future__ import annotations


class EdgeDeployError(Exception):
    """A user error: one line of text, a non-zero exit, no traceback."""

    exit_code = 2

    def __str__(self) -> str:  # one line, whatever the message held
        return " ".join(super().__str__().split())


class ManifestError(EdgeDeployError):
    """The manifest is missing, is not valid JSON, or misses fields."""


class ImageError(EdgeDeployError):
    """An image could not be read: missing, corrupt, not an image, too large."""


class ModelError(EdgeDeployError):
    """A model file is missing, truncated, foreign or does not match its manifest."""


class BackendError(EdgeDeployError):
    """A runtime backend is unknown or not installed."""


class GateError(EdgeDeployError):
    """An export failed its parity gate (accuracy drop or float mismatch)."""

    exit_code = 3
