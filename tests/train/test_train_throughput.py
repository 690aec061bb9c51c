"""benchmarks/train_throughput.py: the launcher runs train's measurement in a child process."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "train_throughput.py"


def _run(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout)


@pytest.mark.tf
def test_bad_epochs_is_one_line_error():
    out = _run("--epochs", "1")
    assert out.returncode == 2
    assert "epochs=1" in out.stderr and "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


@pytest.mark.tf
@pytest.mark.slow
def test_reports_pipeline_and_in_memory_throughput(tmp_path):
    report = tmp_path / "tp.json"
    out = _run("--dataset", "digits", "--epochs", "2", "--no-augment", "--json", str(report))
    assert out.returncode == 0, out.stderr
    data = json.loads(report.read_text())
    (r,) = data["results"]
    assert r["pipeline_images_per_s"] > 0 and r["in_memory_images_per_s"] > 0
    assert r["ratio"] == pytest.approx(r["pipeline_images_per_s"] / r["in_memory_images_per_s"], abs=1e-3)
    assert data["target_ratio"] == 0.9
