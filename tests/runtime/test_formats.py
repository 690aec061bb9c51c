"""edgedeploy.runtime.formats: one module per model file format (suffix, verify, embedded manifest, sidecar).

TF-free: the models are the cached edge fixtures; writing a TFLite manifest
uses ai_edge_litert's flatbuffer tools, ONNX's is pure Python (checked against
the onnx package's own serialization where onnx is installed).
"""
from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest

from edgedeploy.core.errors import EdgeDeployError, ModelError
from edgedeploy.runtime.backends import BACKENDS
from edgedeploy.runtime.formats import (
    FORMATS,
    format_for_path,
    get_format,
    is_model_path,
    model_suffixes,
    read_manifest,
    sidecar_path,
    verify_model_file,
)
from edgedeploy.runtime.manifest import EMBED_KEY, Manifest

ROOT = Path(__file__).resolve().parents[2]


def test_registry_suffixes_and_lookup():
    assert FORMATS.names() == ["onnx", "tflite"]
    assert model_suffixes() == (".tflite", ".onnx")  # listing order: TFLite first
    assert format_for_path("a/model_int8.TFLite").name == "tflite"
    assert format_for_path(Path("m.onnx")) is get_format("onnx")
    assert is_model_path("m.tflite") and is_model_path("x/m.ONNX")
    assert not is_model_path("m.tflite.json") and not is_model_path("m.pb") and not is_model_path("tflite")


@pytest.mark.parametrize("name", ["weights.pb", "model", "model.tflite.rejected"])
def test_unknown_suffix_is_one_line_naming_the_file_and_the_known_suffixes(name):
    with pytest.raises(ModelError) as err:
        format_for_path(f"some/dir/{name}")
    msg = str(err.value)
    suffix = Path(name).suffix or "(none)"
    assert msg == f"unsupported model file type {suffix!r} for some/dir/{name}; expected one of .tflite, .onnx"


def test_sidecar_names():
    assert sidecar_path("out/model_int8.tflite") == Path("out/model_int8.tflite.json")
    assert sidecar_path("out/model_int8.onnx") == Path("out/model_int8.onnx.json")  # never shared between formats
    assert get_format("tflite").sidecar_candidates("m.tflite") == (Path("m.tflite.json"), Path("m.json"))


def test_backends_declare_a_registered_format():
    for name in BACKENDS.names():
        cls = BACKENDS.get(name)
        assert cls.format in FORMATS, name
        assert cls.reads(f"m{cls.model_format().suffix}")
    assert BACKENDS.get("litert").reads("m.tflite") and not BACKENDS.get("litert").reads("m.onnx")


# -- verification ---------------------------------------------------------------------
@pytest.mark.parametrize("model", ["model_float32.tflite", "model_int8.tflite", "model_float32.onnx", "fuzz_tiny.onnx"])
def test_real_exports_verify(edge_models, model):
    assert verify_model_file(edge_models / model).name == Path(model).suffix[1:]


