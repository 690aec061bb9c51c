"""Options of the runtime, validated once for the CLI, the Python API and serve.

    from edgedeploy import ClassifierOptions, ImageClassifier
    opts = ClassifierOptions(threads=2, top_k=3)
    clf = ImageClassifier.from_options("model_int8.tflite", opts)

Every field is checked in ``__post_init__``; a bad value raises ``EdgeDeployError`` with one line
that names it ("Received top_k=0, expected an integer >= 1"). The fields that are also
``edge-infer`` flags say so (``edgedeploy.core.flags``), so the parser is built from them. No
runtime, no numpy and no Pillow are imported: building options is instant.
"""
from __future__ import annotations

from dataclasses import dataclass, fields

from edgedeploy.core.errors import EdgeDeployError
from edgedeploy.core.flags import flag, int_at_least, positive_float

__all__ = ["ClassifierOptions", "StopOptions", "DEFAULT_MAX_PIXELS", "PROBE_MODES"]

# 50 megapixels: larger than any camera frame a Pi sees, far smaller than a
# decompression bomb (Pillow's own warning starts at 89 MP, its error at 179 MP).
DEFAULT_MAX_PIXELS = 50_000_000
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

    threads: int | None = flag("--threads", type=int_at_least(1), metavar="N",
                               help="runtime threads (default: all cores for a model of 1 GMAC per image or more, or of "
                                    "unknown cost; half the cores, at least 1, for a lighter one)")
    backend: str = flag("--backend", default="auto", metavar="B",
                        help="a backend name (edge-infer --help lists them; default auto: by file type and what is installed)")
    xnnpack: bool = flag("--no-xnnpack", default=True, action="store_false", help="do not apply the XNNPACK delegate (TFLite)")
    max_pixels: int = flag("--max-pixels", default=DEFAULT_MAX_PIXELS, type=int_at_least(1), metavar="N",
                           help=f"refuse images with more pixels (default {DEFAULT_MAX_PIXELS:,})")
    top_k: int = flag("--top-k", default=5, type=int_at_least(1), metavar="K", help="labels per image (default 5)")
    probe: str | None = None
    verify_hash: bool = flag("--no-verify-hash", default=True, action="store_false",
                             help="do not check the model against the SHA-256 in its sidecar manifest")

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


@dataclass(frozen=True)
class StopOptions:
    """When an open-ended run (``--watch``, ``--video``) stops by itself; Ctrl-C always does."""

    max_images: int | None = flag("--max-images", type=int_at_least(1), metavar="N", help="stop after N new images or frames")
    duration: float | None = flag("--duration", type=positive_float, metavar="S", help="stop after S seconds")

    def __post_init__(self) -> None:
        if self.max_images is not None and (not _is_int(self.max_images) or self.max_images < 1):
            raise EdgeDeployError(f"Received max_images={self.max_images!r}, expected an integer >= 1")
        if self.duration is not None and not (isinstance(self.duration, (int, float)) and self.duration > 0):
            raise EdgeDeployError(f"Received duration={self.duration!r}, expected a number > 0")
