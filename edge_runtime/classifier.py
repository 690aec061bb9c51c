"""ImageClassifier: images in, probabilities out, on any registered backend.

    from edgedeploy.runtime import ImageClassifier
    clf = ImageClassifier("model.tflite", threads=4)   # manifest read from the file
    pred = clf.predict("cat.jpg")                      # path, bytes, PIL image or uint8 array
    pred.label, pred.score, pred.top_k

Quantized (uint8/int8) inputs and outputs are handled here from the model's
own scale and zero point, so a caller always passes images and gets
probabilities.
"""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from edgedeploy.core.errors import EdgeDeployError, ManifestError, ModelError

from .backends import Backend, backend_for
from .formats import format_for_path
from .integrity import verify_model_hash
from .manifest import Manifest, default_manifest, guess_layout
from .options import ClassifierOptions
from .preprocess import ImageSource, preprocess

SCORE_DIGITS = 6  # scores in a prediction's JSON form
LATENCY_DIGITS = 3  # milliseconds in a prediction's JSON form


@dataclass
class Prediction:
    """The answer for one image."""

    label: str
    score: float
    index: int
    top_k: list[tuple[str, float]] = field(default_factory=list)
    probabilities: np.ndarray | None = field(default=None, repr=False)

    def to_dict(self, path: str | None = None, latency_ms: float | None = None) -> dict:
        """THE JSON form of a prediction (edge-infer --json, serve): path, label, score, top_k, latency_ms.

        ``path`` and ``latency_ms`` appear only when given. Scores are rounded
        to 6 decimals and the latency to 3 (microseconds), everywhere.
        """
        d: dict = {} if path is None else {"path": str(path)}
        d.update(label=self.label, score=round(float(self.score), SCORE_DIGITS),
                 top_k=[{"label": lab, "score": round(float(s), SCORE_DIGITS)} for lab, s in self.top_k])
        if latency_ms is not None:
            d["latency_ms"] = round(float(latency_ms), LATENCY_DIGITS)
        return d


def load_manifest_for(model_path: str | os.PathLike, backend: Backend | None = None) -> Manifest | None:
    """The manifest embedded in a model file, else its sidecar, else None.

    Read by the file's format (``edge_runtime.formats``) without any runtime
    (benchmarks use that). The sidecar is ``<file name>.json``
    (``model_int8.tflite.json``, as export-model writes it) or ``<stem>.json``
    (``model_int8.json``). With an open ``backend`` (the file is verified)
    its format reads the file and damaged metadata is an error; without one,
    damaged metadata is skipped for the sidecar (loading reports it later).
    """

    if backend is not None:
        return backend.model_format().read_manifest(model_path, strict=True)
    return format_for_path(model_path).read_manifest(model_path, strict=False)


