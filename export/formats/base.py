"""What every export format implements, and the context a conversion gets."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, ClassVar

from edge_runtime.errors import EdgeDeployError
from edge_runtime.registry import Registry

if TYPE_CHECKING:
    from edge_runtime.manifest import Manifest

    from ..calibration import Calibration

# The quantize modes, in the order reports list them. "none" is float32.
MODES = ("none", "float16", "dynamic", "int8", "int16x8")
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


@dataclass
class Converted:
    """The converter's output: the model bytes and how they were made."""

    data: bytes
    converter: str  # the conversion path that produced it
    kept_float: list[str] = field(default_factory=list)  # node names left in float
    notes: list[str] = field(default_factory=list)


class ExportFormat:
    """One target format: its file suffix, its quantize modes, its converter."""

    name: ClassVar[str] = ""
    suffix: ClassVar[str] = ""
    order: ClassVar[int] = 100  # position in plans, reports and --help
    modes: ClassVar[dict[str, str]] = {}  # mode -> one-line description (shown in --help)
    calibrated: ClassVar[tuple[str, ...]] = ()  # modes that need representative data
    keep_float_modes: ClassVar[tuple[str, ...]] = ()  # modes where --keep-float applies

    def convert(self, ctx: ConvertContext, mode: str) -> Converted:
        raise NotImplementedError

    def check(self, data: bytes) -> None:
        """Raise ConversionError unless ``data`` is a structurally valid file of this format."""
        raise NotImplementedError

    def file_name(self, mode: str) -> str:
        return f"model_{mode_tag(mode)}{self.suffix}"

    @classmethod
    def check_mode(cls, mode: str) -> None:
        if mode not in cls.modes:
            raise EdgeDeployError(
                f"--format {cls.name} does not support --quantize {mode}; valid modes for {cls.name}: {', '.join(cls.modes)}"
            )


FORMATS: Registry[type[ExportFormat]] = Registry("format")


def match_nodes(patterns: list[str], names: list[str]) -> dict[str, list[str]]:
    """For each --keep-float pattern, the node names equal to it or containing it."""
    out: dict[str, list[str]] = {}
    for pat in patterns:
        exact = [n for n in names if n == pat]
        out[pat] = exact or [n for n in names if pat in n]
    return out
