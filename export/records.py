"""Typed records of an export run: one ``FileResult`` per file written (or not).

``FileResult.to_row()`` is the file's row in export_report.json: the field
names of earlier reports are kept (``file``, ``status``, ``reason``,
``top1_agreement``, ``accuracy_drop`` ...) and new ones are added
(``verdict``, ``gate``, ``accuracy_drop_ci`` ...).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgedeploy.runtime.formats import REJECTED_SUFFIX

from .formats import ExportFormat, mode_tag
from .gate import GateVerdict

ACCEPTED, REJECTED, FAILED = "accepted", "rejected", "failed"


@dataclass
class Job:
    """One (format, mode) to export, and where its file goes."""

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
        return self.fmt.model_format().sidecar_path(self.path)

    @property
    def label(self) -> str:
        return f"{self.fmt.name} {mode_tag(self.mode)}"


@dataclass
class FileResult:
    """What happened to one file: converted, gated, written."""

    job: Job
    source_sha256: str
    status: str = FAILED  # accepted | rejected | failed
    reason: str | None = None
    seconds: float = 0.0
    dest: Path | None = None  # the file written (accepted name or .rejected)
    size_bytes: int | None = None
    input: dict[str, Any] | None = None
    output: dict[str, Any] | None = None
    converter: str | None = None
    kept_float: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)  # parity.compare(), without "gate"
    verdict: GateVerdict | None = None

    @property
    def file(self) -> str:
        return self.dest.name if self.dest is not None else self.job.path.name

    @property
    def accepted(self) -> bool:
        return self.status == ACCEPTED

    def to_row(self) -> dict[str, Any]:
        j = self.job
        row: dict[str, Any] = {"file": self.file, "format": j.fmt.name, "mode": j.mode, "source_sha256": self.source_sha256,
                               "status": self.status, "reason": self.reason}
        if self.status != FAILED:
            row.update(size_bytes=self.size_bytes, input=self.input, output=self.output, converter=self.converter,
                       kept_float=list(self.kept_float), notes=list(self.notes))
            row.update(self.metrics)
        row["seconds"] = round(self.seconds, 2)
        v = self.verdict
        if v is not None:
            row.update(verdict=v.verdict, inconclusive=v.inconclusive, gate_policy=v.policy,
                       accuracy_drop_ci=[v.accuracy_drop.lo, v.accuracy_drop.hi],
                       top1_disagreement=v.disagreement.estimate,
                       top1_disagreement_ci=[v.disagreement.lo, v.disagreement.hi],
                       gate=v.to_dict())
            row["accuracy_drop_ci"] = [round(x, 3) for x in row["accuracy_drop_ci"]]
            row["top1_disagreement_ci"] = [round(x, 3) for x in row["top1_disagreement_ci"]]
            row["top1_disagreement"] = round(row["top1_disagreement"], 3)
            if v.warning:
                row["warning"] = v.warning
        return row
