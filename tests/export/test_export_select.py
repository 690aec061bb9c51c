"""--select: the fastest/smallest/most accurate accepted file, from synthetic latency reports.

The choice itself is TF-free (``export.select``); one end-to-end test runs
export-model on the tiny digits run with a latency report "from another
device" and checks selected.<ext>, its sidecar and the reason in the report.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgedeploy.core.errors import EdgeDeployError
from edgedeploy.export.select import Candidate, better_unproven, check_selection, choose, match_report, read_latency_rows, reason_lines, slow_warnings


def _c(file: str, size: int, p50: float | None = None, proven: bool = True, drop: float = 0.0, sha: str = "") -> Candidate:
    return Candidate(file=file, path=Path(file), size_bytes=size, proven=proven, accuracy_drop=drop, drop_ci=(-0.5, 0.5),
                     disagreement=drop, max_prob_diff=0.01, sha256=sha, p50_ms=p50)


def _latency_report(path: Path, rows: list[dict], tool: str = "latency") -> Path:
    key = "results" if tool == "latency" else "latency"
    path.write_text(json.dumps({"tool": tool, "environment": {"device": "Raspberry Pi 4 Model B Rev 1.4"}, key: rows}))
    return path


def test_fastest_smallest_accurate() -> None:
    cands = [_c("model_float32.tflite", 600, 0.16), _c("model_int8.tflite", 170, 0.22, drop=0.3),
             _c("model_dynamic.onnx", 171, 2.5), _c("model_int8.onnx", 180, 0.19)]
    chosen, runner, proven = choose(cands, "fastest")
    assert (chosen.file, runner.file, proven) == ("model_float32.tflite", "model_int8.onnx", True)
    assert choose(cands, "smallest")[0].file == "model_int8.tflite"
    assert choose(cands, "accurate")[0].file == "model_dynamic.onnx"  # drop 0, then the smallest of those


def test_proven_files_come_before_inconclusive_ones() -> None:
    cands = [_c("fast_but_unproven.onnx", 100, 0.1, proven=False), _c("model_float32.onnx", 600, 0.3)]
    chosen, runner, proven = choose(cands, "fastest")
    assert chosen.file == "model_float32.onnx" and runner is None
    lines = reason_lines("fastest", chosen, runner, proven, better_unproven(cands, chosen, "fastest"))
    assert "only inconclusive" in lines[-1] and "fast_but_unproven.onnx (p50 0.1 ms)" in lines[-1]
    only_unproven = [_c("a.onnx", 100, 0.2, proven=False), _c("b.onnx", 100, 0.1, proven=False)]
    chosen, _, proven = choose(only_unproven, "fastest")
    assert chosen.file == "b.onnx" and proven is False


@pytest.mark.parametrize("tool", ["latency", "compare"])
def test_report_from_another_device_decides(tmp_path: Path, tool: str) -> None:
    # On the Pi, int8 TFLite wins, although on this machine float32 was faster.
    rows = [
        {"path": "/home/pi/models/model_float32.tflite", "variant": "model_float32.tflite", "sha256": "aaa", "backend": "litert", "threads": 4, "p50_ms": 9.0},
        {"path": "/home/pi/models/model_float32.tflite", "variant": "model_float32.tflite", "sha256": "aaa", "backend": "litert", "threads": 1, "p50_ms": 30.0},
        {"path": "/home/pi/models/model_int8.tflite", "variant": "model_int8.tflite", "sha256": "zzz", "backend": "litert", "threads": 4, "p50_ms": 4.0},
        {"path": "/home/pi/models/model_int8.onnx", "variant": "model_int8.onnx", "sha256": "ccc", "backend": "onnxruntime", "threads": 4, "p50_ms": 6.0},
    ]
    rows_read, device = read_latency_rows(_latency_report(tmp_path / "r.json", rows, tool))
    assert device == "Raspberry Pi 4 Model B Rev 1.4" and len(rows_read) == 4
    cands = [_c("model_float32.tflite", 600, sha="aaa"), _c("model_int8.tflite", 170, sha="bbb"),
             _c("model_int8.onnx", 180, sha="ccc"), _c("model_float16.onnx", 300, sha="ddd")]
    match_report(cands, rows_read, None, device)
    by = {c.file: c for c in cands}
    assert by["model_float32.tflite"].p50_ms == 9.0 and "matched by sha256" in by["model_float32.tflite"].latency_source
    assert by["model_int8.tflite"].p50_ms == 4.0 and "matched by file name" in by["model_int8.tflite"].latency_source
    assert by["model_float16.onnx"].p50_ms is None  # not in the report: not a candidate for fastest
    assert "Raspberry Pi 4" in by["model_int8.tflite"].latency_source and "4 thread(s)" in by["model_int8.tflite"].latency_source
    assert choose(cands, "fastest")[0].file == "model_int8.tflite"
    match_report(cands, rows_read, 1, device)  # --threads 1 picks the 1-thread rows where there are some
    assert by["model_float32.tflite"].p50_ms == 30.0


def test_far_slower_than_a_smaller_sibling_is_warned() -> None:
    cands = [_c("model_dynamic.onnx", 14_600_000, 251.0), _c("model_int8.onnx", 14_500_000, 19.0),
             _c("model_float32.onnx", 57_000_000, 285.0)]
    warns = slow_warnings(cands)
    assert len(warns) == 1
    assert warns[0].startswith("model_dynamic.onnx") and "13.2x slower than model_int8.onnx" in warns[0]
    assert slow_warnings([_c("a.onnx", 100, 1.0), _c("b.onnx", 200, 1.5)]) == []  # not far slower
    # float32 (the largest) slower than int8 is no surprise: only reduced-size files are checked
    assert slow_warnings([_c("model_float32.onnx", 1000, 10.0), _c("model_int8.onnx", 250, 1.0)]) == []


@pytest.mark.parametrize("select, report, message", [
    ("quickest", None, "Received --select 'quickest'"),
    ("smallest", "x.json", "without --select fastest"),
    ("fastest", "missing.json", "file not found"),
])
def test_selection_flags_are_checked_first(tmp_path: Path, select: str, report: str | None, message: str) -> None:
    with pytest.raises(EdgeDeployError, match=message):
        check_selection(select, report and str(tmp_path / report), 2)


def test_a_report_without_latency_rows_is_refused(tmp_path: Path) -> None:
    p = tmp_path / "acc.json"
    p.write_text(json.dumps({"tool": "accuracy", "results": [{"accuracy": 0.9}]}))
    with pytest.raises(EdgeDeployError, match="expected the JSON of benchmarks/latency.py"):
        read_latency_rows(p)


@pytest.mark.tf
def test_export_select_fastest_from_another_devices_report(tmp_path: Path, capsys) -> None:
    from edgedeploy.export.cli import main

    from export_helpers import copy_run, tiny_run

    run = copy_run(tiny_run(), tmp_path / "run")
    report = _latency_report(tmp_path / "pi.json", [
        {"variant": "model_float32.tflite", "path": "m/model_float32.tflite", "backend": "litert", "threads": 4, "p50_ms": 3.0},
        {"variant": "model_float32.onnx", "path": "m/model_float32.onnx", "backend": "onnxruntime", "threads": 4, "p50_ms": 2.0},
    ])
    out = tmp_path / "out"
    rc = main([str(run), "--format", "all", "--quantize", "none", "--output", str(out), "--parity-samples", "600",
               "--select", "fastest", "--latency-report", str(report)])
    assert rc == 0, capsys.readouterr().err
    assert (out / "selected.onnx").read_bytes() == (out / "model_float32.onnx").read_bytes()
    assert json.loads((out / "selected.onnx.json").read_text())["format"] == "onnx"
    sel = json.loads((out / "export_report.json").read_text())["selection"]
    assert sel["chosen"] == "model_float32.onnx" and sel["runner_up"] == "model_float32.tflite"
    assert "Raspberry Pi 4" in sel["latency_source"] and "p50 2 ms" in sel["reason"][0]
    md = (out / "export_report.md").read_text()
    assert "## Selected: `selected.onnx` (--select fastest)" in md and "Runner-up: model_float32.tflite" in md
    # a second run without --force refuses to replace selected.*
    rc = main([str(run), "--format", "all", "--quantize", "none", "--output", str(out), "--select", "smallest"])
    assert rc == 2 and "refusing to overwrite" in capsys.readouterr().err
