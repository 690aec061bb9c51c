"""benchmarks/latency.py: the report's fields and values, fresh processes, the same inputs, GMAC/s."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

from bench_helpers import VARIANTS, bench_export_dir, edge_models_dir, fixture_macs, run_script

FIELDS = ("variant", "label", "path", "format", "quantize", "size_bytes", "sha256", "backend", "threads", "batch_size",
          "import_ms", "load_ms", "first_inference_ms", "cold_start_ms", "mean_ms", "std_ms", "min_ms", "max_ms", "p50_ms",
          "p90_ms", "p99_ms", "throughput_ips", "peak_rss_mb", "rss_before_load_mb", "rss_after_load_mb", "macs",
          "gmacs_per_s", "pct_of_peak", "delegate_applied", "warmup", "runs", "seed", "input_sha256", "pid")


@pytest.fixture(scope="module")
def quick_report(tmp_path_factory):
    out = tmp_path_factory.mktemp("lat") / "latency.json"
    proc = run_script("latency", bench_export_dir(), "--quick", "--threads", "1,2", "--peak-gflops", "50", "--json", out)
    assert proc.returncode == 0, proc.stderr
    return json.loads(out.read_text()), proc


def test_one_row_per_model_backend_and_thread_count(quick_report):
    report, _ = quick_report
    rows = report["results"]
    assert [(r["variant"], r["threads"]) for r in rows] == [(v, t) for v in VARIANTS for t in (1, 2)]
    assert {r["variant"]: r["backend"] for r in rows} == {"model_float32.tflite": "litert", "model_int8.tflite": "litert",
                                                          "model_float32.onnx": "onnxruntime"}
    for r in rows:
        missing = [f for f in FIELDS if f not in r]
        assert not missing, missing


def test_percentiles_are_ordered_and_stats_consistent(quick_report):
    for r in quick_report[0]["results"]:
        assert 0 < r["min_ms"] <= r["p50_ms"] <= r["p90_ms"] <= r["p99_ms"] <= r["max_ms"]
        assert r["min_ms"] <= r["mean_ms"] <= r["max_ms"]
        assert r["std_ms"] >= 0
        assert r["throughput_ips"] == pytest.approx(r["batch_size"] * 1000 / r["mean_ms"], rel=1e-9)
        assert r["load_ms"] > 0 and r["first_inference_ms"] > 0
        assert r["cold_start_ms"] == pytest.approx(r["import_ms"] + r["load_ms"] + r["first_inference_ms"])


def test_sizes_are_the_bytes_on_disk(quick_report):
    for r in quick_report[0]["results"]:
        assert r["size_bytes"] == os.path.getsize(r["path"])


def test_each_run_is_a_fresh_process_with_its_own_peak_rss(quick_report):
    rows = quick_report[0]["results"]
    pids = [r["pid"] for r in rows]
    assert len(set(pids)) == len(rows)
    assert os.getpid() not in pids
    for r in rows:
        assert 10 < r["peak_rss_mb"] < 2000  # a tiny model in a Python process: tens of MB
        assert r["rss_before_load_mb"] <= r["peak_rss_mb"]


def test_every_variant_gets_the_same_seeded_input(quick_report):
    report, _ = quick_report
    rows = report["results"]
    assert {r["input_sha256"] for r in rows} == {rows[0]["input_sha256"]}
    assert {r["seed"] for r in rows} == {0} and report["settings"]["seed"] == 0
    from edgedeploy.bench import latency

    a = latency.synthetic_pixels(0, 32, 32, 32, 3)
    import hashlib

    assert hashlib.sha256(a.tobytes()).hexdigest() == rows[0]["input_sha256"]
    assert not np.array_equal(a, latency.synthetic_pixels(1, 32, 32, 32, 3))


def test_warmup_and_run_counts_are_recorded(quick_report):
    report, _ = quick_report
    assert report["settings"]["warmup"] == 3 and report["settings"]["runs"] == 20 and report["settings"]["quick"] is True
    assert all(r["warmup"] == 3 and r["runs"] == 20 for r in report["results"])


def test_gmacs_from_the_manifest_and_percent_of_peak(quick_report):
    macs = fixture_macs()
    for r in quick_report[0]["results"]:
        assert r["macs"] == macs
        assert r["gmacs_per_s"] == pytest.approx(macs * r["batch_size"] / (r["p50_ms"] / 1e3) / 1e9)
        assert r["pct_of_peak"] == pytest.approx(100 * 2 * r["gmacs_per_s"] / 50)


def test_delegate_is_reported_for_tflite_only(quick_report):
    for r in quick_report[0]["results"]:
        if r["format"] == "tflite":
            assert r["delegate_applied"] in (True, False)
        else:
            assert r["delegate_applied"] is None


def test_environment_and_table_on_stdout(quick_report):
    report, proc = quick_report
    env = report["environment"]
    for k in ("cpu_model", "cpu_cores", "arch", "python", "packages", "board_model", "cpu_governor", "temperature_c", "throttled", "device"):
        assert k in env
    assert env["packages"]["numpy"] == np.__version__
    assert "p50 ms" in proc.stdout and "model_int8.tflite" in proc.stdout


def test_a_model_without_macs_says_na(tmp_path):
    nomanifest = edge_models_dir() / "model_nomanifest.tflite"
    out = tmp_path / "l.json"
    proc = run_script("latency", nomanifest, "--warmup", "1", "--runs", "3", "--threads", "1", "--json", out)
    assert proc.returncode == 0, proc.stderr
    row = json.loads(out.read_text())["results"][0]
    assert row["macs"] is None and row["gmacs_per_s"] is None
    assert "n/a" in proc.stdout


def test_batch_size_and_explicit_backend(tmp_path):
    out = tmp_path / "l.json"
    proc = run_script("latency", bench_export_dir() / "model_float32.onnx", "--backend", "onnxruntime", "--batch-size", "4",
                      "--warmup", "1", "--runs", "4", "--threads", "1", "--json", out)
    assert proc.returncode == 0, proc.stderr
    row = json.loads(out.read_text())["results"][0]
    assert row["batch_size"] == 4 and row["backend"] == "onnxruntime"
    assert row["throughput_ips"] == pytest.approx(4000 / row["mean_ms"])
    assert row["gmacs_per_s"] == pytest.approx(fixture_macs() * 4 / (row["p50_ms"] / 1e3) / 1e9)


def test_report_is_not_overwritten_without_force(tmp_path):
    out = tmp_path / "l.json"
    out.write_text("{}")
    proc = run_script("latency", bench_export_dir() / "model_int8.tflite", "--quick", "--json", out)
    assert proc.returncode == 2 and "--force" in proc.stderr
    assert out.read_text() == "{}"


def test_a_backend_that_reads_only_some_files_skips_the_others(tmp_path):
    out = tmp_path / "l.json"
    proc = run_script("latency", bench_export_dir(), "--backend", "litert", "--warmup", "1", "--runs", "3", "--threads", "1",
                      "--json", out)
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(out.read_text())["results"]
    assert [r["variant"] for r in rows] == ["model_float32.tflite", "model_int8.tflite"]
    assert "skipped: none of the backends litert reads model_float32.onnx" in proc.stderr
