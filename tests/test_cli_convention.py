"""One CLI convention, one JSON form of a prediction, shared plumbing. TF-free."""
from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgedeploy.core.errors import EdgeDeployError
from edgedeploy.core.progress import Progress
from edgedeploy.runtime import ClassifierOptions, ImageClassifier
from edgedeploy.runtime.classifier import Prediction

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


# -- ClassifierOptions ---------------------------------------------------------------
@pytest.mark.parametrize("kw, fragment", [
    ({"threads": 0}, "Received threads=0, expected an integer >= 1"),
    ({"threads": True}, "Received threads=True"),
    ({"top_k": 0}, "Received top_k=0, expected an integer >= 1"),
    ({"max_pixels": -5}, "Received max_pixels=-5"),
    ({"backend": ""}, "Received backend=''"),
    ({"xnnpack": "yes"}, "Received xnnpack='yes'"),
    ({"probe": "sometimes"}, "Received probe='sometimes', expected one of auto, always, never"),
])
def test_classifier_options_validate_themselves_in_one_line(kw, fragment):
    with pytest.raises(EdgeDeployError) as err:
        ClassifierOptions(**kw)
    assert fragment in str(err.value) and "\n" not in str(err.value)


def test_classifier_options_defaults_and_keywords_are_the_same_object():
    assert ClassifierOptions() == ClassifierOptions(threads=None, backend="auto", xnnpack=True, max_pixels=50_000_000,
                                                    top_k=5, probe=None)
    with pytest.raises(EdgeDeployError, match="Received top_k=0"):  # the keywords are validated by ClassifierOptions
        ImageClassifier("never-opened.tflite", top_k=0)


def test_one_way_to_pass_options_each_refused_before_the_file_is_opened():
    with pytest.raises(EdgeDeployError, match=r"Received options=; .*from_options"):
        ImageClassifier("never-opened.tflite", threads=2, options=ClassifierOptions(threads=1))
    with pytest.raises(EdgeDeployError, match="expected a ClassifierOptions"):
        ImageClassifier.from_options("never-opened.tflite", {"threads": 1})
    with pytest.raises(EdgeDeployError, match=r"Received thread=, expected options among: threads"):
        ImageClassifier("never-opened.tflite", thread=2)


def test_edge_infer_flags_build_the_same_options_wherever_they_sit():
    from edgedeploy.runtime.cli import build_parser, options_from

    want = ClassifierOptions(threads=3, backend="onnxruntime", xnnpack=False, max_pixels=1000, top_k=2)
    flags = ["--threads", "3", "--top-k", "2", "--no-xnnpack", "--max-pixels", "1000", "--backend", "onnxruntime"]
    for argv in (["m.tflite", "x.png", *flags], [*flags, "m.tflite", "x.png"], ["m.tflite", *flags, "x.png"]):
        opts = options_from(build_parser().parse_args(argv))
        assert opts.classifier == want and (opts.model, opts.inputs) == ("m.tflite", ["x.png"])


# -- one JSON form ------------------------------------------------------------------------
def _pred() -> Prediction:
    return Prediction(label="cat", score=0.912345678, index=0, top_k=[("cat", 0.912345678), ("dog", 0.0876543)],
                      probabilities=np.array([0.912345678, 0.0876543], np.float32))


def test_prediction_has_one_json_form():
    p = _pred()
    assert p.to_dict() == {"label": "cat", "score": 0.912346,
                           "top_k": [{"label": "cat", "score": 0.912346}, {"label": "dog", "score": 0.087654}]}
    full = p.to_dict(path="a/cat.jpg", latency_ms=1.23456)
    assert list(full) == ["path", "label", "score", "top_k", "latency_ms"]
    assert full["path"] == "a/cat.jpg" and full["latency_ms"] == 1.235
    json.dumps(full)  # plain floats, not numpy scalars


def test_edge_infer_json_line_is_to_dict():
    from edgedeploy.runtime.runner import format_prediction

    line = format_prediction("a/cat.jpg", _pred(), 1.23456, as_json=True)
    assert json.loads(line) == _pred().to_dict(path="a/cat.jpg", latency_ms=1.23456)


def test_serve_and_the_cli_build_json_through_to_dict():
    import edgedeploy.runtime.classifier as classifier

    assert not hasattr(classifier, "dumps_prediction")  # the dead third form is gone
    serve_src = "".join(p.read_text() for p in sorted((ROOT / "edge_runtime" / "serve").glob("*.py")))
    cli_src = (ROOT / "edge_runtime" / "runner.py").read_text()
    assert ".to_dict(path=" in serve_src and ".to_dict(path=" in cli_src
    assert '"top_k": [' not in serve_src + cli_src  # nobody spells the fields out by hand


# -- progress (tqdm) -------------------------------------------------------------------------
def test_progress_in_a_log_prints_plain_lines_every_10_percent():
    s = io.StringIO()
    p = Progress(40, "work", stream=s)
    for _ in range(40):
        p.update()
    p.write("a message")
    p.close()
    lines = s.getvalue().splitlines()
    assert lines[0] == "work: 4/40 (10%)" and lines[9] == "work: 40/40 (100%)" and lines[10] == "a message"
    assert "\r" not in s.getvalue() and len(lines) == 11


