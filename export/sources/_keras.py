"""What the TensorFlow sources share (.keras without a run folder, .h5, SavedModel): a Keras model in memory.

The model is loaded when the source is opened (its input shape and class count complete the
manifest), in TensorFlow's quiet mode; the converters are the same as for a train-model run
(TFLite converter, tf2onnx), so the same format x mode matrix exists, and the float reference is
the model run by TensorFlow on the device-preprocessed evidence images.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgedeploy.core.errors import EdgeDeployError
from edgedeploy.runtime.manifest import Manifest, sha256_file

from ._foreign import ForeignSource

if TYPE_CHECKING:
    from ..formats import ExportFormat
    from ..options import ExportOptions

LAMBDA_REFUSED = (
    "{path} contains a Lambda layer: loading it would run Python code stored in the file, "
    "so safe mode refuses it; re-run with --unsafe-load only if you trust where this file came from"
)


def first_line(exc: BaseException) -> str:
    msg = str(exc).strip()
    return (msg.splitlines()[0] if msg else type(exc).__name__)[:300]


def load_keras_file(path: Path, manifest: Manifest | None, unsafe: bool = False) -> Any:
    """Load a .keras or .h5 model (safe mode unless ``unsafe``); check it against ``manifest`` when given."""
    import keras

    try:
        if unsafe:
            keras.config.enable_unsafe_deserialization()
            model = keras.saving.load_model(path, safe_mode=False, compile=False)
        else:
            model = keras.saving.load_model(path, safe_mode=True, compile=False)
    except EdgeDeployError:
        raise
    except Exception as exc:  # keras raises ValueError/TypeError/KeyError/zip/h5py errors for bad files
        msg = str(exc)
        if not unsafe and ("Lambda" in msg or "safe_mode" in msg or "unsafe" in msg.lower()):
            raise EdgeDeployError(LAMBDA_REFUSED.format(path=path)) from None
        raise EdgeDeployError(f"could not load {path}: {type(exc).__name__}: {first_line(exc)}") from None
    if manifest is not None:
        check_model_matches_manifest(model, manifest, path)
    return model


def io_shapes(model: Any, path: Path) -> tuple[tuple[int, ...], int]:
    """(input shape with -1 for unknown dimensions, number of classes or -1) of a one-input, one-output model."""
    inputs, outputs = list(model.inputs or []), list(model.outputs or [])
    if len(inputs) != 1 or len(outputs) != 1:
        raise EdgeDeployError(f"{path} has {len(inputs)} inputs and {len(outputs)} outputs; an image classifier has one of each")
    shape = tuple(-1 if d is None else int(d) for d in inputs[0].shape)
    classes = outputs[0].shape[-1]
    return shape, -1 if classes is None else int(classes)


def check_model_matches_manifest(model: Any, manifest: Manifest, path: Path) -> None:
    shape, classes = io_shapes(model, path)
    if len(shape) != 4:
        raise EdgeDeployError(f"{path} takes input of shape {shape}; expected images (N, H, W, C)")
    want = (manifest.input_height, manifest.input_width, manifest.input_channels)
    for got, exp, what in zip(shape[1:], want, ("height", "width", "channels")):
        if got > 0 and got != exp:
            raise EdgeDeployError(f"{path} takes input {shape[1:]} but its manifest says {want} ({what} differs)")
    if classes > 0 and classes != manifest.num_classes:
        raise EdgeDeployError(f"{path} has {classes} outputs but its manifest lists {manifest.num_classes} labels")


def tree_sha256(path: Path) -> str:
    """SHA-256 of a file, or of a folder's files (names and bytes, sorted): a SavedModel's identity."""
    if path.is_file():
        return sha256_file(path)
    import hashlib

    h = hashlib.sha256()
    for p in sorted(q for q in path.rglob("*") if q.is_file()):
        h.update(str(p.relative_to(path)).encode() + b"\0" + bytes.fromhex(sha256_file(p)))
    return h.hexdigest()


class KerasSource(ForeignSource):
    """A Keras model in memory; subclasses say how to load it (``load_model``)."""

    runtime = "TensorFlow"
    _model: Any = None

    @classmethod
    def load_model(cls, path: Path, opts: "ExportOptions") -> Any:
        raise NotImplementedError

    @classmethod
    def open(cls, path: Path, opts: "ExportOptions") -> "KerasSource":
        from ..manifest_flags import ManifestFields, build_manifest

        fields = ManifestFields.from_options(opts)
        model = cls.quiet_load(path, opts)
        shape, classes = io_shapes(model, path)
        manifest = build_manifest(fields, shape, classes, path, fmt="keras", model_name=str(getattr(model, "name", "")))
        if manifest.layout != "nhwc":
            raise EdgeDeployError(f"{path.name} takes {'x'.join(map(str, shape))} channels first; the TensorFlow converters "
                                  "here take channels-last (NHWC) Keras models: export it to ONNX and give that file instead")
        src = cls(path=path, manifest=manifest, sha256=tree_sha256(path),
                  notes=[f"{k}: {v}" for k, v in sorted(fields.origin.items())])
        src._model = model
        return src

    @classmethod
    def quiet_load(cls, path: Path, opts: "ExportOptions") -> Any:
        from .._quiet import captured, quiet_loggers, quiet_tensorflow

        if not opts.debug:
            quiet_tensorflow()
        with captured(not opts.debug):
            model = cls.load_model(path, opts)
            if not opts.debug:
                quiet_loggers()
        return model

    def load(self, opts: "ExportOptions") -> Any:
        return self._model

    def exports(self) -> dict[str, "ExportFormat"]:
        from ..formats import FORMATS, format_names

        return {n: FORMATS.get(n)() for n in format_names()}

    def predict(self, model: Any, x: np.ndarray) -> np.ndarray:
        return np.asarray(model(x, training=False), dtype=np.float32)

    def macs(self, model: Any) -> int | None:
        from ..data import count_macs

        return count_macs(model)

    def layer_scopes(self, model: Any) -> dict[str, str]:
        from ..formats.base import keras_layer_scopes

        return keras_layer_scopes(model)
