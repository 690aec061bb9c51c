"""Shared test setup. Package-specific fixtures live in tests/*_fixtures.py."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# ../shared beside the checkout holds the 800 real cat/dog photos. It is absent
# on a user's fresh clone, so tests that need it skip with a reason.
SHARED_PHOTOS = ROOT.parent / "shared" / "data" / "cats_vs_dogs_small"

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture(scope="session")
def real_photos() -> Path:
    if not (SHARED_PHOTOS / "cat").is_dir():
        pytest.skip(f"real photos not found at {SHARED_PHOTOS} (they sit beside the checkout, in ../shared)")
    return SHARED_PHOTOS


def has_module(name: str) -> bool:
    import importlib.util

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
