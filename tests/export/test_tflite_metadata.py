"""The standard TFLite metadata export-model writes.

Fast tests read it back with an independent flatbuffer reader; the slow test
installs MediaPipe in its own virtualenv (it cannot live beside TensorFlow
2.21) and checks that MediaPipe's metadata displayer reads the file and its
ImageClassifier task answers like edge_runtime on the same images.
"""
from __future__ import annotations

import json
import os
import subprocess
import venv
from pathlib import Path

import numpy as np
import pytest

from edgedeploy.runtime import ImageClassifier
from edgedeploy.runtime.formats._tflite_flatbuffer import _Reader
from edgedeploy.runtime.formats.tflite import STANDARD_METADATA, TFLiteFormat, packed_files, read_tflite_metadata, split_packed
from edgedeploy.runtime.manifest import Manifest

TFLITE = ("model_float32.tflite", "model_int8.tflite")
MEDIAPIPE = "mediapipe==0.10.21"  # the last MediaPipe whose metadata module imports on its own (1.2.3 lacks it)


def _decode(buf: bytes) -> dict:
    """The fields of the M001 flatbuffer this project writes, read by slot (metadata_schema.fbs)."""
    assert buf[4:8] == b"M001"
    r = _Reader(buf)
    root = r.table(r.deref(0))
    [sub] = r.tables(root, 3)
    [image] = r.tables(sub, 2)
    [score] = r.tables(sub, 3)
    [unit] = r.tables(image, 4)
    norm = r.table(r.deref(r.field(unit, 1)))
    content = r.table(r.deref(r.field(image, 3)))
    props = r.table(r.deref(r.field(content, 1)))
    in_stats = r.table(r.deref(r.field(image, 5)))
    out_content = r.table(r.deref(r.field(score, 3)))
    [labels] = r.tables(score, 6)
    return {"name": r.string(root, 0), "min_parser_version": r.string(root, 7),
            "input": r.string(image, 0), "output": r.string(score, 0),
            "input_content_type": r.scalar(content, 0, "<B"), "color_space": r.scalar(props, 0, "<b"),
            "norm_type": r.scalar(unit, 0, "<B"), "mean": r.floats(norm, 0), "std": r.floats(norm, 1),
            "input_max": r.floats(in_stats, 0), "input_min": r.floats(in_stats, 1),
            "output_content_type": r.scalar(out_content, 0, "<B"),
            "labels_file": r.string(labels, 0), "labels_type": r.scalar(labels, 2, "<b")}


@pytest.mark.parametrize("name", TFLITE)
def test_exported_tflite_carries_the_standard_metadata_and_labels(edge_models, name):
    data = (edge_models / name).read_bytes()
    manifest = Manifest.from_json((edge_models / f"{name}.json").read_text())
    entries = read_tflite_metadata(data)
    assert STANDARD_METADATA in entries and "edgedeploy.manifest" in entries
    got = _decode(entries[STANDARD_METADATA])
    assert got == {"name": manifest.model_name, "min_parser_version": "1.0.0", "input": "image", "output": "score",
                   "input_content_type": 2, "color_space": 1, "norm_type": 1,
                   "mean": [0.0], "std": [1.0],  # the small CNN rescales in its graph: it takes 0..255
                   "input_max": [255.0], "input_min": [0.0], "output_content_type": 1,
                   "labels_file": "labels.txt", "labels_type": 2}
    assert manifest.normalization.in_graph
    assert packed_files(data) == {"labels.txt": ("\n".join(manifest.labels) + "\n").encode()}


def test_rewriting_the_manifest_keeps_the_packed_labels(edge_models):
    pytest.importorskip("ai_edge_litert", reason="rewriting TFLite metadata uses ai-edge-litert's flatbuffer tools")
    data = (edge_models / "model_int8.tflite").read_bytes()
    again = TFLiteFormat().write_metadata(data, "edgedeploy.test", "x")
    assert packed_files(again) == packed_files(data) != {}
    assert read_tflite_metadata(again)[STANDARD_METADATA] == read_tflite_metadata(data)[STANDARD_METADATA]
    gone = TFLiteFormat().write_metadata(again, "edgedeploy.test", None)
    assert "edgedeploy.test" not in read_tflite_metadata(gone) and packed_files(gone) == packed_files(data)


