"""edge-infer without a home folder: no HOME and no passwd entry, or an unusable cache folder.

The probe cache (edge_runtime/backends/probe.py) used ``Path.home()``, which
raises when HOME is unset and the uid has no passwd entry (a container run
with an arbitrary uid, a minimal root filesystem). Now it falls back to a
private folder in the temp dir, with ONE warning line, and classifies.
"""
from __future__ import annotations

import json
import os
import pwd
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NOBODY_UID = 54321
WARNING = re.compile(r"^edge-infer: warning: probe cache: (.+); using (\S+)\. Set EDGEDEPLOY_CACHE to choose one\.$")


# The probe starts sys.executable again, so the uid must be able to start it from a child too.
CAN_RUN = ("import subprocess, sys, numpy, PIL, edge_runtime; "
           "subprocess.run([sys.executable, '-c', 'import numpy, edge_runtime'], check=True)")


def _free_uid() -> int:
    uid = NOBODY_UID
    while True:
        try:
            pwd.getpwuid(uid)
        except KeyError:
            return uid
        uid += 1


def _env(**extra: str) -> dict:
    env = {k: v for k, v in os.environ.items()
           if k not in ("HOME", "XDG_CACHE_HOME", "EDGEDEPLOY_CACHE", "EDGEDEPLOY_PROBE", "TMPDIR")}
    env["PYTHONPATH"] = str(ROOT)
    env.update(extra)
    return env


def _readable_copy(edge_models: Path, truth: dict, folder: Path) -> tuple[Path, Path, str]:
    """The model and one image in a world-readable folder (the other uid must read them)."""
    folder.mkdir(mode=0o755)
    name = sorted(truth)[0]
    model, image = folder / "model_float32.tflite", folder / name
    shutil.copy(edge_models / "model_float32.tflite", model)
    shutil.copy(edge_models / "images" / name, image)
    for p in (folder, model, image):
        p.chmod(0o755 if p.is_dir() else 0o644)
    return model, image, str(truth[name])


def _as_uid_prefix(uid: int, env: dict) -> list[str] | None:
    """A command prefix that runs as ``uid`` and can still start this Python; None if there is none."""
    if os.geteuid() != 0:
        return None
    plain = ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups"]
    # The interpreter may live under a folder only root can enter (/root/.pyenv): then keep
    # only the right to read files (CAP_DAC_READ_SEARCH), nothing else, for the child.
    caps = plain + ["--inh-caps=+dac_read_search", "--ambient-caps=+dac_read_search"]
    if not shutil.which("setpriv"):
        return None
    for prefix in (plain, caps):
        try:
            ok = subprocess.run(prefix + [sys.executable, "-c", CAN_RUN], env=env, capture_output=True, timeout=60).returncode == 0
        except OSError:
            ok = False
        if ok:
            return prefix
    return None


def _classify(cmd: list[str], env: dict, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=300)


@pytest.fixture
def open_tmp():
    """A temp folder every uid can enter (pytest's tmp_path sits in a 0700 folder of root's)."""
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="edgedeploy-home-test-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def test_no_home_and_no_passwd_entry_classifies_with_one_warning(edge_models, truth, open_tmp):
    tmp_path = open_tmp
    uid = _free_uid()
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    tmp.chmod(0o1777)
    tmp_path.chmod(0o755)
    env = _env(TMPDIR=str(tmp))
    prefix = _as_uid_prefix(uid, env)
    if prefix is None:
        pytest.skip("needs root and setpriv to run as a uid without a passwd entry")
    model, image, label = _readable_copy(edge_models, truth, tmp_path / "m")
    cmd = prefix + [sys.executable, "-m", "edgedeploy.runtime.cli", str(model), str(image), "--json"]
    # The child really has no HOME and no passwd entry: Path.home() fails there.
    check = subprocess.run(prefix + [sys.executable, "-c", "import pathlib; pathlib.Path.home()"], env=env,
                           capture_output=True, text=True, timeout=60)
    assert check.returncode != 0 and "Could not determine home directory" in check.stderr
    for _ in range(2):  # the second run finds the probe it remembered in the fallback folder
        out = _classify(cmd, env, tmp_path)
        assert out.returncode == 0, out.stderr
        assert "Traceback" not in out.stderr
        lines = out.stderr.strip().splitlines()
        assert len(lines) == 1, out.stderr
        m = WARNING.match(lines[0])
        assert m and m.group(1) == "the home folder is unknown (no HOME, no passwd entry)", lines[0]
        assert m.group(2) == str(tmp / f"edgedeploy-{uid}" / "probed")
        assert json.loads(out.stdout)["label"] == label
    assert len(list((tmp / f"edgedeploy-{uid}" / "probed").iterdir())) == 1
    assert (tmp / f"edgedeploy-{uid}").stat().st_mode & 0o777 == 0o700


def test_a_cache_folder_that_is_a_file_falls_back_with_one_warning(edge_models, truth, tmp_path):
    model, image, label = _readable_copy(edge_models, truth, tmp_path / "m")
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder should be")
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = _env(HOME=str(tmp_path), XDG_CACHE_HOME=str(blocker), TMPDIR=str(tmp))
    out = _classify([sys.executable, "-m", "edgedeploy.runtime.cli", str(model), str(image), "--json"], env, tmp_path)
    assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    m = WARNING.match(lines[0])
    assert m and m.group(1) == f"cache folder '{blocker / 'edgedeploy' / 'probed'}' is not usable", lines[0]
    assert m.group(2) == str(tmp / f"edgedeploy-{os.getuid()}" / "probed")
    assert json.loads(out.stdout)["label"] == label
    assert blocker.read_text().startswith("a file")  # untouched


def test_a_usable_cache_folder_gives_no_warning(edge_models, truth, tmp_path):
    model, image, label = _readable_copy(edge_models, truth, tmp_path / "m")
    env = _env(HOME=str(tmp_path), XDG_CACHE_HOME=str(tmp_path / "cache"))
    out = _classify([sys.executable, "-m", "edgedeploy.runtime.cli", str(model), str(image), "--json"], env, tmp_path)
    assert out.returncode == 0 and out.stderr == "", out.stderr
    assert json.loads(out.stdout)["label"] == label
    assert len(list((tmp_path / "cache" / "edgedeploy" / "probed").iterdir())) == 1
