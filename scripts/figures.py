#!/usr/bin/env python3
"""Every figure table in the READMEs, rendered from a committed report.

    python scripts/figures.py render            # rewrite the README tables from reports/
    python scripts/figures.py check             # exit 1 if a README table disagrees with its report
    python scripts/figures.py measure [NAME...] # re-run the commands that write reports/, then render
    python scripts/figures.py list              # the figures, their reports and commands
    make figures                                # = measure (all of them; long) + render

A figure table sits in a Markdown file between two markers::

    <!-- figure:NAME -->
    ...rendered here, never edited by hand...
    <!-- /figure:NAME -->

``render`` replaces what stands between them with what the figure's renderer
makes from its report files in reports/, and the first line under the table
says which file and which command. ``check`` (run by the test suite) proves
that every document in ``DOCS`` (the READMEs and docs/*.md) quotes exactly what the reports hold.
Every report is one run on one machine: its environment is in the report and
quoted under each table.

This script is a developer tool, not part of the package: it runs the project's
commands as subprocesses and reads their JSON/Markdown output.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

ROOT = Path(__file__).resolve().parents[1]
REPORTS = ROOT / "reports"
# Every Markdown file that may hold a figure table; `check` (run by the suite) reads them all, and
# tests/test_figures.py fails on a Markdown table in docs/figures.md that is not rendered.
DOCS = [ROOT / "README.md", ROOT / "benchmarks" / "README.md", ROOT / "export" / "README.md", ROOT / "reports" / "README.md",
        *sorted(p for p in (ROOT / "docs").glob("*.md") if not p.name.startswith("."))]
LINK = "@REPORTS@"  # a figure's links to reports/, made relative to the document that shows it
BUILD = ROOT / "build" / "figures"
PHOTOS = ROOT.parent / "shared" / "data" / "cats_vs_dogs_small"
MARK = re.compile(r"(<!-- figure:(?P<name>[\w.-]+) -->\n)(?P<body>.*?)(<!-- /figure:(?P=name) -->)", re.S)


@dataclass
class Figure:
    """One table: which reports it reads, how they are re-measured, how it is drawn."""

    name: str
    reports: list[str]
    render: Callable[[], str]
    measure: list[str] = field(default_factory=list)  # bash lines; $PY, $BUILD, $REPORTS, $PHOTOS are set
    what: str = ""


FIGURES: dict[str, Figure] = {}


def figure(name: str, reports: list[str], measure: list[str], what: str = ""):
    def deco(fn: Callable[[], str]) -> Callable[[], str]:
        FIGURES[name] = Figure(name, reports, fn, measure, what)
        return fn

    return deco


# -- helpers ------------------------------------------------------------------------
def load(rel: str) -> dict:
    path = REPORTS / rel
    if not path.is_file():
        raise SystemExit(f"figures: error: report not found: {path} (run: python scripts/figures.py measure)")
    return json.loads(path.read_text())


def md_tables(rel: str) -> list[str]:
    """The Markdown tables of a report, in order."""
    text = (REPORTS / rel).read_text()
    tables, cur = [], []
    for line in text.splitlines():
        if line.startswith("|"):
            cur.append(line)
        elif cur:
            tables.append("\n".join(cur))
            cur = []
    if cur:
        tables.append("\n".join(cur))
    return tables


def env_line(env: dict | None) -> str:
    """The machine a report ran on: CPU, cores, the CPU flags that decide int8 speed and the load, when recorded."""
    if not env:
        return "one run on one machine"
    if "text" in env:
        return f"one run on one machine ({env['text']})"
    cpu = env.get("cpu_model") or env.get("device") or env.get("machine") or "?"
    cores = env.get("cpu_cores_usable") or env.get("cpu_cores") or "?"
    py = env.get("python", "?")
    flags = env.get("cpu_flags")
    flags = ("CPU flags " + (" ".join(flags) if flags else "none of avx2/avx512_vnni/avx_vnni/amx_int8/asimddp")
             if flags is not None else "CPU flags not recorded")
    load = env.get("load_average")
    load = f", load average {' / '.join(f'{x:g}' for x in load)}" if load else ""
    return f"one run on one machine: {cpu}, {cores} cores, {flags}{load}, Python {py}"


def source(rel: str | list[str], cmd: str, env: dict | None = None) -> str:
    rels = [rel] if isinstance(rel, str) else rel
    links = ", ".join(f"[reports/{r}]({LINK}/{r})" if not r.startswith("../") else r for r in rels)
    return f"_From {links}, written by `{cmd}`; {env_line(env)}._"


def fmt(x: float | None, digits: int = 2, suffix: str = "") -> str:
    return "n/a" if x is None else f"{x:.{digits}f}{suffix}"


# -- the figures ----------------------------------------------------------------------
DEMO_MEASURE = [
    'make demo DEMO="$BUILD/demo"',
    'mkdir -p "$REPORTS/demo" && cp "$BUILD/demo/report/report.json" "$BUILD/demo/report/report.md" "$REPORTS/demo/"',
    'cp "$BUILD/demo/run/metrics.json" "$REPORTS/demo/train_metrics.json"',
]


@figure("demo", ["demo/report.json", "demo/report.md"], DEMO_MEASURE, "the table `make demo` prints")
def _demo() -> str:
    rep = load("demo/report.json")
    table = md_tables("demo/report.md")[0]
    return table + "\n\n" + source("demo/report.md", "make figures ONLY=demo", rep.get("environment"))


@figure("export_digits", ["export_digits/export_report.json", "export_digits/export_report.md"],
        ['test -d "$BUILD/demo/run" || make demo DEMO="$BUILD/demo"',
         '"$BIN/export-model" "$BUILD/demo/run" --format all --output "$BUILD/export_digits" --force',
         'mkdir -p "$REPORTS/export_digits" && cp "$BUILD/export_digits/export_report.json" "$BUILD/export_digits/export_report.md" "$REPORTS/export_digits/"'],
        "export-model --format all on the demo run")
def _export_digits() -> str:
    rep = load("export_digits/export_report.json")
    rows = ["| file | bytes | x float32 | disagreement with Keras (95% interval) | max prob diff | accuracy drop, points (95% interval) | verdict |",
            "|---|---:|---:|---|---:|---|---|"]
    for r in rep["files"]:
        if "size_bytes" not in r:
            continue
        lo, hi = r.get("top1_disagreement_ci") or (None, None)
        dlo, dhi = r.get("accuracy_drop_ci") or (None, None)
        rows.append(f"| {r['file']} | {r['size_bytes']:,} | {fmt(r.get('size_ratio_vs_float32'), 3)} "
                    f"| {r.get('top1_disagreements', '?')} of {r.get('agreement_samples', '?')} ({fmt(lo)}% to {fmt(hi)}%) "
                    f"| {r.get('max_abs_prob_diff', 0):.2g} | {r.get('accuracy_drop', 0):+.2f} ({fmt(dlo)} to {fmt(dhi)}) "
                    f"| {r.get('verdict', r.get('status', '?'))} |")
    keras = rep.get("keras", {})
    note = (f"Keras: {keras.get('test_accuracy')}% on the test split, {keras.get('heldout_accuracy')}% on the held-out "
            f"images the drop is measured on.")
    env = {"text": ", ".join(f"{k} {v}" for k, v in (rep.get("versions") or {}).items()
                             if k in ("tensorflow", "ai-edge-litert", "onnxruntime"))}
    return "\n".join(rows) + "\n\n" + note + " " + source("export_digits/export_report.md",
                                                         "make figures ONLY=export_digits", env)


VGG16_REPORTS = ["vgg16_160_latency.json", "vgg16_160_latency_epyc.json"]  # the committed Xeon (AMX) run, and this CPU's
VGG16_BUILD = 'bash scripts/measure_vgg16.sh "$BUILD/vgg16" -'


def _cpu_name(rep: dict) -> str:
    cpu = rep.get("cpu") or {}
    name = cpu.get("model") or (rep.get("environment") or {}).get("cpu_model") or "?"
    flags = [k for k, v in (cpu.get("flags") or {}).items() if v and k != "avx2"]
    return f"{name} ({', '.join(flags) or 'no int8 dot product'})" if cpu.get("flags") else f"{name} (flags not recorded)"


@figure("vgg16_160", VGG16_REPORTS,
        ['bash scripts/measure_vgg16.sh "$BUILD/vgg16" "$REPORTS/vgg16_160_latency_epyc.json"'],
        "VGG16 at 160x160, float32 vs int8, TFLite and ONNX, on two CPUs")
def _vgg16() -> str:
    reps = [load(r) for r in VGG16_REPORTS if (REPORTS / r).is_file()]
    threads = sorted({r["threads"] for rep in reps for r in rep["results"] if "p50_ms" in r})
    head = ("| CPU | file | size MB | " + " | ".join(f"p50 ms, {t} thread{'s' if t > 1 else ''}" for t in threads)
            + " | int8 / float32 |")
    rows = [head, "|---|---|---:|" + "---:|" * len(threads) + "---:|"]
    for rep in reps:
        by = {(r.get("format", "tflite"), r["quantize"], r["threads"]): r for r in rep["results"] if "p50_ms" in r}
        for fmt_ in ("tflite", "onnx"):
            for q in ("none", "int8"):
                rs = [by.get((fmt_, q, t)) for t in threads]
                if not any(rs):
                    continue
                size = next(r for r in rs if r)["size_bytes"] / 1e6
                ratio = ""
                if q == "int8":
                    ratio = ", ".join(f"{by[(fmt_, 'int8', t)]['p50_ms'] / by[(fmt_, 'none', t)]['p50_ms']:.2f}x ({t}t)"
                                      for t in threads if (fmt_, "int8", t) in by and (fmt_, "none", t) in by)
                name = f"{'TFLite' if fmt_ == 'tflite' else 'ONNX'} {'float32' if q == 'none' else 'int8'}"
                rows.append(f"| {_cpu_name(rep)} | {name} | {size:.1f} | "
                            + " | ".join(fmt(r and r["p50_ms"], 1) for r in rs) + f" | {ratio} |")
    runs = "; ".join(f"{(rep.get('cpu') or {}).get('model') or rep['environment'].get('cpu_model')} on {rep['created'][:10]}"
                     + (f", load average {rep['cpu']['load_average'][0]:.1f}" if (rep.get("cpu") or {}).get("load_average") else "")
                     for rep in reps)
    return "\n".join(rows) + "\n\n" + source(VGG16_REPORTS, "make figures ONLY=vgg16_160", {"text": runs}).replace(
        "one run on one machine", f"{len(reps)} runs on {len(reps)} machines")


@figure("runtime_overhead", ["runtime_overhead.json"],
        ['test -d "$BUILD/demo/models" || make demo DEMO="$BUILD/demo"',
         '"$PY" benchmarks/runtime_overhead.py "$BUILD/demo/models/model_float32.tflite" --out "$REPORTS"'],
        "edge_runtime's overhead, cold start and RSS against TensorFlow")
def _overhead() -> str:
    r = load("runtime_overhead.json")
    o, c, m, t = r["overhead"], r["cold_start"], r["peak_rss"], r["targets"]
    rows = ["| measure | edge_runtime | reference | ratio | target |", "|---|---:|---:|---:|---:|",
            f"| `predict` on a tensor vs a bare `invoke` loop (thread CPU time) | {o['predict_tensor_us']:.1f} us "
            f"| {o['bare_us']:.1f} us | **{o['ratio']:.3f}x** | <= {t['overhead']}x |",
            f"| cold start (import, load, first prediction) vs `import tensorflow` | {c['edge_s']:.2f} s "
            f"| {c['tensorflow_import_s']:.1f} s | **{c['ratio']:.3f}x** | <= {t['cold_start']}x |",
            f"| peak RSS vs the same inference through TensorFlow | {m['edge_mb']:.0f} MB | {m['tensorflow_mb']:.0f} MB "
            f"| **{m['ratio']:.3f}x** | <= {t['peak_rss']}x |"]
    env = r.get("environment") or {"text": f"{r.get('machine')}, Python {r.get('python')}, CPU flags not recorded"}
    return "\n".join(rows) + "\n\n" + source("runtime_overhead.json", "make figures ONLY=runtime_overhead", env)


SOAK_MODELS = ("model_float32.tflite", "model_int8.tflite", "model_float32.onnx")


@figure("soak", [f"soak_{m}.json" for m in SOAK_MODELS],
        ['test -d "$BUILD/demo/models" || make demo DEMO="$BUILD/demo"']
        + [f'"$PY" benchmarks/soak.py "$BUILD/demo/models/{m}" --json "$REPORTS/soak_{m}.json" --force' for m in SOAK_MODELS],
        "10,000 predictions in one process")
def _soak() -> str:
    rows = ["| model | predictions | RSS growth after warm-up | answer changes | target |", "|---|---:|---:|---:|---|"]
    env = None
    for m in SOAK_MODELS:
        r = load(f"soak_{m}.json")
        env = env or r.get("environment")
        res = r["result"]
        rows.append(f"| {m} | {res.get('predictions', 0):,} | {res['rss_growth_after_warmup_mb']:+.2f} MB "
                    f"| {res.get('answer_changes', 0)} | < {res.get('target_growth_mb', 5)} MB |")
    return "\n".join(rows) + "\n\n" + source([f"soak_{m}.json" for m in SOAK_MODELS], "make figures ONLY=soak", env)


@figure("fuzz", ["fuzz.json", "fuzz.md"],
        ['test -d "$BUILD/demo/models" || make demo DEMO="$BUILD/demo"',
         '"$PY" benchmarks/fuzz.py "$BUILD/demo/models" --cases 8000 --seed 2026 --baseline 10000 --out "$REPORTS"'],
        "mutated model files and images through ImageClassifier")
def _fuzz() -> str:
    r = load("fuzz.json")
    crashes = sum(v.get("crash", 0) for v in (r.get("baseline") or {}).values())
    base = sum(v.get("cases", 0) for v in (r.get("baseline") or {}).values())
    rows = ["| cases | unacceptable outcomes | worker restarts | baseline: the same mutations straight to the runtime |",
            "|---:|---:|---:|---|",
            f"| {r['total_cases']:,} | **{r['unacceptable']}** | {r.get('worker_restarts', 0)} | {crashes} crash{'' if crashes == 1 else 'es'} in {base:,} cases |"]
    env = r.get("environment") or {"text": f"{r.get('machine', '?')}, CPU flags not recorded"}
    return "\n".join(rows) + "\n\n" + source("fuzz.md", "make figures ONLY=fuzz", env)


PHOTO_RUN = [
    'test -d "$PHOTOS/cat" || { echo "the shared photos are needed: $PHOTOS" >&2; exit 2; }',
    'test -f "$BUILD/photo/model.keras" || "$BIN/train-model" --model small_cnn --data "$PHOTOS" --image-size 160 --output "$BUILD/photo" --force',
    'test -f "$BUILD/photo_models/model_int8.tflite" || "$BIN/export-model" "$BUILD/photo" --format tflite --quantize int8 --output "$BUILD/photo_models" --force',
]


def md_figure(name: str, md: str, measure: list[str], what: str, index: int = 0) -> None:
    """A figure that is table ``index`` of a report's own Markdown (its header says how and where it was measured)."""
    def render() -> str:
        tables = md_tables(md)
        if len(tables) <= index:
            raise SystemExit(f"figures: error: {md} has no table {index}")
        return tables[index] + "\n\n" + source(md, f"make figures ONLY={name}") .replace(
            "one run on one machine", f"one run on one machine, described at the top of {Path(md).name}")

    FIGURES[name] = Figure(name, [md], render, measure, what)


