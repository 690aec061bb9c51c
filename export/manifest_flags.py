"""The manifest of a model that came without a run folder: from flags, else from the file's own metadata.

``export-model model.onnx --labels cat,dog --normalize imagenet`` describes a classifier trained
elsewhere with the same contract ``train-model`` writes (``edge_runtime/manifest.py``):

- ``--labels FILE|a,b,c``: one label per output, a file with one per line, or a comma list;
- ``--input-size N|HxW``: only needed when the model's input size is dynamic;
- ``--layout nchw|nhwc``: detected from the input shape when it is unambiguous;
- ``--normalize 0-255|0-1|-1-1|imagenet|mean=R,G,B:std=R,G,B``: ``mean``/``std`` on 0..1 pixels,
  as torchvision writes them (``imagenet`` is (0.485, 0.456, 0.406) / (0.229, 0.224, 0.225));
  ``0-255`` is raw pixels, for a model that normalizes in its graph;
- ``--color rgb|bgr`` (default rgb).

A flag wins over what the file says (standard TFLite metadata, ONNX ``metadata_props``). A field
the export needs and nobody gave is one line naming the flag.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgedeploy.core.errors import EdgeDeployError
from edgedeploy.runtime.manifest import NORMALIZE_PRESETS, Manifest, Normalization, guess_layout

LAYOUTS = ("nhwc", "nchw")
COLORS = ("rgb", "bgr")
NORMALIZE_HELP = "0-255|0-1|-1-1|imagenet|mean=R,G,B:std=R,G,B"
_CUSTOM = re.compile(r"^mean=([^:]+):std=(.+)$")


def parse_labels(text: str) -> list[str]:
    """``a,b,c`` or a file with one label per line (blank lines skipped)."""
    p = Path(text)
    if "," not in text and p.is_file():
        try:
            labels = [ln.strip() for ln in p.read_text("utf-8").splitlines() if ln.strip()]
        except (OSError, UnicodeDecodeError) as exc:
            raise EdgeDeployError(f"Received --labels {text!r}: could not read it as a text file ({exc})") from None
    else:
        labels = [t.strip() for t in text.split(",") if t.strip()]
    if not labels:
        raise EdgeDeployError(f"Received --labels {text!r}, expected a,b,c or a file with one label per line")
    if len(set(labels)) != len(labels):
        raise EdgeDeployError(f"Received --labels {text!r} with a label given twice")
    return labels


def parse_input_size(text: str) -> tuple[int, int]:
    """``224`` -> (224, 224); ``160x192`` -> (160, 192) (height x width)."""
    m = re.fullmatch(r"\s*(\d+)\s*(?:[xX]\s*(\d+)\s*)?", str(text))
    if not m or int(m.group(1)) < 1 or (m.group(2) is not None and int(m.group(2)) < 1):
        raise EdgeDeployError(f"Received --input-size {text!r}, expected N or HxW (pixels, e.g. 224 or 160x192)")
    h = int(m.group(1))
    return h, int(m.group(2)) if m.group(2) is not None else h


def parse_normalize(text: str) -> Normalization:
    """A preset or ``mean=R,G,B:std=R,G,B`` on 0..1 pixels -> the manifest's Normalization (0..255 units)."""
    key = str(text).strip().lower()
    if key in NORMALIZE_PRESETS:
        preset = NORMALIZE_PRESETS[key]
        return Normalization() if preset is None else Normalization(in_graph=False, mean=list(preset[0]), std=list(preset[1]))
    m = _CUSTOM.match(key.replace(" ", ""))
    try:
        mean = [float(v) for v in m.group(1).split(",")] if m else []
        std = [float(v) for v in m.group(2).split(",")] if m else []
    except ValueError:
        mean = std = []
    if not m or len(mean) not in (1, 3) or len(std) not in (1, 3) or any(s <= 0 for s in std):
        raise EdgeDeployError(f"Received --normalize {text!r}, expected {NORMALIZE_HELP} "
                              "(mean and std on 0..1 pixels, one value or three, std > 0)")
    mean, std = (mean * 3)[:3], (std * 3)[:3]
    return Normalization(in_graph=False, mean=[round(v * 255, 6) for v in mean], std=[round(v * 255, 6) for v in std])


