"""export_report.json / export_report.md and the table printed at the end.

Several runs may export into the same folder (``--format tflite`` today,
``--format onnx`` tomorrow): the report is the folder's index, so a new run
replaces the rows of the files it wrote and keeps the rows of the others that
are still on disk.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from edge_runtime.io import atomic_write_json, atomic_write_text

REPORT_JSON = "export_report.json"
REPORT_MD = "export_report.md"
TARGET_INT8_SIZE_RATIO = 0.27
TARGET_INT8_ACCURACY_DROP = 1.0


def merge_rows(out_dir: Path, new_rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """This run's rows plus the earlier rows of other files still present in ``out_dir``."""
    old: list[dict[str, Any]] = []
    p = out_dir / REPORT_JSON
    if p.is_file():
        try:
            data = json.loads(p.read_text("utf-8"))
            old = [r for r in data.get("files", []) if isinstance(r, dict) and "file" in r]
        except (ValueError, AttributeError, UnicodeDecodeError):
            old = []  # an unreadable report is simply rebuilt
    written = {r["file"] for r in new_rows}
    same_models = {r["file"].removesuffix(".rejected") for r in new_rows}
    kept = [r for r in old if r["file"] not in written and r["file"].removesuffix(".rejected") not in same_models
            and (out_dir / r["file"]).exists()]
    order = {"tflite": 0, "onnx": 1}
    modes = ["none", "float16", "dynamic", "int8", "int16x8"]
    rows = kept + new_rows
    rows.sort(key=lambda r: (order.get(r.get("format"), 9), modes.index(r["mode"]) if r.get("mode") in modes else 9))
    return rows


def size_ratios(rows: list[dict[str, Any]]) -> None:
    """``size_ratio_vs_float32``: size over the float32 file of the same format and source."""
    for r in rows:
        base = [b for b in rows if b.get("format") == r.get("format") and b.get("mode") == "none"
                and b.get("source_sha256") == r.get("source_sha256") and b.get("size_bytes")]
        r["size_ratio_vs_float32"] = round(r["size_bytes"] / base[0]["size_bytes"], 4) if base and r.get("size_bytes") else None


