"""benchmarks/throughput.py, batching.py and preprocess_speed.py: they run TF-free and write what they say."""
from __future__ import annotations

import json
import shutil

import pytest

from bench_helpers import assert_one_line_error, edge_models_dir, run_script


@pytest.fixture(scope="module")
def photo_folder(tmp_path_factory):
    src = edge_models_dir() / "images"
    folder = tmp_path_factory.mktemp("photos") / "in"
    (folder / "sub").mkdir(parents=True)
    for i, p in enumerate(sorted(q for q in src.iterdir() if q.suffix in (".png", ".jpg"))):
        shutil.copy(p, (folder / "sub" if i % 2 else folder) / p.name)
    return folder


@pytest.fixture(scope="module")
def jpeg_folder(tmp_path_factory):
    """The chain's digit images as JPEGs (the peer loops read *.jpg, as a user's loop would)."""
    from PIL import Image

    folder = tmp_path_factory.mktemp("jpegs") / "in"
    (folder / "sub").mkdir(parents=True)
    src = sorted(q for q in (edge_models_dir() / "images").iterdir() if q.suffix in (".png", ".jpg"))
    for i, p in enumerate(src):
        Image.open(p).convert("RGB").save((folder / "sub" if i % 2 else folder) / f"{p.stem}.jpg", quality=95)
    return folder


def test_throughput_compares_edge_infer_with_the_loops_and_the_ceiling(tmp_path, jpeg_folder):
    pytest.importorskip("cv2", reason="the OpenCV loop needs opencv-python-headless")
    model = edge_models_dir() / "model_int8.tflite"
    out = tmp_path / "tp"
    proc = run_script("throughput", model, jpeg_folder, "--quick", "--grid-threads", "1", "--grid-workers", "1,2",
                      "--rss-files", "30", "--out", out)
    assert proc.returncode == 0, proc.stderr
    r = json.loads((tmp_path / "tp.json").read_text())
    n = sum(1 for _ in jpeg_folder.rglob("*.jpg"))
    assert set(r["commands"]) == {"opencv", "pillow", "edge-infer", "grid 1 1", "grid 1 2"}
    for c in r["commands"].values():
        assert c["images_per_s"] == pytest.approx(n / c["seconds"], rel=0.01) and c["cpu_seconds"] > 0
    assert r["ratio_vs_opencv"] == pytest.approx(r["commands"]["edge-infer"]["images_per_s"]
                                                 / r["commands"]["opencv"]["images_per_s"], rel=0.01)
    c = r["costs"]
    assert c["images"] == n and c["serial_ms"] == pytest.approx(c["decode_ms"] + c["resize_ms"] + c["inference_ms"])
    assert c["ceiling_images_per_s"] == pytest.approx(2000 / c["serial_ms"])
    p = r["parity"]
    assert p["photos"] == p["fast_jpeg_path"] == p["decode_equal_to_pillow"] == p["resize_equal_to_reference"] == n
    assert p["edge_infer_max_diff_255"] == 0 and set(p["peers"]) == {"opencv", "pillow"}
    assert set(r["cpu"]["flags"]) == {"avx2", "avx512_vnni", "avx_vnni", "amx_int8", "asimddp"}
    assert len(r["cpu"]["load_average_end"]) == 3 and r["defaults"]["workers"] >= 1
    [rss] = r["rss"]
    assert rss["files"] == 30 and rss["rss_peak_mb"] >= rss["rss_before_mb"] > 0
    md = (tmp_path / "tp.md").read_text()
    assert "2-core ceiling" in md and "## The grid" in md and md.index("| x OpenCV loop |") < md.index("## One image")
    assert (tmp_path / "tp.csv").read_text().splitlines()[0].startswith("command,images,seconds")
    again = run_script("throughput", model, jpeg_folder, "--quick", "--out", out)  # no --force: refused before work
    assert_one_line_error(again, "tp.json")


def test_jpeg_decode_compares_the_decoders(tmp_path, jpeg_folder):
    proc = run_script("jpeg_decode", jpeg_folder, "--quick", "--out", tmp_path / "jd")
    assert proc.returncode == 0, proc.stderr
    r = json.loads((tmp_path / "jd.json").read_text())
    rows = {row["decoder"]: row for row in r["results"]}
    assert set(rows) == {"Pillow", "simplejpeg", "PyTurboJPEG", "cv2.imdecode"}
    n = r["photos"]
    for name in ("Pillow", "simplejpeg"):
        assert rows[name]["identical_to_pillow"] == n and rows[name]["ms_per_image"] > 0
    assert rows["simplejpeg"]["import_ms"] >= 0 and r["runtime_decoder"].startswith("simplejpeg")
    assert "The choice: simplejpeg" in (tmp_path / "jd.md").read_text()


def test_serve_load_reports_queue_batching_and_the_generators_share(tmp_path, jpeg_folder):
    for mod in ("starlette", "uvicorn", "prometheus_client", "python_multipart"):
        pytest.importorskip(mod)
    model = edge_models_dir() / "model_int8.tflite"
    proc = run_script("serve_load", model, "--photos", jpeg_folder, "--quick", "--clients", "8", "--slow", "2",
                      "--request-timeout", "3", "--max-concurrent", "2", "--batch-sizes", "1,4", "--queue-sweep", "0,16",
                      "--out", tmp_path / "sl", timeout=600)
    assert proc.returncode == 0, proc.stderr
    r = json.loads((tmp_path / "sl.json").read_text())
    res = r["result"]
    assert res["non_2xx"] == 0 and res["clients"] == 8 and res["p99_ms"] >= res["p50_ms"] > 0
    assert 0 < res["generator_cpu_share"] < 1 and res["server_exit_code"] == 0
    assert [(b["max_batch"], b["non_2xx"]) for b in r["batching"]] == [(1, 0), (4, 0)]
    assert r["batching"][0]["mean_batch"] == 1.0
    assert [s["max_queue"] for s in r["queue_sweep"]] == [0, 16] and r["queue_sweep"][1]["non_2xx"] == 0
    assert r["queue_sweep"][0]["non_2xx"] > 0  # no queue: 8 clients on 2 slots get 503s, as before the queue
    md = (tmp_path / "sl.md").read_text()
    assert "non-2xx answers to the normal clients" in md and "## Batching" in md and "## Queue bound" in md


def test_batching_report_rows_per_batch_size(tmp_path):
    model = edge_models_dir() / "model_float32.onnx"
    proc = run_script("batching", model, "--quick", "--images", "12", "--batch-sizes", "1,4", "--threads", "1",
                      "--out", tmp_path / "b")
    assert proc.returncode == 0, proc.stderr
    rows = json.loads((tmp_path / "b.json").read_text())["results"]
    assert [(r["batch_size"], r["runtime_calls"]) for r in rows] == [(1, 12), (4, 3)]
    assert rows[0]["gain_vs_batch1"] == 1.0 and all(r["dynamic_batch"] for r in rows)


def test_preprocess_speed_reports_parity_of_each_method(tmp_path, photo_folder):
    proc = run_script("preprocess_speed", photo_folder, "--quick", "--size", "32", "--out", tmp_path / "p")
    assert proc.returncode == 0, proc.stderr
    report = json.loads((tmp_path / "p.json").read_text())
    rows = {r["method"]: r for r in report["results"]}
    assert rows["resize gather-first (edge_runtime now)"]["max_abs_diff_255"] == 0.0  # bit-identical
    assert rows["resize gather-first (edge_runtime now)"]["parity"] is True
    assert set(report["images_per_s"]) == {"before_1", "before_2", "now_1", "now_2"}