def test_progress_on_a_terminal_is_a_tqdm_bar_and_write_clears_it():
    class Tty(io.StringIO):
        def isatty(self):
            return True

    s = Tty()
    p = Progress(5, "x", stream=s)
    assert type(p._bar).__module__.startswith("tqdm")
    p.update(2)
    p.write("a message")
    p.update(3)
    p.close()
    text = s.getvalue()
    assert "\r" in text and "5/5" in text and "a message\n" in text and text.endswith("\n")
    before = text.split("a message")[0]
    assert before.endswith("\r") or before.endswith("\x1b[A") or "\r" in before  # the bar was cleared first


def test_disabled_progress_prints_nothing_and_imports_no_tqdm():
    code = ("import io, sys\nfrom edgedeploy.core.progress import Progress\n"
            "s = io.StringIO(); p = Progress(100, 'x', stream=s, enabled=False)\n"
            "[p.update() for _ in range(100)]; p.close()\n"
            "print(repr(s.getvalue()), 'tqdm' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV, timeout=60)
    assert out.stdout.split() == ["''", "False"], out.stderr


# -- environment and threads, once ----------------------------------------------------------
def test_one_thread_default_and_one_version_collector():
    from edgedeploy.bench import _common as C
    from edgedeploy.core.environment import default_threads, environment, package_versions
    from edgedeploy.runtime.backends import base

    assert base.default_threads is default_threads and C.cpu_count() == default_threads()
    assert C.environment is environment and C.package_versions is package_versions
    v = package_versions(("numpy", "surely-not-installed-pkg"))
    assert v == {"numpy": np.__version__, "surely-not-installed-pkg": None}
    assert package_versions(("surely-not-installed-pkg",), skip_missing=True) == {}
    assert package_versions(("surely-not-installed-pkg",), missing="not installed") == {"surely-not-installed-pkg": "not installed"}
    env = environment("bench box")
    assert env["device"] == "bench box" and env["cpu_cores_usable"] == default_threads()
    assert env["packages"]["numpy"] == np.__version__


# -- the convention, at every entry point ----------------------------------------------------
ENTRY_POINTS = [
    ("edge-infer", [sys.executable, "-m", "edgedeploy.runtime.cli"]),
    ("export-model", [sys.executable, "-m", "edgedeploy.export"]),
    ("train-model", [sys.executable, "-m", "edgedeploy.train"]),
    ("latency.py", [sys.executable, str(ROOT / "benchmarks" / "latency.py")]),
    ("accuracy.py", [sys.executable, str(ROOT / "benchmarks" / "accuracy.py")]),
]


@pytest.mark.parametrize("prog, cmd", ENTRY_POINTS, ids=[p for p, _ in ENTRY_POINTS])
def test_a_bad_flag_is_one_line_naming_it_exit_2_and_the_program_once(prog, cmd):
    out = subprocess.run([*cmd, "x", "--no-such-flag"], capture_output=True, text=True, env=ENV, timeout=120)
    lines = out.stderr.strip().splitlines()
    assert out.returncode == 2 and len(lines) == 1, out.stderr
    assert lines[0].startswith(f"{prog}: error: ") and "--no-such-flag" in lines[0]
    assert lines[0].count(f"{prog}:") == 1 and "Traceback" not in out.stderr


def test_debug_shows_the_traceback_instead():
    out = subprocess.run([sys.executable, "-m", "edgedeploy.runtime.cli", "missing.tflite", "x.png", "--debug"],
                         capture_output=True, text=True, env=ENV, timeout=120)
    assert out.returncode != 0 and "Traceback" in out.stderr


def test_train_model_interrupted_exits_130_with_how_to_resume(monkeypatch, capsys, tmp_path):
    pytest.importorskip("tensorflow", reason="train/ needs tensorflow")
    import edgedeploy.train.api as api
    from edgedeploy.train.cli import main
    from edgedeploy.train.trainer import TrainingInterrupted

    def interrupted(cfg):
        raise TrainingInterrupted(tmp_path, 3)

    monkeypatch.setattr(api, "train", interrupted)
    assert main(["--output", str(tmp_path), "--epochs", "1"]) == 130
    err = capsys.readouterr().err.strip()
    assert err.startswith("train-model: interrupted after epoch 3") and "--resume --output" in err


def test_export_model_turns_sigterm_into_130_and_says_so(monkeypatch, capsys):
    import signal

    pytest.importorskip("tensorflow", reason="export/ needs tensorflow")
    import edgedeploy.export.cli as cli
    import edgedeploy.export.pipeline as pipeline

    def terminated(options):
        os.kill(os.getpid(), signal.SIGTERM)  # run_command's handler raises KeyboardInterrupt here

    monkeypatch.setattr(pipeline, "run_export", terminated)
    assert cli.main(["some_run"]) == 130
    assert "interrupted; no partial files were left" in capsys.readouterr().err


def test_edge_infer_into_a_closed_pipe_exits_0_quietly(tmp_path):
    import model_fixtures

    models = model_fixtures.test_models()
    src = sorted((models / "images").glob("*.png"))[0]
    for i in range(800):  # ~100 KB of JSON lines: more than a pipe holds, so the writer hits the closed end
        os.link(src, tmp_path / f"f{i:03d}.png")
    cmd = [sys.executable, "-m", "edgedeploy.runtime.cli", str(models / "model_float32.tflite"), str(tmp_path), "--json",
           "--no-progress"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV)
    first = proc.stdout.readline()  # one line read, then the reader leaves (like `| head -1`)
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 0 and json.loads(first)["path"] and "Traceback" not in err
