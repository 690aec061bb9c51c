"""compare.py's plots: log axes where times span 10x or more, and no text that collides (TF-free, no models)."""
from __future__ import annotations

import pytest

from edgedeploy.bench import plots as P
from edgedeploy.bench.records import CSV_FIELDS, MERGED_FIELDS, CsvRow, MergedRow, VariantEntry

plt = pytest.importorskip("matplotlib.pyplot")

# The picture: six variants, ties on accuracy, one VGG-like variant 100x slower than the rest.
SPECS = [("TFLite float32", "litert", 0.158, 0.9926), ("TFLite float16", "litert", 0.160, 0.9926),
         ("TFLite int8", "litert", 0.219, 0.9926), ("ONNX float32", "onnxruntime", 0.159, 0.9926),
         ("ONNX int8", "onnxruntime", 0.21, 0.9889), ("TFLite float32 VGG16", "litert", 28.5, 0.9963)]


def _entries(specs=SPECS) -> tuple[list[VariantEntry], list[dict]]:
    entries, rows = [], []
    for i, (name, backend, p50, acc) in enumerate(specs):
        path = f"/m/model_{i}.tflite"
        e = VariantEntry(device="d", variant=f"model_{i}", label=name, path=path, format="tflite", quantize="none",
                         is_float=True, sha256="x", backend=backend, size_bytes=(600 + 4000 * (i == 5)) * 1024,
                         best_threads=2, delegate_applied=True, p50_ms=p50, accuracy=acc, name=name)
        entries.append(e)
        rows += [{"path": path, "backend": backend, "threads": t, "p50_ms": p50 * (1.6 if t == 1 else 1.0)} for t in (1, 2)]
    return entries, rows


def _overlaps(fig) -> list[tuple[str, str]]:
    boxes = P.text_boxes(fig)
    bad = []
    for i, (ta, a) in enumerate(boxes):
        for tb, b in boxes[i + 1:]:
            if a.overlaps(b) and a.width > 0 and b.width > 0:
                bad.append((ta, tb))
    return bad


def test_wide_means_ten_times_or_more():
    assert P.wide([0.1, 1.0]) and P.wide([0.1, 0.5, 5.0])
    assert not P.wide([0.1, 0.99]) and not P.wide([]) and not P.wide([None, 3.0])


def test_a_slow_variant_makes_the_latency_axes_logarithmic():
    entries, rows = _entries()
    fig, axes = P.latency_accuracy_figure(plt, entries, 0.9926, 1.0)
    assert axes["x"] == "log" and fig.axes[0].get_xscale() == "log"
    fig2, axes2 = P.threads_figure(plt, entries, rows)
    assert axes2["y"] == "log" and fig2.axes[0].get_yscale() == "log"
    plt.close("all")
    fast, fast_rows = _entries(SPECS[:5])
    assert P.latency_accuracy_figure(plt, fast, 0.9926, 1.0)[1]["x"] == "linear"
    assert P.threads_figure(plt, fast, fast_rows)[1]["y"] == "linear"
    plt.close("all")


@pytest.mark.parametrize("build", ["latency_accuracy", "threads", "size"])
def test_no_text_collides_even_with_ties(build):
    entries, rows = _entries()
    fig, _ = {"latency_accuracy": lambda: P.latency_accuracy_figure(plt, entries, 0.9926, 1.0),
              "threads": lambda: P.threads_figure(plt, entries, rows),
              "size": lambda: P.size_figure(plt, entries)}[build]()
    texts = [t for t, _ in P.text_boxes(fig)]
    if build != "size":
        for e in entries:  # every variant is named exactly once (in the legend)
            assert texts.count(e.name) == 1, (e.name, texts)
    assert _overlaps(fig) == []
    plt.close(fig)


