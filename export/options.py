"""What ``export-model`` takes, as typed options: ``ExportOptions`` and ``BundleRequest``.

Every field that is also a flag says so (``edgedeploy.core.flags``); ``export/cli.py`` builds its
parser from these fields and hands the objects to the library, so a new export flag is one new
field here. The Python API builds the same objects::

    from edgedeploy.export import ExportOptions, run_export
    run_export(ExportOptions(source="runs/pets", formats=["tflite"], modes=["int8"], select="smallest"))

The cheap checks happen here, on construction; ``plan.py`` checks the combinations (which format
supports which mode, paths on disk) before TensorFlow is imported.
"""
from __future__ import annotations

from dataclasses import dataclass

from edgedeploy.core.command import UsageError
from edgedeploy.core.flags import comma_list, flag, int_at_least

from .calibration import DEFAULT_SAMPLES
from .gate import DEFAULT_MAX_ACCURACY_DROP, DEFAULT_MAX_DISAGREEMENT, DEFAULT_MAX_PROB_DIFF, DEFAULT_POLICY, POLICIES, GatePolicy
from .manifest_flags import COLORS, LAYOUTS, NORMALIZE_HELP, ManifestFields
from .parity import DEFAULT_PARITY_SAMPLES
from .select import CRITERIA

__all__ = ["ExportOptions", "BundleRequest", "DEFAULT_OPSET", "MIN_OPSET", "MAX_OPSET", "SERVICES"]

MIN_OPSET, MAX_OPSET = 13, 18  # QDQ per-channel needs 13; tf2onnx 1.17 goes up to 18
DEFAULT_OPSET = 17
SERVICES = ("watch", "serve")


