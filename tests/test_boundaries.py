"""Dependencies point one way, and everything lives under one import name.

    core  <-  runtime  <-  train, export, bench

- ``edgedeploy.core`` (the kernel, ``edgedeploy/core/``) imports nothing of the project above it;
- the runtime (``edge_runtime/``) and the benchmarks (``benchmarks/``) must run on a Pi with no
  TensorFlow, so neither imports tensorflow, keras, the converters, ``edgedeploy.train`` or
  ``edgedeploy.export``, not even lazily inside a function;
- no module anywhere imports the folders' bare names (``train``, ``export``, ``edge_runtime``,
  ``benchmarks``): the wheel installs them only as ``edgedeploy.*``;
- no package imports another package's underscore names.

The scans read every import statement of the source files; a subprocess then imports every
module of the edge side and checks ``sys.modules``.
"""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HEAVY = {"tensorflow", "keras", "tf2onnx", "onnx", "sklearn", "tensorflow_datasets", "scipy"}
BARE = {"train", "export", "edge_runtime", "benchmarks", "_common", "records"}
PACKAGES = {"edgedeploy.core": "edgedeploy/core", "edgedeploy.runtime": "edge_runtime", "edgedeploy.train": "train",
            "edgedeploy.export": "export", "edgedeploy.bench": "benchmarks"}
# What each layer may import of the project (besides itself and the top-level `edgedeploy` package).
ALLOWED = {"edgedeploy.core": set(), "edgedeploy.runtime": {"edgedeploy.core"},
           "edgedeploy.bench": {"edgedeploy.core", "edgedeploy.runtime"},
           "edgedeploy.train": {"edgedeploy.core", "edgedeploy.runtime"},
           "edgedeploy.export": {"edgedeploy.core", "edgedeploy.runtime", "edgedeploy.train"}}


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT)
    for pkg, folder in PACKAGES.items():
        if rel.is_relative_to(folder):
            parts = rel.relative_to(folder).with_suffix("").parts
            return ".".join((pkg, *parts)).removesuffix(".__init__")
    return ".".join(rel.with_suffix("").parts).removesuffix(".__init__")


def _imports(path: Path) -> set[str]:
    """Absolute dotted names of every module ``path`` imports (relative imports resolved)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    here = _module_name(path).split(".")
    if path.name != "__init__.py":
        here = here[:-1]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = here[:len(here) - node.level + 1] if node.level else []
            mod = ".".join([*base, *(node.module.split(".") if node.module else [])])
            found.update(f"{mod}.{a.name}" for a in node.names)  # `from pkg import module` names the module
            found.add(mod)
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) in ("import_module", "__import__"):
            if node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
                found.add(node.args[0].value)
    return found


def _sources(folder: str) -> list[Path]:
    if not (ROOT / folder).is_dir():  # a wheel-only install (the emulated Pi) has no source tree here
        pytest.skip(f"no {folder}/ source tree beside the tests")
    return sorted((ROOT / folder).rglob("*.py"))


def _layer(name: str) -> str | None:
    return next((pkg for pkg in PACKAGES if name == pkg or name.startswith(pkg + ".")), None)


@pytest.mark.parametrize("folder", ["edge_runtime", "benchmarks", "edgedeploy"])
def test_edge_side_never_imports_tf_train_or_export(folder):
    files = _sources(folder)
    assert files, f"no sources found in {folder}"
    bad = {}
    for p in files:
        hits = sorted(m for m in _imports(p) if m.split(".")[0] in HEAVY or _layer(m) in ("edgedeploy.train", "edgedeploy.export"))
        if folder == "edgedeploy" and p.name == "cli.py" and p.parent.name == "edgedeploy":
            hits = []  # the umbrella `edgedeploy` command dispatches to every command (lazily, by name)
        if hits:
            bad[str(p.relative_to(ROOT))] = hits
    assert not bad, f"forbidden imports on the edge side: {bad}"


@pytest.mark.parametrize("pkg", sorted(PACKAGES))
def test_layers_point_one_way(pkg):
    folder = PACKAGES[pkg]
    bad = {}
    for p in _sources(folder):
        if folder == "edgedeploy/core" or not p.is_relative_to(ROOT / "edgedeploy" / "core"):
            ups = sorted(m for m in _imports(p) if (layer := _layer(m)) and layer != pkg and layer not in ALLOWED[pkg])
            if ups:
                bad[str(p.relative_to(ROOT))] = ups
    assert not bad, f"{pkg} may import only {sorted(ALLOWED[pkg]) or 'nothing of the project'}: {bad}"


def test_no_bare_folder_names_and_no_private_names_across_packages():
    bare, private = {}, {}
    for folder in ("edgedeploy", "edge_runtime", "train", "export", "benchmarks", "tests", "scripts"):
        for p in _sources(folder):
            mods = _imports(p)
            if hits := sorted(m for m in mods if m.split(".")[0] in BARE):
                bare[str(p.relative_to(ROOT))] = hits
            own = _layer(_module_name(p))
            if folder in ("tests", "scripts"):
                continue
            hits = sorted(m for m in mods if (layer := _layer(m)) and layer != own
                          and any(part.startswith("_") and not part.startswith("__") for part in m.split(".")))
            if hits:
                private[str(p.relative_to(ROOT))] = hits
    assert not bare, f"import the edgedeploy.* names, not the folders': {bare}"
    assert not private, f"another package's underscore names: {private}"


def test_importing_every_edge_module_loads_no_tensorflow():
    code = (
        "import importlib, pkgutil, sys\n"
        "for top in ('edgedeploy.core', 'edgedeploy.runtime', 'edgedeploy.bench'):\n"
        "    pkg = importlib.import_module(top)\n"
        "    for m in pkgutil.walk_packages(pkg.__path__, top + '.'):\n"
        "        if not m.name.endswith('__main__'):\n"
        "            importlib.import_module(m.name)\n"
        "bad = [m for m in ('tensorflow', 'keras', 'tf2onnx', 'onnx', 'edgedeploy.train', 'edgedeploy.export') if m in sys.modules]\n"
        "assert not bad, bad\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
