"""Gate one converted file and write it: accepted under its name, else as ``.rejected``.

1. embed a draft manifest and run the bytes through ``edge_runtime`` on the
   evidence images (a scratch copy);
2. weigh the evidence (``gate.decide``);
3. embed the final manifest (input/output dtypes and quantization read back
   from the file, the parity metrics and the verdict, the layers kept in
   float) and write the file atomically; re-open it before the rename to
   prove it still loads and carries the manifest; write the sidecar.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Callable

import numpy as np

from edgedeploy.core.errors import EdgeDeployError
from edgedeploy.core.io import atomic_path, atomic_write_text
from edgedeploy.runtime.manifest import Manifest

from ._quiet import captured
from .formats import ConversionError, ConvertContext, Converted
from .gate import GatePolicy, decide
from .parity import Reference, compare, evidence, open_classifier, run_file
from .records import ACCEPTED, REJECTED, FileResult, Job

# One image per call, as a device classifies camera frames. It also keeps
# dynamic-range files honest: they quantize activations over the whole batch,
# so their answers depend on what else is in it.
PARITY_BATCH = 1


def tensor_spec(info: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {"dtype": str(np.dtype(info.dtype)), "quantization": None}
    if info.quantized:
        spec["quantization"] = {"scale": float(info.scale), "zero_point": int(info.zero_point)}
    return spec


class Publisher:
    """Gates and writes files for one run (shared settings, one call per file)."""

    def __init__(self, ctx: ConvertContext, ref: Reference, base: Manifest, policy: GatePolicy, *, threads: int | None,
                 force: bool, debug: bool, write: Callable[[Path, bytes], None]):
        self.ctx, self.ref, self.base, self.policy = ctx, ref, base, policy
        self.threads, self.force, self.debug, self.write = threads, force, debug, write

    def parity(self, job: Job, index: int, data: bytes, draft: Manifest) -> tuple[np.ndarray, dict, dict]:
        """(probabilities, input spec, output spec) of the file on the evidence images."""
        from .embed import embed_manifest

        scratch = self.ctx.workdir / f"parity_{index}{job.fmt.suffix}"
        scratch.write_bytes(embed_manifest(job.fmt.name, data, draft))
        try:
            with captured(not self.debug):
                clf, probs = run_file(scratch, self.ref, threads=self.threads, batch_size=PARITY_BATCH)
            io_in, io_out = tensor_spec(clf.backend.input), tensor_spec(clf.backend.output)
            del clf
        finally:
            scratch.unlink(missing_ok=True)
        return probs, io_in, io_out

    def io_note(self, job: Job, io_in: dict) -> str | None:
        """The file's input type differs from what the options asked for (e.g. --keep-float on the first layer)."""
        want = job.fmt.expected_input_dtype(self.ctx, job.mode)
        if want is None or io_in["dtype"] == want:
            return None
        why = (f": --keep-float {','.join(self.ctx.keep_float)} keeps the layer that reads the input in float, "
               "so the converter left the input unquantized") if self.ctx.keep_float else ""
        return f"{job.label}: input type is {io_in['dtype']}, not {want} as --io asks{why}"

    def publish(self, job: Job, index: int, conv: Converted, result: FileResult) -> FileResult:
        """Gate ``conv`` and write it; fills ``result`` and returns it."""
        draft = self.base.replace(format=job.fmt.name, quantize=job.mode)
        probs, io_in, io_out = self.parity(job, index, conv.data, draft)
        note = self.io_note(job, io_in)
        if note:
            result.notes.append(note)
        metrics = compare(probs, self.ref)
        verdict = decide(evidence(probs, self.ref), job.mode, self.policy, metrics["accuracy"], metrics["keras_accuracy"])
        accepted = verdict.passed
        manifest_metrics = dict(metrics, gate=verdict.to_dict())
        if conv.kept_float or self.ctx.keep_float:
            manifest_metrics["kept_float"] = {"requested": list(self.ctx.keep_float), "nodes": list(conv.kept_float)}
        final_manifest = draft.replace(input=io_in, output=io_out, metrics=manifest_metrics)
        final, notes = self._embed_and_write(job, conv, final_manifest, probs, accepted)
        result.notes.extend(notes)
        result.status, result.reason = (ACCEPTED, None) if accepted else (REJECTED, verdict.reason)
        result.dest = job.path if accepted else job.rejected_path
        result.size_bytes, result.input, result.output = len(final), io_in, io_out
        result.converter, result.kept_float, result.metrics, result.verdict = conv.converter, list(conv.kept_float), metrics, verdict
        return result

    def _embed_and_write(self, job: Job, conv: Converted, manifest: Manifest, probs: np.ndarray,
                         accepted: bool) -> tuple[bytes, list[str]]:
        from .embed import embed_manifest

        final, notes = job.fmt.finish(embed_manifest(job.fmt.name, conv.data, manifest), manifest)
        job.fmt.check(final)
        dest = job.path if accepted else job.rejected_path
        try:
            with atomic_path(dest, force=self.force) as tmp:
                self.write(tmp, final)
                self._verify(tmp, dest, job.fmt.name, manifest, probs, accepted)
            if accepted:
                # the sidecar also records the file's own SHA-256 (checked at load: edge_runtime/integrity.py)
                sidecar = manifest.replace(sha256=hashlib.sha256(final).hexdigest())
                atomic_write_text(job.sidecar, sidecar.to_json() + "\n", force=self.force)
        except OSError as exc:  # disk full, permissions: the target is untouched (atomic_path)
            raise EdgeDeployError(f"could not write {dest}: {exc.strerror or exc}") from None
        if accepted:
            job.rejected_path.unlink(missing_ok=True)  # a stale rejection of an earlier run (--force)
        else:
            # --force replaces: the earlier accepted file must not outlive this rejection.
            job.path.unlink(missing_ok=True)
            job.sidecar.unlink(missing_ok=True)
        return final, notes

    def _verify(self, tmp: Path, dest: Path, fmt: str, manifest: Manifest, probs: np.ndarray, accepted: bool) -> None:
        """Before the rename: the written bytes carry the manifest and (if accepted) still load and agree."""
        from .embed import read_embedded

        text = read_embedded(fmt, tmp.read_bytes())
        if text is None or Manifest.from_json(text).to_dict() != manifest.to_dict():
            raise ConversionError(f"the manifest embedded in {dest.name} does not read back")
        if not accepted:
            return
        with captured(not self.debug):
            clf = open_classifier(tmp, self.threads)
            k = min(8, len(self.ref))
            again = np.stack([p.probabilities for p in clf.predict_batch(self.ref.images[:k], batch_size=PARITY_BATCH)])
        if clf.manifest.to_dict() != manifest.to_dict() or not np.allclose(again, probs[:k], atol=1e-6):
            raise ConversionError(f"{dest.name} does not answer the same after the manifest was embedded")
