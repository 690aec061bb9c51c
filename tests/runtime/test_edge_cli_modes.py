"""edge-infer's command line: flags anywhere, modes declared once, mode-only flags refused without their mode."""
from __future__ import annotations

import json

import pytest

from edgedeploy.runtime.cli import main


def _one_line_error(capsys, code: int) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    return err[0]


@pytest.mark.parametrize("order", ["flags first", "flags between", "flags last"])
def test_flags_go_anywhere_on_the_line(capsys, edge_models, truth, order):
    model, image = str(edge_models / "model_int8.tflite"), str(edge_models / "images" / sorted(truth)[0])
    flags = ["--top-k", "1", "--json"]
    argv = {"flags first": [*flags, model, image], "flags between": [model, *flags, image],
            "flags last": [model, image, *flags]}[order]
    assert main(argv) == 0
    line = json.loads(capsys.readouterr().out)
    assert line["label"] == str(truth[sorted(truth)[0]]) and len(line["top_k"]) == 1


def test_info_between_the_model_and_the_images(capsys, edge_models, truth):
    image = str(edge_models / "images" / sorted(truth)[0])
    assert main([str(edge_models / "model_float32.tflite"), "--info", image]) == 0
    out, err = capsys.readouterr()
    assert "backend" in err and out.strip().startswith(image)  # the description on stderr first, then the answer


@pytest.mark.parametrize("argv, fragment", [
    (["--serve", "--watch", "."], "Received --serve and --watch: these modes exclude each other"),
    (["--video", "0", "--serve"], "Received --serve and --video: these modes exclude each other"),
    (["x.png", "--serve"], "--serve takes no INPUT"),
    (["x.png", "--video", "0"], "--video takes no INPUT"),
    (["a", "b", "--labels-from-folders"], "--labels-from-folders with 2 INPUT(s), expected one folder"),
    (["x.png", "--fps", "2"], "Received --fps without --video; it applies to --video only"),
    (["x.png", "--port", "9000"], "Received --port without --serve; it applies to --serve only"),
    (["x.png", "--settle", "1"], "Received --settle without --watch; it applies to --watch only"),
    (["x.png", "--max-images", "3"], "Received --max-images without --watch or --video"),
    (["x.png", "--backend", "nope"], "Received --backend 'nope', expected one of auto"),
    (["x.png", "--top-k", "0"], "Received 0, expected an integer >= 1"),
    ([], "no INPUT given"),
])
def test_impossible_combinations_are_one_line(capsys, edge_models, argv, fragment):
    line = _one_line_error(capsys, main([str(edge_models / "model_int8.tflite"), *argv]))
    assert fragment in line, line
