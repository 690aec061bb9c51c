"""Every performance report says what it ran on: the CPU model, the CPU flags that decide int8 speed, the load."""
from __future__ import annotations

import json

import pytest

from edgedeploy.core import environment as E

from bench_helpers import bench_export_dir, compare_run, run_script

X86 = "processor\t: 0\nmodel name\t: Intel(R) Xeon(R) Processor\nflags\t\t: fpu sse avx2 fma avx512f avx512_vnni amx_tile amx_int8\n"
PI5 = "processor\t: 0\nFeatures\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp\nCPU part\t: 0xd0b\n"
PI4 = "processor\t: 0\nFeatures\t: fp asimd evtstrm crc32 cpuid\nCPU part\t: 0xd08\n"


@pytest.mark.parametrize("cpuinfo, model, flags", [
    (X86, "Intel(R) Xeon(R) Processor", ["avx2", "fma", "avx512f", "avx512_vnni", "amx_tile", "amx_int8"]),
    (PI5, "Cortex-A76", ["asimd", "asimddp"]),
    (PI4, "Cortex-A72", ["asimd"]),  # no dot product: int8 can be barely faster than float32 there
])
def test_the_record_names_the_cpu_its_int8_flags_and_the_load(monkeypatch, cpuinfo, model, flags):
    real = E._read
    monkeypatch.setattr(E, "_read", lambda p: cpuinfo if p == "/proc/cpuinfo" else real(p))
    env = E.environment()
    assert env["cpu_model"] == model and env["cpu_flags"] == flags
    load = env["load_average"]
    assert isinstance(load, list) and len(load) == 3 and all(isinstance(x, float) and x >= 0 for x in load)
    line = E.describe_cpu(env)
    assert line.startswith(f"{model}, ") and f"flags {' '.join(flags)}" in line and "load average" in line


def _check(env: dict, where: str) -> None:
    assert env.get("cpu_model") and isinstance(env.get("cpu_flags"), list), (where, env)
    assert isinstance(env.get("load_average"), list) and len(env["load_average"]) == 3, (where, env)


def test_every_benchmark_report_carries_it(tmp_path):
    d = bench_export_dir()
    out, _, _ = compare_run()
    rep = json.loads((out / "report.json").read_text())
    _check(rep["environment"], "compare")
    assert rep["environment"]["load_average_before"] is not None
    md = (out / "report.md").read_text()
    assert "CPU flags that decide int8 speed:" in md and "Load average (1/5/15 min):" in md

    assert run_script("latency", d / "model_int8.tflite", "--quick", "--threads", "1", "--json", tmp_path / "lat.json").returncode == 0
    _check(json.loads((tmp_path / "lat.json").read_text())["environment"], "latency")

    assert run_script("soak", d / "model_int8.tflite", "--quick", "--json", tmp_path / "soak.json").returncode == 0
    _check(json.loads((tmp_path / "soak.json").read_text())["environment"], "soak")

    assert run_script("merge", out / "report.json", tmp_path / "lat.json", "--out", tmp_path / "m").returncode == 0
    merged = json.loads((tmp_path / "m" / "merged.json").read_text())
    _check(merged["environment"], "merge")
    for dev in merged["devices"]:
        _check(dev["environment"], "merge device")
    assert (tmp_path / "m" / "merged.md").read_text().count("load average") == 2

    proc = run_script("fuzz", d / "model_int8.tflite", "--cases", "2", "--image-cases", "2", "--out", tmp_path / "fz")
    assert proc.returncode == 0, proc.stderr
    _check(json.loads((tmp_path / "fz" / "fuzz.json").read_text())["environment"], "fuzz")
    assert "flags " in (tmp_path / "fz" / "fuzz.md").read_text()


def test_runtime_overhead_report_says_it_too():
    """runtime_overhead.py takes minutes (TensorFlow's side in fresh processes): its report's text is checked here;
    measure() puts environment() in the report it returns."""
    import inspect

    from edgedeploy.bench import runtime_overhead as R

    assert '"environment": environment()' in inspect.getsource(R.measure)
    rep = {"model": "m.tflite", "threads": 1, "repeats": 1, "machine": "x86_64", "python": "3.11",
           "environment": E.environment(), "python_startup_s": 0.1, "heaviest_imports": [], "tensorflow": "measured",
           "overhead": {"predict_tensor_us": 1, "bare_us": 1, "ratio": 1.0, "wall_predict_tensor_us": 1, "wall_bare_us": 1,
                        "ratio_wall": 1.0, "delegate_applied": True},
           "cold_start": {"edge_s": 0.1, "tensorflow_import_s": 3, "ratio": 0.03, "edge_first_sight_with_probe_s": 0.2},
           "peak_rss": {"edge_mb": 50, "tensorflow_mb": 600, "ratio": 0.08}}
    text = R.markdown(rep)
    assert E.describe_cpu(rep["environment"]) in text and "load average" in text
