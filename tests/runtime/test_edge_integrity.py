"""Integrity at run time: the SHA-256 in a model's sidecar manifest is checked at load (TF-free)."""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from edgedeploy.runtime import ImageClassifier
from edgedeploy.runtime.cli import main as edge_infer
from edgedeploy.runtime.integrity import IntegrityError, recorded_sha256, verify_model_hash
from edgedeploy.runtime.manifest import Manifest


def _with_sidecar(src: Path, dst_dir: Path) -> Path:
    """A copy of ``src`` and a sidecar holding its SHA-256, as export-model writes them."""
    dst = dst_dir / src.name
    shutil.copy(src, dst)
    from edgedeploy.runtime.classifier import load_manifest_for

    m = load_manifest_for(dst)
    m = m.replace(sha256=hashlib.sha256(dst.read_bytes()).hexdigest())
    (dst_dir / (dst.name + ".json")).write_text(m.to_json())
    return dst


def flip_byte(path: Path, offset: int | None = None) -> None:
    data = bytearray(path.read_bytes())
    i = len(data) // 2 if offset is None else offset
    data[i] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("name", ["model_int8.tflite", "model_float32.onnx"])
def test_sidecar_hash_is_checked_and_one_flipped_byte_is_refused(tmp_path, edge_models, name):
    model = _with_sidecar(edge_models / name, tmp_path)
    digest = hashlib.sha256(model.read_bytes()).hexdigest()
    assert recorded_sha256(model) == (digest, tmp_path / (name + ".json"))
    clf = ImageClassifier(model)
    assert clf.sha256 == digest
    flip_byte(model)
    with pytest.raises(IntegrityError, match=rf"{name}: SHA-256 .* does not match .* recorded in {name}\.json"):
        ImageClassifier(model)


def test_edge_infer_refuses_a_changed_file_exit_2_and_no_verify_hash_skips(tmp_path, edge_models, capsys):
    model = _with_sidecar(edge_models / "model_int8.tflite", tmp_path)
    img = sorted((edge_models / "images").glob("*.png"))[0]
    sidecar = tmp_path / "model_int8.tflite.json"
    data = json.loads(sidecar.read_text())
    data["sha256"] = "0" * 64  # the file is intact, the record says otherwise
    sidecar.write_text(json.dumps(data))
    assert edge_infer([str(model), str(img), "--json"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("edge-infer: error: ") and "model_int8.tflite" in err[0]
    assert "does not match 0000000000000000" in err[0]
    assert edge_infer([str(model), str(img), "--json", "--no-verify-hash"]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[0])["path"] == str(img)
    assert ImageClassifier(model, verify_hash=False).sha256 is None


def test_flipped_byte_via_edge_infer(tmp_path, edge_models, capsys):
    model = _with_sidecar(edge_models / "model_float32.tflite", tmp_path)
    flip_byte(model)
    img = sorted((edge_models / "images").glob("*.png"))[0]
    assert edge_infer([str(model), str(img)]) == 2
    assert "SHA-256" in capsys.readouterr().err


def test_nothing_to_check_without_a_sidecar_hash(tmp_path, edge_models):
    # no sidecar at all, and an old sidecar without the field: both load as before
    model = tmp_path / "model_int8.tflite"
    shutil.copy(edge_models / "model_int8.tflite", model)
    assert verify_model_hash(model) is None
    old = json.loads(Manifest.from_dict(json.loads((edge_models / "model_int8.tflite.json").read_text())).to_json())
    del old["sha256"]
    (tmp_path / "model_int8.tflite.json").write_text(json.dumps(old))
    assert Manifest.from_dict(old).sha256 == ""
    assert verify_model_hash(model) is None
    assert ImageClassifier(model).sha256 is None
    assert verify_model_hash(tmp_path / "missing.tflite") is None


def test_only_the_file_named_sidecar_records_a_hash(tmp_path, edge_models):
    # model_int8.json may be shared by model_int8.tflite and model_int8.onnx: it never vetoes a file
    model = tmp_path / "model_int8.tflite"
    shutil.copy(edge_models / "model_int8.tflite", model)
    m = json.loads((edge_models / "model_int8.tflite.json").read_text())
    m["sha256"] = "0" * 64
    (tmp_path / "model_int8.json").write_text(json.dumps(m))
    assert recorded_sha256(model) is None
    assert ImageClassifier(model).sha256 is None
