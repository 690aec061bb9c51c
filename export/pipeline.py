"""The export run: plan, convert, gate, write, diagnose, select, report.

1. plan the (format, mode) pairs and check every flag and path (no TensorFlow);
2. load the model, build the calibration sample and the evidence images
   (``parity.load_evidence``: held-out splits first, then train images outside
   the calibration sample) and run Keras on them;
3. convert every file, then check that each ``--keep-float`` name matched
   something (a misspelling is a usage error before any file is written);
4. gate and write each file (``publish.py``): ``model_<mode>.<ext>`` when
   accepted, ``model_<mode>.<ext>.rejected`` when not;
5. let a format's own ``diagnose`` hook explain rejected files (TFLite's
   QuantizationDebugger for int8);
6. with ``--select``, pick one accepted file (``select.py``) and write it as
   ``selected.<ext>``;
7. write export_report.json/.md and raise for the failures (exit 3 gate, 1 converter).

Everything that can be checked without TensorFlow (flags, paths, existing
files) is checked first, so mistakes cost milliseconds, not a TF import.
"""
from __future__ import annotations

import datetime as _dt
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

from edgedeploy.core.errors import EdgeDeployError, GateError

from . import report as report_mod
from ._quiet import captured, quiet_loggers, quiet_tensorflow
from .calibration import Calibration, check_sample_count
from .formats import ConversionError, ConvertContext, Converted
from .options import ExportOptions
from .parity import Reference
from .plan import plan, precheck_outputs
from .publish import Publisher
from .records import FAILED, FileResult, Job
from .sources import Source, claiming_kind, open_source

Log = Callable[[str], None]


