"""The standard TFLite model metadata (``TFLITE_METADATA``), for tools other than edgedeploy.

MediaPipe Tasks' ImageClassifier (Python, Android, iOS, web) and the Android
TFLite Support library read a ``.tflite`` classifier directly when it carries
this metadata: how to normalize the input image, and the labels as an
associated file. It is the same metadata MediaPipe's own
``metadata_writers.image_classifier`` writes (same tensor names, descriptions,
stats and minimum parser version, 1.0.0); tests/export/test_tflite_metadata.py reads
it back with MediaPipe and classifies with it.

Why built here: the kept writers cannot be installed beside TensorFlow 2.21
(tflite-support 0.4.4 pins protobuf<4, TF 2.21 needs >=6.31.1; MediaPipe's
writer pulls OpenCV, matplotlib, sounddevice and, in 0.10, protobuf<5; 1.2.3's
metadata module does not import).
The schema is small and stable (``metadata_schema.fbs``, file identifier
``M001``), so its few tables are written with the ``flatbuffers`` library
(a TensorFlow dependency) by field slot, in schema order.

Layout, as the writers make it: the metadata flatbuffer goes into the model's
``metadata`` list under the name ``TFLITE_METADATA``, and the associated files
are a zip archive appended after the model flatbuffer (runtimes ignore
trailing bytes; readers find the zip's directory at the end of the file).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from edgedeploy.runtime.manifest import Manifest

MIN_PARSER_VERSION = "1.0.0"  # what MediaPipe's writer computes for these tables
LABELS_FILE = "labels.txt"


def unsupported_reason(manifest: "Manifest") -> str | None:
    """Why a file with this manifest cannot carry the standard metadata, or None."""
    if manifest.input_channels not in (1, 3):
        return f"{manifest.input_channels} input channels (the standard metadata describes RGB or grayscale images)"
    if manifest.input_channels == 3 and manifest.color_order != "RGB":
        return f"colour order {manifest.color_order} (MediaPipe and Android feed RGB)"
    in_dtype = manifest.input.dtype if manifest.input is not None else "float32"
    if in_dtype not in ("float32", "uint8"):
        return f"input type {in_dtype} (MediaPipe's image classifier takes float32 or uint8 input)"
    return None


def normalization(manifest: "Manifest") -> tuple[list[float], list[float]]:
    """(mean, std) that turn 0..255 pixels into this model's input; a model that normalizes in its graph takes 0..255."""
    n = manifest.normalization
    if n.in_graph:
        return [0.0], [1.0]
    return [float(v) for v in n.mean], [float(v) for v in n.std]


def build(manifest: "Manifest") -> bytes:
    """The ``M001`` metadata flatbuffer of an image classifier with this manifest."""
    import flatbuffers

    # the schema's values, from the reader that edge_runtime uses on the same files
    from edgedeploy.runtime.formats.tflite import standard as fb

    mean, std = normalization(manifest)
    b = flatbuffers.Builder(1024)

    def table(slots: list[tuple[str, int, Any]]) -> int:
        """A table from (kind, slot, value): 'o' offset, 'u8' ubyte, 'i8' byte."""
        b.StartObject(max((s for _, s, _ in slots), default=-1) + 1)
        prepend = {"o": b.PrependUOffsetTRelativeSlot, "u8": b.PrependUint8Slot, "i8": b.PrependInt8Slot}
        for kind, slot, value in slots:
            prepend[kind](slot, value, 0)
        return b.EndObject()

    def floats(values: list[float]) -> int:
        b.StartVector(4, len(values), 4)
        for v in reversed(values):
            b.PrependFloat32(v)
        return b.EndVector()

    def tables(offsets: list[int]) -> int:
        b.StartVector(4, len(offsets), 4)
        for o in reversed(offsets):
            b.PrependUOffsetTRelative(o)
        return b.EndVector()

    s = b.CreateString
    # input: the image, its normalization and the value range that gives
    norm = table([("o", 0, floats(mean)), ("o", 1, floats(std))])
    unit = table([("u8", 0, fb.NORMALIZATION_OPTIONS), ("o", 1, norm)])
    color = fb.COLOR_RGB if manifest.input_channels == 3 else fb.COLOR_GRAYSCALE
    image_props = table([("i8", 0, color)])
    in_content = table([("u8", 0, fb.IMAGE_PROPERTIES), ("o", 1, image_props)])
    in_stats = table([("o", 0, floats([(255.0 - m) / d for m, d in zip(mean, std)])),
                      ("o", 1, floats([(0.0 - m) / d for m, d in zip(mean, std)]))])
    in_name, in_desc = s("image"), s("Input image to be processed.")
    image = table([("o", 0, in_name), ("o", 1, in_desc), ("o", 3, in_content), ("o", 4, tables([unit])), ("o", 5, in_stats)])
    # output: one score per label, the labels in labels.txt
    labels = table([("o", 0, s(LABELS_FILE)), ("o", 1, s("Labels for categories that the model can recognize.")),
                    ("i8", 2, fb.TENSOR_AXIS_LABELS)])
    out_content = table([("u8", 0, fb.FEATURE_PROPERTIES), ("o", 1, table([]))])
    out_stats = table([("o", 0, floats([1.0])), ("o", 1, floats([0.0]))])
    out_name, out_desc = s("score"), s("Score of the labels respectively.")
    score = table([("o", 0, out_name), ("o", 1, out_desc), ("o", 3, out_content), ("o", 5, out_stats),
                   ("o", 6, tables([labels]))])
    subgraph = table([("o", 2, tables([image])), ("o", 3, tables([score]))])
    model_name = s(manifest.model_name or "ImageClassifier")
    desc = s(f"Image classifier ({len(manifest.labels)} classes, {manifest.input_height}x{manifest.input_width} "
             f"{'RGB' if color == fb.COLOR_RGB else 'grayscale'}) exported by edgedeploy.")
    version = s(MIN_PARSER_VERSION)
    root = table([("o", 0, model_name), ("o", 1, desc), ("o", 3, tables([subgraph])), ("o", 7, version)])
    b.Finish(root, file_identifier=fb.STANDARD_IDENTIFIER)
    return bytes(b.Output())


def labels_text(manifest: "Manifest") -> bytes:
    return ("\n".join(manifest.labels) + "\n").encode("utf-8")


def add(data: bytes, manifest: "Manifest") -> bytes:
    """``data`` (a TFLite file) with the standard metadata, and ``labels.txt`` packed after it."""
    from edgedeploy.runtime.formats.tflite import STANDARD_METADATA, TFLiteFormat, split_packed, with_packed_files

    bare, files = split_packed(data)
    out = TFLiteFormat().write_metadata(bare, STANDARD_METADATA, build(manifest))
    files[LABELS_FILE] = labels_text(manifest)
    return with_packed_files(out, files)