@pytest.mark.parametrize("name, cut, fragment", [
    ("model_float32.tflite", 3, "not a valid TFLite model (" ),
    ("model_float32.onnx", 2, "not a valid ONNX model (corrupt or truncated"),
])
def test_truncated_files_fail_verification(edge_models, tmp_path, name, cut, fragment):
    data = (edge_models / name).read_bytes()
    bad = tmp_path / name
    bad.write_bytes(data[: len(data) // cut])
    with pytest.raises(ModelError) as err:
        verify_model_file(bad)
    assert fragment in str(err.value) and str(bad) in str(err.value) and "\n" not in str(err.value)


def test_each_format_refuses_the_other(edge_models):
    tflite, onnx = (edge_models / "model_float32.tflite").read_bytes(), (edge_models / "model_float32.onnx").read_bytes()
    with pytest.raises(ModelError, match="not a valid TFLite model"):
        get_format("tflite").verify_bytes(onnx)
    with pytest.raises(ModelError, match="not a valid ONNX model"):
        get_format("onnx").verify_bytes(tflite)


def test_missing_empty_and_directory(tmp_path):
    with pytest.raises(ModelError, match="model file not found"):
        verify_model_file(tmp_path / "none.tflite")
    (tmp_path / "e.onnx").write_bytes(b"")
    with pytest.raises(ModelError, match=r"empty \(0 bytes\)"):
        verify_model_file(tmp_path / "e.onnx")
    with pytest.raises(ModelError, match=r"expected a model file \(.tflite or .onnx\), got a directory"):
        verify_model_file(tmp_path)


# -- the embedded manifest ---------------------------------------------------------------
def _manifest(edge_models, **over) -> Manifest:
    return Manifest.from_json((edge_models / "model_float32.tflite.json").read_text()).replace(**over)


def test_tflite_manifest_round_trip_on_a_real_model(edge_models, tmp_path):
    pytest.importorskip("ai_edge_litert", reason="writing TFLite metadata uses ai-edge-litert's flatbuffer tools")
    fmt = get_format("tflite")
    plain = (edge_models / "model_nomanifest.tflite").read_bytes()
    assert fmt.manifest_text(plain) is None
    first = fmt.write_manifest(plain, _manifest(edge_models, model_name="first"))
    again = fmt.write_manifest(first, _manifest(edge_models, model_name="second"))
    fmt.verify_bytes(again)  # still a sound file
    assert list(fmt.metadata_from_bytes(again)).count(EMBED_KEY) == 1
    out = tmp_path / "m.tflite"
    out.write_bytes(again)
    assert read_manifest(out).model_name == "second"
    assert json.loads(fmt.manifest_text(again)) == _manifest(edge_models, model_name="second").to_dict()

    from edgedeploy.runtime import ImageClassifier  # the device loads the rewritten file and reads the same manifest

    clf = ImageClassifier(out, probe="never")
    assert clf.manifest_found and clf.manifest.model_name == "second"


def test_onnx_manifest_round_trip_is_pure_python_and_replaces(edge_models, tmp_path):
    fmt = get_format("onnx")
    data = (edge_models / "model_float32.onnx").read_bytes()
    assert json.loads(fmt.manifest_text(data))["labels"] == [str(i) for i in range(10)]
    once = fmt.write_metadata(data, "note", "a")
    twice = fmt.write_manifest(fmt.write_metadata(once, "note", "b"), _manifest(edge_models, model_name="edited"))
    meta = fmt.metadata_from_bytes(twice)
    assert meta["note"] == "b" and json.loads(meta[EMBED_KEY])["model_name"] == "edited"
    fmt.verify_bytes(twice)
    out = tmp_path / "m.onnx"
    out.write_bytes(twice)
    assert read_manifest(out).model_name == "edited"
    # rewriting the last entry with the same value changes nothing (a replaced entry moves to the end)
    assert fmt.write_manifest(twice, _manifest(edge_models, model_name="edited")) == twice


def test_onnx_writer_matches_the_onnx_package_byte_for_byte(edge_models):
    onnx = pytest.importorskip("onnx", reason="the reference serializer is the onnx package (export extra)")
    data = (edge_models / "model_float32.onnx").read_bytes()
    model = onnx.load_from_string(data)
    props = [p for p in model.metadata_props if p.key != EMBED_KEY]
    del model.metadata_props[:]
    model.metadata_props.extend(props)
    entry = model.metadata_props.add()
    entry.key, entry.value = EMBED_KEY, '{"v": 2}'
    assert get_format("onnx").write_metadata(data, EMBED_KEY, '{"v": 2}') == model.SerializeToString()


@pytest.mark.parametrize("model", ["model_float32.tflite", "model_float32.onnx"])
def test_strip_manifest_makes_a_no_manifest_model_from_a_real_export(edge_models, tmp_path, model):
    if format_for_path(model).name == "tflite":
        pytest.importorskip("ai_edge_litert", reason="rewriting TFLite metadata uses ai-edge-litert's flatbuffer tools")
    fmt = format_for_path(model)
    data = (edge_models / model).read_bytes()
    bare = fmt.strip_manifest(data)
    assert fmt.manifest_text(data) is not None and fmt.manifest_text(bare) is None
    assert EMBED_KEY not in fmt.metadata_from_bytes(bare)
    out = tmp_path / model
    out.write_bytes(bare)
    fmt.verify(out)
    from edgedeploy.runtime import ImageClassifier

    with pytest.warns(UserWarning, match="carries no manifest"):
        clf = ImageClassifier(out, probe="never")
    assert not clf.manifest_found and clf.manifest.labels == [str(i) for i in range(10)]


def test_read_manifest_falls_back_to_the_sidecar_and_skips_damage_unless_strict(edge_models, tmp_path):
    model = tmp_path / "plain.tflite"
    model.write_bytes((edge_models / "model_nomanifest.tflite").read_bytes())
    assert read_manifest(model) is None
    sidecar_path(model).write_text(_manifest(edge_models, model_name="beside").to_json())
    assert read_manifest(model).model_name == "beside"
    bad = tmp_path / "bad.onnx"  # a truncated metadata_props entry inside a sound top level
    bad.write_bytes((edge_models / "model_float32.onnx").read_bytes() + bytes([114, 3, 0x0A, 0x05, 0x41]))
    assert read_manifest(bad) is None
    with pytest.raises(ModelError, match="ONNX metadata_props are corrupt"):
        read_manifest(bad, strict=True)


def test_export_embeds_only_through_the_format_layer(edge_models):
    from edgedeploy.export.embed import embed_manifest, read_embedded

    data = (edge_models / "model_float32.onnx").read_bytes()
    m = _manifest(edge_models, model_name="via-export")
    assert embed_manifest("onnx", data, m) == get_format("onnx").write_manifest(data, m)
    assert Manifest.from_json(read_embedded("onnx", embed_manifest("onnx", data, m))).model_name == "via-export"
    with pytest.raises(EdgeDeployError, match="unknown model format 'pb'"):
        embed_manifest("pb", data, m)


# -- one home for format knowledge ------------------------------------------------------------
SUFFIX_LITERAL = re.compile(r"""['"]\.(tflite|onnx)['"]""")
PACKAGES = ("edge_runtime", "export", "train", "benchmarks", "scripts")


def _sources():
    for pkg in PACKAGES:
        yield from sorted((ROOT / pkg).rglob("*.py"))


def test_no_suffix_literal_outside_the_format_modules():
    formats = ROOT / "edge_runtime" / "formats"
    hits = [f"{p.relative_to(ROOT)}:{i}" for p in _sources() if formats not in p.parents
            for i, line in enumerate(p.read_text().splitlines(), 1) if SUFFIX_LITERAL.search(line)]
    assert not hits, f"compare suffixes through edge_runtime.formats instead: {hits}"


def test_no_package_imports_another_packages_private_names():
    bad = []
    for p in _sources():
        own = p.relative_to(ROOT).parts[0]
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                top = node.module.split(".")[0]
                if top in PACKAGES and top != own:
                    private = [a.name for a in node.names if a.name.startswith("_")]
                    private += [part for part in node.module.split(".") if part.startswith("_")]
                    if private:
                        bad.append(f"{p.relative_to(ROOT)}:{node.lineno} {node.module} {private}")
    assert not bad, bad
