"""The benchmark scripts on a Pi-like install: no TensorFlow (importing it fails), no matplotlib.

Every Python process started here (the scripts and each latency subprocess)
gets a PYTHONPATH whose ``tensorflow``/``keras`` raise ImportError and whose
``sitecustomize`` records, at exit, any of tensorflow, keras, train, export,
tf2onnx, onnx or sklearn found in ``sys.modules``. The repo root is NOT on
PYTHONPATH: the scripts must find edge_runtime by themselves, as
``python benchmarks/<name>.py`` from a checkout does.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

from bench_helpers import bench_export_dir, blocker_dir, is_png, run_script


def _env(extra):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(extra)
    return env


def _marks(marks):
    return [json.loads(p.read_text()) for p in sorted(marks.glob("*.json"))]


def test_scripts_run_where_tensorflow_cannot_be_imported(tmp_path):
    blocked, marks = blocker_dir(tmp_path)
    env = _env(blocked)
    check = subprocess.run([sys.executable, "-c", "import tensorflow"], env=env, capture_output=True, text=True, cwd=tmp_path)
    assert check.returncode != 0 and "blocked" in check.stderr
    for p in marks.glob("*.json"):
        p.unlink()

    d = bench_export_dir()
    runs = [
        ("latency", d, "--quick", "--threads", "1", "--json", tmp_path / "lat.json"),
        ("accuracy", d, "--dataset", "digits", "--quick", "--json", tmp_path / "acc.json"),
        ("compare", d, "--dataset", "digits", "--quick", "--threads", "1", "--out", tmp_path / "rep"),
        ("merge", tmp_path / "rep" / "report.json", tmp_path / "lat.json", "--out", tmp_path / "merged"),
        ("soak", d / "model_int8.tflite", "--quick", "--json", tmp_path / "soak.json"),
    ]
    for name, *args in runs:
        proc = run_script(name, *args, env=env, cwd=tmp_path)
        assert proc.returncode == 0, (name, proc.stderr)
    seen = _marks(marks)
    # 5 scripts + 3 latency subprocesses for latency.py + 3 for compare.py
    assert len(seen) >= 11, seen
    assert sum("--worker" in m["argv"] for m in seen) == 6
    assert all(m["forbidden"] == [] for m in seen), [m for m in seen if m["forbidden"]]
    import importlib.util

    if importlib.util.find_spec("matplotlib") is not None:  # plots are optional (not on a Pi)
        assert is_png(tmp_path / "rep" / "latency_vs_accuracy.png")


def test_compare_without_matplotlib_writes_tables_and_says_how_to_get_plots(tmp_path):
    blocked, marks = blocker_dir(tmp_path)
    (blocked / "matplotlib").mkdir()
    (blocked / "matplotlib" / "__init__.py").write_text("raise ImportError('no matplotlib on this Pi')\n")
    out = tmp_path / "rep"
    proc = run_script("compare", bench_export_dir(), "--dataset", "digits", "--quick", "--threads", "1", "--out", out,
                      env=_env(blocked), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    for f in ("report.md", "report.json", "report.csv"):
        assert (out / f).is_file()
    assert not list(out.glob("*.png"))
    assert "pip install matplotlib" in proc.stdout
    assert "pip install matplotlib" in (out / "report.md").read_text()
    rep = json.loads((out / "report.json").read_text())
    assert rep["plots"] == [] and "pip install matplotlib" in rep["plots_skipped"]
    merged = run_script("merge", out / "report.json", "--out", tmp_path / "m", env=_env(blocked), cwd=tmp_path)
    assert merged.returncode == 0 and "pip install matplotlib" in merged.stdout
    assert (tmp_path / "m" / "merged.md").is_file() and not (tmp_path / "m" / "merged_latency.png").exists()


def test_edge_bench_lists_what_runs_here_and_refuses_the_rest_in_one_line(tmp_path):
    """On an edge-only install train-throughput printed an 18-line traceback (No module named 'tensorflow')."""
    code = ("import sys\nsys.modules['tensorflow'] = None  # as on a Pi: not installed\n"
            "from edgedeploy.bench.cli import main\nsys.exit(main(sys.argv[1:]))")
    listed = subprocess.run([sys.executable, "-c", code, "list"], capture_output=True, text=True, timeout=120)
    assert listed.returncode == 0, listed.stderr
    names = listed.stdout.split()
    assert {"latency", "accuracy", "compare", "merge", "soak"} <= set(names) and "train-throughput" not in names
    assert listed.stderr.strip().splitlines() == [
        "edge-bench: not on this install: train-throughput needs the train extra (tensorflow is not installed here): "
        "pip install 'edgedeploy[train]'"]
    refused = subprocess.run([sys.executable, "-c", code, "train-throughput", "--dataset", "digits"],
                             capture_output=True, text=True, timeout=120)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert refused.stderr.strip().splitlines() == [
        "edge-bench: error: train-throughput needs the train extra (tensorflow is not installed here): "
        "pip install 'edgedeploy[train]'"]
    here = subprocess.run([sys.executable, "-m", "edgedeploy.bench.cli", "list"], capture_output=True, text=True, timeout=120)
    import importlib.util

    has_tf = importlib.util.find_spec("tensorflow") is not None
    assert ("train-throughput" in here.stdout.split()) is has_tf  # listed where TensorFlow is installed


def test_train_throughput_where_tensorflow_fails_to_import_is_one_line(tmp_path):
    blocked, _ = blocker_dir(tmp_path)  # tensorflow is found but raises ImportError: the child must say so in one line
    proc = run_script("train_throughput", "--dataset", "digits", "--epochs", "2", env=_env(blocked), cwd=tmp_path)
    err = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2 and len(err) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "needs the train extra" in err[0] and "pip install 'edgedeploy[train]'" in err[0]
