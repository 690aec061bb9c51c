"""What every source reader implements: the model export-model reads, its manifest, its data, its float reference.

A source kind is one module of this package with a ``Source`` subclass registered in ``SOURCES``.
``open_source`` asks every registered kind, in ``order``, whether it ``claims`` the path (by its
suffix, the folder's contents or the file's magic bytes), and the first that does opens it. An
opened source gives:

- ``manifest``: the contract the device reads (a run folder's, or built from flags and the file's
  own metadata: ``export/manifest_flags.py``);
- ``exports()``: the export formats it can produce, each an ``ExportFormat`` (the converter) with
  its quantize modes; a format missing here is a combination that does not exist for this kind;
- ``load()``: what the converters take (a Keras model for run/.keras/.h5/SavedModel; nothing for
  .onnx and .tflite, whose converters read the file itself);
- ``calibration()`` and ``reference()``: the calibration sample, and the evidence images with the
  float source's own answers on them (Keras, TensorFlow, ONNX Runtime or LiteRT). The parity gate
  weighs each exported file against that reference, with the same rules whatever the kind.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from edgedeploy.core.errors import EdgeDeployError
from edgedeploy.core.registry import Registry
from edgedeploy.runtime.manifest import Manifest

if TYPE_CHECKING:
    from ..calibration import Calibration
    from ..formats import ExportFormat
    from ..options import ExportOptions
    from ..parity import Reference


@dataclass
class Source:
    """An opened source. Subclasses set the class attributes and implement the hooks."""

    path: Path
    manifest: Manifest
    sha256: str = ""
    run_dir: Path | None = None  # the train-model run folder, when there is one
    config: dict[str, Any] = field(default_factory=dict)  # the run's config.json
    notes: list[str] = field(default_factory=list)  # how the manifest was made, for the log and the report

    kind: ClassVar[str] = ""  # registry name, also in the report
    description: ClassVar[str] = ""  # "a float32 ONNX file", for messages and --help
    runtime: ClassVar[str] = ""  # what runs the float reference ("ONNX Runtime")
    order: ClassVar[int] = 100  # asked in this order; the first that claims a path opens it
    # True when ``exports()`` are the registered formats (export/formats) as they are: the flags can then be
    # checked against them before the source is opened (opening a TensorFlow model costs seconds)
    registry_formats: ClassVar[bool] = True

    # -- to implement -----------------------------------------------------------------
    @classmethod
    def claims(cls, path: Path) -> bool:
        """True when ``path`` is this kind (suffix, folder contents or magic bytes); cheap, never loads a model."""
        raise NotImplementedError

    @classmethod
    def open(cls, path: Path, opts: "ExportOptions") -> "Source":
        """Check the path and build the manifest (no TensorFlow); one-line EdgeDeployError when it cannot."""
        raise NotImplementedError

    def exports(self) -> dict[str, "ExportFormat"]:
        """Export format name -> the converter for this source (its ``modes`` are the modes it can make)."""
        raise NotImplementedError

    def load(self, opts: "ExportOptions") -> Any:
        """What the converters take (``ConvertContext.model``); None when they read the source file itself."""
        return None

    def calibration(self, opts: "ExportOptions") -> "Calibration":
        raise NotImplementedError

    def reference(self, model: Any, opts: "ExportOptions", exclude: list) -> "Reference":
        """The evidence images and the float source's answers on them (its own runtime)."""
        raise NotImplementedError

    # -- defaults ---------------------------------------------------------------------
    @classmethod
    def default_output_for(cls, path: Path) -> Path:
        """Where files go without --output (known before the source is opened): beside the model, in ``<stem>_export/``."""
        return path.parent / f"{path.name.split('.')[0] or 'model'}_export"

    def default_output(self) -> Path:
        return type(self).default_output_for(self.path)

    def macs(self, model: Any) -> int | None:
        return None

    def layer_scopes(self, model: Any) -> dict[str, str]:
        """Keras layer name -> TF name scope, for --keep-float by layer name (Keras sources only)."""
        return {}

    def describe(self) -> dict[str, Any]:
        """The report's ``source`` entry."""
        return {"path": str(self.path), "kind": self.kind, "run_dir": str(self.run_dir) if self.run_dir else None,
                "sha256": self.sha256, "model_name": self.manifest.model_name, "dataset": self.manifest.dataset,
                "reference_runtime": self.runtime, "layout": self.manifest.layout, "manifest_from": list(self.notes)}


SOURCES: Registry[type[Source]] = Registry("source kind", package=__package__, order=lambda cls: cls.order)


def describe_kinds() -> str:
    """The kinds export-model reads, for an error message."""
    return ", ".join(SOURCES.get(n).description for n in SOURCES.names())


def open_source(opts: "ExportOptions") -> Source:
    """The source ``opts.source`` names, opened by the first kind that claims it.

    Raises:
        EdgeDeployError: a missing path, or a path no kind claims (one line listing the kinds).
    """
    p = Path(opts.source)
    if not p.exists():
        raise EdgeDeployError(f"run folder or model not found: {p}")
    cls = claiming_kind(p)
    if cls is not None:
        return cls.open(p, opts)
    if p.is_dir():
        raise EdgeDeployError(f"{p} is not a run folder: it has no model.keras (expected the folder train-model wrote, "
                              "or a SavedModel folder with saved_model.pb)")
    raise EdgeDeployError(f"expected a run folder or a .keras model file, or a float model made elsewhere "
                          f"({describe_kinds()}); got {p}")


def claiming_kind(path: Path) -> type[Source] | None:
    """The kind that would open ``path`` (nothing is loaded), or None."""
    for name in SOURCES.names():
        cls = SOURCES.get(name)
        if cls.claims(path):
            return cls
    return None


def default_output(source: str | Path) -> Path:
    """export-model's output folder without --output, for SOURCE (nothing is loaded): the bundle step finds files there."""
    p = Path(source)
    cls = claiming_kind(p) if p.exists() else None
    return cls.default_output_for(p) if cls is not None else p / "export"


def read_head(path: Path, n: int = 16) -> bytes:
    """The first ``n`` bytes of a file (b"" when it cannot be read): for magic-byte claims."""
    try:
        with open(path, "rb") as f:
            return f.read(n)
    except OSError:
        return b""
