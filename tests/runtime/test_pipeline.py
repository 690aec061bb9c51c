"""The threaded input pipeline (edge_runtime/pipeline.py), edge-infer over it, and true batching.

Order with --json over many files (corrupt ones among them), failures
reported and counted while the rest run, a bounded number of inputs in
flight whatever the input size, and one runtime call per batch on exported
dynamic-batch files with the same answers as one image at a time.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from edgedeploy.core.errors import EdgeDeployError, ImageError
from edgedeploy.runtime import ImageClassifier
from edgedeploy.runtime.cli import main
from edgedeploy.runtime.inputs import expand_inputs
from edgedeploy.runtime.pipeline import Pipeline, PipelineOptions, iter_predictions


def _json_lines(out: str) -> list[dict]:
    return [json.loads(ln) for ln in out.splitlines() if ln.strip()]


@pytest.fixture()
def mixed_folder(tmp_path, edge_models, truth):
    """60 images in two subfolders with 7 broken files spread among them."""
    names = sorted(truth)
    bad = {5, 6, 17, 30, 41, 58, 59}
    for i in range(67):
        sub = tmp_path / ("a" if i < 33 else "b")
        sub.mkdir(exist_ok=True)
        if i in bad:
            (sub / f"img{i:03d}.jpg").write_bytes(b"\xff\xd8\xff broken" if i % 2 else b"")
        else:
            src = edge_models / "images" / names[i % len(names)]
            shutil.copy(src, sub / f"img{i:03d}{src.suffix}")
    return tmp_path, bad


@pytest.mark.parametrize("workers,batch", [("2", "4"), ("3", "1"), ("1", "64")])
def test_json_lines_keep_input_order_and_failures_are_counted(capsys, edge_models, mixed_folder, workers, batch):
    folder, bad = mixed_folder
    paths, _ = expand_inputs([str(folder)])
    code = main([str(edge_models / "model_int8.tflite"), str(folder), "--json", "--workers", workers, "--batch-size", batch])
    out, err = capsys.readouterr()
    assert code == 1  # some inputs failed
    rows = _json_lines(out)
    want = [str(p) for p in paths if int(p.stem[3:]) not in bad]
    assert [r["path"] for r in rows] == want  # input order, not completion order
    assert all(set(r) == {"path", "label", "score", "top_k", "latency_ms"} for r in rows)
    errors = [ln for ln in err.splitlines() if ln.startswith("edge-infer: error:")]
    assert len(errors) == len(bad) and all("img0" in ln for ln in errors)
    assert f"{len(want)} classified, {len(bad)} failed" in err


def test_threads_give_the_same_answers_as_no_threads(capsys, edge_models, mixed_folder):
    folder, _ = mixed_folder
    answers = []
    for workers in ("0", "2"):
        main([str(edge_models / "model_float32.onnx"), str(folder), "--json", "--workers", workers])
        answers.append([(r["path"], r["label"], r["score"]) for r in _json_lines(capsys.readouterr().out)])
    assert answers[0] == answers[1] and len(answers[0]) == 60


def test_workers_flag_is_validated(capsys, edge_models):
    code = main([str(edge_models / "model_int8.tflite"), "x.png", "--workers", "-1"])
    err = capsys.readouterr().err
    assert code == 2 and "--workers" in err and "Received -1" in err
    assert len(err.strip().splitlines()) == 1


def test_iter_predictions_yields_errors_in_place(edge_models, truth):
    clf = ImageClassifier(edge_models / "model_float32.tflite")
    names = sorted(truth)[:6]
    items = [edge_models / "images" / n for n in names]
    items.insert(2, b"not an image")
    items.insert(0, np.zeros((4, 4, 2), np.uint8))  # a bad array shape
    results = list(iter_predictions(clf, items, workers=2, batch_size=3))
    assert [r.item is it for r, it in zip(results, items)] == [True] * len(items)
    assert [r.ok for r in results] == [False, True, True, False, True, True, True, True]
    assert isinstance(results[0].outcome, ImageError) and isinstance(results[3].outcome, ImageError)
    labels = [r.outcome.label for r in results if r.ok]
    assert labels == [clf.predict(p).label for p in items if isinstance(p, Path)]
    assert all(r.latency_ms >= 0 for r in results)


def test_bounded_queue_pulls_inputs_lazily(edge_models):
    """However many inputs, at most queue + batch_size are pulled and not yet handed out."""
    clf = ImageClassifier(edge_models / "model_float32.tflite")
    img = np.random.default_rng(0).integers(0, 256, (48, 40, 3), dtype=np.uint8)
    pulled = 0

    def source():
        nonlocal pulled
        for _ in range(2000):
            pulled += 1
            yield img

    opts = PipelineOptions(workers=2, batch_size=4, queue=6)
    bound = 6 + 4
    with Pipeline(clf, opts) as pipe:
        seen = 0
        worst = 0
        for _ in pipe.run(source()):
            seen += 1
            worst = max(worst, pulled - seen)
        assert seen == 2000
        assert worst <= bound and pipe.max_in_flight <= bound
        assert pipe.max_in_flight >= 6  # it does read ahead


def test_pipeline_options_validate_themselves():
    for bad in ({"workers": -1}, {"batch_size": 0}, {"queue": 0}, {"workers": True}):
        with pytest.raises(EdgeDeployError, match="Received"):
            PipelineOptions(**bad)
    opts = PipelineOptions(workers=3, batch_size=5).resolved()
    assert opts.queue == 15 and opts.workers == 3  # a batch for every worker
    assert PipelineOptions(workers=1, batch_size=4).resolved().queue == 8


def test_predict_batch_matches_predict_and_raises_the_first_bad_image(edge_models, truth):
    clf = ImageClassifier(edge_models / "model_float32.tflite")
    paths = [edge_models / "images" / n for n in sorted(truth)]
    batch = clf.predict_batch(paths, batch_size=4, workers=2)
    assert [p.label for p in batch] == [clf.predict(p).label for p in paths]
    with pytest.raises(ImageError, match="not a recognised image"):
        clf.predict_batch(paths[:3] + [b"junk"] + paths[3:], batch_size=2)


# -- true batching on exported files --------------------------------------------------
def _count_runtime_calls(clf: ImageClassifier) -> list[int]:
    """Wrap the runtime's own invoke (LiteRT) or run (ONNX Runtime) with a counter."""
    calls = [0]
    b = clf.backend
    target, name = (b._it, "invoke") if hasattr(b, "_it") else (b._sess, "run")
    original = getattr(target, name)

    def counted(*a, **kw):
        calls[0] += 1
        return original(*a, **kw)

    setattr(target, name, counted)
    return calls


