"""Every variant side by side: latency, size, memory, GMAC/s and accuracy, as md/json/csv and plots.

    python benchmarks/compare.py EXPORT_DIR_OR_MODELS... [--out report/]
        [--dataset digits | --data DIR | --run RUN] [--threads 1,2,4] [--backend auto]
        [--warmup N] [--runs N] [--peak-gflops G] [--device-name NAME] [--quick] [--force]

It runs ``latency.py`` (each model x backend x thread count in a fresh
process, the same seeded input for all) and ``accuracy.py`` (the held-out
test images) over every model in the export folder(s), then writes into
``--out``. The data is chosen, loaded and checked against every model's
labels before any timing starts: ``--run RUN`` scores that run's held-out
test split; with no data option, the manifests' dataset (digits), or the test
split of the run that ``export_report.json`` names.

- ``report.md``   the tables, the environment, the verdicts and the plots;
- ``report.json`` everything (environment, settings, every latency row, every
  accuracy row with per-class metrics and the confusion matrix);
- ``report.csv``  one row per variant x backend x thread count;
- ``latency_vs_accuracy.png``, ``size.png``, ``latency_vs_threads.png``
  (with matplotlib; without it the tables are written and the report says
  ``pip install matplotlib``).

The verdicts: the fastest variant (lowest p50 at its best thread count), the
most accurate, and the fastest of those within 1 point of float accuracy
(the float32 model's accuracy; TFLite float32 preferred as the reference).
The comparison table is printed to stdout at the end.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Sequence

from edgedeploy.bench import _common as C
from edgedeploy.bench import accuracy as A
from edgedeploy.bench import latency as L
from edgedeploy.bench.plots import PLOTS, write_plots
from edgedeploy.bench.records import CSV_FIELDS, CsvRow, VariantEntry  # noqa:F401  (CSV_FIELDS: the report.csv header)
from edgedeploy.core.errors import EdgeDeployError
from edgedeploy.core.runfolder import RunFolder

PROG = "compare.py"
WITHIN_POINTS = 1.0
REPORT_FILES = ("report.md", "report.json", "report.csv")


def default_threads() -> list[int]:
    """1, 2, 4, ... up to the core count, and the core count (1,2 here; 1,2,4 on a Pi 4/5)."""
    n = C.cpu_count()
    out, t = [], 1
    while t < n:
        out.append(t)
        t *= 2
    return out + [n]


def pick_reference(infos: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    floats = [i for i in infos if i["is_float"]]
    floats.sort(key=lambda i: i["format"] != "tflite")
    return floats[0] if floats else None


def summarize(latency_rows: Sequence[dict], accuracy_rows: Sequence[dict], reference: str | None,
              device: str, copies: Sequence[dict[str, str]] = ()) -> tuple[list[VariantEntry], dict]:
    """One entry per variant x backend (at its fastest thread count) and the verdicts.

    ``copies`` (``_common.same_files``) are files measured as the identical file they copy: their
    label is added to that entry's name, ``TFLite dynamic (selected = model_dynamic.tflite)``.
    """
    acc = {r["path"]: r for r in accuracy_rows}
    best: dict[tuple[str, str], dict] = {}
    for r in latency_rows:
        key = (r["path"], r["backend"])
        if key not in best or r["p50_ms"] < best[key]["p50_ms"]:
            best[key] = r
    ref_acc = acc[reference]["accuracy"] if reference in acc else None
    entries = []
    for (path, backend), r in best.items():
        a = acc.get(path)
        e = VariantEntry.from_latency(r, device)
        e.p50_ms_by_threads = {str(x["threads"]): x["p50_ms"] for x in latency_rows if x["path"] == path and x["backend"] == backend}
        if a:
            e.accuracy, e.macro_f1, e.agreement = a["accuracy"], a["macro_avg"]["f1"], a["agreement"]
            e.delta_vs_float_pts = 100 * (a["accuracy"] - ref_acc) if ref_acc is not None else None
        entries.append(e)

    labels_unique = len({e.label for e in entries}) == len({e.path for e in entries})
    for e in entries:
        base = e.label if labels_unique else e.variant
        multi = len({x.backend for x in entries if x.path == e.path}) > 1
        e.same_files = [c["label"] for c in copies if c["same_as_path"] == e.path]
        tags = ([e.backend] if multi else []) + e.same_files
        e.name = f"{base} ({', '.join(tags)})" if tags else base

    def lat(e: VariantEntry) -> float:
        return e.p50_ms

    summary: dict[str, Any] = {"reference": Path(reference).name if reference else None, "reference_accuracy": ref_acc,
                               "within_points": WITHIN_POINTS, "same_files": list(copies)}
    ref_names = [e.name for e in entries if e.path == reference]
    summary["reference_name"] = ref_names[0].split(" (")[0] if ref_names else summary["reference"]
    fastest = min(entries, key=lat)
    summary["fastest"] = {"variant": fastest.name, "p50_ms": fastest.p50_ms, "threads": fastest.best_threads}
    scored = [e for e in entries if e.accuracy is not None]
    if scored:
        top = max(scored, key=lambda e: (e.accuracy, -lat(e)))
        ties = [e for e in scored if e.accuracy == top.accuracy and e is not top]
        summary["most_accurate"] = {"variant": top.name, "accuracy": top.accuracy, "tied_with": [e.name for e in ties]}
    else:
        summary["most_accurate"] = None
    ok = [e for e in scored if 100 * (ref_acc - e.accuracy) <= WITHIN_POINTS + 1e-9] if ref_acc is not None else []
    if ok:
        b = min(ok, key=lat)
        summary["best_within_1pt"] = {"variant": b.name, "p50_ms": b.p50_ms, "accuracy": b.accuracy,
                                      "threads": b.best_threads, "speedup_vs_float": None}
        ref_entries = [e for e in entries if e.path == reference]
        if ref_entries:
            summary["best_within_1pt"]["speedup_vs_float"] = min(map(lat, ref_entries)) / b.p50_ms
    else:
        summary["best_within_1pt"] = None
    return entries, summary


def verdict_lines(summary: dict) -> list[str]:
    out = []
    f = summary["fastest"]
    out.append(f"Fastest: {f['variant']} ({f['p50_ms']:.3f} ms p50 at {f['threads']} thread(s))")
    m = summary["most_accurate"]
    if m:
        tie = f"; tied with {', '.join(m['tied_with'])}, listed the fastest" if m.get("tied_with") else ""
        out.append(f"Most accurate: {m['variant']} ({100 * m['accuracy']:.2f}%{tie})")
    else:
        out.append("Most accurate: n/a (no accuracy data)")
    b = summary["best_within_1pt"]
    if b:
        sp = f", {b['speedup_vs_float']:.2f}x the float model's speed" if b.get("speedup_vs_float") else ""
        out.append(f"Best within {WITHIN_POINTS:g} point of float accuracy ({summary['reference_name']}: "
                   f"{100 * summary['reference_accuracy']:.2f}%): {b['variant']} ({100 * b['accuracy']:.2f}%, "
                   f"{b['p50_ms']:.3f} ms p50{sp})")
    elif summary.get("reference_accuracy") is not None:
        out.append(f"Best within {WITHIN_POINTS:g} point of float accuracy: none (every timed variant is more than "
                   f"{WITHIN_POINTS:g} point below {summary['reference_name']}'s {100 * summary['reference_accuracy']:.2f}%)")
    else:
        out.append(f"Best within {WITHIN_POINTS:g} point of float accuracy: n/a (no float32 variant with accuracy)")
    return out


def main_table(entries: Sequence[VariantEntry]) -> tuple[list[str], list[list[str]]]:
    header = ["Variant", "Backend", "Size KB", "Load ms", "1st ms", "p50 ms", "p90 ms", "p99 ms", "img/s", "Peak RSS MB",
              "GMAC/s", "Threads", "Accuracy %", "vs float pts", "Agree %"]
    rows = []
    for e in entries:
        d = e.delta_vs_float_pts
        rows.append([e.name, e.backend, C.fmt(e.size_bytes / 1024, 1), C.fmt(e.load_ms, 1),
                     C.fmt(e.first_inference_ms, 2), C.fmt(e.p50_ms, 3), C.fmt(e.p90_ms, 3), C.fmt(e.p99_ms, 3),
                     C.fmt(e.throughput_ips, 0), C.fmt(e.peak_rss_mb, 1), C.fmt(e.gmacs_per_s, 3), e.best_threads,
                     C.fmt(None if e.accuracy is None else 100 * e.accuracy, 2),
                     "n/a" if d is None else f"{d:+.2f}", C.fmt(None if e.agreement is None else 100 * e.agreement, 2)])
    if any(e.pct_of_peak is not None for e in entries):
        i = header.index("GMAC/s") + 1
        header.insert(i, "% peak")
        for row, e in zip(rows, entries):
            row.insert(i, C.fmt(e.pct_of_peak, 1))
    return header, rows


def threads_table(entries: Sequence[VariantEntry], threads: Sequence[int]) -> tuple[list[str], list[list[str]]]:
    header = ["Variant", "Backend"] + [f"p50 ms @{t}" for t in threads]
    return header, [[e.name, e.backend] + [C.fmt(e.p50_ms_by_threads.get(str(t)), 3) for t in threads] for e in entries]


def per_class_table(accuracy_rows: Sequence[dict], entries: Sequence[VariantEntry]) -> tuple[list[str], list[list[str]]] | None:
    if not accuracy_rows or len(accuracy_rows[0]["labels"]) > 20:
        return None
    names = {e.path: e.name.split(" (")[0] for e in entries}
    labels = accuracy_rows[0]["labels"]
    header = ["Variant"] + [f"F1 {lab}" for lab in labels]
    rows = [[names.get(r["path"], r["variant"])] + [C.fmt(r["per_class"][lab]["f1"], 3) for lab in labels] for r in accuracy_rows]
    return header, rows


def env_lines(env: dict) -> list[str]:
    pk = ", ".join(f"{k} {v}" for k, v in env["packages"].items() if v)
    lines = [f"- Device: **{env['device']}**", f"- CPU: {env['cpu_model']}, {env['cpu_cores']} cores ({env['cpu_cores_usable']} usable), {env['arch']}, {env['os']}"]
    if env.get("cpu_flags") is not None:
        lines.append(f"- CPU flags that decide int8 speed: {' '.join(env['cpu_flags']) or 'none of them'}")
    if env.get("load_average"):
        before = env.get("load_average_before")
        lines.append(f"- Load average (1/5/15 min): {' / '.join(f'{x:g}' for x in env['load_average'])} after the runs"
                     + (f", {' / '.join(f'{x:g}' for x in before)} before" if before else ""))
    if env.get("board_model"):
        lines.append(f"- Board: {env['board_model']}")
    freq = env.get("cpu_freq_mhz")
    lines.append(f"- CPU frequency: {C.fmt(freq)} MHz (max {C.fmt(env.get('cpu_max_freq_mhz'))}), governor {C.fmt(env.get('cpu_governor'))}; "
                 f"temperature {C.fmt(env.get('temperature_c'))} C; throttled {C.fmt(env.get('throttled'))}")
    lines.append(f"- Python {env['python']}; {pk}")
    return lines


# -- report -----------------------------------------------------------------------------
def markdown(report: dict, entries, threads) -> str:
    s = report["settings"]
    lines = ["# edgedeploy benchmark report", "", f"Created {report['created']} on **{report['environment']['device']}**.", ""]
    lines += ["## Verdict", ""] + [f"- {v}" for v in report["verdict"]] + [""]
    h, r = main_table(entries)
    lines += ["## Side by side", "", C.table(h, r, markdown=True), ""]
    for c in report["summary"].get("same_files") or []:
        lines += [f"{c['file']} is the same file as {c['same_as']} (SHA-256 {c['sha256'][:12]}...): measured once, "
                  f"shown as \"{c['label']}\".", ""]
    lines += [f"Latency: `predict_tensor` on batch {s['batch_size']}, {s['warmup']} warm-up + {s['runs']} timed runs, "
              f"each variant x thread count in a fresh process, same seeded input (seed {s['seed']}); the row shows the "
              "fastest thread count. Load = model open to ready (runtime import excluded); 1st = first inference. "
              "GMAC/s = manifest MACs x batch / p50 latency (n/a when the manifest has no MACs); img/s = batch / mean latency. "
              f"Accuracy on {report['dataset']['name'] if report.get('dataset') else 'n/a'}"
              f"{' (first ' + str(s['accuracy_limit']) + ' images)' if s.get('accuracy_limit') else ''}; "
              f"agreement = top-1 agreement with {report['summary']['reference'] or 'n/a'}.", ""]
    h, r = threads_table(entries, threads)
    lines += ["## Latency by thread count", "", C.table(h, r, markdown=True), ""]
    pc = per_class_table(report["accuracy"], entries)
    if pc:
        lines += ["## Per-class F1", "", C.table(pc[0], pc[1], markdown=True), ""]
    if report["failures"]:
        lines += ["## Failed", ""] + [f"- {f['variant']} ({f['backend']}, {f['threads']} threads): {f['error']}" for f in report["failures"]] + [""]
    ds = report.get("dataset")
    if ds and ds.get("n_unreadable"):
        lines += [f"{ds['n_unreadable']} unreadable file(s) were skipped (listed in report.json).", ""]
    lines += ["## Plots", ""]
    if report["plots"]:
        lines += [f"![{p[:-4].replace('_', ' ')}]({p})" for p in report["plots"]] + [""]
    else:
        lines += [f"Not drawn: {report['plots_skipped']}.", ""]
    lines += ["## Environment", ""] + env_lines(report["environment"]) + [""]
    return "\n".join(lines)


def csv_rows(latency_rows, accuracy_rows, device):
    acc = {r["path"]: r for r in accuracy_rows}
    for r in latency_rows:
        yield CsvRow.build(r, device, acc.get(r["path"])).values()


def build_parser() -> C.ArgumentParser:
    p = C.ArgumentParser(prog=PROG, description="Benchmark every exported variant side by side (latency, size, memory, accuracy).")
    p.add_argument("models", nargs="+", metavar="DIR_OR_MODEL", help="export folders and/or .tflite/.onnx files")
    p.add_argument("--out", default="report", help="output folder (default report/)")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--dataset", default=None,
                     help="embedded dataset to score on: digits (default: the manifest's dataset; for a model trained "
                          "on a folder, the test split of the run named in the export folder's export_report.json)")
    src.add_argument("--data", default=None, metavar="DIR", help="a folder with one subfolder per class")
    src.add_argument("--run", default=None, metavar="RUN", help="a train-model run folder: score its held-out test split")
    p.add_argument("--no-accuracy", action="store_true", help="latency only")
    p.add_argument("--reference", default=None, metavar="MODEL", help="the float model to compare accuracy with (default: the float32 variant)")
    p.add_argument("--threads", default=None, help="comma-separated thread counts (default: 1, 2, 4, ... up to the core count)")
    p.add_argument("--backend", default="auto", help="auto or comma-separated backend names")
    p.add_argument("--warmup", type=C.positive_int("--warmup", 0), default=None)
    p.add_argument("--runs", type=C.positive_int("--runs", 1), default=None)
    p.add_argument("--batch-size", type=C.positive_int("--batch-size", 1), default=1)
    p.add_argument("--seed", type=int, default=C.DEFAULT_SEED)
    p.add_argument("--limit", type=C.positive_int("--limit", 1), default=None, help="score accuracy on the first N images only")
    p.add_argument("--peak-gflops", type=float, default=None, help="this CPU's peak GFLOP/s, for %% of peak (about 48 on a Pi 4)")
    p.add_argument("--no-xnnpack", action="store_true", help="TFLite without the XNNPACK delegate")
    p.add_argument("--device-name", default=None, help="name of this device in the report (default: board or CPU model)")
    C.add_common_args(p)
    return p


def _main(argv: Sequence[str]) -> int:
    args = build_parser().parse_args(argv)
    if args.peak_gflops is not None and args.peak_gflops <= 0:
        raise EdgeDeployError(f"Received --peak-gflops={args.peak_gflops}, expected a positive number")
    warmup = args.warmup if args.warmup is not None else (L.QUICK_WARMUP if args.quick else L.DEFAULT_WARMUP)
    runs = args.runs if args.runs is not None else (L.QUICK_RUNS if args.quick else L.DEFAULT_RUNS)
    threads = C.parse_int_list(args.threads, "--threads") if args.threads else default_threads()
    backends = [b.strip() for b in args.backend.split(",") if b.strip()] or ["auto"]
    C.check_backend_names(backends)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise EdgeDeployError(f"--out must be a folder, got a file: {out}")
    C.check_outputs([out / f for f in REPORT_FILES + PLOTS], args.force)
    models, copies = C.same_files(C.discover_models(args.models))  # selected.* = one of the others: measured once
    for c in copies:
        print(f"{PROG}: {c['file']} is the same file as {c['same_as']} (SHA-256): measured once, as {c['label']!r}",
              file=sys.stderr)
    infos = [C.variant_info(m) for m in models]
    ref_info = C.variant_info(C.discover_models([args.reference])[0]) if args.reference else pick_reference(infos)
    reference = Path(ref_info["path"]) if ref_info else None
    for c in copies:  # --reference selected.tflite: the file measured in its place
        if reference is not None and reference.resolve() == Path(c["path"]).resolve():
            reference = Path(c["same_as_path"])
    limit = args.limit if args.limit is not None else (A.QUICK_LIMIT if args.quick else None)

    data = None
    if not args.no_accuracy:  # bad data or labels fail here, before the long latency runs
        dataset, run = args.dataset, args.run
        if dataset is None and args.data is None and run is None:
            dataset, run = default_eval_source(models)
        data = A.load_eval_set(dataset, args.data, limit, run)
        A.check_labels(list(models) + ([reference] if reference is not None else []), data)
        print(f"{PROG}: scoring accuracy on {data.name}", file=sys.stderr)

    env_before = C.environment(args.device_name)
    device = env_before["device"]
    failures: list = []
    lat_rows = L.run_latency(models, backends, threads, warmup, runs, args.batch_size, args.seed, args.peak_gflops,
                             not args.no_xnnpack, failures=failures)
    if not lat_rows:
        raise EdgeDeployError(failures[0]["error"])
    measured = {r["path"] for r in lat_rows}
    acc_models = [m for m in models if str(m) in measured]  # a model that crashed its latency process is not loaded here
    if reference is not None and all(m.resolve() != reference.resolve() for m in models):
        acc_models.append(reference)  # scored for the comparison, not timed
    acc_rows = A.evaluate(acc_models, data, reference) if data is not None else []
    env = C.environment(args.device_name)  # after the runs: the temperature and throttling they caused
    env["load_average_before"] = env_before.get("load_average")  # the other jobs' load, before ours
    entries, summary = summarize(lat_rows, acc_rows, str(reference) if reference else None, device, copies)
    out.mkdir(parents=True, exist_ok=True)
    plots, skipped, axes = write_plots(out, entries, lat_rows, args.force, summary["reference_accuracy"], WITHIN_POINTS)
    report = {"tool": "compare", "schema": C.REPORT_SCHEMA, "created": C.now_iso(), "environment": env,
              "settings": {**L.settings(args, threads, backends, warmup, runs), "accuracy_limit": limit,
                           "reference": str(reference) if reference else None},
              "summary": summary, "verdict": verdict_lines(summary), "variants": [e.to_dict() for e in entries], "latency": lat_rows,
              "accuracy": acc_rows, "dataset": data.describe() if data is not None else None,
              "plots": plots, "plots_skipped": skipped, "plot_axes": axes, "failures": failures}
    C.write_json(out / "report.json", report, args.force)
    C.write_csv(out / "report.csv", CSV_FIELDS, csv_rows(lat_rows, acc_rows, device), args.force)
    C.write_text(out / "report.md", markdown(report, entries, threads) + "\n", args.force)

    h, r = main_table(entries)
    print(f"\nedgedeploy benchmark on {device} ({warmup} warm-up + {runs} timed runs, batch {args.batch_size})")
    print(C.table(h, r))
    for v in report["verdict"]:
        print(v)
    if skipped:
        print(f"Plots skipped: {skipped}")
    print(f"Report: {out / 'report.md'} (+ report.json, report.csv{', ' + str(len(plots)) + ' plots' if plots else ''})")
    L.report_failures(failures, PROG)
    return 1 if failures else 0


def default_eval_source(models: Sequence[Path]) -> tuple[str | None, str | None]:
    """(dataset, run folder) to score on when none is given: the manifests' dataset.

    The embedded ``digits`` is scored directly. A model trained on a folder
    (``folder:NAME``) is scored on its run's held-out test split when the
    export folder's ``export_report.json`` names a run folder that still
    holds ``splits.json``; never on the training images.
    """
    found = {m.dataset for m in map(C.read_manifest, models) if m is not None and m.dataset}
    if len(found) == 1 and next(iter(found)) in A.DATASETS:
        return next(iter(found)), None
    runs = {r for r in map(_run_of_export, models) if r is not None}
    if len(runs) == 1:
        return None, runs.pop()
    what = f"the manifests name {', '.join(sorted(found))}" if found else "the models carry no manifest dataset"
    more = f" and {len(runs)} different run folders" if len(runs) > 1 else ""
    raise EdgeDeployError(f"no data to score accuracy on: {what}{more}; give --run RUN (its held-out test split), "
                          "--dataset digits or --data DIR (or --no-accuracy for latency only)")


def _run_of_export(model: Path) -> str | None:
    """The run folder export-model recorded beside ``model`` (export_report.json: source.run_dir), if it has splits.json."""
    import json

    try:
        report = json.loads((model.parent / "export_report.json").read_text(encoding="utf-8"))
        run = report["source"]["run_dir"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return str(run) if isinstance(run, str) and RunFolder(run).splits_path.is_file() else None


def main(argv: Sequence[str] | None = None) -> int:
    return C.run_main(_main, argv, PROG)


if __name__ == "__main__":
    sys.exit(main())
