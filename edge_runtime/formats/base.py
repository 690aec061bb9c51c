"""What every model file format implements: the one place that knows a format.

A format owns its file suffix, its pre-load verification, reading and writing
the metadata entry where the manifest travels, and the name of its sidecar.
Nothing here opens a runtime: the readers and the verifiers are pure Python,
so benchmarks, fuzzing, the classifier and export all ask this layer.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from edgedeploy.core.errors import ModelError
from edgedeploy.core.registry import Registry

from ..manifest import EMBED_KEY, Manifest

if TYPE_CHECKING:
    from ..manifest import Manifest

SIDECAR_SUFFIX = ".json"
# export-model keeps a file that failed its parity gate as model_<mode>.<ext>.rejected (the benchmarks open it by name)
REJECTED_SUFFIX = ".rejected"


class ModelFormat:
    """One model file format. Subclasses set the class attributes and the three hooks."""

    name: ClassVar[str] = ""  # registry key; the manifest's "format"; export's --format
    suffix: ClassVar[str] = ""  # lower case, with the dot
    display_name: ClassVar[str] = ""  # "TFLite": report labels and error messages
    metadata_name: ClassVar[str] = "metadata"  # what the format calls its metadata entries
    order: ClassVar[int] = 100  # listing order (reports put lower first)

    # -- to implement -----------------------------------------------------------------
    def check_bytes(self, data: bytes) -> None:
        """Raise ValueError (the reason) unless ``data`` is a sound file of this format."""
        raise NotImplementedError

    def metadata_from_bytes(self, data: bytes) -> dict[str, str]:
        """Every metadata entry, name -> text; ValueError if they are damaged."""
        raise NotImplementedError

    def standard_metadata(self, data: bytes) -> str | None:
        """What tools other than edgedeploy read from the file (a line for ``--info``), or None."""
        return None

    def standard_hints(self, data: bytes) -> dict[str, Any] | None:
        """What a file without an edgedeploy manifest says of itself in its format's standard metadata.

        {"labels": list or None, "mean": list or None, "std": list or None,
        "channels": int}, or None when there is none. The classifier builds a
        manifest from it (labels, normalization) before falling back to class
        indices and raw pixels.
        """
        return None

    def write_metadata(self, data: bytes, key: str, text: str | None) -> bytes:
        """``data`` with entry ``key`` set to ``text`` (an entry of that name is replaced);
        ``text=None`` removes the entry."""
        raise NotImplementedError

    # -- files --------------------------------------------------------------------------
    def matches(self, path: str | os.PathLike) -> bool:
        """True when the file name says this format (its suffix, any case)."""
        return Path(path).suffix.lower() == self.suffix

    def sidecar_path(self, path: str | os.PathLike) -> Path:
        """Where export-model writes the manifest beside the file: ``model_int8.tflite.json``."""
        p = Path(path)
        return p.with_name(p.name + SIDECAR_SUFFIX)

    def sidecar_candidates(self, path: str | os.PathLike) -> tuple[Path, ...]:
        """Sidecars looked for, in order: ``<name>.json``, then ``<stem>.json`` (hand-made)."""
        p = Path(path)
        return (self.sidecar_path(p), p.with_suffix(SIDECAR_SUFFIX))

    # -- verification ---------------------------------------------------------------------
    def verify_bytes(self, data: bytes, where: str = "<bytes>") -> None:
        """Raise a one-line ModelError unless ``data`` is a sound file of this format."""
        try:
            self.check_bytes(data)
        except ValueError as exc:
            raise ModelError(f"not a valid {self.display_name} model ({exc}): {where}") from None

    def verify(self, path: str | os.PathLike) -> None:
        """Check a file before a native runtime sees it (runtimes can crash on damaged files).

        Raises:
            ModelError: missing, a directory, empty, or not a sound file of this format.
        """
        p = Path(path)
        if not p.exists():
            raise ModelError(f"model file not found: {p}")
        if p.is_dir():
            raise ModelError(f"expected a model file, got a directory: {p}")
        if p.stat().st_size == 0:
            raise ModelError(f"model file is empty (0 bytes): {p}")
        self.verify_bytes(p.read_bytes(), str(p))

    # -- the manifest ----------------------------------------------------------------------
    def read_metadata(self, path: str | os.PathLike) -> dict[str, str]:
        """Every metadata entry of a file; a one-line ModelError if they are damaged."""
        p = Path(path)
        try:
            return self.metadata_from_bytes(p.read_bytes())
        except ValueError as exc:
            raise ModelError(f"{self.display_name} {self.metadata_name} are corrupt ({exc}): {p}") from None

    def manifest_text(self, data: bytes) -> str | None:
        """The manifest JSON embedded in model bytes, or None."""

        return self.metadata_from_bytes(data).get(EMBED_KEY)

    def write_manifest(self, data: bytes, manifest: "Manifest | str") -> bytes:
        """Model bytes with the manifest embedded (compact JSON; the sidecar keeps the indented form)."""

        text = manifest if isinstance(manifest, str) else json.dumps(manifest.to_dict(), sort_keys=True, separators=(",", ":"))
        return self.write_metadata(data, EMBED_KEY, text)

    def strip_manifest(self, data: bytes) -> bytes:
        """Model bytes as a converter writes them: no embedded manifest, nothing describing the model.

        Tests make "no manifest" models from real exports this way.
        """

        return self.write_metadata(data, EMBED_KEY, None)

    def read_manifest(self, path: str | os.PathLike, strict: bool = True) -> "Manifest | None":
        """The manifest embedded in the file, else its sidecar, else None.

        Args:
            path: the model file.
            strict: raise on damaged metadata; False skips to the sidecar (a
                runtime's load reports the damage later).
        """

        p = Path(path)
        try:
            meta = self.read_metadata(p)
        except (ModelError, OSError):
            if strict:
                raise
            meta = {}
        if EMBED_KEY in meta:
            return Manifest.from_json(meta[EMBED_KEY], source=f"manifest embedded in {p.name}")
        for sidecar in self.sidecar_candidates(p):
            if sidecar.is_file():
                return Manifest.from_json(sidecar.read_bytes(), source=str(sidecar))
        return None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} ({self.suffix})>"


FORMATS: Registry[ModelFormat] = Registry("model format", package=__package__, plugin_env="EDGEDEPLOY_FORMATS")


def register_format(cls: type[ModelFormat]) -> type[ModelFormat]:
    """Class decorator: register one instance of ``cls`` under ``cls.name``."""
    if not cls.name or not cls.suffix.startswith("."):
        raise ValueError(f"{cls.__name__} needs a name and a suffix starting with '.'")
    FORMATS.register(cls.name)(cls())
    return cls