md_figure("throughput", "throughput.md", PHOTO_RUN + [
    '"$PY" benchmarks/throughput.py "$BUILD/photo_models/model_int8.tflite" "$PHOTOS" --out "$REPORTS/throughput" --force'],
    "edge-infer DIR --json against the plain OpenCV and Pillow loops, whole processes; the 2-core ceiling")
md_figure("jpeg_decode", "jpeg_decode.md", [
    'test -d "$PHOTOS/cat" || { echo "the shared photos are needed: $PHOTOS" >&2; exit 2; }',
    '"$PY" benchmarks/jpeg_decode.py "$PHOTOS" --wheels --out "$REPORTS/jpeg_decode" --force'],
    "JPEG decoders: speed, wheel size, import cost, pixel identity")
md_figure("serve_load", "serve_load.md", PHOTO_RUN + [VGG16_BUILD,
    '"$PY" benchmarks/serve_load.py "$BUILD/photo_models/model_int8.tflite" --photos "$PHOTOS" --requests 3000 '
    '--clients 32 --slow 50 --batch-models "$BUILD/photo_models/model_int8.tflite,$BUILD/vgg16/models/model_int8.tflite" '
    '--out "$REPORTS/serve_load" --force'],
    "32 keep-alive clients (4x the slots) beside 50 slow ones; --max-batch 1 vs 8 for two models; the queue bound")