# -- the run ------------------------------------------------------------------------
def _versions() -> dict[str, str]:
    from edgedeploy.core.environment import package_versions

    return package_versions(("edgedeploy", "tensorflow", "keras", "tf2onnx", "onnx", "onnxruntime", "ai-edge-litert",
                             "ai-edge-quantizer", "numpy"),
                            skip_missing=True)


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
        self.source: Source | None = None

    # calibration is built once, on first use, and shared by every converter
    def calibration(self) -> Calibration:
        if self._calibration is None:
            self._calibration = self.source.calibration(self.opts)
            # Called from inside a converter, whose output is being captured: say it afterwards.
            self._pending.append(f"  calibration: {len(self._calibration)} images from the {self._calibration.source}")
        return self._calibration

    def _flush(self) -> None:
        for msg in self._pending:
            self.log(msg)
        self._pending.clear()

    # -- the steps of run() ---------------------------------------------------------
    def prepare(self) -> tuple[list[Job], Path]:
        """Plan, resolve the source, check the outputs: everything before TensorFlow."""
        o = self.opts
        kind = claiming_kind(Path(o.source)) if Path(o.source).exists() else None
        if kind is None or kind.registry_formats:
            plan(o)  # every flag checked before the source is opened (a TensorFlow model takes seconds to load)
        self.source = source = open_source(o)
        self.exports = source.exports()
        pairs = plan(o, self.exports, source.description)
        if o.calibration_data is None and any(m in f.calibrated for f, m in pairs):
            check_sample_count(o.calibration_samples, source.manifest.num_classes)
            if source.run_dir is None:
                source.calibration(o)  # no run folder to calibrate from: the one line naming --calibration-data
        out_dir = Path(o.output) if o.output else source.default_output()
        jobs = [Job(f, m, out_dir / f.file_name(m)) for f, m in pairs]
        precheck_outputs(jobs, out_dir, o.force)
        from .select import precheck_selected

        precheck_selected(o.select, jobs, out_dir, o.force)
        return jobs, out_dir

    def load_model(self) -> Any:
        o = self.opts
        if not o.debug:
            quiet_tensorflow()
        with captured(not o.debug):
            model = self.source.load(o)
            if not o.debug:
                quiet_loggers()
        return model

    def reference(self, model: Any, jobs: list[Job]) -> Reference:
        """Calibrate first when a job needs it (its images are kept out of the evidence), then run the float source."""
        o, s = self.opts, self.source
        exclude: list = []
        if any(j.mode in j.fmt.calibrated for j in jobs):  # fail early, before any file is written
            with captured(not o.debug):
                cal = self.calibration()
            self._flush()
            exclude = list(cal.raw_images)
        with captured(not o.debug):
            ref = s.reference(model, o, exclude)
        counts = ", ".join(f"{n} {k}" for k, n in ref.counts().items())
        self.log(f"  evidence: {len(ref)} images ({counts}); {s.runtime} accuracy {ref.keras_accuracy:.2f}% "
                 f"on the {int(ref.heldout.sum())} held-out ones ({ref.heldout_split})")
        return ref

    def convert_all(self, jobs: list[Job], ctx: ConvertContext) -> list[tuple[Job, Converted | FileResult, float]]:
        """Every file converted (with its seconds), or a failed FileResult for a converter that crashed."""
        out: list[tuple[Job, Converted | FileResult, float]] = []
        for i, job in enumerate(jobs, 1):
            t0 = time.perf_counter()
            self.log(f"[{i}/{len(jobs)}] {job.label}: converting ...")
            conv, err = self._convert(job, ctx)
            self._flush()
            if err is not None:
                first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
                reason = f"conversion failed: {first[:300]}"
                self.log(f"[{i}/{len(jobs)}] {job.label}: {reason}" + ("" if self.opts.debug else " (--debug shows the converter's output)"))
                out.append((job, FileResult(job, self.source.sha256, FAILED, reason, time.perf_counter() - t0), 0.0))
                continue
            conv.notes.extend(self._keep_float_notes(job))
            out.append((job, conv, time.perf_counter() - t0))
        return out

    def _convert(self, job: Job, ctx: ConvertContext) -> tuple[Converted | None, Exception | None]:
        with captured(not self.opts.debug):
            try:
                conv = job.fmt.convert(ctx, job.mode)
                job.fmt.check(conv.data)
            except ConversionError as exc:
                return None, exc
            except EdgeDeployError:
                raise
            except Exception as exc:  # a converter crash on this model: reported, the others still run
                if self.opts.debug:
                    raise
                return None, exc
        return conv, None

    def _keep_float_notes(self, job: Job) -> list[str]:
        if self.opts.keep_float and job.mode not in job.fmt.keep_float_modes:
            return [f"--keep-float does not apply to {job.label}"]
        return []

    def check_keep_float(self, converted: list[tuple[Job, Converted | FileResult, float]], model: Any) -> None:
        """A --keep-float name that is no Keras layer and matched no node anywhere is a usage error (exit 2).

        A real layer name that matched nothing (the converter folded the layer
        away) stays a note on the files concerned.
        """
        applied = [c for j, c, _ in converted if isinstance(c, Converted) and j.mode in j.fmt.keep_float_modes]
        if not self.opts.keep_float or not applied:
            return
        layers = list(self.source.layer_scopes(model))
        for pat in self.opts.keep_float:
            if pat not in layers and all(pat in c.keep_float_unmatched for c in applied):
                raise EdgeDeployError(f"Received --keep-float {pat!r}, which matches no layer or node of the model; "
                                      f"its layers: {', '.join(layers)}")

    def publish_all(self, converted: list[tuple[Job, Converted | FileResult, float]], publisher: Publisher) -> list[FileResult]:
        results = []
        n = len(converted)
        for i, (job, conv, secs) in enumerate(converted, 1):
            if isinstance(conv, FileResult):
                results.append(conv)
                continue
            results.append(self._publish_one(job, i, n, conv, secs, publisher))
        return results

    def _publish_one(self, job: Job, i: int, n: int, conv: Converted, convert_seconds: float, publisher: Publisher) -> FileResult:
        t0 = time.perf_counter()
        result = FileResult(job, self.source.sha256, notes=list(conv.notes))
        try:
            publisher.publish(job, i, conv, result)
        except ConversionError as exc:
            if self.opts.debug:
                raise
            result.status, result.reason = FAILED, f"conversion failed: {exc}"
            self.log(f"[{i}/{n}] {job.label}: {result.reason}")
            return result
        finally:
            result.seconds = convert_seconds + time.perf_counter() - t0
        for note in result.notes:
            self.log(f"  note: {note}")
        m, v = result.metrics, result.verdict
        self.log(f"[{i}/{n}] {job.label}: {result.file} {result.size_bytes / 1024:.1f} KB, agreement {m['top1_agreement']:.2f}% "
                 f"of {m['agreement_samples']}, max |dp| {m['max_abs_prob_diff']:.2g}, accuracy {m['accuracy']:.2f}% "
                 f"(drop {m['accuracy_drop']:+.2f}, 95% [{v.accuracy_drop.lo:+.2f}, {v.accuracy_drop.hi:+.2f}]), "
                 f"{v.verdict}{'' if result.accepted else ': ' + str(result.reason)} ({result.seconds:.1f} s)")
        if v.warning:
            self.log(f"  warning: {result.file}: {v.warning}")
        return result

    def diagnose(self, results: list[FileResult], ctx: ConvertContext) -> dict[str, Any] | None:
        """Ask a format's ``diagnose`` hook about the first rejected file of a mode one can explain."""
        for r in results:
            if r.status == FAILED or r.accepted:
                continue
            fmts = [r.job.fmt] + [f for n, f in self.exports.items() if n != r.job.fmt.name]
            tool = next((f for f in fmts if r.job.mode in f.diagnosed_modes), None)
            if tool is None:
                continue
            proxy = tool.name != r.job.fmt.name
            self.log(f"{r.file} failed the gate: running {tool.diagnosis_tool} on the calibration data"
                     + (f" (a {tool.name} {r.job.mode} conversion of the same model, as a proxy: "
                        f"{r.job.fmt.name} has no layer-by-layer debugger here)" if proxy else "") + " ...")
            try:
                with captured(not self.opts.debug):
                    layers = tool.diagnose(ctx, r.job.mode)
            except Exception as exc:  # a diagnosis aid: never turn a gate failure into a crash
                if self.opts.debug:
                    raise
                self.log(f"  {tool.diagnosis_tool} failed: {type(exc).__name__}: {str(exc).strip()[:200]}")
                return None
            if layers:
                return {"file": r.file, "tool": tool.diagnosis_tool, "proxy": proxy,
                        "proxy_format": tool.model_format().display_name if proxy else None, "layers": layers}
        return None

    def run(self) -> dict[str, Any]:
        o = self.opts
        jobs, out_dir = self.prepare()
        t_start = time.perf_counter()
        model = self.load_model()
        self.log(f"export {self.source.path} ({self.source.description}) -> {out_dir} ({len(jobs)} file{'s' if len(jobs) != 1 else ''}: "
                 + ", ".join(j.path.name for j in jobs) + ")")
        for note in self.source.notes if self.source.run_dir is None else []:
            self.log(f"  manifest: {note}")
        macs = self.source.macs(model)
        ref = self.reference(model, jobs)
        base = self.source.manifest.replace(source_sha256=self.source.sha256, macs=macs, metrics={})
        with tempfile.TemporaryDirectory(prefix="edgedeploy-export-") as work:
            ctx = ConvertContext(model=model, manifest=self.source.manifest, calibration=self.calibration,
                                 workdir=Path(work), io=o.io or "uint8", opset=o.opset, keep_float=list(o.keep_float),
                                 debug=o.debug, layer_scopes=self.source.layer_scopes(model))
            converted = self.convert_all(jobs, ctx)
            self.check_keep_float(converted, model)
            publisher = Publisher(ctx, ref, base, o.policy(), threads=o.threads, force=o.force, debug=o.debug,
                                  write=lambda tmp, data: write_model(tmp, data))
            results = self.publish_all(converted, publisher)
            diagnosis = self.diagnose(results, ctx)
        selection = self.select(results, out_dir)
        report = self.write_report(results, out_dir, ref, macs, diagnosis, selection, time.perf_counter() - t_start)
        self._raise_failures(results)
        return report

    def select(self, results: list[FileResult], out_dir: Path) -> dict[str, Any] | None:
        if not self.opts.select:
            return None
        from .select import select_and_write

        return select_and_write(results, out_dir, self.opts, self.log)

    def write_report(self, results: list[FileResult], out_dir: Path, ref: Reference, macs: int | None,
                     diagnosis: dict[str, Any] | None, selection: dict[str, Any] | None, seconds: float) -> dict[str, Any]:
        o, source = self.opts, self.source
        rows = [r.to_row() for r in results]
        all_rows = report_mod.merge_rows(out_dir, rows)
        report_mod.size_ratios(all_rows)
        cal = self._calibration
        report: dict[str, Any] = {
            "tool": "export-model",
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "seconds": round(seconds, 2),
            "source": source.describe(),
            "keras": {"test_accuracy": round(ref.test_accuracy, 3), "heldout_accuracy": round(ref.keras_accuracy, 3), "macs": macs},
            "parity": {"split": ref.heldout_split, "samples": int(ref.heldout.sum()), "agreement_samples": len(ref),
                       "evidence_images": ref.counts(), "max_accuracy_drop": o.max_accuracy_drop,
                       "max_disagreement": o.max_disagreement, "max_prob_diff": o.max_prob_diff, "gate": o.gate,
                       "confidence": 0.95, "runtime": "edgedeploy.runtime.ImageClassifier",
                       "figures": report_mod.FIGURE_SOURCES},
            "calibration": cal.describe() if cal is not None else None,
            "settings": {"io": o.io or "uint8", "opset": o.opset, "keep_float": list(o.keep_float), "seed": o.seed,
                         "parity_data": o.parity_data},
            "versions": _versions(),
            "targets": report_mod.targets(all_rows),
            "worst_layers": diagnosis["layers"] if diagnosis else None,
            "diagnosis": {k: v for k, v in diagnosis.items() if k != "layers"} if diagnosis else None,
            "selection": selection,
            "files": all_rows,
        }
        json_path, _ = report_mod.write(out_dir, report)
        this_run = {r["file"] for r in rows}
        self.log("")
        print(report_mod.text_table([r for r in all_rows if r["file"] in this_run], ref.keras_accuracy), flush=True)
        self.log(f"report: {json_path} (+ .md)")
        if diagnosis:
            from .formats._tflite_debug import keep_float_hint

            hint = keep_float_hint(diagnosis["layers"])
            self.log(f"layers with the largest int8 error ({diagnosis['tool']}, RMSE/scale; for {diagnosis['file']}): "
                     + ", ".join(f"{w.get('layer') or w['scope']} {w['rmse_over_scale']}" for w in diagnosis["layers"])
                     + (f"; try --keep-float {hint}" if hint else ""))
        return report

    def _raise_failures(self, results: list[FileResult]) -> None:
        """One line for all failures: GateError (exit 3) if only the gate failed."""
        failures = [r for r in results if not r.accepted]
        if not failures:
            return
        gate_only = all(r.status != FAILED for r in failures)
        parts = [f"{r.job.path.name}: {r.reason}" if r.status == FAILED
                 else f"{r.job.path.name} {r.reason}, kept as {r.job.rejected_path.name}" for r in failures]
        if gate_only:
            raise GateError("parity gate rejected " + "; ".join(parts))
        raise ConversionError("export failed for " + "; ".join(parts))


def run_export(opts: ExportOptions, log: Log | None = None) -> dict[str, Any]:
    """Export, gate and report; returns the report dict.

    Raises:
        EdgeDeployError: bad flags, paths or models (exit 2).
        GateError: a file failed the parity gate (exit 3); it is kept as ``.rejected``.
        ConversionError: a converter failed on the model (exit 1).
    """
    return _Exporter(opts, log or _stderr_log).run()