def targets(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for r in rows:
        if r.get("mode") != "int8" or r.get("status") == "failed":
            continue
        ratio, drop = r.get("size_ratio_vs_float32"), r.get("accuracy_drop")
        out.append({
            "file": r["file"],
            "size_ratio_vs_float32": ratio,
            "size_target": TARGET_INT8_SIZE_RATIO,
            "size_met": None if ratio is None else ratio <= TARGET_INT8_SIZE_RATIO,
            "accuracy_drop": drop,
            "accuracy_target": TARGET_INT8_ACCURACY_DROP,
            "accuracy_met": None if drop is None else drop <= TARGET_INT8_ACCURACY_DROP,
        })
    return out


def _kb(n: int | None) -> str:
    if n is None:
        return "-"
    return f"{n / 1024:.1f} KB" if n < 1024 * 1024 else f"{n / 1024 / 1024:.2f} MB"


def _io(r: dict[str, Any]) -> str:
    i, o = r.get("input") or {}, r.get("output") or {}
    return f"{i.get('dtype', '?')}/{o.get('dtype', '?')}"


def _f(v: Any, fmt: str) -> str:
    return "-" if v is None else format(v, fmt)


COLUMNS = ("file", "io", "size", "x f32", "agree %", "max dp", "acc %", "drop", "worst class", "status")


def table_rows(rows: list[dict[str, Any]]) -> list[list[str]]:
    out = []
    for r in rows:
        worst = "-" if r.get("worst_class") is None else f"{r['worst_class']} ({r.get('worst_class_accuracy_drop', 0):+.1f})"
        out.append([
            r["file"], _io(r), _kb(r.get("size_bytes")), _f(r.get("size_ratio_vs_float32"), ".3f"),
            _f(r.get("top1_agreement"), ".2f"), _f(r.get("max_abs_prob_diff"), ".2g"), _f(r.get("accuracy"), ".2f"),
            _f(r.get("accuracy_drop"), "+.2f"), worst, r.get("status", "?"),
        ])
    return out


def text_table(rows: list[dict[str, Any]], keras_accuracy: float | None = None) -> str:
    body = table_rows(rows)
    widths = [max(len(c), *(len(b[i]) for b in body)) if body else len(c) for i, c in enumerate(COLUMNS)]
    line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
    lines = [line(COLUMNS), line(["-" * w for w in widths])] + [line(b) for b in body]
    if keras_accuracy is not None:
        lines.append(f"Keras test accuracy {keras_accuracy:.2f}%; drop = Keras minus export, in points; "
                     "worst class = the class whose accuracy dropped most")
    return "\n".join(lines)


def markdown(report: dict[str, Any]) -> str:
    rows = report["files"]
    src = report["source"]
    lines = [
        "# Export report",
        "",
        f"- Source: `{src['path']}` (sha256 `{src['sha256'][:16]}...`), model `{src.get('model_name') or '?'}`, dataset `{src.get('dataset') or '?'}`",
        f"- Keras test accuracy: {report['keras']['test_accuracy']:.2f}% on {report['parity']['samples']} test images"
        + (f"; {report['keras']['macs'] / 1e6:.2f} M MACs per image" if report["keras"].get("macs") else ""),
        f"- Parity gate: accuracy drop <= {report['parity']['max_accuracy_drop']:g} point(s); float32/float16 max |dp| <= {report['parity']['max_prob_diff']:g}",
    ]
    cal = report.get("calibration")
    if cal:
        lines.append(f"- Calibration: {cal['samples']} images from the {cal['source']}")
    lines += ["", "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in b) + " |" for b in table_rows(rows)]
    lines += ["", "`x f32` is the file size over the float32 file of the same format; `drop` is Keras accuracy minus the file's, in points (positive is worse); `worst class` is the class whose accuracy dropped most."]
    rejected = [r for r in rows if r.get("status") != "accepted"]
    if rejected:
        lines += ["", "## Not accepted", ""]
        lines += [f"- `{r['file']}`: {r.get('reason')}" for r in rejected]
    if report.get("worst_layers"):
        from .debug import keep_float_hint

        lines += ["", "## Layers with the largest int8 error (TFLite QuantizationDebugger)", "",
                  "| layer | scope | op | RMSE/scale | max abs error |", "|---|---|---|---|---|"]
        lines += [f"| {w.get('layer') or '-'} | `{w['scope']}` | {w['op']} | {w['rmse_over_scale']} | {w['max_abs_error']} |"
                  for w in report["worst_layers"]]
        hint = keep_float_hint(report["worst_layers"])
        if hint:
            lines += ["", f"Keep the worst in float with `--keep-float {hint}` "
                      "(RMSE/scale above about 0.3 is more than rounding noise)."]
    if report.get("targets"):
        lines += ["", "## Targets", "", "| file | size vs float32 | <= 0.27 | accuracy drop | <= 1.0 |", "|---|---|---|---|---|"]
        yn = lambda v: "-" if v is None else ("yes" if v else "**no**")  # noqa: E731
        lines += [f"| {t['file']} | {_f(t['size_ratio_vs_float32'], '.3f')} | {yn(t['size_met'])} | "
                  f"{_f(t['accuracy_drop'], '+.2f')} | {yn(t['accuracy_met'])} |" for t in report["targets"]]
    lines += ["", "Versions: " + ", ".join(f"{k} {v}" for k, v in report.get("versions", {}).items()), ""]
    return "\n".join(lines)


def write(out_dir: Path, report: dict[str, Any]) -> tuple[Path, Path]:
    """Write both reports atomically (they are the folder's index, so always replaced)."""
    j = atomic_write_json(out_dir / REPORT_JSON, report, force=True)
    m = atomic_write_text(out_dir / REPORT_MD, markdown(report), force=True)
    return j, m
