"""The manifest contract, atomic writes and registries."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from edgedeploy.core.errors import EdgeDeployError, ManifestError
from edgedeploy.core.io import atomic_path, atomic_write_json, atomic_write_text
from edgedeploy.core.registry import Registry
from edgedeploy.runtime.manifest import Manifest, Normalization, Quantization, TensorSpec


def _manifest(**kw) -> Manifest:
    base = dict(labels=["cat", "dog"], input_height=160, input_width=160)
    base.update(kw)
    return Manifest(**base)


def test_manifest_round_trips_through_json():
    m = _manifest(color_order="BGR", normalization=Normalization(in_graph=False, mean=[103.9, 116.8, 123.7], std=[1, 1, 1]),
                  input=TensorSpec("uint8", Quantization(0.5, 3)), macs=123, metrics={"accuracy": 0.9})
    back = Manifest.from_json(m.to_json())
    assert back == m
    assert back.input.quantization.zero_point == 3
    assert back.num_classes == 2


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "must be a JSON object"),
        ('{"labels": ["a"]}', "missing required field(s): input_height, input_width"),
        ('{"labels": [], "input_height": 8, "input_width": 8}', "labels"),
        ('{"labels": ["a"], "input_height": 0, "input_width": 8}', "input_height"),
        ('{"labels": ["a"], "input_height": 8, "input_width": 8, "color_order": "RGBA"}', "color_order"),
        ('{"labels": ["a"], "input_height": 8, "input_width": 8, "input": {"dtype": "int4"}}', "input.dtype"),
        ('{"labels": ["a"], "input_height": 8, "input_width": 8, "normalization": {"bogus": 1}}', "invalid fields"),
        ('{"labels": ["a"], "input_height": 8, "input_width": 8, "schema_version": 99}', "newer"),
    ],
)
def test_bad_manifests_give_one_line_errors(text, fragment):
    with pytest.raises(ManifestError) as err:
        Manifest.from_json(text)
    assert fragment in str(err.value)
    assert "\n" not in str(err.value)


def test_manifest_save_is_atomic_and_refuses_overwrite(tmp_path):
    p = tmp_path / "m.json"
    _manifest().save(p, force=False)
    assert Manifest.load(p).labels == ["cat", "dog"]
    with pytest.raises(EdgeDeployError, match="--force"):
        _manifest().save(p, force=False)
    _manifest(labels=["a", "b", "c"]).save(p, force=True)
    assert Manifest.load(p).num_classes == 3


def test_atomic_write_leaves_previous_file_when_writer_fails(tmp_path):
    target = tmp_path / "model.bin"
    atomic_write_text(target, "complete v1")
    with pytest.raises(RuntimeError):
        with atomic_path(target, force=True) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("killed half-way")
    assert target.read_text() == "complete v1"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.bin"]  # no temp file left


_WRITE_INTO = """
import sys
from edgedeploy.core.errors import EdgeDeployError
from edgedeploy.core.io import atomic_write_json
try:
    atomic_write_json(sys.argv[1], {"a": 1})
except EdgeDeployError as exc:
    print(exc)
    sys.exit(2)
"""


def test_atomic_write_refuses_unwritable_folder():
    """A folder without write permission for this user.

    Root may write anywhere, so as root the write runs in a child process whose
    *real* user id is 'nobody' (65534): ``os.access``, which the check uses,
    answers for the real user, while the effective root can still run the
    interpreter from root's home.
    """
    import subprocess
    import sys
    import tempfile

    base = Path(tempfile.mkdtemp(prefix="edgedeploy-ro-"))
    try:
        os.chmod(base, 0o755)  # traversable by the unprivileged child
        ro = base / "ro"
        ro.mkdir()
        os.chmod(ro, 0o555)
        as_nobody = (lambda: os.setreuid(65534, 0)) if os.geteuid() == 0 else None
        env = {"PYTHONPATH": str(Path(__file__).resolve().parents[2]), "PATH": os.environ.get("PATH", "/usr/bin:/bin")}
        proc = subprocess.run([sys.executable, "-c", _WRITE_INTO, str(ro / "r.json")], capture_output=True, text=True,
                              env=env, preexec_fn=as_nobody, timeout=120)
        assert proc.returncode == 2, proc.stdout + proc.stderr
        assert proc.stdout.strip() == f"output folder is not writable: {ro}"
        assert list(ro.iterdir()) == []
    finally:
        os.chmod(base / "ro", 0o700) if (base / "ro").exists() else None
        shutil.rmtree(base, ignore_errors=True)


def test_atomic_write_refuses_folder_under_a_file(tmp_path):
    # Works as root too: a folder cannot be created beneath a regular file.
    (tmp_path / "afile").write_text("x")
    with pytest.raises(EdgeDeployError, match="cannot create output folder"):
        atomic_write_json(tmp_path / "afile" / "sub" / "r.json", {"a": 1})


def test_atomic_write_json_serialises_numpy(tmp_path):
    import numpy as np

    p = atomic_write_json(tmp_path / "r.json", {"x": np.float32(1.5), "y": np.arange(3)})
    assert json.loads(p.read_text()) == {"x": 1.5, "y": [0, 1, 2]}


def test_registry_lists_known_names_on_unknown():
    reg: Registry[int] = Registry("format")
    reg.register("tflite")(1)
    reg.register("onnx")(2)
    assert reg.get("onnx") == 2
    with pytest.raises(EdgeDeployError, match="unknown format 'tf'; expected one of: onnx, tflite"):
        reg.get("tf")
    with pytest.raises(ValueError):
        reg.register("onnx")(3)