@dataclass
class ManifestFields:
    """The manifest's fields as flags or a file's metadata give them; None: not given."""

    labels: list[str] | None = None
    size: tuple[int, int] | None = None
    layout: str | None = None
    normalization: Normalization | None = None
    color: str | None = None
    origin: dict[str, str] = field(default_factory=dict)  # field -> "--flag" or where the file said it

    @classmethod
    def from_options(cls, opts: Any) -> "ManifestFields":
        f = cls()
        if opts.labels is not None:
            f.labels, f.origin["labels"] = parse_labels(opts.labels), "--labels"
        if opts.input_size is not None:
            f.size, f.origin["size"] = parse_input_size(opts.input_size), "--input-size"
        if opts.layout is not None:
            f.layout, f.origin["layout"] = opts.layout, "--layout"
        if opts.normalize is not None:
            f.normalization, f.origin["normalization"] = parse_normalize(opts.normalize), "--normalize"
        if opts.color is not None:
            f.color, f.origin["color"] = opts.color, "--color"
        return f

    def given(self) -> list[str]:
        return [k for k in ("labels", "size", "layout", "normalization", "color") if getattr(self, k) is not None]

    def over(self, other: "ManifestFields") -> "ManifestFields":
        """These fields, with ``other``'s where these are missing (flags over the file's metadata)."""
        out = ManifestFields(origin=dict(other.origin))
        for k in ("labels", "size", "layout", "normalization", "color"):
            mine = getattr(self, k)
            setattr(out, k, mine if mine is not None else getattr(other, k))
            if mine is not None:
                out.origin[k] = self.origin.get(k, "?")
        return out


def fields_from_onnx_metadata(props: dict[str, str], where: str) -> ManifestFields:
    """What an ONNX file's ``metadata_props`` say, under the keys exporters commonly use; unknown values are ignored."""
    f = ManifestFields()
    for key in ("labels", "classes", "names", "class_names"):
        labels = _labels_value(props.get(key))
        if labels:
            f.labels, f.origin["labels"] = labels, f"{where} metadata_props[{key!r}]"
            break
    for key, attr, parse in (("layout", "layout", lambda v: v.lower() if v.lower() in LAYOUTS else None),
                             ("normalize", "normalization", _quiet(parse_normalize)),
                             ("color", "color", lambda v: v.lower() if v.lower() in COLORS else None),
                             ("input_size", "size", _quiet(parse_input_size))):
        value = props.get(key)
        parsed = parse(value.strip()) if isinstance(value, str) else None
        if parsed is not None:
            setattr(f, attr, parsed)
            f.origin[attr] = f"{where} metadata_props[{key!r}]"
    return f


def _quiet(parse: Any) -> Any:
    def inner(v: str) -> Any:
        try:
            return parse(v)
        except EdgeDeployError:
            return None
    return inner


def _labels_value(value: str | None) -> list[str] | None:
    """A JSON list, a JSON/Python-style {index: name} dict (Ultralytics' ``names``), or a comma/newline list."""
    if not value or not value.strip():
        return None
    text = value.strip()
    try:
        data = json.loads(text if not text.startswith("{") else re.sub(r"(\d+)\s*:", r'"\1":', text).replace("'", '"'))
    except ValueError:
        data = None
    if isinstance(data, list) and all(isinstance(x, str) for x in data):
        return data or None
    if isinstance(data, dict):
        try:
            return [str(data[k]) for k in sorted(data, key=int)] or None
        except (ValueError, TypeError):
            return None
    items = [t.strip() for t in re.split(r"[\n,]", text) if t.strip()]
    return items or None


