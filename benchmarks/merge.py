"""Combine benchmark reports from several devices (this laptop, a Pi 4, a Pi 5) into one table and plot.

    python benchmarks/merge.py laptop/report.json pi4/report.json pi5/report.json [--out merged/] [--force]

The usual workflow: run ``compare.py`` (or ``latency.py --json``) on each
device, copy the JSON back, merge here. Variants are matched across devices
by file name and backend; the table says when the same name has different
file contents (SHA-256) on two devices. A file that is a byte-for-byte copy of
another (``selected.tflite``, which ``export-model --select`` copies from one of
its siblings) is one row, named after the file it copies and labelled
``selected = model_dynamic.tflite``: never the same bytes measured twice. Writes ``merged.md``, ``merged.json``,
``merged.csv`` and ``merged_latency.png`` (p50 per variant, one bar per
device; needs matplotlib) and prints the table.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Sequence

from edgedeploy.bench import _common as C
from edgedeploy.bench.plots import legend_outside, log_axis, wide
from edgedeploy.bench.records import MERGED_FIELDS as FIELDS  # merged.csv's header, merged.json's row fields
from edgedeploy.bench.records import MergedRow
from edgedeploy.core.environment import describe_cpu, environment
from edgedeploy.core.errors import EdgeDeployError

PROG = "merge.py"
OUT_FILES = ("merged.md", "merged.json", "merged.csv")
PLOT = "merged_latency.png"


def entries_of(report: dict, source: str) -> list[dict[str, Any]]:
    """Per variant x backend, the row at its fastest thread count, from a compare or latency report."""
    tool = report.get("tool")
    if tool == "compare":  # a copy compare.py measured as the file it copies keeps its label ("selected = ...")
        rows = [dict(e, threads=e.get("best_threads"),
                     label=f"{e.get('label') or e.get('variant')} ({', '.join(e['same_files'])})" if e.get("same_files")
                     else e.get("label")) for e in report.get("variants", [])]
    elif tool == "latency":
        best: dict[tuple, dict] = {}
        for r in report.get("results", []):
            key = (r["variant"], r["backend"])
            if key not in best or r["p50_ms"] < best[key]["p50_ms"]:
                best[key] = r
        rows = [dict(r, accuracy=None) for r in best.values()]
    else:
        raise EdgeDeployError(f"{source} is a {tool!r} report; merge reads compare.py or latency.py reports")
    if not rows:
        raise EdgeDeployError(f"{source} holds no measurements")
    need = ("variant", "backend", "p50_ms")
    for r in rows:
        missing = [k for k in need if k not in r]
        if missing:
            raise EdgeDeployError(f"{source} is missing field(s) {', '.join(missing)} in its results")
    return rows


def merge(paths: Sequence[str]) -> dict[str, Any]:
    """The merged report; its ``rows`` are ``MergedRow`` records (``to_json`` turns them into dicts)."""
    devices: list[dict[str, Any]] = []
    rows: list[MergedRow] = []
    names: dict[str, int] = {}
    for p in paths:
        rep = C.load_json_report(p)
        env = rep.get("environment") or {}
        name = env.get("device") or Path(p).parent.name or Path(p).stem
        names[name] = names.get(name, 0) + 1
        if names[name] > 1:
            name = f"{name} #{names[name]}"
        devices.append({"device": name, "source": str(p), "tool": rep.get("tool"), "created": rep.get("created"),
                        "environment": env, "settings": rep.get("settings", {})})
        for e in entries_of(rep, str(p)):
            rows.append(MergedRow.build(e, name))
    rows, same = same_file_rows(rows)
    # The same file name with different contents on two devices is worth a warning.
    warnings = [f"{a} is the same file as {b} (SHA-256): one row, labelled \"{C.alias_label(a, b)}\"" for a, b in same]
    by_variant: dict[str, set] = {}
    for r in rows:
        by_variant.setdefault(r.variant, set()).add(r.sha256)
    for v, hashes in sorted(by_variant.items()):
        hashes.discard(None)
        if len(hashes) > 1:
            warnings.append(f"{v} differs between devices ({len(hashes)} different files): the rows compare different models")
    return {"tool": "merge", "schema": C.REPORT_SCHEMA, "created": C.now_iso(), "devices": devices, "rows": rows,
            "warnings": warnings, "environment": environment()}  # where the merge ran; each device's is in devices


def same_file_rows(rows: Sequence[MergedRow]) -> tuple[list[MergedRow], list[tuple[str, str]]]:
    """One row per file contents: a copy (``selected.*``, same SHA-256 as a sibling) joins the file it copies.

    The copy's rows are renamed after the file they copy (on every device, so the columns line up), the
    label says so (``TFLite dynamic (selected = model_dynamic.tflite)``), and where a device measured
    both, the copy's row is dropped. Returns the rows, in their order, and the (copy, original) pairs.
    """
    names: dict[str, list[str]] = {}
    for r in rows:
        if r.sha256 and r.variant not in names.setdefault(r.sha256, []):
            names[r.sha256].append(r.variant)
    canonical: dict[str, str] = {}
    pairs: list[tuple[str, str]] = []
    for digest, variants in names.items():
        keep = next((v for v in variants if not v.startswith("selected.")), variants[0])
        canonical[digest] = keep
        pairs += [(v, keep) for v in variants if v != keep]
    if not pairs:
        return list(rows), []
    measured = {(r.device, r.variant, r.backend) for r in rows if r.sha256 and r.variant == canonical[r.sha256]}
    out: list[MergedRow] = []
    for r in rows:
        keep = canonical.get(r.sha256) if r.sha256 else None
        if keep is None:
            out.append(r)
            continue
        if r.variant != keep:
            if (r.device, keep, r.backend) in measured:
                continue  # this device measured the original too: one row
            r = MergedRow(**{**r.to_dict(), "variant": keep})
        aliases = [C.alias_label(a, b) for a, b in pairs if b == keep]
        if aliases:
            r = MergedRow(**{**r.to_dict(), "label": f"{r.label or r.variant} ({', '.join(aliases)})"})
        out.append(r)
    return out, pairs


def to_json(merged: dict[str, Any]) -> dict[str, Any]:
    return {**merged, "rows": [r.to_dict() for r in merged["rows"]]}


def variants_in_order(rows: Sequence[MergedRow]) -> list[tuple[str, str]]:
    return list(dict.fromkeys((r.variant, r.backend) for r in rows))


def _name_of(rows: Sequence[MergedRow], variant: str) -> str:
    return next(r.display_name for r in rows if r.variant == variant)


def pivot(merged: dict) -> tuple[list[str], list[list[str]]]:
    devices = [d["device"] for d in merged["devices"]]
    idx = {(r.device, r.variant, r.backend): r for r in merged["rows"]}
    header = ["Variant", "Backend"] + [f"p50 ms {d}" for d in devices]
    out = []
    for v, b in variants_in_order(merged["rows"]):
        cells = [idx.get((d, v, b)) for d in devices]
        out.append([_name_of(merged["rows"], v), b] + [C.fmt(c.p50_ms if c else None, 3) for c in cells])
    return header, out


def long_table(merged: dict) -> tuple[list[str], list[list[str]]]:
    header = ["Device", "Variant", "Backend", "Threads", "Size KB", "p50 ms", "p90 ms", "p99 ms", "img/s", "Peak RSS MB",
              "GMAC/s", "Accuracy %"]
    out = []
    for r in merged["rows"]:
        out.append([r.device, r.display_name, r.backend, C.fmt(r.threads),
                    C.fmt(None if r.size_bytes is None else r.size_bytes / 1024, 1), C.fmt(r.p50_ms, 3),
                    C.fmt(r.p90_ms, 3), C.fmt(r.p99_ms, 3), C.fmt(r.throughput_ips, 0),
                    C.fmt(r.peak_rss_mb, 1), C.fmt(r.gmacs_per_s, 3),
                    C.fmt(None if r.accuracy is None else 100 * r.accuracy, 2)])
    return header, out


def plot(merged: dict, out: Path, force: bool) -> tuple[bool, str | None]:
    plt = C.matplotlib_pyplot()
    if plt is None:
        return False, f"matplotlib is not installed; for the plot run `{C.PLOT_HINT}` and re-run"
    import numpy as np

    from edgedeploy.core.io import atomic_write_with

    devices = [d["device"] for d in merged["devices"]]
    keys = variants_in_order(merged["rows"])
    idx = {(r.device, r.variant, r.backend): r.p50_ms for r in merged["rows"]}
    width = 0.8 / max(1, len(devices))
    fig, ax = plt.subplots(figsize=(max(6.4, 1.3 * len(keys) + 2), 4.6))
    x = np.arange(len(keys))
    values = []
    for i, d in enumerate(devices):
        ys = [idx.get((d, v, b), np.nan) for v, b in keys]
        values += [y for y in ys if y == y]
        ax.bar(x + (i - (len(devices) - 1) / 2) * width, ys, width, label=d)
    labels = [_name_of(merged["rows"], v) for v, b in keys]
    ax.set_xticks(x, labels, rotation=30, ha="right", fontsize=8)
    log_y = wide(values)  # 10x or more: log, as compare.py's plots
    if log_y:
        ax.set_yscale("log")
        log_axis(ax.yaxis)
    ax.set_ylabel("latency p50 (ms, best thread count" + (", log scale)" if log_y else ")"))
    ax.set_title("Latency per variant and device")
    legend_outside(ax)  # never over a bar
    ax.grid(axis="y", alpha=0.3)
    atomic_write_with(out / PLOT, lambda f: fig.savefig(f, format="png", dpi=110, bbox_inches="tight"), force=force)
    C.readable(out / PLOT)
    plt.close(fig)
    return True, None


def build_parser() -> C.ArgumentParser:
    p = C.ArgumentParser(prog=PROG, description="Merge benchmark reports from several devices into one table and plot.")
    p.add_argument("reports", nargs="+", metavar="REPORT_JSON", help="report.json from compare.py or latency.py --json")
    p.add_argument("--out", default="merged", help="output folder (default merged/)")
    C.add_common_args(p)
    return p


def _main(argv: Sequence[str]) -> int:
    args = build_parser().parse_args(argv)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise EdgeDeployError(f"--out must be a folder, got a file: {out}")
    merged = merge(args.reports)
    C.check_outputs([out / f for f in OUT_FILES + (PLOT,)], args.force)
    drew, skipped = plot(merged, out, args.force)
    merged["plot"] = PLOT if drew else None
    merged["plot_skipped"] = skipped
    C.write_json(out / "merged.json", to_json(merged), args.force)
    C.write_csv(out / "merged.csv", FIELDS, (r.values() for r in merged["rows"]), args.force)
    ph, pr = pivot(merged)
    lh, lr = long_table(merged)
    md = ["# edgedeploy benchmarks across devices", ""]
    md += [f"- **{d['device']}**: {describe_cpu(d['environment'])}, {d['environment'].get('arch', '?')}, "
           f"Python {d['environment'].get('python', '?')} (from `{d['source']}`, {d['created']})" for d in merged["devices"]]
    md += ["", "## p50 latency by device", "", C.table(ph, pr, markdown=True), "", "## All figures", "", C.table(lh, lr, markdown=True), ""]
    md += [f"> warning: {w}" for w in merged["warnings"]]
    md += ["", f"![latency per variant and device]({PLOT})" if drew else f"Plot not drawn: {skipped}.", ""]
    C.write_text(out / "merged.md", "\n".join(md), args.force)
    print(C.table(ph, pr))
    for w in merged["warnings"]:
        print(f"warning: {w}")
    if skipped:
        print(f"Plot skipped: {skipped}")
    print(f"Merged {len(merged['devices'])} report(s) into {out / 'merged.md'}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return C.run_main(_main, argv, PROG)


if __name__ == "__main__":
    sys.exit(main())
