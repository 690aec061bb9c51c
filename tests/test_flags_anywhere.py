"""Flags anywhere: every command takes its options before, between and after its positional arguments.

Each command's own parser is given the same arguments in several orders and must parse them to the
same result; the benchmark scripts' example from the issue (``latency.py --quick MODEL --threads 1``)
and ``edge-bench`` run for real. TF-free: parsers are built without TensorFlow.
"""
from __future__ import annotations

import argparse
import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from edgedeploy.core.command import ArgumentParser

ROOT = Path(__file__).resolve().parents[1]


def orders(positionals: list[str], flags: list[list[str]]) -> list[list[str]]:
    """The same line with the flags first, last, spread between the positionals, and split around them."""
    flat = [x for f in flags for x in f]
    out = [[*flat, *positionals], [*positionals, *flat]]
    if len(positionals) > 1:  # one flag group after each positional but the last, the rest after the last
        line: list[str] = []
        for i, p in enumerate(positionals):
            line.append(p)
            if i < len(flags) and i < len(positionals) - 1:
                line += flags[i]
        line += [x for f in flags[len(positionals) - 1:] for x in f]
        out.append(line)
    if len(flags) > 1:  # the first flag before the positionals, the others after them
        out.append([*flags[0], *positionals, *[x for f in flags[1:] for x in f]])
    return out


def _same_parse(parser: argparse.ArgumentParser, positionals: list[str], flags: list[list[str]]) -> argparse.Namespace:
    results = [vars(parser.parse_args(argv)) for argv in orders(positionals, flags)]
    assert len(results) >= 2
    for argv, got in zip(orders(positionals, flags), results):
        assert got == results[0], (argv, got, results[0])
    return argparse.Namespace(**results[0])


# (module, parser factory, positionals, flag groups, field: expected value)
BENCH = [
    ("latency", ["a.tflite", "b.onnx"], [["--quick"], ["--threads", "1,2"], ["--json", "o.json"]], {"models": ["a.tflite", "b.onnx"]}),
    ("accuracy", ["a.tflite", "b.tflite"], [["--dataset", "digits"], ["--limit", "5"]], {"models": ["a.tflite", "b.tflite"]}),
    ("compare", ["d1", "d2"], [["--threads", "1"], ["--out", "rep"]], {"models": ["d1", "d2"], "out": "rep"}),
    ("merge", ["r1.json", "r2.json"], [["--out", "m"], ["--force"]], {"reports": ["r1.json", "r2.json"], "out": "m"}),
    ("soak", ["m.tflite"], [["--predictions", "10"], ["--quick"]], {"model": "m.tflite", "predictions": 10}),
    ("fuzz", ["d1", "d2"], [["--cases", "5"], ["--seed", "1"]], {"models": ["d1", "d2"], "cases": 5, "seed": 1}),
    ("runtime_overhead", ["m.tflite"], [["--repeats", "2"], ["--quick"]], {"model": "m.tflite", "repeats": 2}),
    ("throughput", ["m.tflite", "photos"], [["--grid-threads", "1,2"], ["--repeats", "2"]], {"model": "m.tflite", "folder": "photos"}),
    ("batching", ["a.tflite", "b.tflite"], [["--batch-sizes", "1,4"], ["--images", "8"]], {"models": ["a.tflite", "b.tflite"]}),
    ("preprocess_speed", ["photos"], [["--size", "96"], ["--images", "5"]], {"folder": "photos", "size": 96}),
    ("serve_load", ["m.tflite"], [["--requests", "5"], ["--clients", "2"]], {"model": "m.tflite", "requests": 5}),
    ("serve_stack", [], [["--runs", "3"], ["--force"]], {"runs": 3}),
]


@pytest.mark.parametrize("name, positionals, flags, expected", BENCH, ids=[b[0] for b in BENCH])
def test_each_benchmark_script_takes_flags_anywhere(name, positionals, flags, expected):
    module = importlib.import_module(f"edgedeploy.bench.{name}")
    parser = module.build_parser()
    assert isinstance(parser, ArgumentParser) and parser.intermixed
    got = _same_parse(parser, positionals, flags)
    for key, value in expected.items():
        assert getattr(got, key) == value, (key, getattr(got, key))