def build_manifest(given: ManifestFields, shape: tuple[int, ...], classes: int, path: Path, *, fmt: str, model_name: str = "",
                   input_dtype: str = "float32") -> Manifest:
    """The manifest of ``path`` (input ``shape``, -1 for a dynamic dimension; ``classes`` outputs).

    Raises:
        EdgeDeployError: one line naming the flag for each field nobody gave, or the value that
            contradicts the model.
    """
    name = path.name
    if input_dtype != "float32":
        raise EdgeDeployError(f"{name} takes {input_dtype} input: export-model quantizes float32 models, and this one is "
                              "already quantized (give its float32 original)")
    if len(shape) != 4:
        raise EdgeDeployError(f"{name} takes input of shape {_dims(shape)}; expected images: (N, H, W, C) or (N, C, H, W)")
    layout = given.layout or guess_layout(shape)
    missing = []
    if layout is None:
        missing.append(f"--layout nchw|nhwc (its input {_dims(shape)} could be either)")
    if given.labels is None:
        missing.append(f"--labels FILE|a,b,c (one per output{f', {classes} here' if classes > 0 else ''})")
    if given.normalization is None:
        missing.append(f"--normalize {NORMALIZE_HELP} (how it expects pixels; a torchvision model: imagenet)")
    if missing:
        raise EdgeDeployError(f"{name} carries no manifest: give " + "; ".join(missing))
    c, h, w = (shape[1], shape[2], shape[3]) if layout == "nchw" else (shape[3], shape[1], shape[2])
    if given.layout is not None and guess_layout(shape) not in (None, layout):
        raise EdgeDeployError(f"Received --layout {layout}, but {name} takes {_dims(shape)}, which is "
                              f"{guess_layout(shape).upper()} (channels {'first' if layout == 'nhwc' else 'last'})")
    if c not in (1, 3):
        raise EdgeDeployError(f"{name} takes {_dims(shape)}: with layout {layout} that is {c} channels; "
                              "expected 1 or 3 (check --layout)")
    if given.size is not None:
        if (h > 0 and given.size[0] != h) or (w > 0 and given.size[1] != w):
            raise EdgeDeployError(f"Received --input-size {given.size[0]}x{given.size[1]}, but {name} takes "
                                  f"{'?' if h < 1 else h}x{'?' if w < 1 else w}")
        h, w = given.size
    if h < 1 or w < 1:
        raise EdgeDeployError(f"{name} takes a dynamic image size ({_dims(shape)}): give --input-size N or HxW")
    if classes > 0 and len(given.labels) != classes:
        raise EdgeDeployError(f"Received {len(given.labels)} labels ({given.origin.get('labels', '--labels')}), "
                              f"but {name} has {classes} outputs")
    norm = given.normalization
    if c == 1 and not norm.in_graph:
        norm = Normalization(in_graph=False, mean=norm.mean[:1], std=norm.std[:1])
    if c == 1 and norm.in_graph:
        norm = Normalization(in_graph=True, mean=[0.0], std=[1.0])
    return Manifest(labels=list(given.labels), input_height=int(h), input_width=int(w), input_channels=int(c),
                    color_order=(given.color or "rgb").upper(), normalization=norm, layout=layout,
                    model_name=model_name or path.stem, dataset="", format=fmt)


def _dims(shape: tuple[int, ...]) -> str:
    return "x".join("?" if d is None or d < 1 else str(d) for d in shape)


def fields_from_manifest(m: Manifest, where: str) -> ManifestFields:
    """An edgedeploy manifest already in the file (an earlier export): every field, flags may still override."""
    f = ManifestFields(labels=list(m.labels), size=(m.input_height, m.input_width), layout=m.layout,
                       normalization=m.normalization, color=m.color_order.lower())
    f.origin = {k: where for k in f.given()}
    return f


def fields_from_standard_hints(hints: dict[str, Any] | None, classes: int, where: str) -> ManifestFields:
    """What standard TFLite metadata says (MediaPipe, Model Maker): labels and ``(pixel - mean) / std``."""
    f = ManifestFields()
    if not hints:
        return f
    labels = hints.get("labels")
    if labels and (classes < 1 or len(labels) == classes):
        f.labels, f.origin["labels"] = list(labels), f"{where} (packed label file)"
    mean, std = hints.get("mean"), hints.get("std")
    if mean and std and len(mean) in (1, 3) and len(std) in (1, 3) and all(std):
        mean, std = [float(v) for v in (mean * 3)[:3]], [float(v) for v in (std * 3)[:3]]
        identity = set(mean) == {0.0} and set(std) == {1.0}
        f.normalization = Normalization() if identity else Normalization(in_graph=False, mean=mean, std=std)
        f.origin["normalization"] = f"{where} (NormalizationOptions)"
    return f
