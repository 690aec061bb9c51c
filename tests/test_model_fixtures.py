"""The test-model chain itself (tests/model_fixtures.py): cached once, built once, fails loudly."""
from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

import model_fixtures


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEDEPLOY_TEST_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("EDGEDEPLOY_TEST_MODELS", raising=False)
    monkeypatch.setattr(model_fixtures, "_failure", None)
    return tmp_path / "cache"


def test_two_builders_at_once_build_once_and_share_the_folder(fresh_cache, monkeypatch):
    calls = []

    def fake_build(dest: Path) -> Path:
        calls.append(dest)
        time.sleep(0.5)  # long enough for the other thread to arrive
        (dest / "model_float32.tflite").write_bytes(b"x")
        (dest / model_fixtures.COMPLETE).write_text("{}")
        return dest

    monkeypatch.setattr(model_fixtures, "build", fake_build)
    results: list[Path] = []
    threads = [threading.Thread(target=lambda: results.append(model_fixtures.build_cached())) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and results[0] == results[1] == model_fixtures.chain_dir()
    assert (results[0] / model_fixtures.COMPLETE).is_file()
    # the temporary build folder was renamed into place: nothing else is left beside it
    assert sorted(p.name for p in fresh_cache.iterdir() if not p.name.endswith(".lock")) == [results[0].name]


def test_a_chain_that_cannot_be_built_fails_the_test_with_the_commands_error(fresh_cache, monkeypatch):
    def bad_train(work: Path) -> Path:
        model_fixtures._run("-m", "edgedeploy.train", "--model", "no_such_model", "--output", str(work / "run"), what="train-model")
        return work / "run"

    monkeypatch.setattr(model_fixtures, "_train", bad_train)
    with pytest.raises(pytest.fail.Exception) as failed:
        model_fixtures.test_models()
    msg = str(failed.value)
    assert "could not be built with the real commands" in msg and "train-model exited 2" in msg
    assert "no_such_model" in msg  # the tail of the command's stderr
    assert not any(p.name.startswith("chain-") for p in fresh_cache.iterdir())  # no half-built chain
    with pytest.raises(pytest.fail.Exception, match="train-model exited 2"):  # and it is not rebuilt per test
        monkeypatch.setattr(model_fixtures, "_train", lambda work: pytest.fail("built twice"))
        model_fixtures.test_models()


def test_a_named_chain_must_be_complete(fresh_cache, monkeypatch, tmp_path):
    monkeypatch.setenv("EDGEDEPLOY_TEST_MODELS", str(tmp_path / "nothing-here"))
    with pytest.raises(pytest.fail.Exception, match="is not a complete chain folder"):
        model_fixtures.test_models()


def test_the_key_covers_train_export_edge_runtime_and_the_fixtures():
    files = [p for d in ("train", "export", "edge_runtime") for p in (model_fixtures.ROOT / d).rglob("*.py")]
    assert files and model_fixtures.cache_key() == model_fixtures.cache_key.__wrapped__()
    assert set(model_fixtures._FIXTURE_FILES) == {"model_fixtures.py", "edge_fixtures.py"}
