"""Dependencies point one way: train/export/benchmarks -> edge_runtime, never back.

edge_runtime and benchmarks must run on a Pi with no TensorFlow, so neither
may import tensorflow, keras, train or export, not even lazily inside a
function. This scans every import statement in their source files.
"""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = {"tensorflow", "keras", "train", "export", "tf2onnx", "onnx", "sklearn", "tensorflow_datasets"}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) in ("import_module", "__import__"):
            if node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
                found.add(node.args[0].value.split(".")[0])
    return found


def _sources(folder: str) -> list[Path]:
    if not (ROOT / folder).is_dir():  # a wheel-only install (the emulated Pi) has no source tree here
        pytest.skip(f"no {folder}/ source tree beside the tests")
    return sorted((ROOT / folder).rglob("*.py"))


@pytest.mark.parametrize("folder", ["edge_runtime", "benchmarks"])
def test_edge_side_never_imports_tf_train_or_export(folder):
    files = _sources(folder)
    assert files, f"no sources found in {folder}"
    bad = {str(p.relative_to(ROOT)): sorted(_imports(p) & FORBIDDEN) for p in files}
    bad = {k: v for k, v in bad.items() if v}
    assert not bad, f"forbidden imports on the edge side: {bad}"


def test_importing_every_edge_runtime_module_loads_no_tensorflow():
    code = (
        "import importlib, pkgutil, sys, edge_runtime\n"
        "for m in pkgutil.walk_packages(edge_runtime.__path__, 'edge_runtime.'):\n"
        "    importlib.import_module(m.name)\n"
        "bad = [m for m in ('tensorflow', 'keras', 'train', 'export') if m in sys.modules]\n"
        "assert not bad, bad\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
