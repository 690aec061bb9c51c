"""export-model: Keras run folder -> quantized TFLite / ONNX files, each parity-gated.

Exit codes: 0 every file accepted; 2 a usage error (bad flag, path or model);
3 a file failed the parity gate (kept as ``.rejected``); 1 a converter failed;
130 interrupted. Errors are one line; ``--debug`` shows the traceback and the
converters' own output.
"""
from __future__ import annotations

import argparse
import sys
from typing import Sequence

from edgedeploy.core.command import ArgumentParser, run_command

from .calibration import DEFAULT_SAMPLES
from .formats import FORMATS, IO_TYPES, MODES, format_names
from .gate import DEFAULT_MAX_DISAGREEMENT, DEFAULT_POLICY, POLICIES
from .parity import DEFAULT_MAX_ACCURACY_DROP, DEFAULT_MAX_PROB_DIFF, DEFAULT_PARITY_SAMPLES
from .select import CRITERIA
from .pipeline import DEFAULT_OPSET, MAX_OPSET, MIN_OPSET, ExportOptions, run_export

PROG = "export-model"


class _Parser(ArgumentParser):
    """The shared parser (edge_runtime/command.py): a bad flag raises UsageError, one line, exit 2."""


def _formats_help() -> str:
    lines = ["formats and quantize modes:"]
    for name in format_names():
        fmt = FORMATS.get(name)
        lines.append(f"  {name} (.{fmt.suffix.lstrip('.')}):")
        for mode, desc in fmt.modes.items():
            lines.append(f"    {mode:<9} {desc}")
    lines += [
        "",
        "files: OUTPUT/model_<mode>.<ext> (mode 'none' is written as float32), the manifest embedded",
        "  and beside it as model_<mode>.<ext>.json; export_report.json and export_report.md.",
        "  A file that fails the parity gate is kept as model_<mode>.<ext>.rejected.",
        "",
        "gate: each file's accuracy drop (paired, on held-out labelled images) and top-1 disagreement",
        "  (on every evidence image) get 95% intervals; accepted = proven within budget, rejected = proven",
        "  beyond it, inconclusive = neither (accepted with a warning under --gate evidence). export/README.md",
        "  explains the statistics.",
        "",
        "exit codes: 0 all accepted, 2 usage error, 3 parity gate failed, 1 converter failed.",
        "",
        "examples:",
        f"  {PROG} runs/digits --format tflite --quantize int8",
        f"  {PROG} runs/digits --format all                  # every format and mode, one table",
        f"  {PROG} runs/digits --format onnx --quantize none,int8 --output dist/",
        f"  {PROG} runs/pets --format all --select fastest    # + OUTPUT/selected.<ext> and the reason",
        f"  {PROG} runs/pets --format all --select fastest --latency-report pi4/report.json",
    ]
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog=PROG,
        description="Export a trained Keras model to TFLite and/or ONNX, quantized, with the manifest embedded, "
        "and prove each file still answers like the Keras model (the parity gate, run through edge_runtime "
        "on the held-out test split).",
        epilog=_formats_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("source", metavar="RUN_DIR|MODEL.keras", help="a train-model run folder, or the .keras file inside one")
    p.add_argument("--format", default="tflite", metavar="FMT[,FMT]",
                   help=f"{'|'.join(format_names())}|all, comma-separated (default tflite)")
    p.add_argument("--quantize", default=None, metavar="MODE[,MODE]",
                   help=f"{'|'.join(MODES)}|all, comma-separated (default none; every mode with --format all). "
                   "int16x8 is EXPERIMENTAL (TFLite only)")
    p.add_argument("--output", "-o", metavar="DIR", help="output folder (default RUN_DIR/export)")
    p.add_argument("--calibration-samples", type=int, default=DEFAULT_SAMPLES, metavar="N",
                   help=f"class-balanced images from the run's train split for int8/int16x8 calibration (default {DEFAULT_SAMPLES})")
    p.add_argument("--calibration-data", metavar="DIR", help="calibrate on the images in this folder instead")
    p.add_argument("--io", choices=IO_TYPES, default=None, help="TFLite int8 input/output type (default uint8)")
    p.add_argument("--max-accuracy-drop", type=float, default=DEFAULT_MAX_ACCURACY_DROP, metavar="PTS",
                   help=f"parity gate: largest accepted accuracy drop vs Keras, in points (default {DEFAULT_MAX_ACCURACY_DROP:g})")
    p.add_argument("--max-prob-diff", type=float, default=DEFAULT_MAX_PROB_DIFF, metavar="P",
                   help=f"parity gate for float32/float16 files: largest probability difference vs Keras (default {DEFAULT_MAX_PROB_DIFF:g})")
    p.add_argument("--max-disagreement", type=float, default=DEFAULT_MAX_DISAGREEMENT, metavar="PCT",
                   help=f"parity gate: largest accepted top-1 disagreement with Keras, in %% of images "
                   f"(default {DEFAULT_MAX_DISAGREEMENT:g}: faithful files measure 0-1%%, damaged ones 17%%)")
    p.add_argument("--gate", choices=POLICIES, default=DEFAULT_POLICY,
                   help="evidence: reject only on evidence, accept an inconclusive file with a warning (default); "
                   "strict: accept only on evidence; point: reject when the measured drop exceeds the budget")
    p.add_argument("--parity-data", metavar="DIR", default=None,
                   help="a labelled folder (one subfolder per class, named by label) added to the held-out evidence")
    p.add_argument("--select", choices=CRITERIA, default=None,
                   help="pick one accepted file and write it as OUTPUT/selected.<ext> with its manifest")
    p.add_argument("--latency-report", metavar="FILE.json", default=None,
                   help="with --select fastest: p50 latencies from benchmarks/latency.py --json or compare.py's "
                   "report.json made on the target device (default: a short run on this machine)")
    p.add_argument("--opset", type=int, default=DEFAULT_OPSET, metavar="N",
                   help=f"ONNX opset, {MIN_OPSET}..{MAX_OPSET} (default {DEFAULT_OPSET})")
    p.add_argument("--keep-float", default="", metavar="LAYER[,LAYER]",
                   help="leave these nodes in float (TFLite debugger denylist / ONNX nodes_to_exclude); "
                   "a node name or part of one, e.g. a scope the report lists for a failed int8 export")
    p.add_argument("--parity-samples", type=int, default=DEFAULT_PARITY_SAMPLES, metavar="N",
                   help="evidence images for the parity gate, at most N: test, --parity-data, validation, then train images "
                   f"outside the calibration sample (default {DEFAULT_PARITY_SAMPLES})")
    p.add_argument("--seed", type=int, default=0, help="seed for sampling calibration/parity images (default 0)")
    p.add_argument("--threads", type=int, default=None, metavar="N", help="runtime threads for the parity run (default all cores)")
    p.add_argument("--force", action="store_true", help="replace existing output files")
    p.add_argument("--unsafe-load", action="store_true",
                   help="allow .keras files with Lambda layers (runs Python code stored in the file: trusted files only)")
    p.add_argument("--debug", action="store_true", help="show tracebacks and the converters' own output")
    b = p.add_argument_group("device bundle (export/bundle.py; needs no TensorFlow with --model)")
    b.add_argument("--bundle", metavar="DIR", help="write DIR/ and DIR.tar.gz: the model, wheels, install.sh, service, self-test")
    b.add_argument("--model", metavar="FILE", help="the exported model to bundle (no conversion); default OUTPUT/selected.*")
    b.add_argument("--target", default="pi64", choices=("pi64", "x86_64"),
                   help="pi64: Raspberry Pi OS Bookworm 64-bit, aarch64, Python 3.11 (default); x86_64: manylinux, 3.11")
    b.add_argument("--no-wheels", dest="wheels", action="store_false",
                   help="a small bundle: only edgedeploy's wheel; install.sh takes the rest from the package index")
    b.add_argument("--service", default="watch", choices=("watch", "serve"),
                   help="the service mode of run.sh and the systemd unit (default watch; install.sh --service changes it)")
    return p


