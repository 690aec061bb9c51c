"""Fixtures of the export tests (export/)."""
from __future__ import annotations

from pathlib import Path

import pytest

from export_helpers import copy_run, tiny_run


@pytest.fixture
def run(tmp_path: Path) -> Path:
    """A private copy of the tiny trained run folder (export_helpers.tiny_run), to export from."""
    return copy_run(tiny_run(), tmp_path / "run")
