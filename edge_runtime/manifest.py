"""The model manifest: the one contract that passes between the stages.

train/ writes it into the run folder (``manifest.json``), export/ embeds it in
every file it writes (ONNX ``metadata_props``, a TFLite metadata entry, and a
sidecar ``MODEL.json``), and edge_runtime/ and benchmarks/ read it back. It is
plain JSON validated against these dataclasses: no pickle, no eval.

How a device prepares an image, in order (see ``preprocess.py``):
  decode (Pillow, EXIF orientation, RGB) -> resize to (height, width) with
  ``resize_method`` -> reorder channels to ``color_order`` ->
  ``(x - mean) / std`` unless ``normalization.in_graph`` -> channels first when
  ``layout`` is "nchw" (a PyTorch-style model) -> quantize to the input dtype
  with ``input.quantization`` when the model's input is integer.

``layout`` came with issue 21 and defaults to "nhwc", so every earlier manifest
loads unchanged and means what it meant.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from edgedeploy.core.errors import ManifestError
from edgedeploy.core.io import atomic_write_text
from edgedeploy.core.runfolder import MANIFEST

SCHEMA_VERSION = 1
# Key under which the manifest travels inside ONNX metadata_props and the
# name of the TFLite metadata entry.
EMBED_KEY = "edgedeploy.manifest"

COLOR_ORDERS = ("RGB", "BGR")
RESIZE_METHODS = ("bilinear", "nearest")
DTYPES = ("float32", "float16", "uint8", "int8", "int16")
LAYOUTS = ("nhwc", "nchw")  # channels last (TensorFlow, TFLite) or first (PyTorch exports)


@dataclass
class Quantization:
    """Affine quantization: ``real = scale * (q - zero_point)``."""

    scale: float
    zero_point: int


@dataclass
class TensorSpec:
    """The dtype of a model's input or output, with its quantization if integer."""

    dtype: str = "float32"
    quantization: Quantization | None = None


@dataclass
class Normalization:
    """What turns 0..255 pixels into model input.

    ``in_graph=True`` means the model takes raw 0..255 float pixels and
    normalizes inside its own graph (a Rescaling layer); mean/std are then
    ignored. Otherwise the device computes ``(pixel - mean) / std`` per channel,
    in ``color_order``.
    """

    in_graph: bool = True
    mean: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])
    std: list[float] = field(default_factory=lambda: [1.0, 1.0, 1.0])


# ``--normalize`` presets (export-model) and how ``--info`` names a normalization: pixel units (0..255).
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)  # torchvision's, on 0..1 pixels
NORMALIZE_PRESETS: dict[str, tuple[list[float], list[float]] | None] = {
    "0-255": None,  # raw pixels: the model normalizes in its graph
    "0-1": ([0.0, 0.0, 0.0], [255.0, 255.0, 255.0]),
    "-1-1": ([127.5, 127.5, 127.5], [127.5, 127.5, 127.5]),
    "imagenet": ([round(m * 255, 6) for m in IMAGENET_MEAN], [round(s * 255, 6) for s in IMAGENET_STD]),
}


def normalization_name(n: "Normalization") -> str:
    """A preset's name ("imagenet", "0-1", ...) or ``mean=R,G,B:std=R,G,B`` on 0..1 pixels (as ``--normalize`` takes it)."""
    if n.in_graph:
        return "0-255"
    for name, preset in NORMALIZE_PRESETS.items():
        if preset is not None and len(n.mean) == 3 and all(abs(a - b) < 1e-3 for a, b in zip(n.mean + n.std, preset[0] + preset[1])):
            return name
    fmt = lambda v: ",".join(f"{x / 255:.6g}" for x in v)  # noqa: E731
    return f"mean={fmt(n.mean)}:std={fmt(n.std)}"


