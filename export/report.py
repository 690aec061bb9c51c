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

from edgedeploy.core.io import atomic_write_json, atomic_write_text

REPORT_JSON = "export_report.json"
REPORT_MD = "export_report.md"
TARGET_INT8_SIZE_RATIO = 0.27
TARGET_INT8_ACCURACY_DROP = 1.0
# Which images each figure used (export_report.json "parity.figures").
FIGURE_SOURCES = {
    "top1_agreement": "every evidence image (agreement_samples): held-out images and train images outside the calibration sample",
    "max_abs_prob_diff": "every evidence image (agreement_samples)",
    "accuracy_drop": "the labelled held-out images only (parity_samples: the parity_split splits and --parity-data)",
    "per_class_accuracy_drop": "the labelled held-out images of each class",
    "top1_disagreement_ci": "every evidence image; its upper end also caps the accuracy drop's",
}


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
    from .formats import format_names

    order = {name: i for i, name in enumerate(format_names())}
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


COLUMNS = ("file", "io", "size", "x f32", "agree %", "max dp", "acc %", "drop", "drop 95%", "worst class", "verdict", "status")


def _ci(r: dict[str, Any]) -> str:
    ci = r.get("accuracy_drop_ci")
    return "-" if not ci else f"[{ci[0]:+.2f}, {ci[1]:+.2f}]"


def table_rows(rows: list[dict[str, Any]]) -> list[list[str]]:
    out = []
    for r in rows:
        worst = "-" if r.get("worst_class") is None else f"{r['worst_class']} ({r.get('worst_class_accuracy_drop', 0):+.1f})"
        out.append([
            r["file"], _io(r), _kb(r.get("size_bytes")), _f(r.get("size_ratio_vs_float32"), ".3f"),
            _f(r.get("top1_agreement"), ".2f"), _f(r.get("max_abs_prob_diff"), ".2g"), _f(r.get("accuracy"), ".2f"),
            _f(r.get("accuracy_drop"), "+.2f"), _ci(r), worst, r.get("verdict") or "-", r.get("status", "?"),
        ])
    return out


def text_table(rows: list[dict[str, Any]], keras_accuracy: float | None = None) -> str:
    body = table_rows(rows)
    widths = [max(len(c), *(len(b[i]) for b in body)) if body else len(c) for i, c in enumerate(COLUMNS)]
    line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
    lines = [line(COLUMNS), line(["-" * w for w in widths])] + [line(b) for b in body]
    if keras_accuracy is not None:
        lines.append(f"Keras accuracy {keras_accuracy:.2f}% on the held-out images; drop = Keras minus export, in points, "
                     "with its 95% interval; verdict = what the evidence shows (see export/README.md)")
    return "\n".join(lines)


