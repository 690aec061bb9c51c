"""Cold-process cost of the ways a registry could find plug-ins; writes reports/plugin_discovery_cost.txt.

    python scripts/plugin_discovery_cost.py [--repeats 7]

Why: edge_runtime's backends registry imports the modules of its package and
those named in EDGEDEPLOY_BACKENDS; Python entry points (importlib.metadata)
were measured too and left out, since every edge-infer cold start would pay
for them. Each figure is the median over fresh processes; one run, one machine.
"""
from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CASES = {
    "importlib.metadata import + entry_points(group='edgedeploy.backends') scan":
        "import time; t = time.perf_counter(); from importlib.metadata import entry_points; "
        "entry_points(group='edgedeploy.backends'); print((time.perf_counter() - t) * 1e3)",
    "edge_runtime backends registry discovery (pkgutil + built-in modules + EDGEDEPLOY_BACKENDS), numpy already loaded":
        "import time, numpy; from edgedeploy.runtime.backends import BACKENDS; t = time.perf_counter(); BACKENDS.names(); "
        "print((time.perf_counter() - t) * 1e3)",
}


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    repeats = int(args[args.index("--repeats") + 1]) if "--repeats" in args else 7
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    lines = [f"# plug-in discovery cost: median of {repeats} fresh processes each (one run, one machine)",
             f"# python {platform.python_version()}, {platform.machine()}, {os.cpu_count()} cores; "
             f"load average {os.getloadavg()[0]:.1f} at the start (shared machine); "
             f"written by: python scripts/plugin_discovery_cost.py --repeats {repeats}"]
    for name, code in CASES.items():
        ms = [float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env).stdout)
              for _ in range(repeats)]
        lines.append(f"{name}: median {statistics.median(ms):.1f} ms (min {min(ms):.1f}, max {max(ms):.1f})")
    out = ROOT / "reports" / "plugin_discovery_cost.txt"
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
