"""What is being exported: a run folder (or a .keras inside one) and its model.

A run folder, as ``train-model`` writes it, holds ``model.keras``,
``manifest.json`` (the contract with the device) and ``config.json`` (the
resolved training config: dataset, data folder, image size, seed), which
export needs to load the same train/test splits for calibration and parity.

Loading is safe by default: ``keras.saving.load_model(path, safe_mode=True)``
refuses Lambda layers, whose Python bytecode would run on load.
"""
from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgedeploy.core.errors import EdgeDeployError, ManifestError
from edgedeploy.core.runfolder import MANIFEST, MODEL, RunFolder
from edgedeploy.runtime.manifest import Manifest, sha256_file


@dataclass
class Source:
    """The model to export and the run folder it came from."""

    keras_path: Path
    run_dir: Path
    manifest: Manifest
    config: dict[str, Any] = field(default_factory=dict)
    sha256: str = ""


def resolve_source(arg: str | Path) -> Source:
    """Check the RUN_DIR|MODEL.keras argument without importing TensorFlow.

    Raises:
        EdgeDeployError: a missing path, a folder without model.keras, a file
            that is not .keras or not a zip archive, a missing or invalid manifest.
    """
    p = Path(arg)
    if not p.exists():
        raise EdgeDeployError(f"run folder or model not found: {p}")
    if p.is_dir():
        keras_path = RunFolder(p).model
        if not keras_path.is_file():
            raise EdgeDeployError(f"{p} is not a run folder: it has no {MODEL} (expected the folder train-model wrote)")
        run_dir = p
    else:
        if p.suffix.lower() != ".keras":
            raise EdgeDeployError(f"expected a run folder or a .keras model file, got {p}")
        keras_path, run_dir = p, p.parent
    if keras_path.stat().st_size == 0 or not zipfile.is_zipfile(keras_path):
        raise EdgeDeployError(f"{keras_path} is not a valid .keras file (a .keras model is a zip archive; this one is not)")
    manifest_path = run_dir / MANIFEST
    if not manifest_path.is_file():
        raise ManifestError(f"no {MANIFEST} beside {keras_path.name} in {run_dir}; export needs the run folder train-model wrote")
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
    return Source(keras_path=keras_path, run_dir=run_dir, manifest=manifest, config=config, sha256=sha256_file(keras_path))


LAMBDA_REFUSED = (
    "{path} contains a Lambda layer: loading it would run Python code stored in the file, "
    "so safe mode refuses it; re-run with --unsafe-load only if you trust where this file came from"
)


def load_keras_model(source: Source, unsafe: bool = False) -> Any:
    """Load the .keras model (safe mode unless ``unsafe``) and check it against the manifest."""
    import keras

    path = source.keras_path
    try:
        if unsafe:
            keras.config.enable_unsafe_deserialization()
            model = keras.saving.load_model(path, safe_mode=False, compile=False)
        else:
            model = keras.saving.load_model(path, safe_mode=True, compile=False)
    except EdgeDeployError:
        raise
    except Exception as exc:  # keras raises ValueError/TypeError/KeyError/zip errors for bad files
        msg = str(exc)
        if not unsafe and ("Lambda" in msg or "safe_mode" in msg or "unsafe" in msg.lower()):
            raise EdgeDeployError(LAMBDA_REFUSED.format(path=path)) from None
        first = msg.strip().splitlines()[0] if msg.strip() else type(exc).__name__
        raise EdgeDeployError(f"could not load {path}: {type(exc).__name__}: {first[:300]}") from None
    check_model_matches_manifest(model, source.manifest, path)
    return model


def check_model_matches_manifest(model: Any, manifest: Manifest, path: Path) -> None:
    inputs, outputs = list(model.inputs or []), list(model.outputs or [])
    if len(inputs) != 1 or len(outputs) != 1:
        raise EdgeDeployError(f"{path} has {len(inputs)} inputs and {len(outputs)} outputs; an image classifier has one of each")
    shape = tuple(inputs[0].shape)
    if len(shape) != 4:
        raise EdgeDeployError(f"{path} takes input of shape {shape}; expected images (N, H, W, C)")
    want = (manifest.input_height, manifest.input_width, manifest.input_channels)
    for got, exp, what in zip(shape[1:], want, ("height", "width", "channels")):
        if got is not None and got != exp:
            raise EdgeDeployError(f"{path} takes input {shape[1:]} but its manifest says {want} ({what} differs)")
    classes = outputs[0].shape[-1]
    if classes is not None and classes != manifest.num_classes:
        raise EdgeDeployError(f"{path} has {classes} outputs but its manifest lists {manifest.num_classes} labels")