def options_from_args(args: argparse.Namespace) -> ExportOptions:
    return ExportOptions(
        source=args.source,
        formats=[args.format],
        modes=None if args.quantize is None else [args.quantize],
        output=args.output,
        calibration_samples=args.calibration_samples,
        calibration_data=args.calibration_data,
        io=args.io,
        max_accuracy_drop=args.max_accuracy_drop,
        max_prob_diff=args.max_prob_diff,
        max_disagreement=args.max_disagreement,
        gate=args.gate,
        parity_data=args.parity_data,
        select=args.select,
        latency_report=args.latency_report,
        opset=args.opset,
        keep_float=[k.strip() for k in args.keep_float.split(",") if k.strip()],
        parity_samples=args.parity_samples,
        seed=args.seed,
        threads=args.threads,
        force=args.force,
        unsafe_load=args.unsafe_load,
        debug=args.debug,
    )


def run(args: argparse.Namespace) -> int:
    """Export what the parsed arguments ask for (errors are raised, run_command maps them)."""
    try:
        if args.bundle is not None or args.model is not None:
            from .bundle import run_from_cli

            return run_from_cli(args, lambda: run_export(options_from_args(args)))
        run_export(options_from_args(args))
    except KeyboardInterrupt:  # Ctrl-C, or SIGTERM (run_command turns it into KeyboardInterrupt)
        if getattr(args, "debug", False):
            raise
        print(f"{PROG}: interrupted; no partial files were left", file=sys.stderr, flush=True)
        return 130
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point of ``export-model``: exit 0 ok, 1 converter failed, 2 usage, 3 gate, 130 interrupted."""
    return run_command(PROG, build_parser, run, argv)


if __name__ == "__main__":
    sys.exit(main())
