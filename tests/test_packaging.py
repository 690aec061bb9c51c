"""One import name: the wheel installs everything under `edgedeploy`, and a user's own train.py,
export.py or benchmarks/ beside their notebook never shadows it."""
from __future__ import annotations

import json
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

import edgedeploy

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def _package_folders() -> dict[str, str]:
    return PYPROJECT["tool"]["setuptools"]["package-dir"]


def test_every_package_folder_is_listed_and_mapped():
    listed = set(PYPROJECT["tool"]["setuptools"]["packages"])
    found = set()
    for name, folder in _package_folders().items():
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / folder).parts
            sub = ".".join((name, *rel))
            if name == "edgedeploy" and rel and rel[0] in ("runtime", "train", "export", "bench"):
                continue
            found.add(sub)
    assert found == listed, f"pyproject.toml packages: missing {sorted(found - listed)}, stale {sorted(listed - found)}"
    assert PYPROJECT["project"]["version"] == edgedeploy.__version__


def test_console_scripts_keep_their_names():
    scripts = PYPROJECT["project"]["scripts"]
    assert {"train-model", "export-model", "edge-infer", "edge-bench", "edgedeploy"} == set(scripts)
    assert all(target.startswith("edgedeploy.") for target in scripts.values())


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    from edgedeploy.export.bundle import project_wheel

    return project_wheel(tmp_path_factory.mktemp("wheel"), log=lambda msg: None)


def test_the_wheel_installs_one_top_level_name(wheel):
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        top = next(n for n in names if n.endswith(".dist-info/top_level.txt"))
        assert z.read(top).decode().split() == ["edgedeploy"]
    assert {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")} == {"edgedeploy"}
    for must in ("edgedeploy/runtime/classifier.py", "edgedeploy/runtime/datasets/digits.npz", "edgedeploy/core/runfolder.py",
                 "edgedeploy/export/bundle_templates/install.sh", "edgedeploy/bench/latency.py", "edgedeploy/train/api.py"):
        assert must in names, must


@pytest.fixture
def notebook_folder(tmp_path) -> Path:
    """A user's folder: their own train.py, export.py and benchmarks/ package beside the notebook."""
    (tmp_path / "train.py").write_text("raise SystemExit('the user train.py was imported')\n")
    (tmp_path / "export.py").write_text("raise SystemExit('the user export.py was imported')\n")
    (tmp_path / "edgedeploy.runtime.py").write_text("raise SystemExit('the user edge_runtime.py was imported')\n")
    (tmp_path / "benchmarks").mkdir()
    (tmp_path / "benchmarks" / "__init__.py").write_text("raise SystemExit('the user benchmarks/ was imported')\n")
    return tmp_path


def test_the_api_imports_from_a_folder_that_holds_train_py(notebook_folder):
    code = ("from edgedeploy.train.macs import count_macs\nfrom edgedeploy.export import ExportOptions, run_export\n"
            "from edgedeploy import ImageClassifier\nimport edgedeploy.bench.latency, edgedeploy.runtime.cli\nprint('ok')\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=notebook_folder, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


def test_edge_infer_runs_from_a_folder_that_holds_train_py(notebook_folder, edge_models, truth):
    image = edge_models / "images" / sorted(truth)[0]
    out = subprocess.run([sys.executable, "-m", "edgedeploy", "infer", str(edge_models / "model_int8.tflite"), "--top-k", "1",
                          str(image), "--json"], cwd=notebook_folder, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["label"] == str(truth[image.name])


@pytest.mark.tf
def test_the_export_api_runs_from_a_folder_that_holds_train_py(notebook_folder):
    from export_helpers import tiny_run

    code = ("import sys\nfrom edgedeploy.export import ExportOptions, run_export\n"
            "run_export(ExportOptions(source=sys.argv[1], formats=['tflite'], modes=['none'], output=sys.argv[2], "
            "parity_samples=50))\nprint('ok')\n")
    out_dir = notebook_folder / "out"
    proc = subprocess.run([sys.executable, "-c", code, str(tiny_run()), str(out_dir)], cwd=notebook_folder,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("ok"), proc.stderr[-2000:]
    assert (out_dir / "model_float32.tflite").stat().st_size > 1000


def test_the_umbrella_command_dispatches_and_says_what_it_has(notebook_folder):
    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "edgedeploy", *args], cwd=notebook_folder, capture_output=True,
                              text=True, timeout=120)

    helped = run("--help")
    assert helped.returncode == 0 and all(c in helped.stdout for c in ("train", "export", "infer", "bench"))
    assert run("--version").stdout.strip() == f"edgedeploy {edgedeploy.__version__}"
    bad = run("deploy")
    assert bad.returncode == 2 and bad.stderr.strip() == ("edgedeploy: error: Received command 'deploy', expected one of: "
                                                          "train, export, infer, bench (see edgedeploy --help)")
    listed = run("bench", "list")
    assert listed.returncode == 0 and "latency" in listed.stdout.split()
