"""export-model: a trained model -> quantized TFLite / ONNX files, each parity-gated; optionally the one to ship, bundled.

Exit codes: 0 every file accepted; 2 a usage error (bad flag, path or model);
3 a file failed the parity gate (kept as ``.rejected``); 1 a converter failed;
130 interrupted. Errors are one line; ``--debug`` shows the traceback and the
converters' own output.

This module only turns the command line into ``ExportOptions`` and ``BundleRequest``
(export/options.py; the parser is built from their fields) and makes one forward call.
"""
from __future__ import annotations

import argparse
import sys
from typing import Sequence

from edgedeploy.core.command import ArgumentParser, run_command
from edgedeploy.core.flags import add_flags, from_args

from .formats import FORMATS, format_names
from .options import BundleRequest, ExportOptions

PROG = "export-model"


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
        "  get 95% intervals; accepted = proven within budget, rejected = proven beyond it,",
        "  inconclusive = neither (accepted with a warning under --gate evidence). export/README.md",
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
        f"  {PROG} runs/pets --format all --select smallest --bundle pi-bundle",
    ]
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(
        prog=PROG,
        description="Export a trained Keras model to TFLite and/or ONNX, quantized, with the manifest embedded, "
        "and prove each file still answers like the Keras model (the parity gate, run through edgedeploy.runtime "
        "on the held-out images). Flags may go anywhere on the line.",
        epilog=_formats_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_flags(p, ExportOptions)
    add_flags(p, BundleRequest, group="device bundle (export/bundle.py; needs no TensorFlow with --model)")
    return p


def run(args: argparse.Namespace) -> int:
    """Export (and bundle) what the parsed arguments ask for; run_command maps the errors to exit codes."""
    export, request = from_args(ExportOptions, args), from_args(BundleRequest, args)
    try:
        if request.requested:
            from .bundle import bundle_export

            bundle_export(export, request)
        else:
            from .pipeline import run_export

            run_export(export)
    except KeyboardInterrupt:  # Ctrl-C, or SIGTERM (run_command turns it into KeyboardInterrupt)
        if export.debug:
            raise
        print(f"{PROG}: interrupted; no partial files were left", file=sys.stderr, flush=True)
        return 130
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point of ``export-model``: exit 0 ok, 1 converter failed, 2 usage, 3 gate, 130 interrupted."""
    return run_command(PROG, build_parser, run, argv)


if __name__ == "__main__":
    sys.exit(main())
