"""Planning an export: the (format, mode) pairs and every flag and path, checked without TensorFlow."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from edgedeploy.core.errors import EdgeDeployError
from edgedeploy.core.io import ensure_writable_dir

from .calibration import check_sample_count
from .formats import FORMATS, IO_TYPES, MODES, ExportFormat, format_names
from .options import MAX_OPSET, MIN_OPSET, ExportOptions

if TYPE_CHECKING:
    from .records import Job


# Why a format does not exist for a source that lacks it (the combinations table: docs/bring-your-own-model.md).
_WHY = {"tflite": " (no converter kept here turns ONNX into TFLite: give the Keras/SavedModel original, or its .tflite)",
        "onnx": " (no converter kept here turns TFLite into ONNX)"}


def _split(values: list[str] | None) -> list[str]:
    out: list[str] = []
    for v in values or []:
        out.extend(p.strip() for p in str(v).split(",") if p.strip())
    return out


def plan(opts: ExportOptions, available: dict[str, ExportFormat] | None = None,
         source: str = "") -> list[tuple[ExportFormat, str]]:
    """The (format, mode) pairs to export, with one-line errors for impossible flags.

    ``available``: the formats the source can produce (its converters, ``export/sources``); None:
    every registered format (a Keras model). ``source`` names the source kind in the errors.
    """
    if available is None:
        available = {n: FORMATS.get(n)() for n in format_names()}
    names = _split(opts.formats) or list(available)[:1]  # default: tflite, or the one format the source has
    all_formats = "all" in names
    for n in names:
        if n != "all" and n not in available:
            FORMATS.get(n)  # an unknown name: the registry's one line
            raise EdgeDeployError(f"--format {n} does not exist for {source or 'this source'}: it exports to "
                                  f"{', '.join(available)} only{_WHY.get(n, '')}")
    fmts = [available[n] for n in (list(available) if all_formats else dict.fromkeys(names))]
    modes = _split(opts.modes) if opts.modes is not None else (["all"] if all_formats else ["none"])
    if not modes:
        raise EdgeDeployError(f"Received an empty --quantize; expected one or more of: {', '.join(MODES)}, or all")
    all_modes = "all" in modes
    for m in modes:
        if m != "all" and m not in MODES:
            raise EdgeDeployError(f"unknown quantize mode {m!r}; expected one of: {', '.join(MODES)}, or all")
    wanted = list(MODES) if all_modes else list(dict.fromkeys(modes))
    pairs: list[tuple[ExportFormat, str]] = []
    for m in wanted:
        supporting = [f for f in fmts if m in f.modes]
        if not supporting and not all_modes:
            if len(fmts) == 1:
                fmts[0].check_mode(m)
            raise EdgeDeployError(f"no selected format supports --quantize {m}{' for ' + source if source else ''}; "
                                  + "; ".join(f"{f.name}: {', '.join(f.modes)}" for f in fmts))
        if not all_formats and not all_modes:
            for f in fmts:
                f.check_mode(m)
        pairs.extend((f, m) for f in supporting)
    pairs.sort(key=lambda p: (fmts.index(p[0]), MODES.index(p[1])))

    if opts.io is not None:
        if opts.io not in IO_TYPES:
            raise EdgeDeployError(f"Received --io {opts.io!r}, expected one of: {', '.join(IO_TYPES)}")
        if not any(m in f.io_modes for f, m in pairs):
            where = "; ".join(f"{f.model_format().display_name} {', '.join(f.io_modes)}" for f in available.values()
                              if f.io_modes) or "no file of this source"
            raise EdgeDeployError(f"--io applies to {where} only; the other files keep float32 I/O")
    if opts.keep_float and not any(m in f.keep_float_modes for f, m in pairs):
        where = ", ".join(f"{f.model_format().display_name} {'/'.join(f.keep_float_modes)}" for f in available.values()
                          if f.keep_float_modes) or "none for this source"
        raise EdgeDeployError(f"--keep-float applies to calibrated/quantized modes only ({where})")
    check_sample_count(opts.calibration_samples)  # >= the class count is checked once the manifest is read
    if not (isinstance(opts.opset, int) and MIN_OPSET <= opts.opset <= MAX_OPSET):
        raise EdgeDeployError(f"Received --opset {opts.opset!r}, expected an integer from {MIN_OPSET} to {MAX_OPSET}")
    opts.policy()  # validates --gate, --max-accuracy-drop, --max-disagreement, --max-prob-diff
    if opts.parity_samples is not None and opts.parity_samples < 1:
        raise EdgeDeployError(f"Received --parity-samples {opts.parity_samples!r}, expected an integer >= 1")
    if opts.threads is not None and opts.threads < 1:
        raise EdgeDeployError(f"Received --threads {opts.threads!r}, expected an integer >= 1")
    if opts.calibration_data is not None:
        d = Path(opts.calibration_data)
        if not d.exists():
            raise EdgeDeployError(f"--calibration-data folder not found: {d}")
        if not d.is_dir():
            raise EdgeDeployError(f"--calibration-data expects a folder of images, got a file: {d}")
    if opts.parity_data is not None and not Path(opts.parity_data).is_dir():
        raise EdgeDeployError(f"Received --parity-data {opts.parity_data!r}, expected a folder with one subfolder per class")
    from .select import check_selection

    check_selection(opts.select, opts.latency_report, len(pairs))
    return pairs


def precheck_outputs(jobs: list[Job], out_dir: Path, force: bool) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise EdgeDeployError(f"--output must be a folder, got a file: {out_dir}")
    ensure_writable_dir(out_dir)
    for job in jobs:
        for p in (job.path, job.rejected_path, job.sidecar):
            if p.is_dir():
                raise EdgeDeployError(f"output path is a directory, expected a file: {p}")
            if p.exists() and not force:
                raise EdgeDeployError(f"refusing to overwrite existing file {p}; pass --force to replace it")


