"""ClassifierOptions: how to open a model, validated once for the CLI, the Python API and serve.

    from edgedeploy.runtime import ClassifierOptions, ImageClassifier
    opts = ClassifierOptions(threads=2, top_k=3)
    clf = ImageClassifier("model_int8.tflite", options=opts)

Every field is checked in ``__post_init__``; a bad value raises
``EdgeDeployError`` with one line that names it ("Received top_k=0, expected
an integer >= 1"). No runtime and no Pillow are imported: building options is instant.
"""
from __future__ import annotations

from dataclasses import dataclass, fields

from edgedeploy.core.errors import EdgeDeployError
from .preprocess import DEFAULT_MAX_PIXELS
PROBE_MODES = ("auto", "always", "never")  # as backends/probe.py (kept import-light here)


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


@dataclass(frozen=True)
class ClassifierOptions:
    """Options of ``ImageClassifier`` (and of ``edge-infer``'s classifier flags).

    Args:
        threads: runtime threads; None means all cores (``default_threads()``).
        backend: a registered backend name or "auto" (by file type and what is installed).
        xnnpack: apply the XNNPACK delegate (TFLite backends).
        max_pixels: refuse larger images (decompression bombs).
        top_k: how many (label, score) pairs each prediction carries.
        probe: "auto", "always" or "never" (None: ``EDGEDEPLOY_PROBE`` or "auto");
            see backends/probe.py.
        verify_hash: check the file against the SHA-256 in its sidecar manifest,
            when there is one (edge_runtime/integrity.py); False skips it.
    """

    threads: int | None = None
    backend: str = "auto"
    xnnpack: bool = True
    max_pixels: int = DEFAULT_MAX_PIXELS
    top_k: int = 5
    probe: str | None = None
    verify_hash: bool = True

    def __post_init__(self) -> None:
        if self.threads is not None and (not _is_int(self.threads) or self.threads < 1):
            raise EdgeDeployError(f"Received threads={self.threads!r}, expected an integer >= 1")
        if not isinstance(self.backend, str) or not self.backend:
            raise EdgeDeployError(f"Received backend={self.backend!r}, expected a backend name or 'auto'")
        if not isinstance(self.xnnpack, bool):
            raise EdgeDeployError(f"Received xnnpack={self.xnnpack!r}, expected True or False")
        if not _is_int(self.max_pixels) or self.max_pixels < 1:
            raise EdgeDeployError(f"Received max_pixels={self.max_pixels!r}, expected an integer >= 1")
        if not _is_int(self.top_k) or self.top_k < 1:
            raise EdgeDeployError(f"Received top_k={self.top_k!r}, expected an integer >= 1")
        if not isinstance(self.verify_hash, bool):
            raise EdgeDeployError(f"Received verify_hash={self.verify_hash!r}, expected True or False")
        if self.probe is not None and self.probe not in PROBE_MODES:
            raise EdgeDeployError(f"Received probe={self.probe!r}, expected one of {', '.join(PROBE_MODES)}")

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))