md_figure("serve_stack", "serve_stack.md", ['"$PY" benchmarks/serve_stack.py --out "$REPORTS/serve_stack" --force'],
          "import time and RSS of the two async stacks")
md_figure("preprocess_speed", "preprocess_speed.md", PHOTO_RUN + [
    '"$PY" benchmarks/preprocess_speed.py "$PHOTOS" --model "$BUILD/photo_models/model_int8.tflite" '
    '--out "$REPORTS/preprocess_speed" --force'], "decode and resize methods: speed and parity")
md_figure("gate_photo", "gate_photo_run.md", [
    'test -d "$PHOTOS/cat" || { echo "the shared photos are needed: $PHOTOS" >&2; exit 2; }',
    'test -f "$BUILD/photo/model.keras" || "$BIN/train-model" --model small_cnn --data "$PHOTOS" --image-size 160 --output "$BUILD/photo" --force',
    '"$BIN/export-model" "$BUILD/photo" --format all --select fastest --output "$BUILD/photo_all" --force',
    '"$PY" scripts/gate_report.py --out "$REPORTS/gate_photo_run.md" photo="$BUILD/photo_all"'],
          "the evidence gate on the photo run", index=0)


# -- commands -------------------------------------------------------------------------
def rendered(name: str, doc: Path | None = None) -> str:
    """Figure ``name`` as ``doc`` shows it (its links to reports/ relative to ``doc``'s folder)."""
    rel = os.path.relpath(REPORTS, (doc or ROOT / "README.md").resolve().parent)
    return FIGURES[name].render().rstrip("\n").replace(LINK, Path(rel).as_posix()) + "\n"


