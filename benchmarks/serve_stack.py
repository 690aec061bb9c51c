"""Which async stack for ``edge-infer --serve``: import time and memory, measured.

    python benchmarks/serve_stack.py [--runs 11] [--out reports/serve_stack] [--force] [--from-json JSON]

For each candidate (Starlette + uvicorn, aiohttp) and for the edge core it
is added to, it starts ``--runs`` fresh interpreters that import exactly
what the server needs, and records:

* wall time of ``python -c "import ..."`` (min and median over the runs; the
  bare interpreter is its own row; runs are interleaved across rows);
* ``python -X importtime``: the summed cumulative import time of the
  statement's top-level imports, less the interpreter's start-up imports;
* peak RSS (VmHWM) of that interpreter, and the modules it loaded;
* the same on top of the edge core (numpy, Pillow, edge_runtime.classifier),
  as a Pi running edge-infer would pay it;
* whether each distribution of the stack ships compiled extensions (a
  compiled wheel must exist for the Pi's platform; pure Python installs anywhere).

Writes OUT.json and OUT.md. Figures are one run on one machine.
"""
from __future__ import annotations

import re
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Sequence

from edgedeploy.bench import _common as C
from edgedeploy.core.command import ArgumentParser, run_command
from edgedeploy.core.errors import EdgeDeployError

PROG = "serve_stack.py"
EDGE_CORE = "import numpy, PIL.Image, edgedeploy.runtime.classifier"
STACKS = {
    "starlette+uvicorn": {
        "imports": "import uvicorn, starlette.applications, starlette.routing, starlette.requests, "
                   "starlette.responses, python_multipart.multipart",
        "dists": ["starlette", "uvicorn", "h11", "anyio", "click", "idna", "python-multipart"],
    },
    "aiohttp": {
        "imports": "import aiohttp.web",
        "dists": ["aiohttp", "multidict", "yarl", "frozenlist", "propcache", "aiosignal", "aiohappyeyeballs", "attrs"],
    },
}
SHARED = "import prometheus_client"  # both stacks would use it for /metrics
PROBE = ("import sys\n{stmt}\n"
         "hwm = [l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM:')]\n"
         "print(hwm[0] if hwm else 0, len(sys.modules))\n")


def _one(stmt: str) -> tuple[float, int, int]:
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", PROBE.format(stmt=stmt)], capture_output=True, text=True, timeout=120)
    wall = time.perf_counter() - t0
    if out.returncode != 0:
        raise EdgeDeployError(f"Received import {stmt!r}, which failed: {(out.stderr.strip().splitlines() or ['?'])[-1]}")
    hwm, mods = out.stdout.split()
    return wall, int(hwm), int(mods)


def _importtime_us(stmt: str) -> int:
    """Summed cumulative microseconds of the top-level imports ``stmt`` triggers (after start-up)."""
    out = subprocess.run([sys.executable, "-X", "importtime", "-c", stmt], capture_output=True, text=True, timeout=120)
    total = 0
    for line in out.stderr.splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+(\d+) \| (\S.*)$", line)  # one space before the name: top level
        if m:
            total += int(m.group(2))
    return total


def measure_all(stmts: dict[str, str], runs: int) -> dict[str, dict[str, Any]]:
    """Every statement ``runs`` times, interleaved (row after row, then again), so machine noise hits all alike."""
    raw: dict[str, dict[str, list]] = {k: {"wall": [], "hwm": [], "mods": [], "imp": []} for k in stmts}
    for _ in range(runs):
        for key, stmt in stmts.items():
            w, h, m = _one(stmt)
            r = raw[key]
            r["wall"].append(w)
            r["hwm"].append(h)
            r["mods"].append(m)
            r["imp"].append(_importtime_us(stmt))
    start_imp = statistics.median(raw["python (nothing)"]["imp"])  # the interpreter's own start-up imports
    rows = {}
    for key, r in raw.items():
        imp = [max(0, v - start_imp) for v in r["imp"]]
        rows[key] = {"statement": stmts[key], "wall_median_s": round(statistics.median(r["wall"]), 4),
                     "wall_min_s": round(min(r["wall"]), 4),
                     "importtime_median_ms": round(statistics.median(imp) / 1000, 1),
                     "importtime_min_ms": round(min(imp) / 1000, 1),
                     "peak_rss_median_mb": round(statistics.median(r["hwm"]) / 1024, 1),
                     "modules": int(statistics.median(r["mods"]))}
    return rows


def dist_facts(names: Sequence[str]) -> list[dict[str, Any]]:
    from importlib import metadata

    out = []
    for name in names:
        try:
            d = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            out.append({"dist": name, "version": None, "compiled": None})
            continue
        files = [str(f) for f in (d.files or [])]
        out.append({"dist": name, "version": d.version, "compiled": any(f.endswith((".so", ".pyd")) for f in files)})
    return out


