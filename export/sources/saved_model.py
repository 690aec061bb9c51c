"""A TensorFlow SavedModel folder (``saved_model.pb`` + ``variables/``; the float reference: TensorFlow).

Its ``serving_default`` signature must take one image tensor and return one output. In memory it
is a Keras model around ``keras.layers.TFSMLayer`` (so tf2onnx and the reference run it like any
Keras model); TFLite files are converted straight from the folder with
``TFLiteConverter.from_saved_model``, the converter's own path for SavedModels.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from edgedeploy.core.errors import EdgeDeployError

from ..formats.tflite import TFLiteFormat
from ._keras import KerasSource, first_line
from .base import SOURCES

if TYPE_CHECKING:
    from ..formats import ConvertContext, ExportFormat
    from ..options import ExportOptions

SIGNATURE = "serving_default"


def _signature(loaded: Any, path: Path) -> tuple[Any, str]:
    """(the input TensorSpec, the output key) of the serving signature; one line when it is not an image classifier."""
    sigs = getattr(loaded, "signatures", {}) or {}
    if SIGNATURE not in sigs:
        raise EdgeDeployError(f"{path} has no {SIGNATURE!r} signature (it has: {', '.join(sigs) or 'none'}); "
                              "export it with model.export() or tf.saved_model.save(..., signatures=...)")
    fn = sigs[SIGNATURE]
    args, kwargs = fn.structured_input_signature
    specs = list(args) + list(kwargs.values())
    outputs = fn.structured_outputs
    keys = list(outputs) if isinstance(outputs, dict) else []
    if len(specs) != 1 or (isinstance(outputs, dict) and len(keys) != 1):
        raise EdgeDeployError(f"{path}: its {SIGNATURE!r} signature takes {len(specs)} inputs and returns "
                              f"{len(keys) if keys else 1} outputs; an image classifier has one of each")
    return specs[0], keys[0] if keys else ""


def keras_wrapper(path: Path) -> Any:
    """A Keras model that runs the SavedModel's serving signature."""
    import keras
    import tensorflow as tf

    try:
        loaded = tf.saved_model.load(str(path))
    except Exception as exc:  # a damaged saved_model.pb or variables/
        raise EdgeDeployError(f"could not load the SavedModel {path}: {type(exc).__name__}: {first_line(exc)}") from None
    spec, key = _signature(loaded, path)
    if spec.dtype != tf.float32:
        raise EdgeDeployError(f"{path} takes {spec.dtype.name} input: export-model quantizes float32 models")
    inp = keras.Input(shape=tuple(spec.shape[1:]), batch_size=None, dtype="float32", name="image")
    out = keras.layers.TFSMLayer(str(path), call_endpoint=SIGNATURE, name="saved_model")(inp)
    if isinstance(out, dict):
        out = out[key]
    return keras.Model(inp, out, name=path.name or "saved_model")


class SavedModelTFLite(TFLiteFormat):
    """The TFLite converter on the SavedModel folder itself (``from_saved_model``), every mode of a Keras run."""

    def __init__(self, folder: Path):
        self.folder = folder

    def new_converter(self, ctx: "ConvertContext") -> tuple[Any, Any]:
        import tensorflow as tf

        return tf.lite.TFLiteConverter.from_saved_model(str(self.folder)), None

    def _with_fallback(self, ctx: "ConvertContext", run: Callable[[Any], bytes]) -> tuple[bytes, str]:
        from ..formats import ConversionError

        try:
            return run(self.new_converter(ctx)[0]), "from_saved_model"
        except Exception as exc:
            raise ConversionError(f"TFLite conversion failed: from_saved_model ({first_line(exc)})") from exc


@SOURCES.register("saved_model")
class SavedModelSource(KerasSource):
    kind = "saved_model"
    description = "a SavedModel folder"
    order = 30

    @classmethod
    def claims(cls, path: Path) -> bool:
        return path.is_dir() and (path / "saved_model.pb").is_file()

    @classmethod
    def load_model(cls, path: Path, opts: "ExportOptions") -> Any:
        return keras_wrapper(path)

    @classmethod
    def default_output_for(cls, path: Path) -> Path:
        return path.parent / f"{path.resolve().name}_export"

    def exports(self) -> dict[str, "ExportFormat"]:
        out = super().exports()
        out["tflite"] = SavedModelTFLite(self.path)
        return out

    def layer_scopes(self, model: Any) -> dict[str, str]:
        return {}  # the layers live inside the SavedModel's graph: --keep-float takes node names