def markdown(report: dict[str, Any]) -> str:
    rows = report["files"]
    src = report["source"]
    lines = [
        "# Export report",
        "",
        f"- Source: `{src['path']}` (sha256 `{src['sha256'][:16]}...`), model `{src.get('model_name') or '?'}`, dataset `{src.get('dataset') or '?'}`",
        _keras_line(report),
        _gate_line(report["parity"]),
        _evidence_line(report["parity"]),
    ]
    cal = report.get("calibration")
    if cal:
        lines.append(f"- Calibration: {cal['samples']} images from the {cal['source']}")
    lines += ["", "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in b) + " |" for b in table_rows(rows)]
    lines += ["", "`x f32` is the file size over the float32 file of the same format; `drop` is Keras accuracy minus the file's, in points (positive is worse); `worst class` is the class whose accuracy dropped most."]
    lines += ["", "`drop 95%` is the 95% interval of the drop: its upper end is also capped by the upper end of the "
              "disagreement rate. `verdict`: accepted (proven within budget), rejected (proven beyond it), "
              "inconclusive (neither); `status` is what the gate policy made of it."]
    rejected = [r for r in rows if r.get("status") != "accepted"]
    if rejected:
        lines += ["", "## Not accepted", ""]
        lines += [f"- `{r['file']}`: {r.get('reason')}" for r in rejected]
    unsure = [r for r in rows if r.get("verdict") == "inconclusive"]
    if unsure:
        lines += ["", "## Inconclusive", ""]
        lines += [f"- `{r['file']}` ({r.get('status')}): {(r.get('gate') or {}).get('settle') or ''}" for r in unsure]
    kept = [r for r in rows if r.get("kept_float")]
    if kept or (report.get("settings") or {}).get("keep_float"):
        lines += ["", "## Kept in float (--keep-float " + ",".join(report["settings"].get("keep_float") or []) + ")", ""]
        lines += [f"- `{r['file']}`: {len(r['kept_float'])} node(s): " + ", ".join(f"`{n}`" for n in r["kept_float"][:12])
                  + (" ..." if len(r["kept_float"]) > 12 else "") for r in kept]
    noted = [r for r in rows if r.get("notes")]
    if noted:
        lines += ["", "## Notes", ""]
        lines += [f"- `{r['file']}`: {note}" for r in noted for note in r["notes"]]
    lines += _selection_lines(report.get("selection"))
    if report.get("worst_layers"):
        from .formats._tflite_debug import keep_float_hint

        diag = report.get("diagnosis") or {}
        title = f"## Layers with the largest int8 error ({diag.get('tool', 'quantization debugger')})"
        lines += ["", title, ""]
        if diag.get("file"):
            lines += [f"For `{diag['file']}`" + (f" (measured on the {diag.get('proxy_format')} conversion of the same "
                                                  "model, as a proxy)" if diag.get("proxy") else "") + ".", ""]
        lines += [
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


def _keras_line(report: dict[str, Any]) -> str:
    k, p = report["keras"], report["parity"]
    held = k.get("heldout_accuracy", k["test_accuracy"])
    return (f"- Keras accuracy: {held:.2f}% on {p['samples']} held-out images ({p['split']}); "
            f"{k['test_accuracy']:.2f}% on the test split"
            + (f"; {k['macs'] / 1e6:.2f} M MACs per image" if k.get("macs") else ""))


def _gate_line(p: dict[str, Any]) -> str:
    return (f"- Parity gate `--gate {p.get('gate', 'point')}`: accuracy drop <= {p['max_accuracy_drop']:g} point(s), "
            f"top-1 disagreement <= {p.get('max_disagreement', 100):g}%, 95% intervals; "
            f"float32/float16 max |dp| <= {p['max_prob_diff']:g}")


def _evidence_line(p: dict[str, Any]) -> str:
    ev = p.get("evidence_images") or {}
    parts = ", ".join(f"{n} {k}" for k, n in ev.items())
    return (f"- Evidence: {p.get('agreement_samples', p['samples'])} images ({parts}). Agreement, probability differences "
            "and disagreement intervals use all of them; accuracy and its drop use the held-out labelled ones only.")


def _selection_lines(sel: dict[str, Any] | None) -> list[str]:
    if not sel:
        return []
    lines = ["", f"## Selected: `{sel['written']}` (--select {sel['criterion']})", ""]
    lines += [f"- {line}" for line in sel["reason"]]
    lines += ["", "| file | size KB | verdict | drop | 95% interval | p50 ms | latency source |", "|---|---|---|---|---|---|---|"]
    for c in sel["candidates"]:
        ci = c["accuracy_drop_ci"]
        lines.append(f"| {c['file']} | {c['size_bytes'] / 1024:.1f} | {c['verdict']} | {c['accuracy_drop']:+.2f} | "
                     f"[{ci[0]:+.2f}, {ci[1]:+.2f}] | {_f(c['p50_ms'], '.3g')} | {c['latency_source'] or '-'} |")
    if sel.get("slow_warnings"):
        lines += ["", "Far slower than a sibling of the same size or smaller:", ""]
        lines += [f"- {w}" for w in sel["slow_warnings"]]
    return lines


def write(out_dir: Path, report: dict[str, Any]) -> tuple[Path, Path]:
    """Write both reports atomically (they are the folder's index, so always replaced)."""
    j = atomic_write_json(out_dir / REPORT_JSON, report, force=True)
    m = atomic_write_text(out_dir / REPORT_MD, markdown(report), force=True)
    return j, m