class ImageClassifier:
    """Run an exported image classifier with the preprocessing it was trained with.

    Two ways to open one, never mixed::

        ImageClassifier("model_int8.tflite", threads=4, top_k=3)          # the options as keywords
        ImageClassifier.from_options("model_int8.tflite", options)         # a ClassifierOptions (CLI, serve)

    Args:
        model_path: a ``.tflite`` or ``.onnx`` file exported by edgedeploy (or any
            single-input, single-output image classifier).
        manifest: override the manifest found in the file.
        **options: the fields of ``ClassifierOptions`` (edge_runtime/options.py), validated there:
            threads (default all cores), backend ("auto": by file type and what is
            installed), xnnpack, max_pixels, top_k, probe ("auto", "always" or "never":
            load an unseen file in a throwaway process first, backends/probe.py) and
            verify_hash (check the file against the SHA-256 in its sidecar manifest).
    """

    def __init__(self, model_path: str | os.PathLike, *, manifest: Manifest | None = None, **options: Any):
        unknown = sorted(set(options) - set(ClassifierOptions.field_names()))
        if "options" in unknown:
            raise EdgeDeployError("Received options=; a ready ClassifierOptions goes through "
                                  "ImageClassifier.from_options(path, options), the keywords through ImageClassifier(path, ...)")
        if unknown:
            raise EdgeDeployError(f"Received {', '.join(unknown)}=, expected options among: "
                                  f"{', '.join(ClassifierOptions.field_names())}")
        self._open(model_path, ClassifierOptions(**options), manifest)

    @classmethod
    def from_options(cls, model_path: str | os.PathLike, options: ClassifierOptions,
                     manifest: Manifest | None = None) -> "ImageClassifier":
        """Open ``model_path`` with a ready ``ClassifierOptions`` (what edge-infer and serve build)."""
        if not isinstance(options, ClassifierOptions):
            raise EdgeDeployError(f"Received options={options!r}, expected a ClassifierOptions")
        self = cls.__new__(cls)
        self._open(model_path, options, manifest)
        return self

    def _open(self, model_path: str | os.PathLike, options: ClassifierOptions, manifest: Manifest | None) -> None:
        self.options = options
        self.path = Path(model_path)
        self.sha256 = None
        if options.verify_hash:  # before any runtime sees the bytes

            self.sha256 = verify_model_hash(self.path)
        self.backend = backend_for(self.path, options.backend, threads=options.threads, xnnpack=options.xnnpack,
                                   probe=options.probe)
        self.manifest = manifest or load_manifest_for(self.path, self.backend)
        self.max_pixels = options.max_pixels
        self.top_k = options.top_k
        self.manifest_found = self.manifest is not None
        self.manifest_origin = "edgedeploy" if self.manifest_found else "defaults"
        if self.manifest is None:
            self.manifest = self._manifest_from_model()
        self._check_manifest_matches_model()
        b = self.backend
        self._float_io = not (b.input.quantized or b.output.quantized) and b.output.dtype == np.float32
        self._in_dtype = b.input.dtype
        self._fixed_batch = 0 if b.dynamic_batch else max(1, b.input.shape[0])
        self._run = b._run

    # -- construction helpers -------------------------------------------------
    def _manifest_from_model(self) -> Manifest:
        shape, classes = self.backend.input.shape, self.backend.output.shape[-1]
        if guess_layout(shape) == "nchw":  # a PyTorch-style export: channels first, normalization unknown
            dims = "x".join("?" if d < 1 else str(d) for d in shape)
            raise ManifestError(f"{self.path.name} has no manifest and its input {dims} looks NCHW (channels first, as "
                                "PyTorch exports): give its labels, layout and normalization once with export-model "
                                f"{self.path.name} --labels a,b,... --layout nchw --normalize imagenet --quantize none "
                                "(or a sidecar manifest with \"layout\": \"nchw\")")
        if len(shape) != 4 or min(shape[1:3]) < 1 or classes < 1:
            raise ManifestError(f"{self.path.name} has no manifest and its input shape {shape} does not tell the image size")
        standard = self._manifest_from_standard_metadata(int(classes), int(shape[1]), int(shape[2]), int(shape[3]))
        if standard is not None:
            self.manifest_origin = "standard metadata"
            return standard
        warnings.warn(f"{self.path.name} carries no manifest: using class indices as labels and raw 0..255 RGB input", stacklevel=3)
        return default_manifest(int(classes), int(shape[1]), int(shape[2]))

    def _manifest_from_standard_metadata(self, classes: int, height: int, width: int, channels: int) -> Manifest | None:
        """A manifest from the file's standard metadata (a MediaPipe or Model Maker export), or None.

        Labels come from its label file when it names one label per class;
        ``(pixel - mean) / std`` from its NormalizationOptions (none: raw 0..255).
        """
        try:
            hints = self.backend.model_format().standard_hints(self.path.read_bytes())
        except OSError:
            return None
        if not hints or channels not in (1, 3):
            return None
        labels = hints["labels"] if hints["labels"] and len(hints["labels"]) == classes else [str(i) for i in range(classes)]
        mean, std = hints["mean"], hints["std"]
        normalization: dict = {"in_graph": True, "mean": [0.0] * channels, "std": [1.0] * channels}
        identity = mean is not None and std is not None and set(mean) <= {0.0} and set(std) <= {1.0}
        if mean and std and not identity and len(mean) in (1, channels) and len(std) in (1, channels) and all(std):
            normalization = {"in_graph": False, "mean": [float(v) for v in mean] * (channels // len(mean)),
                             "std": [float(v) for v in std] * (channels // len(std))}
        return Manifest.from_dict({"labels": labels, "input_height": height, "input_width": width,
                                   "input_channels": channels, "normalization": normalization})

    def _check_manifest_matches_model(self) -> None:
        m, shape = self.manifest, self.backend.input.shape
        if len(shape) != 4:
            raise ModelError(f"expected an image model with input (N, H, W, C) or (N, C, H, W), got shape {shape}: {self.path}")
        want, got = m.input_shape, tuple(shape[1:])
        if all(g > 0 for g in got) and got != want:
            order = "CxHxW" if m.layout == "nchw" else "HxWxC"
            hint = ""
            if guess_layout(shape) not in (None, m.layout):
                hint = f"; the model looks {guess_layout(shape).upper()} but the manifest says layout {m.layout}"
            raise ModelError(f"model input is {'x'.join(map(str, got))} but its manifest says {'x'.join(map(str, want))} "
                             f"({order}){hint}: {self.path}")
        classes = self.backend.output.shape[-1]
        if classes > 0 and classes != m.num_classes:
            raise ModelError(f"model has {classes} outputs but its manifest lists {m.num_classes} labels: {self.path}")

    # -- the tensor path ------------------------------------------------------
    def quantize_input(self, x: np.ndarray, owned: bool = False) -> np.ndarray:
        """float32 model input -> the model's input dtype (scale/zero point if integer).

        ``owned``: ``x`` is a scratch array the caller no longer needs (``prepare``),
        so a scale of 1 and a zero point of 0 (a model that normalizes in its graph)
        skip the division and the addition; the values are the same.
        """
        info = self.backend.input
        if info.quantized:
            lim = np.iinfo(info.dtype)
            if owned and info.scale == 1.0 and x.dtype == np.float32:
                q = x
            else:
                q = x / np.float32(info.scale)  # a new array: the rest works in place on it
            if info.zero_point:
                q += info.zero_point
            np.round(q, out=q)
            np.clip(q, lim.min, lim.max, out=q)
            return q.astype(info.dtype)
        return x.astype(info.dtype, copy=False)

    def dequantize_output(self, y: np.ndarray) -> np.ndarray:
        info = self.backend.output
        if info.quantized:
            return (y.astype(np.float32) - info.zero_point) * np.float32(info.scale)
        return y.astype(np.float32, copy=False)

    def predict_tensor(self, x: np.ndarray, batch_size: int = 32) -> np.ndarray:
        """Probabilities for already-preprocessed float32 input.

        Batches go through ``batch_size`` at a time where the model's batch
        dimension is dynamic (the runtime's input is resized), and in chunks of
        the model's fixed batch where it is not; a short last chunk is padded
        and the padding dropped from the answer.

        Args:
            x: float32 array (N, H, W, C), or one image (H, W, C); channels first
                ((N, C, H, W)) when the manifest's layout is nchw.
            batch_size: largest batch handed to a dynamic-batch model.

        Returns:
            float32 array (N, classes).
        """
        # Fast path (a float model, one runtime call): a few attribute reads, so the
        # wrapper costs ~1-3 us per call over a bare interpreter loop.
        if self._float_io and x.ndim == 4 and x.dtype == self._in_dtype:
            n = x.shape[0]
            if (n == self._fixed_batch) if self._fixed_batch else (0 < n <= batch_size):
                return self._run(x)
        if x.ndim == 3:
            x = x[None]
        n = len(x)
        if n == 0:
            return np.zeros((0, self.manifest.num_classes), np.float32)
        backend = self.backend
        if backend.dynamic_batch:
            step, fixed = max(1, batch_size), 0
        else:
            step = fixed = max(1, backend.input.shape[0])
        if n == step or (n < step and not fixed):  # one call
            return self.dequantize_output(backend.run(self.quantize_input(x)))
        outs = []
        for i in range(0, n, step):
            chunk = x[i:i + step]
            short = step - len(chunk) if fixed else 0
            if short:
                chunk = np.concatenate([chunk, np.zeros((short,) + chunk.shape[1:], chunk.dtype)])
            y = self.dequantize_output(backend.run(self.quantize_input(chunk)))
            outs.append(y[: len(y) - short] if short else y)
        return np.concatenate(outs, axis=0) if outs else np.zeros((0, self.manifest.num_classes), np.float32)

    # -- the image path -------------------------------------------------------
    def preprocess(self, image: ImageSource) -> np.ndarray:
        """One image -> the model's float32 input: (H, W, C), or (C, H, W) when the manifest's layout is nchw."""
        return self.to_model_layout(preprocess(image, self.manifest, self.max_pixels))

    def to_model_layout(self, x: np.ndarray) -> np.ndarray:
        """Preprocessed input, channels last ((N, H, W, C) or one (H, W, C)), in the model's axis order:
        channels first when the manifest's layout is nchw (a PyTorch-style model), else as it is."""
        return np.ascontiguousarray(np.moveaxis(x, -1, -3)) if self.manifest.layout == "nchw" else x

    @property
    def batchable(self) -> bool:
        """True when one runtime call takes any number of images (a dynamic batch dimension)."""
        return bool(self.backend.dynamic_batch)

    def prepare(self, image: ImageSource) -> np.ndarray:
        """One image as the model takes it, for ``predict_prepared`` (thread-safe: no runtime call).

        Dynamic-batch models get the model's own dtype (uint8/int8 quantized
        here: 4x less memory while it waits, less work on the runtime's
        thread); fixed-batch models get float32, which ``predict_tensor`` pads
        and quantizes per chunk.
        """
        x = self.to_model_layout(preprocess(image, self.manifest, self.max_pixels))  # a fresh float32 array
        return self.quantize_input(x, owned=True) if self.backend.dynamic_batch else x

    def predict_prepared(self, xs: np.ndarray) -> np.ndarray:
        """Probabilities (N, classes) for a stack of ``prepare`` outputs: one runtime call on dynamic-batch models."""
        if self.backend.dynamic_batch:
            return self.dequantize_output(self._run(xs))
        return self.predict_tensor(xs, batch_size=len(xs))

    def prediction(self, probs: np.ndarray, top_k: int | None = None) -> Prediction:
        """Turn one row of probabilities into a ``Prediction`` (label, score, top_k).

        Args:
            probs: float array (classes,), as one row of ``predict_tensor``.
            top_k: most (label, score) pairs kept; None: ``self.top_k``.

        Returns:
            The ``Prediction``; ``top_k`` holds at most that many pairs.
        """
        return self._prediction(probs, top_k)

    def _prediction(self, probs: np.ndarray, top_k: int | None = None) -> Prediction:
        labels = self.manifest.labels
        order = np.argsort(-probs, kind="stable")[: self.top_k if top_k is None else top_k]
        top = [(labels[i], float(probs[i])) for i in order]
        return Prediction(label=top[0][0], score=top[0][1], index=int(order[0]), top_k=top, probabilities=probs)

    def predict(self, image: ImageSource) -> Prediction:
        """Classify one image (path, bytes, PIL image or uint8 array)."""
        return self._prediction(self.predict_tensor(self.preprocess(image)[None])[0])

    def predict_batch(self, images: Sequence[ImageSource] | Iterable[ImageSource], batch_size: int = 8,
                      workers: int | None = None) -> list[Prediction]:
        """Classify many images, ``batch_size`` per runtime call.

        Decoding and preprocessing run on ``workers`` threads while the model
        runs (``edge_runtime.pipeline``; None: min(4, cores), 0: in this
        thread). Answers are in input order; the first image that cannot be
        read raises its ``ImageError``. For per-image errors instead of an
        exception, use ``edge_runtime.pipeline.iter_predictions``.
        """
        if not isinstance(batch_size, int) or batch_size < 1:
            raise EdgeDeployError(f"Received batch_size={batch_size!r}, expected an integer >= 1")
        from .pipeline import Pipeline, PipelineOptions

        preds: list[Prediction] = []
        with Pipeline(self, PipelineOptions(workers=workers, batch_size=batch_size)) as pipe:
            for _, outcome, _ in pipe.run(images):
                if isinstance(outcome, BaseException):
                    raise outcome
                preds.append(outcome)
        return preds

    def describe(self) -> dict:
        d = self.backend.describe()
        d.update(model=str(self.path), manifest_found=self.manifest_found, labels=self.manifest.labels)
        return d

    def __repr__(self) -> str:
        return f"ImageClassifier({str(self.path)!r}, backend={self.backend.name!r}, threads={self.backend.threads})"

