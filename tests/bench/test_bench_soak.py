"""benchmarks/soak.py: many predictions in one process, RSS growth after warm-up in the report."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from bench_helpers import ROOT, bench_export_dir, run_script, script_env


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


# soak.py run with its RSS reader replaced: a leak (1 MB more at every reading) or a flat line.
# The verdict must follow the growth both ways, whatever the real process does.
_FAKE_RSS = """
import itertools, sys
from edgedeploy.bench import _common as C
from edgedeploy.bench import soak
kind = sys.argv.pop(1)
calls = itertools.count()
C.current_rss_bytes = (lambda: 200_000_000 + next(calls) * 1_000_000) if kind == "leak" else (lambda: 200_000_000)
sys.exit(soak.main(sys.argv[1:]))
"""


@pytest.mark.parametrize("kind", ["leak", "flat"])
def test_soak_verdict_follows_the_growth(tmp_path, kind):
    out = tmp_path / "soak.json"
    cmd = [sys.executable, "-c", _FAKE_RSS, kind, str(bench_export_dir() / "model_int8.tflite"),
           "--predictions", "60", "--warmup", "10", "--max-growth-mb", "0.5", "--json", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=script_env(), cwd=str(ROOT), timeout=300)
    r = json.loads(out.read_text())["result"]
    if kind == "leak":  # at least one reading after the baseline: >= 1 MB growth against a 0.5 MB target
        assert r["rss_growth_after_warmup_mb"] >= 1.0 and r["within_target"] is False
        assert proc.returncode == 1 and "FAIL" in proc.stdout, proc.stdout + proc.stderr
    else:
        assert r["rss_growth_after_warmup_mb"] == 0.0 and r["within_target"] is True
        assert proc.returncode == 0 and "PASS" in proc.stdout, proc.stdout + proc.stderr
