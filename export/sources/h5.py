"""A Keras 2 ``.h5`` (HDF5) model (the float reference: TensorFlow, through Keras 3's legacy HDF5 loader).

Claimed by the HDF5 signature (``\\x89HDF\\r\\n\\x1a\\n``), whatever the suffix. Its manifest comes
from the flags; its converters are a Keras run's (TFLite converter, tf2onnx): every format and mode.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._keras import KerasSource, load_keras_file
from .base import SOURCES, read_head

if TYPE_CHECKING:
    from ..options import ExportOptions

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


@SOURCES.register("h5")
class H5Source(KerasSource):
    kind = "h5"
    description = "a Keras 2 .h5 file"
    order = 20

    @classmethod
    def claims(cls, path: Path) -> bool:
        return path.is_file() and (path.suffix.lower() in (".h5", ".hdf5") or read_head(path, 8) == HDF5_SIGNATURE)

    @classmethod
    def open(cls, path: Path, opts: "ExportOptions") -> KerasSource:
        from edgedeploy.core.errors import EdgeDeployError

        if read_head(path, 8) != HDF5_SIGNATURE:
            raise EdgeDeployError(f"{path} is not an HDF5 file (no HDF5 signature: truncated, or not a Keras .h5 model)")
        return super().open(path, opts)

    @classmethod
    def load_model(cls, path: Path, opts: "ExportOptions") -> Any:
        return load_keras_file(path, None, unsafe=opts.unsafe_load)
