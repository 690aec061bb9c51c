"""benchmarks/throughput.py, batching.py and preprocess_speed.py: they run TF-free and write what they say."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from bench_helpers import assert_one_line_error, edge_models_dir, run_script


@pytest.fixture(scope="module")
def photo_folder(tmp_path_factory):
    src = edge_models_dir() / "images"
    folder = tmp_path_factory.mktemp("photos") / "in"
    (folder / "sub").mkdir(parents=True)
    for i, p in enumerate(sorted(q for q in src.iterdir() if q.suffix in (".png", ".jpg"))):
        shutil.copy(p, (folder / "sub" if i % 2 else folder) / p.name)
    return folder


def test_throughput_report_has_ratios_baseline_and_rss(tmp_path, photo_folder):
    model = edge_models_dir() / "model_int8.tflite"
    out = tmp_path / "tp"
    proc = run_script("throughput", model, photo_folder, "--quick", "--threads", "1", "--rss-files", "30", "--out", out)
    assert proc.returncode == 0, proc.stderr
    report = json.loads((tmp_path / "tp.json").read_text())
    n = sum(1 for p in photo_folder.rglob("*") if p.is_file())
    [row] = report["results"]
    assert row["images"] == n and row["threads"] == 1 and row["workers"] == 1
    assert row["e2e_images_per_s"] > 0 and row["model_only_b1_images_per_s"] > 0
    assert row["ratio_vs_b1"] == pytest.approx(row["e2e_images_per_s"] / row["model_only_b1_images_per_s"], rel=0.01)
    [rss] = report["rss"]
    assert rss["files"] == 30 and rss["rss_peak_mb"] >= rss["rss_before_mb"] > 0
    assert "## Memory over a large folder" in (tmp_path / "tp.md").read_text()
    assert (tmp_path / "tp.csv").read_text().splitlines()[0].startswith("code,budget,threads,workers")
    again = run_script("throughput", model, photo_folder, "--quick", "--out", out)  # no --force: refused before work
    assert_one_line_error(again, "tp.json")


def test_throughput_times_the_baseline_code_and_the_split(tmp_path, photo_folder):
    """--baseline-src times that folder's edge_runtime; T=2 adds the split row (runtime 1 + 1 worker)."""
    model = edge_models_dir() / "model_int8.tflite"
    base = tmp_path / "base"
    shutil.copytree(Path(__file__).resolve().parents[2] / "edge_runtime", base / "edge_runtime",
                    ignore=shutil.ignore_patterns("__pycache__"))
    proc = run_script("throughput", model, photo_folder, "--quick", "--threads", "2", "--rss-files", "0",
                      "--baseline-src", base, "--out", tmp_path / "tp")
    assert proc.returncode == 0, proc.stderr
    rows = {r["code"]: r for r in json.loads((tmp_path / "tp.json").read_text())["results"]}
    assert sorted(rows) == ["baseline", "pipelined", "split"]
    assert (rows["split"]["threads"], rows["split"]["workers"], rows["split"]["budget"]) == (1, 1, 2)
    assert (rows["pipelined"]["threads"], rows["pipelined"]["workers"]) == (2, 2)
    assert Path(rows["baseline"]["edge_runtime"]) == (base / "edge_runtime").resolve()
    assert Path(rows["pipelined"]["edge_runtime"]) != (base / "edge_runtime").resolve()
    for r in rows.values():
        assert r["speedup_vs_baseline"] == pytest.approx(
            r["e2e_images_per_s"] / rows["baseline"]["e2e_images_per_s"], abs=0.01)


def test_batching_report_rows_per_batch_size(tmp_path):
    model = edge_models_dir() / "model_float32.onnx"
    proc = run_script("batching", model, "--quick", "--images", "12", "--batch-sizes", "1,4", "--threads", "1",
                      "--out", tmp_path / "b")
    assert proc.returncode == 0, proc.stderr
    rows = json.loads((tmp_path / "b.json").read_text())["results"]
    assert [(r["batch_size"], r["runtime_calls"]) for r in rows] == [(1, 12), (4, 3)]
    assert rows[0]["gain_vs_batch1"] == 1.0 and all(r["dynamic_batch"] for r in rows)


def test_preprocess_speed_reports_parity_of_each_method(tmp_path, photo_folder):
    proc = run_script("preprocess_speed", photo_folder, "--quick", "--size", "32", "--out", tmp_path / "p")
    assert proc.returncode == 0, proc.stderr
    report = json.loads((tmp_path / "p.json").read_text())
    rows = {r["method"]: r for r in report["results"]}
    assert rows["resize gather-first (edge_runtime now)"]["max_abs_diff_255"] == 0.0  # bit-identical
    assert rows["resize gather-first (edge_runtime now)"]["parity"] is True
    assert set(report["images_per_s"]) == {"before_1", "before_2", "now_1", "now_2"}