def run(args: Any) -> int:
    out_json, out_md = Path(args.out + ".json"), Path(args.out + ".md")
    if args.from_json:  # re-render the Markdown of a finished run, measuring nothing
        C.check_outputs([out_md], args.force)
        md = render_md(C.load_json_report(args.from_json))
        C.write_text(out_md, md, args.force)
        print(md)
        return 0
    C.check_outputs([out_json, out_md], args.force)
    stmts = {"python (nothing)": "pass", "edge core": EDGE_CORE}
    for name, spec in STACKS.items():
        stmts[name] = f"{spec['imports']}; {SHARED}"
        stmts[f"edge core + {name}"] = f"{EDGE_CORE}; {spec['imports']}; {SHARED}"
    rows = measure_all(stmts, args.runs)
    base = rows["edge core"]
    for name in STACKS:
        r = rows[f"edge core + {name}"]
        r["added_wall_min_s"] = round(r["wall_min_s"] - base["wall_min_s"], 4)
        r["added_importtime_min_ms"] = round(r["importtime_min_ms"] - base["importtime_min_ms"], 1)
        r["added_rss_mb"] = round(r["peak_rss_median_mb"] - base["peak_rss_median_mb"], 1)
    report = {"tool": "serve_stack", "schema": C.REPORT_SCHEMA, "created": C.now_iso(), "runs": args.runs,
              "environment": C.environment(), "rows": rows,
              "dists": {name: dist_facts(spec["dists"]) for name, spec in STACKS.items()}}
    C.write_json(out_json, report, args.force)
    md = render_md(report)
    C.write_text(out_md, md, args.force)
    print(md)
    return 0


def render_md(report: dict) -> str:
    env, rows = report["environment"], report["rows"]
    table = C.table(["imported", "wall min / median (s)", "-X importtime min / median (ms)", "peak RSS (MB)",
                     "modules", "added to edge core: wall min (s) / importtime min (ms) / RSS (MB)"],
                    [[k, f"{r['wall_min_s']:.3f} / {r['wall_median_s']:.3f}",
                      f"{r['importtime_min_ms']:.1f} / {r['importtime_median_ms']:.1f}",
                      f"{r['peak_rss_median_mb']:.1f}", r["modules"],
                      f"{r['added_wall_min_s']:+.3f} / {r['added_importtime_min_ms']:+.1f} / {r['added_rss_mb']:+.1f}"
                      if "added_wall_min_s" in r else ""]
                     for k, r in rows.items()], markdown=True)
    dists = "\n".join(f"- **{name}**: " + ", ".join(
        f"{d['dist']} {d['version'] or '(missing)'}{' (compiled)' if d['compiled'] else ''}" for d in ds)
        for name, ds in report["dists"].items())
    return (f"# Serve stack: import time and memory\n\n"
            f"One run on one machine ({env['device']}, Python {env['python']}), {report['created']}; "
            f"{report['runs']} fresh interpreters per row, interleaved; `python benchmarks/serve_stack.py`. "
            f"The machine is shared (2 cores), so wall times are noisy: the minimum is the figure to compare; "
            f"-X importtime excludes the interpreter's own start-up imports. "
            f"Both stacks rows include prometheus_client (the /metrics endpoint needs it either way). "
            f"The venv also holds the train/export packages; only what each row imports is loaded.\n\n"
            f"{table}\n\nDistributions each stack installs (compiled = ships native extensions):\n\n{dists}\n\n"
            f"{verdict(report)}\n")


def verdict(report: dict) -> str:
    """The choice, from the figures: lower added RSS and import time wins; pure Python breaks a tie."""
    rows, dists = report["rows"], report["dists"]
    added = {name: rows[f"edge core + {name}"] for name in dists}
    best = min(added, key=lambda n: (added[n]["added_rss_mb"], added[n]["added_importtime_min_ms"]))
    other = next(n for n in added if n != best)
    compiled = [d["dist"] for d in dists[other] if d["compiled"]]
    b, o = added[best], added[other]
    return (f"**Choice: {best}.** On top of the edge core it adds {b['added_rss_mb']:.1f} MB of RSS against "
            f"{o['added_rss_mb']:.1f} MB, {b['added_importtime_min_ms']:.0f} ms of import time against "
            f"{o['added_importtime_min_ms']:.0f} ms (-X importtime, min), and {b['added_wall_min_s']:.2f} s against "
            f"{o['added_wall_min_s']:.2f} s of wall time (min)."
            + (f" {other} also needs compiled wheels ({', '.join(compiled)}) for the device's platform; "
               f"{best} ships {'none' if not any(d['compiled'] for d in dists[best]) else 'some'}." if compiled else ""))


def build_parser() -> ArgumentParser:
    p = ArgumentParser(prog=PROG, description="Measure the import time and RSS of the candidate serve stacks.")
    p.add_argument("--runs", type=C.positive_int("--runs"), default=11, help="fresh interpreters per row (default 11)")
    p.add_argument("--out", default="reports/serve_stack", help="writes OUT.json and OUT.md (default reports/serve_stack)")
    p.add_argument("--from-json", metavar="JSON", help="only re-render OUT.md from this report JSON (no measuring)")
    p.add_argument("--force", action="store_true", help="overwrite existing report files")
    p.add_argument("--debug", action="store_true", help="show the full traceback on errors")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    return run_command(PROG, build_parser, run, argv)


if __name__ == "__main__":
    sys.exit(main())
