"""Fixtures of the benchmark tests (benchmarks/)."""
from __future__ import annotations

from pathlib import Path

import pytest

from bench_helpers import bench_export_dir, copy_export_dir


@pytest.fixture(scope="session")
def bench_dir() -> Path:
    """The export folder the benchmark tests compare: float32/int8 TFLite and float32 ONNX from export-model."""
    return bench_export_dir()


@pytest.fixture
def bench_copy(tmp_path: Path) -> Path:
    """A private copy of that folder, for tests that write beside the models."""
    return copy_export_dir(tmp_path / "models")
