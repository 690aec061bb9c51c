"""What every test shares: the real photos, the model chain, the edge-only skip, no inherited --debug.

Each package's tests live in their own folder (tests/core, runtime, train, export, bench) with a
conftest.py for that folder's fixtures; helpers that several folders use are plain modules here
(model_fixtures.py, edge_fixtures.py, train_helpers.py, export_helpers.py, bench_helpers.py).
"""
from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# ../shared beside the checkout holds the 800 real cat/dog photos. It is absent
# on a user's fresh clone, so tests that need it skip with a reason.
SHARED_PHOTOS = ROOT.parent / "shared" / "data" / "cats_vs_dogs_small"
# Set by run_command for --debug (edgedeploy/core/command.py); TF's logs, Keras's warnings and
# child tracebacks then pass through, and subprocesses inherit it.
DEBUG_ENV = "EDGEDEPLOY_DEBUG"

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture(autouse=True)
def not_in_debug_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test runs as a user without --debug, whatever an earlier in-process ``main([..., "--debug"])`` left.

    ``setenv`` first, so the teardown also removes what the test itself sets.
    """
    monkeypatch.setenv(DEBUG_ENV, "")
    monkeypatch.delenv(DEBUG_ENV)


@pytest.fixture(scope="session")
def real_photos() -> Path:
    if not (SHARED_PHOTOS / "cat").is_dir():
        pytest.skip(f"real photos not found at {SHARED_PHOTOS} (they sit beside the checkout, in ../shared)")
    return SHARED_PHOTOS


@pytest.fixture(scope="session")
def edge_models() -> Path:
    """The chain folder made by the real commands; the test fails (never skips, never falls back) if it cannot be built."""
    import model_fixtures

    return model_fixtures.test_models()


@pytest.fixture(scope="session")
def truth(edge_models: Path) -> dict:
    """image file name -> true digit, for the images in edge_models/images."""
    return json.loads((edge_models / "images" / "truth.json").read_text())


def has_module(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


def pytest_collection_modifyitems(config, items):
    # Tests marked `tf` need the train/export extras; on an edge-only install
    # (the Pi) they skip instead of erroring.
    if has_module("tensorflow"):
        return
    skip = pytest.mark.skip(reason="tensorflow is not installed (edge-only environment)")
    for item in items:
        if "tf" in item.keywords:
            item.add_marker(skip)
