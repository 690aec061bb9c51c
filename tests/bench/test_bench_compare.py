"""benchmarks/compare.py and merge.py: the side-by-side report, its verdicts, CSV, plots; merging devices."""
from __future__ import annotations

import csv
import json
import os

import pytest

from bench_helpers import VARIANTS, bench_export_dir, compare_run, copy_export_dir, is_png, run_script

PLOTS = ("latency_vs_accuracy.png", "size.png", "latency_vs_threads.png")


@pytest.fixture(scope="module")
def compared():
    out, stdout, stderr = compare_run()
    return out, json.loads((out / "report.json").read_text()), stdout


def test_writes_md_json_csv_and_valid_pngs(compared):
    out, report, _ = compared
    for f in ("report.md", "report.json", "report.csv") + PLOTS:
        assert (out / f).is_file(), f
    for p in PLOTS:
        assert is_png(out / p), p
    assert report["plots"] == list(PLOTS) and report["plots_skipped"] is None
    md = (out / "report.md").read_text()
    for p in PLOTS:
        assert f"]({p})" in md


def test_csv_parses_one_row_per_variant_and_thread_count(compared):
    out, report, _ = compared
    with open(out / "report.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["variant"], int(r["threads"])) for r in rows] == [(v, t) for v in VARIANTS for t in (1, 2)]
    for r in rows:
        assert int(r["size_bytes"]) == os.path.getsize(bench_export_dir() / r["variant"])
        p50, p90, p99 = float(r["p50_ms"]), float(r["p90_ms"]), float(r["p99_ms"])
        assert 0 < p50 <= p90 <= p99
        assert 0 < float(r["accuracy"]) <= 1
        assert float(r["gmacs_per_s"]) > 0
        assert int(r["warmup"]) == 3 and int(r["runs"]) == 20 and int(r["seed"]) == 0


def test_report_json_fields_and_values(compared):
    _, report, _ = compared
    assert report["tool"] == "compare" and report["settings"]["quick"] is True
    assert report["settings"]["threads"] == [1, 2]
    assert len(report["latency"]) == 6 and len(report["accuracy"]) == 3
    env = report["environment"]
    for k in ("cpu_model", "cpu_cores", "arch", "board_model", "cpu_freq_mhz", "cpu_governor", "temperature_c", "throttled",
              "python", "packages"):
        assert k in env
    assert env["cpu_cores"] == os.cpu_count()
    for e in report["variants"]:
        assert e["size_bytes"] == os.path.getsize(e["path"])
        assert 0 < e["p50_ms"] <= e["p90_ms"] <= e["p99_ms"]
        # the entry is the fastest thread count of that variant
        assert e["p50_ms"] == min(e["p50_ms_by_threads"].values())
        assert set(e["p50_ms_by_threads"]) == {"1", "2"}
    acc = {r["variant"]: r["accuracy"] for r in report["accuracy"]}
    assert {e["variant"]: e["accuracy"] for e in report["variants"]} == acc


def test_accuracy_equals_an_independent_figure(compared):
    from edgedeploy.runtime import ImageClassifier
    from edgedeploy.runtime.datasets import load_digits

    _, report, _ = compared
    n = report["settings"]["accuracy_limit"]
    ds = load_digits("test")
    for r in report["accuracy"]:
        preds = [p.index for p in ImageClassifier(r["path"]).predict_batch(list(ds.images[:n]))]
        assert r["accuracy"] == pytest.approx(sum(int(p == t) for p, t in zip(preds, ds.labels[:n])) / n)


def test_verdicts_follow_from_the_figures(compared):
    _, report, stdout = compared
    entries, s = report["variants"], report["summary"]
    fastest = min(entries, key=lambda e: e["p50_ms"])
    assert s["fastest"]["variant"] == fastest["name"]
    best_acc = max(e["accuracy"] for e in entries)
    assert next(e for e in entries if e["name"] == s["most_accurate"]["variant"])["accuracy"] == best_acc
    assert s["reference"] == "model_float32.tflite"
    ref = s["reference_accuracy"]
    ok = [e for e in entries if 100 * (ref - e["accuracy"]) <= 1.0 + 1e-9]
    assert s["best_within_1pt"]["variant"] == min(ok, key=lambda e: e["p50_ms"])["name"]
    for line in report["verdict"]:
        assert line in stdout
        assert line in (compared[0] / "report.md").read_text()


def test_stdout_ends_with_the_comparison_table(compared):
    _, report, stdout = compared
    lines = stdout.strip().splitlines()
    header = next(i for i, ln in enumerate(lines) if ln.startswith("Variant") and "p50 ms" in ln)
    body = lines[header + 2: header + 2 + len(report["variants"])]
    assert [ln.split("  ")[0].strip() for ln in body] == [e["name"] for e in report["variants"]]
    assert {"TFLite float32", "TFLite int8", "ONNX float32"} == {e["name"] for e in report["variants"]}
    assert lines[-1].startswith("Report: ")


def test_existing_report_needs_force(tmp_path):
    d = copy_export_dir(tmp_path / "models")
    out = tmp_path / "rep"
    out.mkdir()
    (out / "report.md").write_text("keep me")
    args = (d / "model_int8.tflite", "--dataset", "digits", "--out", out, "--quick", "--threads", "1", "--runs", "3")
    proc = run_script("compare", *args)
    assert proc.returncode == 2 and "--force" in proc.stderr and "Traceback" not in proc.stderr
    assert (out / "report.md").read_text() == "keep me"
    proc = run_script("compare", *args, "--force")
    assert proc.returncode == 0, proc.stderr
    assert (out / "report.md").read_text().startswith("# edgedeploy benchmark report")
    # one variant: no float reference, so no "within 1 point" verdict, said so
    rep = json.loads((out / "report.json").read_text())
    assert rep["summary"]["best_within_1pt"] is None and "n/a" in rep["verdict"][2]


def test_merge_two_devices(compared, tmp_path):
    out, _, _ = compared
    lat = tmp_path / "pi.json"
    proc = run_script("latency", bench_export_dir(), "--quick", "--threads", "1", "--json", lat, "--device-name", "Pi 5 (test)")
    assert proc.returncode == 0, proc.stderr
    merged_dir = tmp_path / "merged"
    proc = run_script("merge", out / "report.json", lat, "--out", merged_dir)
    assert proc.returncode == 0, proc.stderr
    m = json.loads((merged_dir / "merged.json").read_text())
    devices = [d["device"] for d in m["devices"]]
    assert devices[1] == "Pi 5 (test)" and len(set(devices)) == 2
    assert len(m["rows"]) == 6 and m["warnings"] == []
    with open(merged_dir / "merged.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert {r["device"] for r in rows} == set(devices)
    assert is_png(merged_dir / "merged_latency.png")
    assert "p50 ms Pi 5 (test)" in proc.stdout
    md = (merged_dir / "merged.md").read_text()
    assert "Pi 5 (test)" in md and "merged_latency.png" in md


def test_merge_same_device_twice_and_a_changed_file(compared, tmp_path):
    out, report, _ = compared
    other = json.loads((out / "report.json").read_text())
    other["variants"][0]["sha256"] = "0" * 64
    p = tmp_path / "other.json"
    p.write_text(json.dumps(other))
    proc = run_script("merge", out / "report.json", p, "--out", tmp_path / "m")
    assert proc.returncode == 0, proc.stderr
    m = json.loads((tmp_path / "m" / "merged.json").read_text())
    assert m["devices"][1]["device"].endswith("#2")
    assert len(m["warnings"]) == 1 and report["variants"][0]["variant"] in m["warnings"][0]


def test_selected_is_measured_once_and_labelled_as_the_file_it_copies(tmp_path):
    """export-model --select writes selected.<ext>, a copy of a sibling: compare.py timed it as an 11th variant
    ("Fastest: selected.tflite (0.330 ms)" while the same bytes as model_dynamic.tflite showed 0.463 ms)."""
    import shutil

    d = copy_export_dir(tmp_path / "models")
    shutil.copy(d / "model_int8.tflite", d / "selected.tflite")
    shutil.copy(d / "model_int8.tflite.json", d / "selected.tflite.json")
    out = tmp_path / "rep"
    proc = run_script("compare", d, "--dataset", "digits", "--quick", "--threads", "1", "--out", out)
    assert proc.returncode == 0, proc.stderr
    rep = json.loads((out / "report.json").read_text())
    timed = {os.path.basename(r["path"]) for r in rep["latency"]}
    assert timed == set(VARIANTS)  # each distinct file once; selected.tflite is not timed
    assert {os.path.basename(r["path"]) for r in rep["accuracy"]} == set(VARIANTS)
    [int8] = [v for v in rep["variants"] if v["variant"] == "model_int8.tflite"]
    assert int8["same_files"] == ["selected = model_int8.tflite"]
    assert int8["name"] == "TFLite int8 (selected = model_int8.tflite)"
    assert rep["summary"]["same_files"][0]["file"] == "selected.tflite"
    assert "selected.tflite" not in " ".join(rep["verdict"]).replace("selected = model_int8.tflite", "")
    md = (out / "report.md").read_text()
    assert "selected.tflite is the same file as model_int8.tflite" in md and "| TFLite int8 (selected = model_int8.tflite) |" in md
    # merge: an older report (or latency.py's) that timed both gives one row, named after the original
    lat = tmp_path / "lat.json"
    assert run_script("latency", d / "model_int8.tflite", d / "selected.tflite", "--quick", "--threads", "1",
                      "--json", lat).returncode == 0
    merged = run_script("merge", lat, out / "report.json", "--out", tmp_path / "merged")
    assert merged.returncode == 0, merged.stderr
    rows = json.loads((tmp_path / "merged" / "merged.json").read_text())["rows"]
    int8_rows = [r for r in rows if r["sha256"] == int8["sha256"]]
    assert len(int8_rows) == 2 and {r["variant"] for r in int8_rows} == {"model_int8.tflite"}  # one per device
    assert all("selected = model_int8.tflite" in r["label"] for r in int8_rows)
    assert not [r for r in rows if r["variant"] == "selected.tflite"]
    assert "selected.tflite is the same file as model_int8.tflite" in merged.stdout