def test_info_names_the_standard_metadata(edge_models, capsys):
    from edgedeploy.runtime.cli import main

    assert main([str(edge_models / "model_int8.tflite"), "--info", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["standard_metadata"].startswith("TFLITE_METADATA") and "labels.txt" in info["standard_metadata"]
    assert main([str(edge_models / "model_float32.onnx"), "--info", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["standard_metadata"] is None


@pytest.mark.tf
def test_models_the_metadata_cannot_describe_get_a_note_and_no_metadata(edge_models):
    from edgedeploy.export.formats import FORMATS

    data = (edge_models / "model_float32.tflite").read_bytes()
    bare = TFLiteFormat().write_metadata(data, STANDARD_METADATA, None)
    manifest = Manifest.from_json((edge_models / "model_float32.tflite.json").read_text())
    fmt = FORMATS.get("tflite")()
    out, notes = fmt.finish(bare, manifest.replace(color_order="BGR"))
    assert out == bare and notes == ["no standard TFLite metadata (MediaPipe, Android): colour order BGR "
                                     "(MediaPipe and Android feed RGB)"]
    out, notes = fmt.finish(bare, manifest.replace(normalization={"in_graph": False, "mean": [127.5] * 3,
                                                                  "std": [127.5] * 3}))
    assert notes == [] and _decode(read_tflite_metadata(out)[STANDARD_METADATA])["mean"] == [127.5] * 3
    assert _decode(read_tflite_metadata(out)[STANDARD_METADATA])["input_min"] == [-1.0] * 3


# -- MediaPipe reads it -------------------------------------------------------------------
_MEDIAPIPE_PROBE = r'''
import json, sys
import numpy as np
import mediapipe as mp
from mediapipe.tasks import python as mpt
from mediapipe.tasks.python import vision
from mediapipe.tasks.python.metadata import metadata
from PIL import Image
model, images = sys.argv[1], sys.argv[2:]
shown = metadata.MetadataDisplayer.with_model_file(model)
out = {"metadata": json.loads(shown.get_metadata_json()), "packed": shown.get_packed_associated_file_list(),
       "answers": []}
opts = vision.ImageClassifierOptions(base_options=mpt.BaseOptions(model_asset_path=model), max_results=3)
with vision.ImageClassifier.create_from_options(opts) as clf:
    for p in images:
        arr = np.ascontiguousarray(np.asarray(Image.open(p).convert("RGB")))
        r = clf.classify(mp.Image(image_format=mp.ImageFormat.SRGB, data=arr))
        out["answers"].append([(c.category_name, c.score) for c in r.classifications[0].categories])
print(json.dumps(out))
'''


def _mediapipe_python() -> Path:
    """A virtualenv with MediaPipe, made once and kept in the cache (MediaPipe pins protobuf<5; TF 2.21 needs >=6.31)."""
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "edgedeploy" / ("venv-" + MEDIAPIPE.replace("==", "-"))
    py = cache / "bin" / "python"
    ok = cache / "COMPLETE"
    if not ok.is_file():
        venv.create(cache, with_pip=True, clear=True)
        proc = subprocess.run([str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check", MEDIAPIPE, "pillow"],
                              capture_output=True, text=True, timeout=900)
        if proc.returncode != 0:
            tail = (proc.stderr.strip().splitlines() or ["?"])[-1]
            if "No matching distribution" in tail or "connection" in proc.stderr.lower():
                pytest.skip(f"cannot install {MEDIAPIPE} from the package index here: {tail}")
            raise AssertionError(f"pip install {MEDIAPIPE} failed: {tail}")
        ok.write_text(MEDIAPIPE + "\n")
    return py


@pytest.mark.slow
@pytest.mark.parametrize("name", TFLITE)
def test_mediapipe_reads_the_metadata_and_classifies_like_edge_runtime(edge_models, truth, name):
    py = _mediapipe_python()
    images = [edge_models / "images" / n for n in sorted(truth)[:20]]
    proc = subprocess.run([str(py), "-c", _MEDIAPIPE_PROBE, str(edge_models / name), *map(str, images)],
                          capture_output=True, text=True, timeout=600, env={**os.environ, "GLOG_minloglevel": "2"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    manifest = Manifest.from_json((edge_models / f"{name}.json").read_text())
    assert got["packed"] == ["labels.txt"]
    [sub] = got["metadata"]["subgraph_metadata"]
    assert sub["input_tensor_metadata"][0]["process_units"][0]["options"] == {"mean": [0.0], "std": [1.0]}
    assert sub["output_tensor_metadata"][0]["associated_files"][0]["type"] == "TENSOR_AXIS_LABELS"
    clf = ImageClassifier(edge_models / name, top_k=3)
    ours = [clf.predict(p) for p in images]
    theirs = got["answers"]
    # labels come from the packed labels.txt; the images are the model's input size, so no resize differs
    assert all(t[0][0] in manifest.labels for t in theirs)
    agree = np.mean([t[0][0] == o.label for t, o in zip(theirs, ours)])
    assert agree == 1.0, [(t[0], o.label) for t, o in zip(theirs, ours)]
    assert max(abs(t[0][1] - o.score) for t, o in zip(theirs, ours)) < 0.01


# -- edge_runtime reads it: a classifier from another tool, with no edgedeploy manifest -------------
def _foreign(edge_models, tmp_path, manifest_changes: dict) -> Path:
    """model_float32.tflite as another tool would ship it: the standard metadata only, no edgedeploy manifest."""
    from edgedeploy.export.formats._tflite_metadata import add

    data = (edge_models / "model_float32.tflite").read_bytes()
    manifest = Manifest.from_json((edge_models / "model_float32.tflite.json").read_text()).replace(**manifest_changes)
    bare = TFLiteFormat().write_metadata(data, "edgedeploy.manifest", None)
    out = tmp_path / "foreign.tflite"  # no sidecar beside it
    out.write_bytes(add(TFLiteFormat().write_metadata(bare, STANDARD_METADATA, None), manifest))
    return out


@pytest.mark.tf
def test_a_file_with_only_the_standard_metadata_gets_its_labels_and_normalization(edge_models, truth, tmp_path, capsys):
    words = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
    path = _foreign(edge_models, tmp_path, {"labels": words})
    clf = ImageClassifier(path)  # no warning: the file describes itself (UserWarnings are errors here)
    assert not clf.manifest_found and clf.manifest_origin == "standard metadata"
    assert clf.manifest.labels == words and clf.manifest.normalization.in_graph
    ref = ImageClassifier(edge_models / "model_float32.tflite")
    for n in sorted(truth)[:10]:
        p = edge_models / "images" / n
        assert clf.predict(p).label == words[int(ref.predict(p).label)]
    from edgedeploy.runtime.cli import main

    assert main([str(path), "--info"]) == 0
    assert "labels and input (raw 0..255) from the standard TFLite metadata" in capsys.readouterr().out


@pytest.mark.tf
def test_standard_normalization_is_applied_and_a_short_label_file_is_ignored(edge_models, tmp_path):
    path = _foreign(edge_models, tmp_path, {"labels": ["a", "b"],  # 2 labels for 10 classes: not used
                                            "normalization": {"in_graph": False, "mean": [127.5] * 3, "std": [127.5] * 3}})
    clf = ImageClassifier(path)
    assert clf.manifest.labels == [str(i) for i in range(10)]
    n = clf.manifest.normalization
    assert (n.in_graph, n.mean, n.std) == (False, [127.5] * 3, [127.5] * 3)
    x = clf.preprocess(np.full((32, 32, 3), 255, np.uint8))
    assert np.allclose(x, 1.0)  # (255 - 127.5) / 127.5


_MEDIAPIPE_WRITER = r'''
import sys
from mediapipe.tasks.python.metadata.metadata_writers import image_classifier, metadata_writer
src, dst, mean, std, labels = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4]), sys.argv[5:]
writer = image_classifier.MetadataWriter.create(bytearray(open(src, "rb").read()), [mean], [std],
                                                metadata_writer.Labels().add(labels))
model, _ = writer.populate()
open(dst, "wb").write(model)
'''


@pytest.mark.slow
def test_edge_runtime_reads_metadata_that_mediapipe_wrote(edge_models, truth, tmp_path):
    """A classifier from another tool: MediaPipe's own writer, no edgedeploy manifest. edge-infer runs it as is."""
    py = _mediapipe_python()
    data = (edge_models / "model_float32.tflite").read_bytes()
    bare = TFLiteFormat().write_metadata(TFLiteFormat().write_metadata(data, "edgedeploy.manifest", None),
                                         STANDARD_METADATA, None)
    (tmp_path / "bare.tflite").write_bytes(split_packed(bare)[0])  # the flatbuffer alone, as a converter writes it
    words = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
    out = tmp_path / "mediapipe.tflite"
    proc = subprocess.run([str(py), "-c", _MEDIAPIPE_WRITER, str(tmp_path / "bare.tflite"), str(out), "0", "1", *words],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    clf = ImageClassifier(out)
    assert clf.manifest_origin == "standard metadata" and clf.manifest.labels == words
    ref = ImageClassifier(edge_models / "model_float32.tflite")
    for n in sorted(truth)[:10]:
        p = edge_models / "images" / n
        got, want = clf.predict(p), ref.predict(p)
        assert got.label == words[int(want.label)] and abs(got.score - want.score) < 1e-6
