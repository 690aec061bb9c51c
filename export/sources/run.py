"""A train-model run folder, or the ``.keras`` file inside one (the float reference: Keras).

A run folder holds ``model.keras``, ``manifest.json`` (the contract with the device) and
``config.json`` (the resolved training config: dataset, data folder, image size, seed), which
export needs to load the same train/test splits for calibration and parity. A ``.keras`` file with
no ``manifest.json`` beside it is a model trained elsewhere: its manifest comes from the flags
(``--labels``, ``--normalize`` ...) and its data from ``--calibration-data``, as for ``.h5``.

Loading is safe by default: ``keras.saving.load_model(path, safe_mode=True)`` refuses Lambda
layers, whose Python bytecode would run on load.
"""
from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgedeploy.core.errors import EdgeDeployError, ManifestError
from edgedeploy.core.runfolder import MANIFEST, RunFolder
from edgedeploy.runtime.manifest import Manifest, sha256_file

from ._keras import KerasSource, load_keras_file
from .base import SOURCES, Source

if TYPE_CHECKING:
    from ..calibration import Calibration
    from ..formats import ExportFormat
    from ..options import ExportOptions
    from ..parity import Reference


def _keras_file(p: Path) -> Path:
    return RunFolder(p).model if p.is_dir() else p


@SOURCES.register("run")
class RunSource(Source):
    kind = "run"
    description = "a train-model run folder or .keras file"
    runtime = "Keras"
    order = 10

    @classmethod
    def claims(cls, path: Path) -> bool:
        return (path.is_dir() and RunFolder(path).model.is_file()) or (path.is_file() and path.suffix.lower() == ".keras")

    @classmethod
    def open(cls, path: Path, opts: "ExportOptions") -> Source:
        keras_path = _keras_file(path)
        run_dir = path if path.is_dir() else path.parent
        if keras_path.stat().st_size == 0 or not zipfile.is_zipfile(keras_path):
            raise EdgeDeployError(f"{keras_path} is not a valid .keras file (a .keras model is a zip archive; this one is not)")
        manifest_path = run_dir / MANIFEST
        if not manifest_path.is_file():
            if path.is_file() and (opts.labels or opts.normalize):  # a .keras trained elsewhere: described by flags
                return KerasFileSource.open(path, opts)
            raise ManifestError(f"no {MANIFEST} beside {keras_path.name} in {run_dir}; export needs the run folder train-model "
                                "wrote, or --labels and --normalize for a .keras file trained elsewhere")
        manifest = Manifest.load(manifest_path)
        config: dict[str, Any] = {}
        config_path = RunFolder(run_dir).config_path
        if config_path.is_file():
            try:
                config = json.loads(config_path.read_text("utf-8"))
            except (ValueError, UnicodeDecodeError) as exc:
                raise EdgeDeployError(f"{config_path} is not valid JSON: {exc}") from None
            if not isinstance(config, dict):
                raise EdgeDeployError(f"{config_path} must hold a JSON object")
        return cls(path=keras_path, manifest=manifest, sha256=sha256_file(keras_path), run_dir=run_dir, config=config,
                   notes=[f"{manifest_path}"])

    @classmethod
    def default_output_for(cls, path: Path) -> Path:
        return (path if path.is_dir() else path.parent) / "export"

    def exports(self) -> dict[str, "ExportFormat"]:
        from ..formats import FORMATS, format_names

        return {n: FORMATS.get(n)() for n in format_names()}

    def load(self, opts: "ExportOptions") -> Any:
        return load_keras_file(self.path, self.manifest, unsafe=opts.unsafe_load)

    def macs(self, model: Any) -> int | None:
        from ..data import count_macs

        return count_macs(model)

    def layer_scopes(self, model: Any) -> dict[str, str]:
        from ..formats.base import keras_layer_scopes

        return keras_layer_scopes(model)

    def calibration(self, opts: "ExportOptions") -> "Calibration":
        from .. import calibration as cal

        if opts.calibration_data is not None:
            return cal.from_folder(opts.calibration_data, self.manifest, opts.calibration_samples, opts.seed)
        return cal.from_run(self.run_dir, self.manifest, opts.calibration_samples, opts.seed, self.config)

    def reference(self, model: Any, opts: "ExportOptions", exclude: list) -> "Reference":
        from ..parity import keras_reference

        return keras_reference(model, self.run_dir, self.manifest, self.config, opts.parity_samples, opts.seed,
                               exclude=exclude, parity_data=opts.parity_data)


class KerasFileSource(KerasSource):
    """A ``.keras`` file trained elsewhere (no run folder beside it): described by flags, like ``.h5``."""

    kind = "keras"
    description = "a .keras file without a run folder"
    runtime = "Keras"

    @classmethod
    def load_model(cls, path: Path, opts: "ExportOptions") -> Any:
        return load_keras_file(path, None, unsafe=opts.unsafe_load)
