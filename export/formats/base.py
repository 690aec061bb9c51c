"""What every export format implements, and the context a conversion gets."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, ClassVar

from edgedeploy.core.errors import EdgeDeployError, ModelError
from edgedeploy.core.registry import Registry
from edgedeploy.runtime.formats import get_format

if TYPE_CHECKING:
    from edgedeploy.runtime.formats import ModelFormat
    from edgedeploy.runtime.manifest import Manifest

    from ..calibration import Calibration

# The quantize modes, in the order reports list them. "none" is float32. "weight-only" (int8
# weights, float compute) exists for a .tflite source only (ai-edge-quantizer: export/sources/tflite.py).
MODES = ("none", "float16", "weight-only", "dynamic", "int8", "int16x8")
IO_TYPES = ("uint8", "int8", "float32")


def mode_tag(mode: str) -> str:
    """The name a mode goes by in file names: ``none`` -> ``float32``."""
    return "float32" if mode == "none" else mode


class ConversionError(EdgeDeployError):
    """A converter failed on this model (an unsupported op, a converter bug)."""

    exit_code = 1


@dataclass
class ConvertContext:
    """Everything a converter may need; calibration data is built on first use."""

    model: Any  # the Keras model
    manifest: "Manifest"
    calibration: Callable[[], "Calibration"]
    workdir: Path  # scratch space, removed after the run
    io: str = "uint8"  # TFLite int8 input/output type
    opset: int = 17
    keep_float: list[str] = field(default_factory=list)
    debug: bool = False
    cache: dict[str, Any] = field(default_factory=dict)  # e.g. the float ONNX model, shared by its modes
    layer_scopes: dict[str, str] = field(default_factory=dict)  # Keras layer name -> TF name scope


@dataclass
class Converted:
    """The converter's output: the model bytes and how they were made."""

    data: bytes
    converter: str  # the conversion path that produced it
    kept_float: list[str] = field(default_factory=list)  # node names left in float
    notes: list[str] = field(default_factory=list)
    keep_float_unmatched: list[str] = field(default_factory=list)  # --keep-float patterns that matched no node


class _FileSuffix:
    """``ExportFormat.suffix``: the suffix of the device-side file format of the same name."""

    def __get__(self, obj: Any, cls: type["ExportFormat"]) -> str:
        return cls.model_format().suffix


class ExportFormat:
    """One target format: its quantize modes and its converter.

    Everything about the file itself (suffix, verification, the embedded
    manifest, the sidecar) belongs to the ``edge_runtime.formats`` format of the
    same ``name``: the device reads exports with that code.
    """

    name: ClassVar[str] = ""  # also the edge_runtime.formats name of the file it writes
    suffix = _FileSuffix()
    order: ClassVar[int] = 100  # position in plans, reports and --help
    modes: ClassVar[dict[str, str]] = {}  # mode -> one-line description (shown in --help)
    calibrated: ClassVar[tuple[str, ...]] = ()  # modes that need representative data
    keep_float_modes: ClassVar[tuple[str, ...]] = ()  # modes where --keep-float applies
    io_modes: ClassVar[tuple[str, ...]] = ()  # modes where --io sets the input/output type
    diagnosed_modes: ClassVar[tuple[str, ...]] = ()  # modes ``diagnose`` can explain
    diagnosis_tool: ClassVar[str] = ""  # what ``diagnose`` runs, for the log and the report

    def convert(self, ctx: ConvertContext, mode: str) -> Converted:
        raise NotImplementedError

    def expected_input_dtype(self, ctx: ConvertContext, mode: str) -> str | None:
        """The input dtype the options ask for in ``mode`` (checked against the file), or None."""
        return None

    def diagnose(self, ctx: ConvertContext, mode: str) -> list[dict[str, Any]] | None:
        """The layers that lose the most in ``mode`` (worst first), for a file that failed the gate."""
        return None

    def finish(self, data: bytes, manifest: "Manifest") -> tuple[bytes, list[str]]:
        """Last touches after the manifest is embedded (metadata other tools read): the bytes and any notes."""
        return data, []

    @classmethod
    def model_format(cls) -> "ModelFormat":
        """The device-side file format (suffix, verification, embedded manifest, sidecar)."""
        return get_format(cls.name)

    def check(self, data: bytes) -> None:
        """Raise ConversionError unless ``data`` is a structurally valid file of this format."""
        try:
            self.model_format().verify_bytes(data, "the converted model")
        except ModelError as exc:
            raise ConversionError(f"the converter produced an invalid {self.model_format().display_name} file: {exc}") from None

    def file_name(self, mode: str) -> str:
        return f"model_{mode_tag(mode)}{self.suffix}"

    @classmethod
    def check_mode(cls, mode: str) -> None:
        if mode not in cls.modes:
            raise EdgeDeployError(
                f"--format {cls.name} does not support --quantize {mode}; valid modes for {cls.name}: {', '.join(cls.modes)}"
            )


FORMATS: Registry[type[ExportFormat]] = Registry("format", package=__package__)


def match_nodes(patterns: list[str], names: list[str], layer_scopes: dict[str, str] | None = None) -> dict[str, list[str]]:
    """For each --keep-float pattern, the graph node names it selects.

    A Keras layer name selects the nodes inside that layer's name scope (see
    ``keras_layer_scopes``); anything else selects the nodes whose name equals
    it, or else contains it (a scope such as ``small_cnn_1/fc_1/`` from a report).
    """
    scopes = layer_scopes or {}
    out: dict[str, list[str]] = {}
    for pat in patterns:
        if pat in scopes:
            scope = scopes[pat]
            hits = [n for n in names if any(f"/{scope}/" in f"/{part}" for part in n.split(";"))]
            if hits:
                out[pat] = hits
                continue
        exact = [n for n in names if n == pat]
        out[pat] = exact or [n for n in names if pat in n]
    return out


def _unique_name(used: dict[str, int], name: str) -> str:
    """TensorFlow's ``Graph.unique_name``: the same counters, the same suffixes."""
    key = name.lower()
    i = used.get(key, 0)
    used[key] = i + 1
    if i > 0:
        base = key
        while key in used:
            key = f"{base}_{i}"
            i += 1
        used[key] = 1
        name = f"{name}_{i - 1}"
    return name


def keras_layer_scopes(model: Any) -> dict[str, str]:
    """Keras layer name -> the name scope its ops get when the model is traced.

    Keras 3 on TensorFlow enters a layer's name scope twice per call, and
    TensorFlow makes scope names unique, so layer ``fc`` becomes ``fc_1`` and
    an auto-named second layer ``dense_1`` becomes ``dense_1_2`` (the first
    took ``dense_1``). Converted TFLite and ONNX node names carry these scopes,
    e.g. ``small_cnn_1/fc_1/MatMul``. Replaying TensorFlow's counter over the
    layers in call order gives the mapping, so ``--keep-float fc`` works.
    """
    out: dict[str, str] = {}

    def walk(m: Any) -> None:
        used: dict[str, int] = {}
        for layer in getattr(m, "layers", []):
            if type(layer).__name__ == "InputLayer":
                continue
            _unique_name(used, layer.name)
            scope = _unique_name(used, layer.name)
            out.setdefault(layer.name, scope)
            if getattr(layer, "layers", None):
                walk(layer)

    walk(model)
    return out
