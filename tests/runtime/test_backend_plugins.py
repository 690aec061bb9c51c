"""The backends registry is the single source: a throwaway backend in a temporary module shows up everywhere.

The plug-in lives outside the project, in tmp_path, and is named in
EDGEDEPLOY_BACKENDS. Nothing else is edited, yet edge-infer lists and runs it,
the subprocess probe loads it in its child, and the latency benchmark measures
it in its worker process. Each check runs in a fresh interpreter, so this
process's registry stays untouched.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

PLUGIN = '''
"""A throwaway backend: LiteRT under another name, logging the process that opens a model."""
import os

from edgedeploy.runtime.backends import BACKENDS
from edgedeploy.runtime.backends.litert import LiteRTBackend


@BACKENDS.register("throwaway")
class ThrowawayBackend(LiteRTBackend):
    name = "throwaway"
    priority = 1000  # never chosen by --backend auto over the real ones

    def _open(self):
        with open(os.environ["THROWAWAY_LOG"], "a") as f:
            f.write(f"{os.getpid()}\\n")
        super()._open()
'''


@pytest.fixture()
def plugin(tmp_path):
    """(env with the plug-in reachable, the log of pids that opened a model through it)."""
    (tmp_path / "plugins").mkdir()
    (tmp_path / "plugins" / "throwaway_backend.py").write_text(PLUGIN)
    log = tmp_path / "opened.log"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path / "plugins"), str(ROOT)]),
           "EDGEDEPLOY_BACKENDS": "throwaway_backend", "THROWAWAY_LOG": str(log),
           "EDGEDEPLOY_CACHE": str(tmp_path / "cache"), "EDGEDEPLOY_PROBE": "always"}
    return env, log


def _run(args, env, timeout=180):
    return subprocess.run([sys.executable, *map(str, args)], cwd=ROOT, capture_output=True, text=True, env=env,
                          timeout=timeout)


def test_throwaway_backend_is_listed_and_run_by_edge_infer(plugin, edge_models, truth):
    env, log = plugin
    helped = _run(["-m", "edgedeploy.runtime.cli", "--help"], env)
    assert helped.returncode == 0 and "throwaway" in " ".join(helped.stdout.split()), helped.stdout
    image = sorted(truth)[0]
    out = _run(["-m", "edgedeploy.runtime.cli", edge_models / "model_float32.tflite", edge_models / "images" / image,
                "--backend", "throwaway", "--json", "--info", "--threads", "1"], env)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["label"] == str(truth[image])
    info = json.loads(out.stderr.split("edge-infer: ", 1)[1].splitlines()[0])
    assert info["backend"] == "throwaway"
    pids = log.read_text().split()
    assert len(pids) == 2 and len(set(pids)) == 2  # the probe's child process found the plug-in too


def test_without_the_plugin_the_name_is_unknown(plugin, edge_models, truth):
    env, log = plugin
    env = {k: v for k, v in env.items() if k != "EDGEDEPLOY_BACKENDS"}
    out = _run(["-m", "edgedeploy.runtime.cli", edge_models / "model_float32.tflite",
                edge_models / "images" / sorted(truth)[0], "--backend", "throwaway"], env)
    assert out.returncode == 2 and "throwaway" in out.stderr and "expected one of" in out.stderr
    assert not log.exists()


def test_throwaway_backend_is_a_benchmark_runtime(plugin, edge_models, tmp_path):
    env, log = plugin
    listed = _run(["-c", "import json; from edgedeploy.bench import _common as C; "
                   "print(json.dumps([C.runtime_names(), C.runtime_modules()]))"], env)
    assert listed.returncode == 0, listed.stderr
    names, modules = json.loads(listed.stdout)
    assert "throwaway" in names and modules["throwaway"] == "ai_edge_litert.interpreter"
    helped = _run(["benchmarks/latency.py", "--help"], env)
    assert helped.returncode == 0 and "throwaway" in helped.stdout, helped.stdout + helped.stderr
    report = tmp_path / "lat.json"
    out = _run(["benchmarks/latency.py", edge_models / "model_float32.tflite", "--backend", "throwaway", "--quick",
                "--threads", "1", "--json", report], env, timeout=300)
    assert out.returncode == 0, out.stderr
    rows = json.loads(report.read_text())["results"]
    assert [r["backend"] for r in rows] == ["throwaway"]
    assert log.read_text().split()  # the benchmark's worker process opened the model through the plug-in


def test_a_plugin_that_cannot_be_imported_is_a_one_line_error(plugin):
    env, _ = plugin
    env = {**env, "EDGEDEPLOY_BACKENDS": "no_such_backend_module"}
    code = ("from edgedeploy.runtime.backends import BACKENDS\nfrom edgedeploy.core.errors import EdgeDeployError\n"
            "try:\n    BACKENDS.names()\nexcept EdgeDeployError as exc:\n    print(exc)\n")
    out = _run(["-c", code], env)
    assert out.returncode == 0, out.stderr
    line = out.stdout.strip()
    assert "\n" not in line and "no_such_backend_module" in line and "EDGEDEPLOY_BACKENDS" in line


def test_register_backend_module_reaches_child_processes(plugin):
    env, _ = plugin
    env = {k: v for k, v in env.items() if k != "EDGEDEPLOY_BACKENDS"}
    code = ("import os, subprocess, sys\nfrom edgedeploy.runtime.backends import backend_names, register_backend_module\n"
            "assert 'throwaway' not in backend_names()\n"
            "register_backend_module('throwaway_backend')\n"
            "child = subprocess.run([sys.executable, '-c', 'from edgedeploy.runtime.backends import backend_names; "
            "print(backend_names())'], capture_output=True, text=True, check=True)\n"
            "print('throwaway' in backend_names(), 'throwaway' in child.stdout)\n")
    out = _run(["-c", code], env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["True", "True"]
