"""Benchmarks that measure what they say: a fresh process's own peak RSS, a run's own
held-out split (--run, and by default through export_report.json), label mismatches before any timing."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from bench_helpers import assert_one_line_error, bench_export_dir, blocker_dir, run_script, script_env, set_tflite_manifest, sidecar_manifest

ROOT = Path(__file__).resolve().parents[2]


def _model(name: str = "model_int8.tflite") -> Path:
    return bench_export_dir() / name


# -- peak RSS ------------------------------------------------------------------------------
def test_peak_rss_is_the_fresh_processs_own_not_the_parents(tmp_path):
    # The parent is a process of its own, so the 400 MB ballast does not follow this pytest
    # process into later tests' subprocesses.
    code = (
        "import json, resource, sys\n"
        "from edgedeploy.bench import latency as L\n"
        "from pathlib import Path\n"
        "ballast = bytearray(400 * 1024 * 1024)\n"
        "for i in range(0, len(ballast), 4096):\n"
        "    ballast[i] = 1  # touch every page: this process's peak is now > 400 MB\n"
        "models = [Path(a) for a in sys.argv[1:]]\n"
        "rows = L.run_latency(models, threads=[1], warmup=1, runs=3, progress=False)\n"
        "print(json.dumps({'parent_peak_mb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,\n"
        "                  'peaks': {Path(r['path']).name: r['peak_rss_mb'] for r in rows},\n"
        "                  'accelerators': {Path(r['path']).name: r['accelerator'] for r in rows}}))\n")
    proc = subprocess.run([sys.executable, "-c", code, str(_model()), str(_model("model_float32.onnx"))],
                          capture_output=True, text=True, env=script_env(), timeout=300)
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got["parent_peak_mb"] > 400
    peaks = got["peaks"]
    # ru_maxrss would report >= 400 MB in every child (Linux carries it across fork and exec).
    assert all(10 < v < 250 for v in peaks.values()), peaks
    assert peaks["model_int8.tflite"] != peaks["model_float32.onnx"]  # each variant its own figure
    assert got["accelerators"] == {"model_int8.tflite": "XNNPACK", "model_float32.onnx": "CPUExecutionProvider"}


# -- a run's own held-out split ---------------------------------------------------------------
def _digit_folder(root: Path, per_class: int = 10) -> Path:
    from PIL import Image

    from edgedeploy.runtime.datasets import load_digits

    d = load_digits("test")
    counts: dict[int, int] = {}
    for img, y in zip(d.images, d.labels):
        if counts.get(int(y), 0) >= per_class:
            continue
        counts[int(y)] = counts.get(int(y), 0) + 1
        (root / str(y)).mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).resize((32, 32), Image.NEAREST).save(root / str(y) / f"{len(list((root / str(y)).iterdir()))}.png")
    return root


def _folder_run(tmp_path: Path) -> tuple[Path, dict]:
    """A run folder whose splits.json is written by train/'s own folder dataset (no TensorFlow needed)."""
    from edgedeploy.train.data import DATASETS

    data = _digit_folder(tmp_path / "photos")
    record = DATASETS.get("folder").prepare(SimpleNamespace(data_dir=str(data)), None).record
    run = tmp_path / "run"
    run.mkdir()
    (run / "splits.json").write_text(json.dumps(record))
    return run, record


def test_accuracy_run_scores_exactly_the_test_split(tmp_path):
    from edgedeploy.runtime import ImageClassifier

    run, record = _folder_run(tmp_path)
    out = tmp_path / "acc.json"
    proc = run_script("accuracy", _model(), "--run", run, "--json", out)
    assert proc.returncode == 0, proc.stderr
    rep = json.loads(out.read_text())
    test = record["splits"]["test"]
    assert rep["dataset"]["n_images"] == len(test) < sum(record["counts"].values())
    clf = ImageClassifier(_model())
    truth = [record["classes"][y] for _, y in test]
    preds = [clf.predict(Path(record["root"]) / f).label for f, _ in test]
    want = sum(p == t for p, t in zip(preds, truth)) / len(test)
    assert rep["results"][0]["accuracy"] == pytest.approx(want)


def test_accuracy_run_with_digits_uses_the_embedded_test_split(tmp_path):
    from edgedeploy.runtime.datasets import load_digits

    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "splits.json").write_text(json.dumps({"dataset": "digits", "labels": [str(i) for i in range(10)]}))
    proc = run_script("accuracy", _model(), "--run", tmp_path / "run", "--json", tmp_path / "a.json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads((tmp_path / "a.json").read_text())["dataset"]["n_images"] == len(load_digits("test"))


def test_compare_defaults_to_the_run_named_in_export_report(tmp_path):
    run, record = _folder_run(tmp_path)
    models = tmp_path / "models"
    models.mkdir()
    model = models / "model_int8.tflite"
    shutil.copy(_model(), model)
    manifest = sidecar_manifest(_model())
    manifest["dataset"] = f"folder:{Path(record['root']).name}"  # what train-model writes for --data DIR
    set_tflite_manifest(model, json.dumps(manifest))
    (models / "export_report.json").write_text(json.dumps({"source": {"run_dir": str(run)}}))
    proc = run_script("compare", models, "--out", tmp_path / "r", "--quick", "--threads", "1", "--runs", "3")
    assert proc.returncode == 0, proc.stderr
    rep = json.loads((tmp_path / "r" / "report.json").read_text())
    assert rep["dataset"]["n_images"] == len(record["splits"]["test"])
    assert f"test split of run folder {run}" in rep["dataset"]["name"] and "scoring accuracy on test split of run folder" in proc.stderr
    # Without the export report there is nothing to guess from: one line that names --run.
    (models / "export_report.json").unlink()
    proc = run_script("compare", models, "--out", tmp_path / "r2", "--quick")
    assert_one_line_error(proc, "folder:photos", "--run RUN")


def test_run_errors_are_one_line(tmp_path):
    assert_one_line_error(run_script("compare", _model(), "--run", tmp_path / "nope", "--out", tmp_path / "r"),
                          "--run", "nope", "run folder")
    (tmp_path / "empty").mkdir()
    assert_one_line_error(run_script("accuracy", _model(), "--run", tmp_path / "empty"), "no splits.json")
    (tmp_path / "tfds").mkdir()
    (tmp_path / "tfds" / "splits.json").write_text(json.dumps({"dataset": "cats_vs_dogs"}))
    assert_one_line_error(run_script("accuracy", _model(), "--run", tmp_path / "tfds"), "'cats_vs_dogs'", "--data DIR")


# -- label mismatch before any timing -------------------------------------------------------------
def test_label_mismatch_fails_before_any_latency_process(tmp_path):
    from PIL import Image

    for cls in ("cat", "dog"):
        (tmp_path / "pets" / cls).mkdir(parents=True)
        Image.new("RGB", (16, 16), "white").save(tmp_path / "pets" / cls / "a.png")
    blocked, marks = blocker_dir(tmp_path)
    proc = run_script("compare", bench_export_dir(), "--data", tmp_path / "pets", "--out", tmp_path / "r",
                      env=script_env(str(blocked)))
    assert_one_line_error(proc, "'cat', 'dog'", "not among the labels", "model_float32.tflite")
    argvs = [json.loads(p.read_text())["argv"] for p in marks.glob("*.json")]
    assert argvs and not any("--worker" in a for a in argvs), argvs  # no latency subprocess was started
