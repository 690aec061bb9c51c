"""Read the standard TFLite metadata (``TFLITE_METADATA``, ``metadata_schema.fbs``) without any library.

A classifier made by another tool (MediaPipe Model Maker, TFLite Model Maker,
Edge Impulse, export-model itself) describes its input image and labels there:
the input tensor's ``NormalizationOptions`` and ``ImageProperties`` colour
space, and the output tensor's ``TENSOR_AXIS_LABELS`` associated file, packed
in the zip after the model. edge_runtime uses it when a file carries no
edgedeploy manifest. Every offset is bounds-checked by ``_Reader``; anything
unexpected reads as "no metadata".
"""
from __future__ import annotations

from typing import Any

from ._tflite_flatbuffer import _Reader

# The schema's names and values, for this reader and for export's writer
# (export/formats/_tflite_metadata.py, through edge_runtime.formats.tflite).
STANDARD_METADATA = "TFLITE_METADATA"  # the model metadata entry that holds it
STANDARD_IDENTIFIER = b"M001"  # metadata_schema.fbs file_identifier
TENSOR_AXIS_LABELS = 2  # AssociatedFileType
COLOR_RGB, COLOR_GRAYSCALE = 1, 2  # ColorSpaceType
FEATURE_PROPERTIES, IMAGE_PROPERTIES = 1, 2  # ContentProperties union tags
NORMALIZATION_OPTIONS = 1  # ProcessUnitOptions union tag


def _first(r: _Reader, tab: Any, idx: int) -> Any:
    items = r.tables(tab, idx)
    return items[0] if items else None


def read_standard_metadata(buf: bytes) -> dict[str, Any] | None:
    """{"mean", "std", "channels", "labels_file"} of the first input and output tensor, or None.

    ``mean``/``std`` are None when the input has no normalization; ``channels``
    is 1 for a GRAYSCALE image, 3 otherwise; ``labels_file`` is the name of the
    output's label file, or None.
    """
    if len(buf) < 8 or buf[4:8] != STANDARD_IDENTIFIER:
        return None
    try:
        r = _Reader(buf)
        root = r.table(r.deref(0))
        sub = _first(r, root, 3)
        if sub is None:
            return None
        image, score = _first(r, sub, 2), _first(r, sub, 3)
        out: dict[str, Any] = {"mean": None, "std": None, "channels": 3, "labels_file": None}
        if image is not None:
            content = r.field(image, 3)
            if content is not None:
                c = r.table(r.deref(content))
                props = r.field(c, 1)
                if r.scalar(c, 0, "<B") == IMAGE_PROPERTIES and props is not None:
                    if r.scalar(r.table(r.deref(props)), 0, "<b") == COLOR_GRAYSCALE:
                        out["channels"] = 1
            for unit in r.tables(image, 4):
                options = r.field(unit, 1)
                if r.scalar(unit, 0, "<B") == NORMALIZATION_OPTIONS and options is not None:
                    norm = r.table(r.deref(options))
                    out["mean"], out["std"] = r.floats(norm, 0), r.floats(norm, 1)
                    break
        if score is not None:
            for f in r.tables(score, 6):
                if r.scalar(f, 2, "<b") == TENSOR_AXIS_LABELS:
                    out["labels_file"] = r.string(f, 0)
                    break
        return out
    except (ValueError, IndexError, UnicodeDecodeError):
        return None