@dataclass
class Manifest:
    """Everything a device needs to turn an image into a label."""

    labels: list[str]
    input_height: int
    input_width: int
    input_channels: int = 3
    color_order: str = "RGB"
    resize_method: str = "bilinear"
    normalization: Normalization = field(default_factory=Normalization)
    layout: str = "nhwc"  # the model input's axis order: "nhwc" or "nchw"
    input: TensorSpec = field(default_factory=TensorSpec)
    output: TensorSpec = field(default_factory=TensorSpec)
    model_name: str = ""
    dataset: str = ""
    format: str = "keras"  # keras | tflite | onnx
    quantize: str = "none"  # none | float16 | dynamic | int8 | int16x8
    source_sha256: str = ""  # hash of the .keras file this came from
    # SHA-256 of the model file this manifest describes. Set only in the sidecar
    # (a file cannot hold its own hash); edge_runtime.integrity checks it at load.
    sha256: str = ""
    macs: int | None = None  # multiply-accumulates per inference (batch 1)
    metrics: dict[str, Any] = field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION

    # -- validation ---------------------------------------------------------
    def __post_init__(self) -> None:
        if not isinstance(self.labels, list) or not self.labels or not all(isinstance(x, str) for x in self.labels):
            raise ManifestError(f"manifest labels must be a non-empty list of strings, got {self.labels!r}")
        for name in ("input_height", "input_width", "input_channels"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ManifestError(f"manifest {name} must be a positive integer, got {v!r}")
        if self.input_channels not in (1, 3):
            raise ManifestError(f"manifest input_channels must be 1 or 3, got {self.input_channels}")
        if self.color_order not in COLOR_ORDERS:
            raise ManifestError(f"manifest color_order must be one of {COLOR_ORDERS}, got {self.color_order!r}")
        if self.layout not in LAYOUTS:
            raise ManifestError(f"manifest layout must be one of {LAYOUTS}, got {self.layout!r}")
        if self.resize_method not in RESIZE_METHODS:
            raise ManifestError(f"manifest resize_method must be one of {RESIZE_METHODS}, got {self.resize_method!r}")
        for spec_name in ("input", "output"):
            spec = getattr(self, spec_name)
            if spec.dtype not in DTYPES:
                raise ManifestError(f"manifest {spec_name}.dtype must be one of {DTYPES}, got {spec.dtype!r}")
        n = self.normalization
        if len(n.mean) != self.input_channels or len(n.std) != self.input_channels:
            raise ManifestError("manifest normalization mean/std must have one value per input channel")
        if any(s == 0 for s in n.std):
            raise ManifestError(f"manifest normalization std must be non-zero, got {n.std}")

    @property
    def num_classes(self) -> int:
        return len(self.labels)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """The model input of one image in the model's own axis order: (H, W, C), or (C, H, W) for nchw."""
        h, w, c = self.input_height, self.input_width, self.input_channels
        return (c, h, w) if self.layout == "nchw" else (h, w, c)

    # -- (de)serialisation --------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: Any) -> "Manifest":
        """Build a manifest from parsed JSON, with one-line errors for bad fields."""
        if not isinstance(data, dict):
            raise ManifestError(f"manifest must be a JSON object, got {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        missing = [f.name for f in fields(cls) if f.name not in data and f.name in ("labels", "input_height", "input_width")]
        if missing:
            raise ManifestError(f"manifest is missing required field(s): {', '.join(missing)}")
        version = data.get("schema_version", SCHEMA_VERSION)
        if not isinstance(version, int) or version > SCHEMA_VERSION:
            raise ManifestError(f"manifest schema_version {version!r} is newer than this edgedeploy supports ({SCHEMA_VERSION})")
        kwargs = {k: v for k, v in data.items() if k in known}
        try:
            kwargs["normalization"] = Normalization(**data.get("normalization", {}))
            for spec in ("input", "output"):
                raw = dict(data.get(spec) or {})
                q = raw.get("quantization")
                raw["quantization"] = Quantization(**q) if q else None
                kwargs[spec] = TensorSpec(**raw)
            return cls(**kwargs)
        except TypeError as exc:  # unexpected or missing nested keys
            raise ManifestError(f"manifest has invalid fields: {exc}") from None

    @classmethod
    def from_json(cls, text: str | bytes, source: str = "manifest") -> "Manifest":
        try:
            data = json.loads(text)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ManifestError(f"{source} is not valid JSON: {exc}") from None
        return cls.from_dict(data)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Manifest":
        p = Path(path)
        if p.is_dir():
            p = p / MANIFEST
        if not p.is_file():
            raise ManifestError(f"manifest not found: {p}")
        return cls.from_json(p.read_bytes(), source=str(p))

    def save(self, path: str | os.PathLike, force: bool = True) -> Path:

        return atomic_write_text(path, self.to_json() + "\n", force=force)

    def replace(self, **changes: Any) -> "Manifest":
        data = self.to_dict()
        data.update(changes)
        return Manifest.from_dict(data)


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    import hashlib  # lazy: loading OpenSSL costs a device's cold start ~12 ms

    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def guess_layout(shape: tuple[int, ...] | list[int]) -> str | None:
    """"nchw" or "nhwc" when a 4-D image input shape says so unambiguously (1 or 3 channels on one side only), else None."""
    if len(shape) != 4:
        return None
    first, last = shape[1] in (1, 3), shape[3] in (1, 3)
    if first != last:
        return "nchw" if first else "nhwc"
    return None


def default_manifest(num_classes: int, height: int, width: int) -> Manifest:
    """Manifest for a model that shipped without one: class indices as labels."""
    return Manifest(labels=[str(i) for i in range(num_classes)], input_height=height, input_width=width)
