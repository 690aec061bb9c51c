"""Summarize export-model runs for the gate: one table of verdicts, intervals and disagreement rates.

    python scripts/gate_report.py --out reports/gate_photo_run.md NAME=EXPORT_DIR [NAME=EXPORT_DIR ...]

Each EXPORT_DIR holds an export_report.json; its report is copied beside the
summary as reports/gate_<NAME>.json and .md, so every figure quoted has the
export-model output it came from.
"""
from __future__ import annotations

import argparse
import json
import platform
import shutil
from pathlib import Path


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", metavar="NAME=EXPORT_DIR")
    p.add_argument("--out", required=True)
    args = p.parse_args()
    out = Path(args.out)
    lines = ["# The evidence gate on the photo run", "",
             f"One run of each command on one machine ({platform.machine()}, {platform.processor() or 'CPU'}, "
             "2 shared cores); written by `scripts/gate_report.py` from the export reports copied beside it.",
             "The p50 latencies behind `--select fastest` come from a short run (3 warm-up + 20 timed calls) on a machine "
             "other jobs were using: files within a few tenths of a millisecond of each other can swap places from run to run.",
             ""]
    for spec in args.runs:
        name, _, folder = spec.partition("=")
        src = Path(folder) / "export_report.json"
        report = json.loads(src.read_text())
        shutil.copy2(src, out.parent / f"gate_{name}.json")
        shutil.copy2(Path(folder) / "export_report.md", out.parent / f"gate_{name}.md")
        par = report["parity"]
        ev = ", ".join(f"{n} {k}" for k, n in par.get("evidence_images", {}).items())
        settings = report.get("settings", {})
        lines += [f"## {name}", "",
                  f"- `--gate {par.get('gate')}`, budgets: drop <= {par['max_accuracy_drop']:g} point, "
                  f"disagreement <= {par.get('max_disagreement'):g}%; evidence {par.get('agreement_samples')} images ({ev}); "
                  f"accuracy on {par['samples']} held-out ({par['split']})",
                  f"- calibration: {(report.get('calibration') or {}).get('source')}; parity data: {settings.get('parity_data')}",
                  f"- reports: [gate_{name}.md](gate_{name}.md), [gate_{name}.json](gate_{name}.json)", "",
                  "| file | disagreements | disagreement % | 95% interval | drop (points) | drop 95% | verdict | status |",
                  "|---|---|---|---|---|---|---|---|"]
        for r in report["files"]:
            if r.get("status") == "failed":
                lines.append(f"| {r['file']} | - | - | - | - | - | failed | failed |")
                continue
            ci, dci = r.get("top1_disagreement_ci") or [0, 0], r.get("accuracy_drop_ci") or [0, 0]
            lines.append(f"| {r['file']} | {r.get('top1_disagreements')} of {r.get('agreement_samples')} | "
                         f"{r.get('top1_disagreement', 0):.2f} | [{ci[0]:.2f}, {ci[1]:.2f}] | {r['accuracy_drop']:+.2f} | "
                         f"[{dci[0]:+.2f}, {dci[1]:+.2f}] | {r.get('verdict')} | {r['status']} |")
        sel = report.get("selection")
        if sel:
            lines += ["", f"Selected (`--select {sel['criterion']}`): `{sel['chosen']}` -> `{sel['written']}`.", ""]
            lines += [f"- {x}" for x in sel["reason"]]
            lines += [f"- warning: {w}" for w in sel.get("slow_warnings", [])]
        lines.append("")
    out.write_text("\n".join(lines))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