@pytest.mark.parametrize("model", ["model_float32.tflite", "model_int8.tflite", "model_float32.onnx"])
def test_predict_batch_runs_one_runtime_call_per_batch(edge_models, truth, model):
    clf = ImageClassifier(edge_models / model)
    assert clf.backend.dynamic_batch
    paths = [edge_models / "images" / n for n in sorted(truth)][:10]
    one = [clf.predict(p) for p in paths]
    calls = _count_runtime_calls(clf)
    got = clf.predict_batch(paths, batch_size=4, workers=2)
    assert calls[0] == 3  # 4 + 4 + 2
    assert [p.label for p in got] == [p.label for p in one]
    np.testing.assert_allclose(np.stack([p.probabilities for p in got]), np.stack([p.probabilities for p in one]),
                               atol=1e-5)


# -- the thread defaults ----------------------------------------------------------------
def test_default_threads_and_workers_follow_the_models_cost(tmp_path, edge_models):
    from edgedeploy.runtime.pipeline import HEAVY_MACS, default_runtime_threads, default_workers, model_macs

    light, heavy, unknown = tmp_path / "light.tflite", tmp_path / "heavy.tflite", tmp_path / "foreign.tflite"
    for path, macs in ((light, 73_318_656), (heavy, 7_829_914_624)):
        path.write_bytes(b"")
        Path(f"{path}.json").write_text(json.dumps({"macs": macs}))
    unknown.write_bytes(b"not a model")
    assert model_macs(light) == 73_318_656 and model_macs(heavy) > HEAVY_MACS and model_macs(unknown) is None
    assert model_macs(edge_models / "model_int8.tflite") > 0  # an exported file's manifest carries it
    assert [default_runtime_threads(light, cores=c) for c in (1, 2, 4)] == [1, 1, 2]
    assert [default_runtime_threads(m, cores=4) for m in (heavy, unknown, None)] == [4, 4, 4]
    assert [default_workers(t, cores=2) for t in (1, 2, None)] == [2, 1, 1]
    assert [default_workers(t, cores=4) for t in (2, 4)] == [3, 1]


def test_edge_infer_picks_the_split_when_no_thread_flag_is_given(edge_models, monkeypatch):
    from edgedeploy.runtime import cli, pipeline

    monkeypatch.setattr(cli, "default_runtime_threads", lambda model=None, cores=None: 1)
    args = cli.build_parser().parse_args([str(edge_models / "model_int8.tflite"), "x.jpg"])
    assert cli.options_from(args).classifier.threads == 1
    args = cli.build_parser().parse_args([str(edge_models / "model_int8.tflite"), "x.jpg", "--threads", "3"])
    assert cli.options_from(args).classifier.threads == 3
    clf = ImageClassifier(edge_models / "model_int8.tflite", threads=1)
    with Pipeline(clf) as pipe:
        assert pipe.options.workers == pipeline.default_workers(1)