def test_every_benchmark_script_is_covered_or_uses_the_shared_parser():
    from edgedeploy.bench.cli import command_names

    covered = {b[0] for b in BENCH} | {"train_throughput"}
    for name in command_names():
        mod = name.replace("-", "_")
        if mod in covered:
            continue
        module = importlib.import_module(f"edgedeploy.bench.{mod}")
        parser = module.build_parser()  # a new script: its parser must be the shared, intermixed one
        assert isinstance(parser, ArgumentParser) and parser.intermixed, name


def test_train_throughput_takes_flags_in_any_order():
    from edgedeploy.train.throughput_cli import _parser

    got = _same_parse(_parser(), [], [["--dataset", "digits"], ["--epochs", "3"], ["--no-augment"]])
    assert (got.dataset, got.epochs, got.augment) == ("digits", 3, False)


def test_train_model_takes_flags_in_any_order():
    from edgedeploy.train.cli import build_parser, config_from_args

    flags = [["--model", "small_cnn"], ["--epochs", "2"], ["--data", "photos"], ["--image-size", "64"], ["--no-augment"]]
    lines = [[x for f in flags for x in f], [x for f in reversed(flags) for x in f]]
    parsed = [vars(build_parser().parse_args(line)) for line in lines]
    assert parsed[0] == parsed[1]
    cfg = config_from_args(argparse.Namespace(**parsed[0]))
    assert (cfg.model, cfg.epochs, cfg.data_dir, cfg.image_size, cfg.augment) == ("small_cnn", 2, "photos", 64, False)


def test_export_model_takes_flags_before_and_after_the_run_folder():
    from edgedeploy.core.flags import from_args
    from edgedeploy.export.cli import build_parser
    from edgedeploy.export.options import BundleRequest, ExportOptions

    got = _same_parse(build_parser(), ["runs/digits"],
                      [["--format", "tflite"], ["--quantize", "int8"], ["--output", "models"], ["--bundle", "pi-bundle"]])
    export, request = from_args(ExportOptions, got), from_args(BundleRequest, got)
    assert (export.source, export.output, request.bundle) == ("runs/digits", "models", "pi-bundle")


def test_edge_infer_takes_flags_between_the_model_and_the_images():
    from edgedeploy.runtime.cli import build_parser, options_from

    got = _same_parse(build_parser(), ["m.tflite", "a.png", "b.png"], [["--top-k", "1"], ["--info"], ["--json"]])
    opts = options_from(got)
    assert (opts.model, opts.inputs, opts.classifier.top_k, opts.info, opts.json) == ("m.tflite", ["a.png", "b.png"], 1, True, True)


def test_edge_bench_hands_a_script_its_flags_wherever_they_sit():
    from edgedeploy.bench.cli import build_parser

    args = build_parser().parse_args(["latency", "--quick", "m.tflite", "--threads", "1"])
    assert (args.command, args.args) == ("latency", ["--quick", "m.tflite", "--threads", "1"])


@pytest.mark.parametrize("how", ["script", "edge-bench"])
def test_latency_with_flags_around_the_model_runs(tmp_path, edge_models, how):
    """The issue's line, for real: `python benchmarks/latency.py --quick MODEL --threads 1` (and through edge-bench)."""
    model = str(edge_models / "model_int8.tflite")
    out = tmp_path / "lat.json"
    head = [sys.executable, str(ROOT / "benchmarks" / "latency.py")] if how == "script" else \
        [sys.executable, "-m", "edgedeploy.bench.cli", "latency"]
    r = subprocess.run([*head, "--quick", model, "--threads", "1", "--runs", "3", "--json", str(out)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    rows = json.loads(out.read_text())
    rows = rows.get("results", rows) if isinstance(rows, dict) else rows
    assert {row["threads"] for row in rows} == {1} and all("model_int8.tflite" in json.dumps(row) for row in rows)
