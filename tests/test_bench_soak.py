"""benchmarks/soak.py: many predictions in one process, RSS growth after warm-up in the report."""
from __future__ import annotations

import json

import pytest

from bench_fixtures import bench_export_dir, run_script


@pytest.mark.parametrize("variant,mode", [("model_int8.tflite", "image"), ("model_float32.onnx", "tensor")])
def test_soak_quick_reports_rss_growth(tmp_path, variant, mode):
    out = tmp_path / "soak.json"
    proc = run_script("soak", bench_export_dir() / variant, "--quick", "--mode", mode, "--json", out)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rep = json.loads(out.read_text())
    r = rep["result"]
    assert rep["settings"]["predictions"] == 300 and rep["settings"]["warmup"] == 50
    assert r["predictions"] == 300 and r["warmup"] == 50 and r["mode"] == mode
    assert r["rss_growth_after_warmup_mb"] == pytest.approx(r["rss_end_mb"] - r["rss_after_warmup_mb"], abs=0.02)
    assert r["within_target"] is (r["rss_growth_after_warmup_mb"] < 5.0)
    assert r["answer_changes"] == 0
    preds = [s["prediction"] for s in r["samples"]]
    assert preds == sorted(preds) and preds[-1] == 300 and 50 in preds
    assert all(s["rss_mb"] > 0 for s in r["samples"])
    assert "growth" in proc.stdout and "PASS" in proc.stdout


def test_soak_fails_when_growth_exceeds_the_target(tmp_path):
    # A target no process can meet shows the failure path: exit 1, FAIL, figures still written.
    out = tmp_path / "soak.json"
    proc = run_script("soak", bench_export_dir() / "model_int8.tflite", "--predictions", "60", "--warmup", "10",
                      "--max-growth-mb", "1e-12", "--json", out)
    rep = json.loads(out.read_text())
    if rep["result"]["rss_growth_after_warmup_mb"] >= 1e-12:
        assert proc.returncode == 1 and "FAIL" in proc.stdout
    else:  # RSS did not move by a single page
        assert proc.returncode == 0
