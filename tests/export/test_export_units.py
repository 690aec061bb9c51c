"""Fast unit tests of export/ pieces that need no TensorFlow."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from edgedeploy.core.errors import EdgeDeployError
from edgedeploy.export.calibration import check_sample_count, list_images
from edgedeploy.export.formats import FORMATS, MODES, format_names
from edgedeploy.export.formats.base import _unique_name, keras_layer_scopes, match_nodes, mode_tag
from edgedeploy.export.options import ExportOptions
from edgedeploy.export.parity import Reference, compare, gate
from edgedeploy.export.plan import plan
from edgedeploy.export.report import merge_rows, size_ratios, text_table


def _plan(**kw) -> list[tuple[str, str]]:
    return [(f.name, m) for f, m in plan(ExportOptions(source="x", **kw))]


def test_registry_declares_modes_per_format() -> None:
    assert format_names() == ["tflite", "onnx"]
    assert list(FORMATS.get("tflite").modes) == [m for m in MODES if m != "weight-only"]  # weight-only: a .tflite source's
    assert list(FORMATS.get("onnx").modes) == ["none", "float16", "dynamic", "int8"]
    assert [mode_tag(m) for m in MODES] == ["float32", "float16", "weight-only", "dynamic", "int8", "int16x8"]
    assert FORMATS.get("tflite")().file_name("none") == "model_float32.tflite"
    assert FORMATS.get("onnx")().file_name("int8") == "model_int8.onnx"


def test_plan_defaults_and_matrix() -> None:
    assert _plan() == [("tflite", "none")]
    assert _plan(formats=["onnx"]) == [("onnx", "none")]
    full = _plan(formats=["all"])
    assert len(full) == 9 and full[0] == ("tflite", "none") and full[-1] == ("onnx", "int8")
    assert _plan(formats=["all"], modes=["int8"]) == [("tflite", "int8"), ("onnx", "int8")]
    assert _plan(formats=["all"], modes=["int16x8"]) == [("tflite", "int16x8")]  # onnx has no int16x8: skipped
    assert _plan(formats=["tflite,onnx"], modes=["none,int8"]) == [("tflite", "none"), ("tflite", "int8"), ("onnx", "none"), ("onnx", "int8")]
    assert len(_plan(formats=["tflite"], modes=["all"])) == 5


@pytest.mark.parametrize("kw, message", [
    ({"formats": ["onnx"], "modes": ["int16x8"]}, "valid modes for onnx"),
    ({"formats": ["tflite,onnx"], "modes": ["int16x8"]}, "--format onnx does not support --quantize int16x8"),
    ({"modes": ["int4"]}, "unknown quantize mode"),
    ({"formats": ["caffe"]}, "unknown format 'caffe'"),
    ({"modes": [""]}, "empty --quantize"),
    ({"calibration_samples": 0}, "--calibration-samples 0"),
    ({"opset": 19, "formats": ["onnx"]}, "--opset 19"),
    ({"io": "uint8"}, "--io applies to TFLite int8 only"),
    ({"max_prob_diff": 0}, "--max-prob-diff"),
    ({"parity_samples": 0}, "--parity-samples"),
    ({"threads": 0}, "--threads"),
])
def test_plan_errors(kw: dict, message: str) -> None:
    with pytest.raises(EdgeDeployError) as e:
        plan(ExportOptions(source="x", **kw))
    assert message in str(e.value) and "\n" not in str(e.value)


def test_calibration_sample_count() -> None:
    check_sample_count(10, 10)
    for bad in (0, -3, True, 2.5):
        with pytest.raises(EdgeDeployError):
            check_sample_count(bad)  # type: ignore[arg-type]
    with pytest.raises(EdgeDeployError, match="fewer than the model's 10 classes"):
        check_sample_count(9, 10)


def test_list_images_skips_links_out_of_the_folder(tmp_path: Path) -> None:
    from PIL import Image

    inside, outside = tmp_path / "calib", tmp_path / "elsewhere"
    (inside / "sub").mkdir(parents=True)
    outside.mkdir()
    Image.new("RGB", (4, 4)).save(inside / "a.png")
    Image.new("RGB", (4, 4)).save(inside / "sub" / "b.jpg")
    Image.new("RGB", (4, 4)).save(outside / "secret.png")
    (inside / "notes.txt").write_text("not an image")
    os.symlink(outside / "secret.png", inside / "link.png")
    os.symlink(inside / "a.png", inside / "inner_link.png")
    names = [p.relative_to(inside).as_posix() for p in list_images(inside)]
    assert names == ["a.png", "inner_link.png", "sub/b.jpg"]


def test_match_nodes() -> None:
    names = ["m_1/fc_1/MatMul;m_1/fc_1/BiasAdd", "m_1/fc_1_2/MatMul", "m_1/conv1_1/Relu", "StatefulPartitionedCall_1:0"]
    scopes = {"fc": "fc_1", "fc_1": "fc_1_2", "conv1": "conv1_1"}
    got = match_nodes(["fc", "fc_1", "conv1", "StatefulPartitionedCall_1:0", "nothing"], names, scopes)
    assert got["fc"] == ["m_1/fc_1/MatMul;m_1/fc_1/BiasAdd"]  # a layer name: its own scope only
    assert got["fc_1"] == ["m_1/fc_1_2/MatMul"]
    assert got["conv1"] == ["m_1/conv1_1/Relu"]
    assert got["StatefulPartitionedCall_1:0"] == ["StatefulPartitionedCall_1:0"]  # exact name
    assert got["nothing"] == []
    assert match_nodes(["fc_1/"], names)["fc_1/"] == ["m_1/fc_1/MatMul;m_1/fc_1/BiasAdd"]  # a scope, as reports list


def test_keras_layer_scopes_replays_tensorflow_unique_names() -> None:
    class L:
        def __init__(self, name: str, layers=None):
            self.name, self.layers = name, layers or []

    class InputLayer(L):
        pass

    model = L("functional", [InputLayer("input_layer"), L("conv2d"), L("conv2d_1"), L("conv2d_5"), L("flatten"),
                             L("dense"), L("dense_1")])
    # what TF 2.21 / Keras 3.15 names these layers' ops (observed in converted files)
    assert keras_layer_scopes(model) == {"conv2d": "conv2d_1", "conv2d_1": "conv2d_1_2", "conv2d_5": "conv2d_5_1",
                                         "flatten": "flatten_1", "dense": "dense_1", "dense_1": "dense_1_2"}
    used: dict[str, int] = {}
    assert [_unique_name(used, "a") for _ in range(3)] == ["a", "a_1", "a_2"]


def _ref(labels: list[int], keras_top: list[int]) -> Reference:
    kp = np.eye(3, dtype=np.float32)[keras_top]
    return Reference(images=[np.zeros((2, 2, 3), np.uint8)] * len(labels), labels=np.array(labels),
                     label_names=["a", "b", "c"], keras_probs=kp)


def test_compare_and_gate_by_hand() -> None:
    ref = _ref([0, 0, 1, 1, 2, 2], [0, 0, 1, 1, 2, 1])  # Keras: 5/6 right
    probs = np.eye(3, dtype=np.float32)[[0, 1, 1, 1, 2, 1]]  # export: one class-a image lost
    m = compare(probs, ref)
    assert m["top1_agreement"] == pytest.approx(100 * 5 / 6, abs=1e-3)
    assert m["accuracy"] == pytest.approx(100 * 4 / 6, abs=1e-3)
    assert m["keras_accuracy"] == pytest.approx(100 * 5 / 6, abs=1e-3)
    assert m["accuracy_drop"] == pytest.approx(100 / 6, abs=1e-2)
    assert m["worst_class"] == "a" and m["worst_class_accuracy_drop"] == 50.0
    assert m["per_class_accuracy_drop"] == {"a": 50.0, "b": 0.0, "c": 0.0}
    assert m["max_abs_prob_diff"] == 1.0
    assert "accuracy drop 16.67 points > 1" in gate(m, "int8")
    assert gate(m, "int8", max_accuracy_drop=20) is None
    same = compare(ref.keras_probs + 1e-4, ref)
    assert same["worst_class"] is None and gate(same, "none") is None
    assert "float32 model" in gate(same, "none", max_prob_diff=1e-5)
    assert "float16 model" in gate(same, "float16", max_prob_diff=1e-5)
    assert gate(same, "dynamic", max_prob_diff=1e-5) is None  # quantized modes: accuracy only


def test_report_merge_keeps_other_files(tmp_path: Path) -> None:
    (tmp_path / "model_float32.tflite").write_bytes(b"x" * 100)
    (tmp_path / "model_int8.tflite.rejected").write_bytes(b"x" * 30)
    old = [{"file": "model_float32.tflite", "format": "tflite", "mode": "none", "size_bytes": 100, "source_sha256": "s"},
           {"file": "model_int8.tflite.rejected", "format": "tflite", "mode": "int8", "size_bytes": 30, "source_sha256": "s"},
           {"file": "model_gone.onnx", "format": "onnx", "mode": "none", "size_bytes": 1, "source_sha256": "s"}]
    (tmp_path / "export_report.json").write_text(json.dumps({"files": old}))
    new = [{"file": "model_int8.tflite", "format": "tflite", "mode": "int8", "size_bytes": 25, "source_sha256": "s",
            "status": "accepted"}]
    rows = merge_rows(tmp_path, new)
    assert [r["file"] for r in rows] == ["model_float32.tflite", "model_int8.tflite"]  # stale rejection and gone file dropped
    size_ratios(rows)
    assert rows[1]["size_ratio_vs_float32"] == 0.25
    table = text_table(rows, 99.0)
    assert "model_int8.tflite" in table and "0.250" in table


def test_embed_onnx_round_trip_readable_by_the_device() -> None:
    import onnx
    from onnx import TensorProto, helper

    from edgedeploy.export.embed import embed_onnx, read_embedded
    from edgedeploy.runtime.formats import get_format
    from edgedeploy.runtime.manifest import EMBED_KEY

    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 2])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.metadata_props.add(key="other", value="kept")
    data = embed_onnx(model.SerializeToString(), '{"v": 1}')
    data = embed_onnx(data, '{"v": 2}')  # re-embedding replaces, never duplicates
    assert read_embedded("onnx", data) == '{"v": 2}'
    m = onnx.load_from_string(data)
    assert [p.key for p in m.metadata_props].count(EMBED_KEY) == 1
    onnx.checker.check_model(m)
    import tempfile

    with tempfile.NamedTemporaryFile(suffix=".onnx") as f:
        f.write(data)
        f.flush()
        get_format("onnx").verify(Path(f.name))
        assert get_format("onnx").read_metadata(Path(f.name)) == {"other": "kept", EMBED_KEY: '{"v": 2}'}
