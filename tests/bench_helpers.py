"""The benchmarks tests' models and helpers (tests/test_bench_*.py).

``bench_export_dir()`` is export-model's own output from the real-command
chain (tests/model_fixtures.py: train-model small_cnn on digits at 32x32, then
export-model), restricted to the three variants the benchmark tests compare:

  model_float32.tflite   float32
  model_int8.tflite      full int8, uint8 I/O
  model_float32.onnx     float32

each with its manifest embedded (``macs`` counted by train-model), its sidecar
``model_<mode>.<ext>.json`` and export_report.json. If the chain cannot be
built, the test fails with the command's error; nothing falls back.

``run_script`` runs a benchmark script the way a user does
(``python benchmarks/<name>.py``) and returns the CompletedProcess.
"""
from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import model_fixtures

ROOT = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent
BENCH = ROOT / "benchmarks"
VARIANTS = model_fixtures.BENCH_VARIANTS
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def sidecar_manifest(model: Path) -> dict:
    """The sidecar manifest JSON beside a model (model.tflite.json, else model.json)."""
    for p in (model.with_name(model.name + ".json"), model.with_suffix(".json")):
        if p.is_file():
            return json.loads(p.read_text())
    raise FileNotFoundError(f"no sidecar manifest beside {model}")


def fixture_macs() -> int:
    """The MACs the fixture's manifests carry (the same model in every variant)."""
    values = {sidecar_manifest(bench_export_dir() / v)["macs"] for v in VARIANTS}
    assert len(values) == 1 and isinstance(next(iter(values)), int) and next(iter(values)) > 0, values
    return values.pop()


def edge_models_dir() -> Path:
    """The whole chain folder (odd models such as model_nomanifest.tflite live there)."""
    return model_fixtures.test_models()


def bench_export_dir() -> Path:
    """The export folder of the three benchmark variants (see the module docstring)."""
    return model_fixtures.bench_dir()


def copy_export_dir(dest: Path) -> Path:
    """A private copy of the export folder (tests that write next to the models)."""
    shutil.copytree(bench_export_dir(), dest)
    return dest


# -- running the scripts ------------------------------------------------------------
def script_env(extra_path: str | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",)}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (extra_path, str(ROOT)) if p)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return env


def run_script(name: str, *args, env: dict[str, str] | None = None, cwd: Path | None = None,
               timeout: int = 300) -> subprocess.CompletedProcess:
    """``python benchmarks/<name>.py ARGS`` as a user runs it; text output captured."""
    cmd = [sys.executable, str(BENCH / f"{name}.py"), *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, env=env or script_env(), cwd=cwd or ROOT, timeout=timeout)


def assert_one_line_error(proc: subprocess.CompletedProcess, *fragments: str) -> str:
    """Exit 2, one line on stderr naming the problem, no traceback."""
    err = proc.stderr.strip()
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    for frag in fragments:
        assert frag in lines[0], (frag, lines[0])
    return lines[0]


def is_png(path: Path) -> bool:
    """The PNG signature, and Pillow can open and decode it."""
    from PIL import Image

    if path.read_bytes()[:8] != PNG_SIGNATURE:
        return False
    with Image.open(path) as im:
        im.load()
        return im.format == "PNG" and im.size[0] > 50 and im.size[1] > 50


@functools.lru_cache(maxsize=None)
def compare_run() -> tuple[Path, str, str]:
    """One ``compare.py --quick`` over the fixture folder, shared by the tests (report folder, stdout, stderr)."""
    out = Path(tempfile.mkdtemp(prefix="edgedeploy-bench-compare-")) / "report"
    proc = run_script("compare", bench_export_dir(), "--dataset", "digits", "--out", out, "--quick", "--threads", "1,2")
    assert proc.returncode == 0, proc.stderr
    return out, proc.stdout, proc.stderr


def blocker_dir(tmp: Path) -> tuple[Path, Path]:
    """A PYTHONPATH folder where importing tensorflow/keras fails and every process records its sys.modules.

    Its ``sitecustomize`` runs at the start of every Python process (the
    scripts and their latency subprocesses) and, at exit, writes the forbidden
    modules it finds loaded into ``marks/<pid>.json``.
    """
    d = tmp / "blocked"
    marks = tmp / "marks"
    marks.mkdir(parents=True, exist_ok=True)
    for mod in ("tensorflow", "keras", "tf_keras"):
        (d / mod).mkdir(parents=True, exist_ok=True)
        (d / mod / "__init__.py").write_text(f"raise ImportError('{mod} is blocked in this test: the edge side must not import it')\n")
    (d / "sitecustomize.py").write_text(
        "import atexit, json, os, sys\n"
        f"_MARKS = {str(marks)!r}\n"
        "def _check():\n"
        "    bad = sorted(m for m in ('tensorflow', 'keras', 'train', 'export', 'tf2onnx', 'onnx', 'sklearn') if m in sys.modules)\n"
        "    with open(os.path.join(_MARKS, f'{os.getpid()}.json'), 'w') as f:\n"
        "        json.dump({'argv': sys.argv, 'forbidden': bad}, f)\n"
        "atexit.register(_check)\n")
    return d, marks


def set_tflite_manifest(path: Path, manifest_json: str) -> None:
    """Replace (or add) the manifest embedded in a real TFLite export, through the format layer."""
    from edgedeploy.runtime.formats import get_format

    fmt = get_format("tflite")
    path.write_bytes(fmt.write_manifest(path.read_bytes(), manifest_json))
