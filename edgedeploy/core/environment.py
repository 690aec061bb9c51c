"""What a figure was measured on, captured once: CPU, cores, board, clock, heat, package versions.

    from edgedeploy.core.environment import default_threads, environment, package_versions

- ``default_threads()``: the cores this process may use; the runtime thread
  default everywhere (ImageClassifier, edge-infer, the benchmarks).
- ``package_versions(names)``: installed versions (train-model's config.json,
  export-model's report, the benchmark reports all call it).
- ``environment(device_name)``: the full record every performance report carries: CPU model,
  the CPU flags that decide int8 speed (``cpu_flags``), the load average while it ran, cores,
  board, clock, heat, versions.

Standard library only (works on a Pi with just the ``edge`` extra); /proc and
/sys are read when present, ``vcgencmd`` is asked on a Pi.
"""
from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
from typing import Any, Iterable

from edgedeploy import __version__

# The packages the edge side reports; train/ and export/ pass their own lists.
EDGE_PACKAGES = ("edgedeploy", "numpy", "pillow", "ai-edge-litert", "tflite-runtime", "onnxruntime", "matplotlib", "tqdm")

_ARM_PARTS = {"0xd03": "Cortex-A53", "0xd04": "Cortex-A35", "0xd05": "Cortex-A55", "0xd07": "Cortex-A57",
              "0xd08": "Cortex-A72", "0xd09": "Cortex-A73", "0xd0a": "Cortex-A75", "0xd0b": "Cortex-A76",
              "0xd0c": "Neoverse-N1", "0xd0d": "Cortex-A77", "0xd41": "Cortex-A78", "0xd46": "Cortex-A510",
              "0xd47": "Cortex-A710", "0xd4b": "Cortex-A78C", "0xb76": "ARM1176", "0xc07": "Cortex-A7"}


# The CPU features that decide how fast int8 (and float) inference can be: x86 AVX2 and the int8
# dot-product extensions (AVX-512 VNNI, AVX-VNNI), AMX; Arm's dot product (asimddp, the Pi 5's
# Cortex-A76 has it, the Pi 4's A72 does not) and int8 matrix multiply.
CPU_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_tile", "amx_int8", "amx_bf16",
             "asimd", "asimddp", "i8mm", "sve")


def cpu_flags() -> list[str]:
    """Which of ``CPU_FLAGS`` this CPU reports (/proc/cpuinfo's ``flags`` on x86, ``Features`` on Arm); [] elsewhere."""
    have: set[str] = set()
    for line in (_read("/proc/cpuinfo") or "").splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() in ("flags", "features"):
            have.update(value.split())
    return [f for f in CPU_FLAGS if f in have]


def load_average() -> list[float] | None:
    """The 1, 5 and 15 minute load averages (other jobs on a shared machine), or None where unknown."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def describe_cpu(env: dict[str, Any]) -> str:
    """One line for a report: ``AMD EPYC, 2 cores, flags avx2 avx512_vnni ..., load 3.1 / 2.8 / 2.5``."""
    flags = env.get("cpu_flags")
    load = env.get("load_average")
    return (f"{env.get('cpu_model', '?')}, {env.get('cpu_cores_usable') or env.get('cpu_cores', '?')} cores"
            + (f", flags {' '.join(flags) if flags else 'none of ' + '/'.join(CPU_FLAGS[:6])}" if flags is not None else "")
            + (f", load average {' / '.join(f'{x:g}' for x in load)}" if load else ""))


def default_threads() -> int:
    """All cores this process may use (its CPU affinity on Linux; a Pi 4/5 has 4)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def package_versions(names: Iterable[str] = EDGE_PACKAGES, missing: str | None = None,
                     skip_missing: bool = False) -> dict[str, str | None]:
    """``{distribution: version}`` for ``names``.

    Args:
        names: distribution names as pip knows them.
        missing: the value for a package that is not installed (default None).
        skip_missing: leave packages that are not installed out instead.

    An uninstalled ``edgedeploy`` run from a checkout reports
    ``"<version> (source checkout)"``.
    """
    from importlib import metadata

    out: dict[str, str | None] = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            if name == "edgedeploy":

                out[name] = f"{__version__} (source checkout)"
            elif not skip_missing:
                out[name] = missing
    return out


def _read(path: str) -> str | None:
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "replace").replace("\x00", "").strip()
    except OSError:
        return None


def cpu_model() -> str:
    """The CPU's marketing name, or its ARM core names (Cortex-A72 ...) from /proc/cpuinfo."""
    info = _read("/proc/cpuinfo") or ""
    fields: dict[str, str] = {}
    parts: list[str] = []
    for line in info.splitlines():
        if ":" in line:
            k, v = (s.strip() for s in line.split(":", 1))
            fields.setdefault(k.lower(), v)
            if k.lower() == "cpu part":
                parts.append(v.lower())
    for key in ("model name", "cpu model", "processor"):
        v = fields.get(key, "")
        if v and not v.isdigit():
            return v
    if parts:
        names = sorted({_ARM_PARTS.get(p, f"ARM part {p}") for p in parts})
        return " + ".join(names)
    if platform.system() == "Darwin":
        try:
            return subprocess.run(["sysctl", "-n", "machdep.cpu.brand_string"], capture_output=True, text=True, timeout=5).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            pass
    return platform.processor() or platform.machine() or "unknown"


def _throttled() -> str | None:
    """``vcgencmd get_throttled`` on a Pi (0x0 = never throttled), None where there is no vcgencmd."""
    exe = shutil.which("vcgencmd")
    if not exe:
        return None
    try:
        out = subprocess.run([exe, "get_throttled"], capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return out.split("=", 1)[-1] if out else None


def environment(device_name: str | None = None, packages: Iterable[str] = EDGE_PACKAGES) -> dict[str, Any]:
    """What the figures were measured on: CPU, cores, arch; the Pi's board, clock, heat, throttling; versions."""
    env: dict[str, Any] = {
        "cpu_model": cpu_model(),
        "cpu_flags": cpu_flags(),
        "load_average": load_average(),
        "cpu_cores": os.cpu_count(),
        "cpu_cores_usable": default_threads(),
        "arch": platform.machine(),
        "os": f"{platform.system()} {platform.release()}",
        "board_model": _read("/proc/device-tree/model"),
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "packages": package_versions(packages),
    }
    cpufreq = "/sys/devices/system/cpu/cpu0/cpufreq"
    cur, mx = _read(f"{cpufreq}/scaling_cur_freq"), _read(f"{cpufreq}/cpuinfo_max_freq")
    env["cpu_freq_mhz"] = round(int(cur) / 1000) if cur and cur.isdigit() else None
    env["cpu_max_freq_mhz"] = round(int(mx) / 1000) if mx and mx.isdigit() else None
    env["cpu_governor"] = _read(f"{cpufreq}/scaling_governor")
    temp = _read("/sys/class/thermal/thermal_zone0/temp")
    env["temperature_c"] = round(int(temp) / 1000, 1) if temp and temp.lstrip("-").isdigit() else None
    env["throttled"] = _throttled()
    env["device"] = device_name or env["board_model"] or f"{env['cpu_model']} ({env['arch']}, {env['cpu_cores']} cores)"
    return env


def python_version() -> str:
    return sys.version.split()[0]