def test_write_plots_saves_pngs_and_reports_the_scales(tmp_path):
    entries, rows = _entries()
    written, skipped, axes = P.write_plots(tmp_path, entries, rows, False, 0.9926, 1.0)
    assert skipped is None and written == list(P.PLOTS)
    assert axes["latency_vs_accuracy.png"]["x"] == "log" and axes["size.png"]["x"] == "linear"
    for name in written:
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_records_keep_the_report_field_names():
    assert CSV_FIELDS == ("device", "variant", "label", "format", "quantize", "backend", "threads", "batch_size",
                          "size_bytes", "load_ms", "first_inference_ms", "mean_ms", "std_ms", "min_ms", "p50_ms", "p90_ms",
                          "p99_ms", "throughput_ips", "peak_rss_mb", "macs", "gmacs_per_s", "pct_of_peak",
                          "delegate_applied", "accuracy", "macro_f1", "agreement", "warmup", "runs", "seed")
    assert MERGED_FIELDS == ("device", "variant", "label", "backend", "threads", "size_bytes", "load_ms", "p50_ms", "p90_ms",
                             "p99_ms", "throughput_ips", "peak_rss_mb", "gmacs_per_s", "accuracy", "sha256")
    row = {"variant": "v", "label": "L", "path": "/p", "format": "onnx", "quantize": "none", "is_float": True, "sha256": "s",
           "backend": "onnxruntime", "size_bytes": 10, "threads": 2, "delegate_applied": None, "p50_ms": 1.5, "min_ms": 1.0}
    e = VariantEntry.from_latency(row, "dev")
    assert e.best_threads == 2 and e.p50_ms == 1.5 and e.to_dict()["device"] == "dev"
    c = CsvRow.build(row, "dev", {"accuracy": 0.5, "macro_avg": {"f1": 0.4}, "agreement": 1.0})
    assert dict(zip(CSV_FIELDS, c.values()))["macro_f1"] == 0.4 and c.min_ms == 1.0
    m = MergedRow.build({**row, "label": None}, "pi")
    assert m.device == "pi" and m.display_name == "v" and m.to_dict()["threads"] == 2


# The photo run: float32 hidden behind float16 near 1-2 ms / 58.75%, the other files apart.
COINCIDE = [("TFLite float32", "litert", 2.0723, 0.5875), ("TFLite float16", "litert", 2.0641, 0.5875),
            ("TFLite dynamic", "litert", 0.8854, 0.5812), ("TFLite int8", "litert", 1.3194, 0.5875),
            ("ONNX float32", "onnxruntime", 1.6484, 0.5875), ("ONNX int8", "onnxruntime", 1.1133, 0.5750)]


def test_coinciding_points_are_named_under_the_plot_without_collisions(tmp_path):
    entries, rows = _entries(COINCIDE)
    fig, axes = P.latency_accuracy_figure(plt, entries, 0.5875, 1.0)
    assert axes["coincident"] == [["TFLite float32", "TFLite float16"]]
    texts = [t for t, _ in P.text_boxes(fig)]
    note = [t for t in texts if t.startswith("Same point:")]
    assert note == ["Same point: TFLite float32 = TFLite float16 (2.07 / 2.06 ms, 58.75%)"]
    assert _overlaps(fig) == []
    fig.savefig(tmp_path / "lat_acc.png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    fig2, axes2 = P.threads_figure(plt, entries, rows)
    assert ["TFLite float32", "TFLite float16"] in axes2["coincident"]
    assert any(t.startswith("Same point: TFLite float32 = TFLite float16 at 1, 2 thread(s)") for t, _ in P.text_boxes(fig2))
    assert _overlaps(fig2) == []
    plt.close(fig2)
    apart, _ = _entries(SPECS[:1] + SPECS[4:5])  # two points far apart: no note
    fig3, axes3 = P.latency_accuracy_figure(plt, apart, 0.9926, 1.0)
    assert axes3["coincident"] == [] and not [t for t, _ in P.text_boxes(fig3) if t.startswith("Same point")]
    plt.close(fig3)
