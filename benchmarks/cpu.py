"""The CPU a figure was measured on: its model, the flags that decide int8 speed, the load on it.

    from edgedeploy.bench.cpu import cpu_record
    cpu_record()  # {"model": "AMD EPYC", "flags": {"avx2": True, "avx512_vnni": True, ...}, "load_average": [...]}

The flags (from /proc/cpuinfo; all False where it is absent):

- ``avx2``: 8-bit integer SIMD on x86, but no dot product: int8 barely beats float32;
- ``avx512_vnni`` / ``avx_vnni``: int8 dot products (VPDPBUSD), 4 MACs per lane per instruction;
- ``amx_int8``: Intel AMX tiles (Sapphire Rapids and later), a matrix unit far faster still for int8;
- ``asimddp``: Arm's dot product (SDOT/UDOT: the Pi 5's Cortex-A76 has it, the Pi 4's A72 does not).
"""
from __future__ import annotations

import os
from typing import Any

INT8_FLAGS = ("avx2", "avx512_vnni", "avx_vnni", "amx_int8", "asimddp")


def cpu_flags(cpuinfo: str | None = None) -> dict[str, bool]:
    """Which of ``INT8_FLAGS`` this CPU reports."""
    if cpuinfo is None:
        try:
            with open("/proc/cpuinfo") as f:
                cpuinfo = f.read()
        except OSError:
            cpuinfo = ""
    found: set[str] = set()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() in ("flags", "features"):
            found.update(value.split())
    return {flag: flag in found for flag in INT8_FLAGS}


def load_average() -> list[float]:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return []


def cpu_record() -> dict[str, Any]:
    """Model, int8 flags, usable cores and the load average now (1, 5, 15 min)."""
    from edgedeploy.core.environment import cpu_model, default_threads

    return {"model": cpu_model(), "flags": cpu_flags(), "cores": default_threads(), "load_average": load_average()}


def flags_text(flags: dict[str, bool]) -> str:
    """'avx2 yes, avx512_vnni yes, avx_vnni yes, amx_int8 no, asimddp no'."""
    return ", ".join(f"{k} {'yes' if v else 'no'}" for k, v in flags.items())
