"""edge-infer: outputs, inputs (files, folders, globs), batching, progress, watch."""
from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from edgedeploy.core.progress import Progress
from edgedeploy.runtime.cli import main
from edgedeploy.runtime.inputs import expand_inputs
from edgedeploy.runtime.watch import watch_folder

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def _json_lines(out: str) -> list[dict]:
    return [json.loads(ln) for ln in out.splitlines() if ln.strip()]


def test_json_output_has_the_contract_fields(capsys, edge_models, truth):
    images = edge_models / "images"
    code = main([str(edge_models / "model_float32.tflite"), str(images), "--json", "--top-k", "3"])
    out, err = capsys.readouterr()
    assert code == 0, err
    rows = _json_lines(out)
    assert len(rows) == len(truth)
    for row in rows:
        assert set(row) == {"path", "label", "score", "top_k", "latency_ms"}
        assert len(row["top_k"]) == 3 and row["top_k"][0] == {"label": row["label"], "score": row["score"]}
        assert 0 <= row["score"] <= 1 and row["latency_ms"] > 0
    correct = sum(r["label"] == str(truth[Path(r["path"]).name]) for r in rows)
    assert correct >= len(rows) - 2


def test_human_output_one_readable_line_per_image(capsys, edge_models, truth):
    name = sorted(truth)[0]
    assert main([str(edge_models / "model_float32.onnx"), str(edge_models / "images" / name), "--top-k", "2"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1
    assert out[0].startswith(f"{edge_models / 'images' / name}: {truth[name]} ") and "(then " in out[0] and " ms]" in out[0]


@pytest.mark.parametrize("model", ["model_float32.tflite", "model_fixed1.tflite", "model_float32.onnx", "model_fixed3.onnx"])
def test_batch_size_does_not_change_answers(capsys, edge_models, model):
    answers = []
    for bs in ("1", "5", "64"):
        assert main([str(edge_models / model), str(edge_models / "images"), "--json", "--batch-size", bs]) == 0
        answers.append([(r["path"], r["label"], round(r["score"], 4)) for r in _json_lines(capsys.readouterr().out)])
    assert answers[0] == answers[1] == answers[2]


def test_folders_recurse_and_skip_hidden_files_and_outside_symlinks(tmp_path, edge_models):
    src = sorted((edge_models / "images").glob("*.png"))
    (tmp_path / "a" / "b").mkdir(parents=True)
    shutil.copy(src[0], tmp_path / "a" / "one.png")
    shutil.copy(src[1], tmp_path / "a" / "b" / "two.PNG")
    shutil.copy(src[2], tmp_path / "a" / ".hidden.png")  # e.g. macOS ._ files
    (tmp_path / "a" / "notes.txt").write_text("skip me")
    outside = tmp_path / "outside.png"
    shutil.copy(src[3], outside)
    (tmp_path / "a" / "link.png").symlink_to(outside)
    (tmp_path / "a" / "inside_link.png").symlink_to(tmp_path / "a" / "one.png")
    paths, problems = expand_inputs([str(tmp_path / "a")])
    assert sorted(p.name for p in paths) == ["inside_link.png", "one.png", "two.PNG"]
    assert problems == []


def test_globs_and_duplicates(tmp_path, edge_models):
    images = edge_models / "images"
    paths, problems = expand_inputs([str(images / "*.png"), str(images / "*.png"), str(images / "*.gif")])
    assert paths and all(p.suffix == ".png" for p in paths) and len(paths) == len(set(paths))
    assert problems == [(str(images / "*.gif"), "no file matches this pattern")]
    paths, _ = expand_inputs([str(images / "**" / "digit0*")])
    assert len(paths) == 10


def test_progress_bar_on_a_log_for_many_inputs(tmp_path, edge_models, capsys):
    src = sorted((edge_models / "images").glob("*.png"))[0]
    for i in range(200):
        os.link(src, tmp_path / f"f{i:03d}.png")
    assert main([str(edge_models / "model_float32.tflite"), str(tmp_path), "--json"]) == 0
    out, err = capsys.readouterr()
    assert len(_json_lines(out)) == 200
    progress = [ln for ln in err.splitlines() if ln.startswith("classifying:")]
    assert progress[0] == "classifying: 20/200 (10%)" and progress[-1] == "classifying: 200/200 (100%)"
    assert main([str(edge_models / "model_float32.tflite"), str(tmp_path), "--json", "--no-progress"]) == 0
    assert "classifying:" not in capsys.readouterr().err


def test_progress_bar_on_a_terminal_redraws_one_line():
    class Tty(io.StringIO):
        def isatty(self):
            return True

    s = Tty()
    p = Progress(5, "x", stream=s)
    for _ in range(5):
        p.update()
    p.write("a message")
    p.close()
    text = s.getvalue()
    assert "\r" in text and "5/5" in text and "a message\n" in text and text.endswith("\n")


def test_help_is_instant_and_loads_no_numpy():
    code = ("import sys, time; t = time.perf_counter()\n"
            "from edgedeploy.runtime.cli import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "heavy = [m for m in ('numpy', 'PIL', 'ai_edge_litert', 'onnxruntime') if m in sys.modules]\n"
            "print(repr(heavy), time.perf_counter() - t, file=sys.stderr)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV, timeout=60)
    assert out.returncode == 0 and "--watch DIR" in out.stdout and "--serve" in out.stdout
    heavy, seconds = out.stderr.split("]")[0] + "]", float(out.stderr.split("]")[1])
    assert heavy == "[]" and seconds < 1.0


def test_module_entry_point_and_info(edge_models, truth):
    name = sorted(truth)[1]
    out = subprocess.run([sys.executable, "-m", "edgedeploy.runtime.cli", str(edge_models / "model_int8.tflite"),
                          str(edge_models / "images" / name), "--json", "--info", "--threads", "1"],
                         capture_output=True, text=True, env=ENV, timeout=120)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["label"] == str(truth[name])
    info = json.loads(out.stderr.split("edge-infer: ", 1)[1].splitlines()[0])
    assert info["backend"] == "litert" and info["threads"] == 1 and info["delegate_applied"] is True
    assert "XNNPACK delegate" not in out.stderr  # LiteRT's INFO noise is filtered


# -- watch --------------------------------------------------------------------------
def test_watch_folder_waits_for_complete_files(tmp_path, edge_models):
    src = sorted((edge_models / "images").glob("*.png"))[0].read_bytes()
    (tmp_path / "old.png").write_bytes(src)  # present at start: ignored
    seen: list[tuple[str, int]] = []
    stop, ready = threading.Event(), threading.Event()

    def writer():
        ready.wait(10)
        with open(tmp_path / "slow.png", "wb") as f:  # written in pieces, slower than a poll
            for i in range(0, len(src), 40):
                f.write(src[i:i + 40])
                f.flush()
                time.sleep(0.06)
        (tmp_path / ".tmp_frame.png").write_bytes(src)  # hidden: a writer about to rename
        os.replace(tmp_path / ".tmp_frame.png", tmp_path / "renamed.png")

    t = threading.Thread(target=writer)
    t.start()
    n = watch_folder(tmp_path, lambda p: seen.append((p.name, p.stat().st_size)), poll_interval=0.05,
                     max_images=2, duration=20, stop=stop, on_ready=ready.set)
    t.join()
    assert n == 2
    assert [name for name, _ in seen] == ["slow.png", "renamed.png"]
    assert all(size == len(src) for _, size in seen)  # never handed over half-written


def test_watch_cli_classifies_new_images(tmp_path, edge_models, truth):
    name = sorted(truth)[2]
    proc = subprocess.Popen([sys.executable, "-m", "edgedeploy.runtime.cli", str(edge_models / "model_float32.tflite"),
                             "--watch", str(tmp_path), "--json", "--max-images", "2", "--duration", "60",
                             "--poll-interval", "0.1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    deadline = time.time() + 60
    while "watching" not in (proc.stderr.readline() or "") and time.time() < deadline:
        pass
    shutil.copy(edge_models / "images" / name, tmp_path / "frame1.png")
    (tmp_path / "frame2.jpg").write_text("not really a jpeg")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1  # one of the two failed
    rows = _json_lines(out)
    assert [Path(r["path"]).name for r in rows] == ["frame1.png"] and rows[0]["label"] == str(truth[name])
    assert "frame2.jpg" in err and "not a recognised image file" in err