@dataclass
class ExportOptions:
    """Everything ``export-model`` takes for the conversion, the gate and the selection."""

    source: str = flag("SOURCE", default="", help="a train-model run folder or the .keras inside one; or a float model made "
                                                  "elsewhere: .keras, .h5, SavedModel folder, .onnx (NCHW or NHWC), .tflite")
    formats: list[str] | None = flag("--format", type=comma_list, metavar="FMT[,FMT]",
                                     help="tflite|onnx|all, comma-separated (default tflite; the source's own format for a "
                                          ".onnx or .tflite source)")
    modes: list[str] | None = flag("--quantize", type=comma_list, metavar="MODE[,MODE]",
                                   help="none|float16|dynamic|int8|int16x8|all, comma-separated (default none; every mode "
                                        "with --format all). int16x8 is EXPERIMENTAL (TFLite only)")
    output: str | None = flag("--output", "-o", metavar="DIR", help="output folder (default RUN_DIR/export)")
    calibration_samples: int = flag("--calibration-samples", default=DEFAULT_SAMPLES, type=int, metavar="N",
                                    help=f"class-balanced images from the run's train split for int8/int16x8 calibration "
                                         f"(default {DEFAULT_SAMPLES})")
    calibration_data: str | None = flag("--calibration-data", metavar="DIR",
                                        help="calibrate on the images in this folder instead (needed for int8 of a model without a "
                                             "run folder; class subfolders named by the labels also give held-out evidence)")
    labels: str | None = flag("--labels", metavar="FILE|a,b,c",
                              help="the model's labels, one per output (a model without a run folder; overrides its metadata)")
    input_size: str | None = flag("--input-size", metavar="N|HxW", help="input image size, for a model whose size is dynamic")
    layout: str | None = flag("--layout", choices=LAYOUTS,
                              help="input axis order (default: detected from the input shape when it is unambiguous)")
    normalize: str | None = flag("--normalize", metavar="PRESET",
                                 help=f"{NORMALIZE_HELP}: how the model expects pixels (mean/std on 0..1 pixels, as "
                                      "torchvision; 0-255: raw pixels, normalized in the graph)")
    color: str | None = flag("--color", choices=COLORS, help="channel order the model expects (default rgb)")
    io: str | None = flag("--io", choices=("uint8", "int8", "float32"), help="TFLite int8 input/output type (default uint8)")
    max_accuracy_drop: float = flag("--max-accuracy-drop", default=DEFAULT_MAX_ACCURACY_DROP, type=float,
                                    metavar="PTS", help="parity gate: largest accepted accuracy drop vs Keras, in points "
                                                        f"(default {DEFAULT_MAX_ACCURACY_DROP:g})")
    max_prob_diff: float = flag("--max-prob-diff", default=DEFAULT_MAX_PROB_DIFF, type=float, metavar="P",
                                help="parity gate for float32/float16 files: largest probability difference vs Keras "
                                     f"(default {DEFAULT_MAX_PROB_DIFF:g})")
    max_disagreement: float = flag("--max-disagreement", default=DEFAULT_MAX_DISAGREEMENT, type=float, metavar="PCT",
                                   help="parity gate: largest accepted top-1 disagreement with Keras, in %% of images "
                                        f"(default {DEFAULT_MAX_DISAGREEMENT:g}: faithful files measure 0-1%%, damaged ones 17%%)")
    gate: str = flag("--gate", default=DEFAULT_POLICY, choices=POLICIES,
                     help="evidence: reject only on evidence, accept an inconclusive file with a warning (default); "
                          "strict: accept only on evidence; point: reject when the measured drop exceeds the budget")
    opset: int = flag("--opset", default=DEFAULT_OPSET, type=int, metavar="N",
                      help=f"ONNX opset, {MIN_OPSET}..{MAX_OPSET} (default {DEFAULT_OPSET})")
    keep_float: list[str] = flag("--keep-float", default_factory=list, type=comma_list, metavar="LAYER[,LAYER]",
                                 help="leave these nodes in float (TFLite debugger denylist / ONNX nodes_to_exclude); a node "
                                      "name or part of one, e.g. a scope the report lists for a failed int8 export")
    parity_samples: int | None = flag("--parity-samples", default=DEFAULT_PARITY_SAMPLES, type=int, metavar="N",
                                      help="evidence images for the parity gate, at most N: test, --parity-data, validation, "
                                           f"then train images outside the calibration sample (default {DEFAULT_PARITY_SAMPLES})")
    parity_data: str | None = flag("--parity-data", metavar="DIR",
                                   help="a labelled folder (one subfolder per class, named by label) added to the held-out evidence")
    select: str | None = flag("--select", choices=CRITERIA,
                              help="pick one accepted file and write it as OUTPUT/selected.<ext> with its manifest")
    latency_report: str | None = flag("--latency-report", metavar="FILE.json",
                                      help="with --select fastest: p50 latencies from benchmarks/latency.py --json or "
                                           "compare.py's report.json made on the target device (default: a short run here)")
    seed: int = flag("--seed", default=0, type=int, help="seed for sampling calibration/parity images (default 0)")
    threads: int | None = flag("--threads", type=int_at_least(1), metavar="N",
                               help="runtime threads for the parity run (default all cores)")
    force: bool = flag("--force", default=False, action="store_true", help="replace existing output files")
    unsafe_load: bool = flag("--unsafe-load", default=False, action="store_true",
                             help="allow .keras files with Lambda layers (runs Python code stored in the file: trusted files only)")
    debug: bool = flag("--debug", default=False, action="store_true", help="show tracebacks and the converters' own output")

    def __post_init__(self) -> None:
        if not self.source:
            raise UsageError("the following arguments are required: SOURCE (a run folder or a .keras file)")
        self.formats = None if self.formats is None else comma_list(self.formats)
        self.modes = None if self.modes is None else comma_list(self.modes)
        self.keep_float = comma_list(self.keep_float)
        ManifestFields.from_options(self)  # --labels, --input-size, --normalize: one line echoing a bad value
        self.policy()  # the gate's budgets, checked (one line naming the flag) before anything runs

    def policy(self) -> GatePolicy:
        return GatePolicy(self.gate, self.max_accuracy_drop, self.max_disagreement, self.max_prob_diff)


@dataclass(frozen=True)
class BundleRequest:
    """``export-model --bundle DIR``: the device bundle, of ``--model FILE`` or of the run's selected file."""

    bundle: str | None = flag("--bundle", metavar="DIR",
                              help="write DIR/ and DIR.tar.gz: the model, wheels, install.sh, service, self-test")
    model: str | None = flag("--model", metavar="FILE",
                             help="the exported model to bundle (no conversion); default OUTPUT/selected.*")
    target: str = flag("--target", default="pi64", metavar="pi64|x86_64",
                       help="a bundle.TARGETS name: pi64: Raspberry Pi OS Bookworm 64-bit, aarch64, Python 3.11 (default); x86_64: manylinux, 3.11")
    wheels: bool = flag("--no-wheels", default=True, action="store_false",
                        help="a small bundle: only edgedeploy's wheel; install.sh takes the rest from the package index")
    service: str = flag("--service", default="watch", choices=SERVICES,
                        help="the service mode of run.sh and the systemd unit (default watch; install.sh --service changes it)")

    def __post_init__(self) -> None:
        if self.bundle is None and (self.model is not None or self.target != "pi64" or not self.wheels or self.service != "watch"):
            raise UsageError("--model, --target, --no-wheels and --service go with --bundle DIR")

    @property
    def requested(self) -> bool:
        return self.bundle is not None
