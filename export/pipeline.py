"""The export run: plan, convert, embed, gate, write, report.

For every (format, mode) asked for:

1. convert the Keras model (quiet; the converter's chatter is kept for errors);
2. embed the run's manifest (format, quantize, source hash, MACs) in the file;
3. write it to a scratch file and run it through ``edge_runtime.ImageClassifier``
   on the test split: the parity gate (``parity.py``);
4. embed the final manifest (input/output dtypes and quantization read back
   from the file, the parity metrics) and write the file atomically, as
   ``model_<mode>.<ext>`` when it passed or ``model_<mode>.<ext>.rejected``
   when it did not; re-open it before the rename to prove it still loads and
   carries the manifest; write the sidecar ``model_<mode>.<ext>.json``.

Everything that can be checked without TensorFlow (flags, paths, existing
files) is checked first, so mistakes cost milliseconds, not a TF import.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from edge_runtime.errors import EdgeDeployError, GateError
from edge_runtime.io import atomic_path, atomic_write_text
from edge_runtime.manifest import Manifest

from . import report as report_mod
from ._quiet import captured, quiet_loggers, quiet_tensorflow
from .calibration import DEFAULT_SAMPLES, Calibration, check_sample_count
from .formats.base import keras_layer_scopes
from .formats import FORMATS, IO_TYPES, MODES, ConversionError, ConvertContext, ExportFormat, format_names, mode_tag
from .parity import DEFAULT_MAX_ACCURACY_DROP, DEFAULT_MAX_PROB_DIFF, DEFAULT_PARITY_SAMPLES, compare, gate, keras_reference, run_file
from .source import load_keras_model, resolve_source

MIN_OPSET, MAX_OPSET = 13, 18  # QDQ per-channel needs 13; tf2onnx 1.17 goes up to 18
DEFAULT_OPSET = 17
REJECTED_SUFFIX = ".rejected"
# One image per call, as a device classifies camera frames. It also keeps
# dynamic-range files honest: they quantize activations over the whole batch,
# so their answers depend on what else is in it.
PARITY_BATCH = 1

Log = Callable[[str], None]


@dataclass
class ExportOptions:
    """Everything ``export-model`` takes; the CLI is a thin layer over this."""

    source: str
    formats: list[str] = field(default_factory=lambda: ["tflite"])
    modes: list[str] | None = None  # None: "none", or every mode with --format all
    output: str | None = None  # default RUN_DIR/export
    calibration_samples: int = DEFAULT_SAMPLES
    calibration_data: str | None = None
    io: str | None = None  # TFLite int8 I/O; None means uint8
    max_accuracy_drop: float = DEFAULT_MAX_ACCURACY_DROP
    max_prob_diff: float = DEFAULT_MAX_PROB_DIFF
    opset: int = DEFAULT_OPSET
    keep_float: list[str] = field(default_factory=list)
    parity_samples: int | None = DEFAULT_PARITY_SAMPLES  # None: the whole test split
    seed: int = 0
    threads: int | None = None
    force: bool = False
    unsafe_load: bool = False
    debug: bool = False


@dataclass
class Job:
    fmt: ExportFormat
    mode: str
    path: Path

    @property
    def rejected_path(self) -> Path:
        return self.path.with_name(self.path.name + REJECTED_SUFFIX)

    @property
    def sidecar(self) -> Path:
        # model_int8.tflite -> model_int8.tflite.json: one per file, so the TFLite
        # and ONNX files of the same mode never share (and overwrite) a sidecar.
        return self.path.with_name(self.path.name + ".json")

    @property
    def label(self) -> str:
        return f"{self.fmt.name} {mode_tag(self.mode)}"


# -- planning (no TensorFlow) -------------------------------------------------------
def _split(values: list[str] | None) -> list[str]:
    out: list[str] = []
    for v in values or []:
        out.extend(p.strip() for p in str(v).split(",") if p.strip())
    return out


def plan(opts: ExportOptions) -> list[tuple[type[ExportFormat], str]]:
    """The (format, mode) pairs to export, with one-line errors for impossible flags."""
    names = _split(opts.formats) or ["tflite"]
    all_formats = "all" in names
    fmts = [FORMATS.get(n) for n in (format_names() if all_formats else dict.fromkeys(names))]
    modes = _split(opts.modes) if opts.modes is not None else (["all"] if all_formats else ["none"])
    if not modes:
        raise EdgeDeployError(f"Received an empty --quantize; expected one or more of: {', '.join(MODES)}, or all")
    all_modes = "all" in modes
    for m in modes:
        if m != "all" and m not in MODES:
            raise EdgeDeployError(f"unknown quantize mode {m!r}; expected one of: {', '.join(MODES)}, or all")
    wanted = list(MODES) if all_modes else list(dict.fromkeys(modes))
    pairs: list[tuple[type[ExportFormat], str]] = []
    for m in wanted:
        supporting = [f for f in fmts if m in f.modes]
        if not supporting and not all_modes:
            if len(fmts) == 1:
                fmts[0].check_mode(m)
            raise EdgeDeployError(f"no selected format supports --quantize {m}; "
                                  + "; ".join(f"{f.name}: {', '.join(f.modes)}" for f in fmts))
        if not all_formats and not all_modes:
            for f in fmts:
                f.check_mode(m)
        pairs.extend((f, m) for f in supporting)
    pairs.sort(key=lambda p: (fmts.index(p[0]), MODES.index(p[1])))

    if opts.io is not None:
        if opts.io not in IO_TYPES:
            raise EdgeDeployError(f"Received --io {opts.io!r}, expected one of: {', '.join(IO_TYPES)}")
        if not any(f.name == "tflite" and m == "int8" for f, m in pairs):
            raise EdgeDeployError("--io applies to TFLite int8 only (--format tflite --quantize int8); ONNX int8 keeps float32 I/O")
    if opts.keep_float and not any(m in f.keep_float_modes for f, m in pairs):
        raise EdgeDeployError("--keep-float applies to calibrated/quantized modes only (TFLite int8/int16x8, ONNX dynamic/int8)")
    check_sample_count(opts.calibration_samples)  # >= the class count is checked once the manifest is read
    if not (isinstance(opts.opset, int) and MIN_OPSET <= opts.opset <= MAX_OPSET):
        raise EdgeDeployError(f"Received --opset {opts.opset!r}, expected an integer from {MIN_OPSET} to {MAX_OPSET}")
    if not opts.max_accuracy_drop >= 0:
        raise EdgeDeployError(f"Received --max-accuracy-drop {opts.max_accuracy_drop!r}, expected a number of points >= 0")
    if not opts.max_prob_diff > 0:
        raise EdgeDeployError(f"Received --max-prob-diff {opts.max_prob_diff!r}, expected a number > 0")
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
    return pairs


def _precheck_outputs(jobs: list[Job], out_dir: Path, force: bool) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise EdgeDeployError(f"--output must be a folder, got a file: {out_dir}")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EdgeDeployError(f"cannot create output folder {out_dir}: {exc.strerror}") from None
    if not os.access(out_dir, os.W_OK):
        raise EdgeDeployError(f"output folder is not writable: {out_dir}")
    for job in jobs:
        for p in (job.path, job.rejected_path, job.sidecar):
            if p.is_dir():
                raise EdgeDeployError(f"output path is a directory, expected a file: {p}")
            if p.exists() and not force:
                raise EdgeDeployError(f"refusing to overwrite existing file {p}; pass --force to replace it")


# -- the run ------------------------------------------------------------------------
def _versions() -> dict[str, str]:
    from importlib import metadata

    out = {}
    for dist in ("edgedeploy", "tensorflow", "keras", "tf2onnx", "onnx", "onnxruntime", "ai-edge-litert", "numpy"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return out


def _tensor_spec(info: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {"dtype": str(np.dtype(info.dtype)), "quantization": None}
    if info.quantized:
        spec["quantization"] = {"scale": float(info.scale), "zero_point": int(info.zero_point)}
    return spec


def write_model(tmp: Path, data: bytes) -> None:
    """Write the model bytes to the temporary file (a seam for the atomic-write tests)."""
    with open(tmp, "wb") as f:
        f.write(data)


def _stderr_log(msg: str) -> None:
    import sys

    print(msg, file=sys.stderr, flush=True)


class _Exporter:
    def __init__(self, opts: ExportOptions, log: Log):
        self.opts, self.log = opts, log
        self._calibration: Calibration | None = None
        self._pending: list[str] = []

    # calibration is built once, on first use, and shared by every converter
    def calibration(self) -> Calibration:
        if self._calibration is None:
            from . import calibration as cal

            o, s = self.opts, self.source
            if o.calibration_data is not None:
                self._calibration = cal.from_folder(o.calibration_data, s.manifest, o.calibration_samples, o.seed)
            else:
                self._calibration = cal.from_run(s.run_dir, s.manifest, o.calibration_samples, o.seed, s.config)
            # Called from inside a converter, whose output is being captured: say it afterwards.
            self._pending.append(f"  calibration: {len(self._calibration)} images from the {self._calibration.source}")
        return self._calibration

    def run(self) -> dict[str, Any]:
        o = self.opts
        pairs = plan(o)
        self.source = source = resolve_source(o.source)
        if o.calibration_data is None and any(m in f.calibrated for f, m in pairs):
            check_sample_count(o.calibration_samples, source.manifest.num_classes)
        out_dir = Path(o.output) if o.output else source.run_dir / "export"
        jobs = [Job(f(), m, out_dir / f().file_name(m)) for f, m in pairs]
        _precheck_outputs(jobs, out_dir, o.force)

        if not o.debug:
            quiet_tensorflow()
        t_start = time.perf_counter()
        with captured(not o.debug):
            model = load_keras_model(source, unsafe=o.unsafe_load)
            if not o.debug:
                quiet_loggers()
        self.log(f"export {source.keras_path} -> {out_dir} ({len(jobs)} file{'s' if len(jobs) != 1 else ''}: "
                 + ", ".join(j.path.name for j in jobs) + ")")
        from .data import count_macs

        macs = count_macs(model)
        with captured(not o.debug):
            ref = keras_reference(model, source.run_dir, source.manifest, source.config, o.parity_samples, o.seed)
        self.log(f"  Keras test accuracy {ref.keras_accuracy:.2f}% on {len(ref)} test images (parity reference)")
        if any(j.mode in j.fmt.calibrated for j in jobs):  # fail early, before any file is written
            with captured(not o.debug):
                self.calibration()
            for msg in self._pending:
                self.log(msg)
            self._pending.clear()
        base = source.manifest.replace(source_sha256=source.sha256, macs=macs, metrics={})

        rows: list[dict[str, Any]] = []
        failures: list[tuple[Job, str]] = []
        with tempfile.TemporaryDirectory(prefix="edgedeploy-export-") as work:
            ctx = ConvertContext(model=model, manifest=source.manifest, calibration=self.calibration,
                                 workdir=Path(work), io=o.io or "uint8", opset=o.opset,
                                 keep_float=list(o.keep_float), debug=o.debug, layer_scopes=keras_layer_scopes(model))
            for i, job in enumerate(jobs, 1):
                row = self.export_one(job, i, len(jobs), ctx, ref, base)
                rows.append(row)
                if row["status"] != "accepted":
                    failures.append((job, row["reason"]))
            worst = None
            if any(r["mode"] == "int8" and r["status"] == "rejected" for r in rows):
                worst = self.debug_int8(ctx)

        all_rows = report_mod.merge_rows(out_dir, rows)
        report_mod.size_ratios(all_rows)
        cal = self._calibration
        report: dict[str, Any] = {
            "tool": "export-model",
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "seconds": round(time.perf_counter() - t_start, 2),
            "source": {"path": str(source.keras_path), "run_dir": str(source.run_dir), "sha256": source.sha256,
                       "model_name": source.manifest.model_name, "dataset": source.manifest.dataset},
            "keras": {"test_accuracy": round(ref.keras_accuracy, 3), "macs": macs},
            "parity": {"split": "test", "samples": len(ref), "max_accuracy_drop": o.max_accuracy_drop,
                       "max_prob_diff": o.max_prob_diff, "runtime": "edge_runtime.ImageClassifier"},
            "calibration": cal.describe() if cal is not None else None,
            "settings": {"io": o.io or "uint8", "opset": o.opset, "keep_float": list(o.keep_float), "seed": o.seed},
            "versions": _versions(),
            "targets": report_mod.targets(all_rows),
            "worst_layers": worst,
            "files": all_rows,
        }
        json_path, _ = report_mod.write(out_dir, report)
        this_run = {r["file"] for r in rows}
        self.log("")
        print(report_mod.text_table([r for r in all_rows if r["file"] in this_run], ref.keras_accuracy), flush=True)
        self.log(f"report: {json_path} (+ .md)")
        if worst:
            from .debug import keep_float_hint

            hint = keep_float_hint(worst)
            self.log("int8 layers with the largest quantization error (TFLite QuantizationDebugger, RMSE/scale): "
                     + ", ".join(f"{w.get('layer') or w['scope']} {w['rmse_over_scale']}" for w in worst)
                     + (f"; try --keep-float {hint}" if hint else ""))
        self._raise_failures(failures)
        return report

    def _raise_failures(self, failures: list[tuple[Job, str]]) -> None:
        """One line for all failures: GateError (exit 3) if only the gate failed."""
        if not failures:
            return
        gate_only = all(not r.startswith("conversion failed") for _, r in failures)
        parts = [f"{j.path.name}: {r}" if r.startswith("conversion failed")
                 else f"{j.path.name} {r}, kept as {j.rejected_path.name}" for j, r in failures]
        if gate_only:
            raise GateError("parity gate rejected " + "; ".join(parts))
        raise ConversionError("export failed for " + "; ".join(parts))

    def export_one(self, job: Job, i: int, n: int, ctx: ConvertContext, ref: Any, base: Manifest) -> dict[str, Any]:
        o = self.opts
        t0 = time.perf_counter()
        self.log(f"[{i}/{n}] {job.label}: converting ...")
        row: dict[str, Any] = {"file": job.path.name, "format": job.fmt.name, "mode": job.mode,
                               "source_sha256": self.source.sha256}
        with captured(not o.debug) as cap:
            try:
                conv = job.fmt.convert(ctx, job.mode)
                job.fmt.check(conv.data)
            except EdgeDeployError as exc:
                if isinstance(exc, ConversionError):
                    err: Exception | None = exc
                else:
                    raise
            except Exception as exc:  # a converter crash on this model: reported, the others still run
                if o.debug:
                    raise
                err = exc
            else:
                err = None
        for msg in self._pending:
            self.log(msg)
        self._pending.clear()
        if err is not None:
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            reason = f"conversion failed: {first[:300]}"
            self.log(f"[{i}/{n}] {job.label}: {reason}" + ("" if o.debug else " (--debug shows the converter's output)"))
            row.update(status="failed", reason=reason, seconds=round(time.perf_counter() - t0, 2))
            return row
        if o.keep_float and job.mode not in job.fmt.keep_float_modes:
            conv.notes.append(f"--keep-float does not apply to {job.label}")
        for note in conv.notes:
            self.log(f"  note: {note}")

        try:
            dest, final, conv_metrics = self._gate_and_write(job, i, ctx, ref, base, conv)
        except ConversionError as exc:
            if o.debug:
                raise
            reason = f"conversion failed: {exc}"
            self.log(f"[{i}/{n}] {job.label}: {reason}")
            row.update(status="failed", reason=reason, seconds=round(time.perf_counter() - t0, 2))
            return row
        metrics, io_in, io_out, reason, accepted = conv_metrics
        secs = round(time.perf_counter() - t0, 2)
        status = "accepted" if accepted else "rejected"
        row.update(file=dest.name, status=status, reason=reason, size_bytes=len(final), input=io_in, output=io_out,
                   converter=conv.converter, kept_float=conv.kept_float, notes=conv.notes, seconds=secs,
                   **{k: v for k, v in metrics.items() if k != "gate"})
        self.log(f"[{i}/{n}] {job.label}: {dest.name} {len(final) / 1024:.1f} KB, agreement {metrics['top1_agreement']:.2f}%, "
                 f"max |dp| {metrics['max_abs_prob_diff']:.2g}, accuracy {metrics['accuracy']:.2f}% "
                 f"(drop {metrics['accuracy_drop']:+.2f}), {status}{'' if accepted else ': ' + reason} ({secs:.1f} s)")
        return row

    def _gate_and_write(self, job: Job, i: int, ctx: ConvertContext, ref: Any, base: Manifest, conv: Any):
        """Parity on a scratch copy, then the final file (accepted or .rejected) and its sidecar."""
        o = self.opts
        fmt = job.fmt.name
        from .embed import embed_manifest

        draft = base.replace(format=fmt, quantize=job.mode)
        scratch = ctx.workdir / f"parity_{i}{job.fmt.suffix}"
        scratch.write_bytes(embed_manifest(fmt, conv.data, draft))
        try:
            with captured(not o.debug):
                clf, probs = run_file(scratch, ref, threads=o.threads, batch_size=PARITY_BATCH)
            io_in, io_out = _tensor_spec(clf.backend.input), _tensor_spec(clf.backend.output)
            del clf
        finally:
            scratch.unlink(missing_ok=True)
        metrics = compare(probs, ref)
        reason = gate(metrics, job.mode, o.max_accuracy_drop, o.max_prob_diff)
        accepted = reason is None
        metrics["gate"] = {"passed": accepted, "max_accuracy_drop": o.max_accuracy_drop,
                           "max_prob_diff": o.max_prob_diff if job.mode in ("none", "float16") else None,
                           **({} if accepted else {"reason": reason})}
        final_manifest = draft.replace(input=io_in, output=io_out, metrics=metrics)
        final = embed_manifest(fmt, conv.data, final_manifest)
        job.fmt.check(final)

        dest = job.path if accepted else job.rejected_path
        try:
            with atomic_path(dest, force=o.force) as tmp:
                write_model(tmp, final)
                self._verify(tmp, dest, fmt, final_manifest, probs, ref, accepted)
            if accepted:
                # the sidecar also records the file's own SHA-256 (checked at load: edge_runtime/integrity.py)
                sidecar = final_manifest.replace(sha256=hashlib.sha256(final).hexdigest())
                atomic_write_text(job.sidecar, sidecar.to_json() + "\n", force=o.force)
        except OSError as exc:  # disk full, permissions: the target is untouched (atomic_path)
            raise EdgeDeployError(f"could not write {dest}: {exc.strerror or exc}") from None
        if accepted:
            job.rejected_path.unlink(missing_ok=True)  # a stale rejection of an earlier run (--force)
        else:
            # --force replaces: the earlier accepted file must not outlive this rejection.
            job.path.unlink(missing_ok=True)
            job.sidecar.unlink(missing_ok=True)
        return dest, final, (metrics, io_in, io_out, reason, accepted)

    def _verify(self, tmp: Path, dest: Path, fmt: str, manifest: Manifest, probs: np.ndarray, ref: Any, accepted: bool) -> None:
        """Before the rename: the written bytes carry the manifest and (if accepted) still load and agree."""
        from .embed import read_embedded

        text = read_embedded(fmt, tmp.read_bytes())
        if text is None or Manifest.from_json(text).to_dict() != manifest.to_dict():
            raise ConversionError(f"the manifest embedded in {dest.name} does not read back")
        if not accepted:
            return
        from .parity import open_classifier

        with captured(not self.opts.debug):
            clf = open_classifier(tmp, self.opts.threads)
            k = min(8, len(ref))
            again = np.stack([p.probabilities for p in clf.predict_batch(ref.images[:k], batch_size=PARITY_BATCH)])
        if clf.manifest.to_dict() != manifest.to_dict() or not np.allclose(again, probs[:k], atol=1e-6):
            raise ConversionError(f"{dest.name} does not answer the same after the manifest was embedded")

    def debug_int8(self, ctx: ConvertContext) -> list[dict[str, Any]] | None:
        from .debug import worst_layers

        self.log("int8 failed the gate: running TFLite's QuantizationDebugger on the calibration data ...")
        try:
            with captured(not self.opts.debug):
                return worst_layers(ctx)
        except Exception as exc:  # a diagnosis aid: never turn a gate failure into a crash
            if self.opts.debug:
                raise
            self.log(f"  QuantizationDebugger failed: {type(exc).__name__}: {str(exc).strip()[:200]}")
            return None


def run_export(opts: ExportOptions, log: Log | None = None) -> dict[str, Any]:
    """Export, gate and report; returns the report dict.

    Raises:
        EdgeDeployError: bad flags, paths or models (exit 2).
        GateError: a file failed the parity gate (exit 3); it is kept as ``.rejected``.
        ConversionError: a converter failed on the model (exit 1).
    """
    return _Exporter(opts, log or _stderr_log).run()