def update(check: bool, docs: Sequence[Path] | None = None) -> int:
    docs = list(docs or DOCS)
    stale: list[str] = []
    unknown: list[str] = []
    for doc in docs:
        if not doc.is_file():
            continue
        text = doc.read_text()

        def sub(m: re.Match, doc: Path = doc) -> str:
            name = m.group("name")
            if name not in FIGURES:
                unknown.append(f"{doc.name}: {name}")
                return m.group(0)
            body = rendered(name, doc)
            if body != m.group("body"):
                stale.append(f"{doc.name}: {name}")
            return m.group(1) + body + m.group(4)

        new = MARK.sub(sub, text)
        if not check and new != text:
            tmp = doc.with_name(doc.name + ".tmp")
            tmp.write_text(new)
            os.replace(tmp, doc)
    if unknown:
        print("figures: error: unknown figure markers: " + "; ".join(unknown), file=sys.stderr)
        return 2
    if check and stale:
        print("figures: error: README tables differ from their reports (run: python scripts/figures.py render): "
              + "; ".join(stale), file=sys.stderr)
        return 1
    print(("checked" if check else "rendered") + f" {sum(len(MARK.findall(d.read_text())) for d in docs if d.is_file())} figure tables")
    return 0


def measure(names: Sequence[str]) -> int:
    env = dict(os.environ)
    bin_dir = Path(sys.executable).parent
    env.update(PY=sys.executable, BIN=str(bin_dir), BUILD=str(BUILD), REPORTS=str(REPORTS), PHOTOS=str(PHOTOS),
               PATH=f"{bin_dir}{os.pathsep}{env.get('PATH', '')}")
    BUILD.mkdir(parents=True, exist_ok=True)
    for name in names or list(FIGURES):
        if name not in FIGURES:
            print(f"figures: error: unknown figure {name!r}; expected one of: {', '.join(FIGURES)}", file=sys.stderr)
            return 2
        for line in FIGURES[name].measure:
            print(f"[{name}] $ {line}", flush=True)
            if subprocess.call(["bash", "-c", f"set -euo pipefail; {line}"], cwd=ROOT, env=env) != 0:
                print(f"figures: error: measuring {name} failed at: {line}", file=sys.stderr)
                return 1
    return update(check=False)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="figures", description=__doc__.split("\n\n")[0])
    p.add_argument("command", choices=("render", "check", "measure", "list"))
    p.add_argument("names", nargs="*", help="figures to measure (default all)")
    p.add_argument("--doc", action="append", type=Path, help="render/check only this Markdown file (repeatable)")
    a = p.parse_args(argv)
    if a.command == "list":
        for f in FIGURES.values():
            print(f"{f.name}: {f.what}\n  reports: {', '.join(f.reports)}\n  measure: " + "\n           ".join(f.measure))
        return 0
    if a.command == "measure":
        return measure(a.names)
    return update(check=a.command == "check", docs=a.doc)


if __name__ == "__main__":
    sys.exit(main())
