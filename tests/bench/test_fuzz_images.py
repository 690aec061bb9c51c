"""Fuzz: mutated JPEG/PNG/GIF/BMP/WebP/TIFF bytes give a prediction or an ImageError, never a crash.

Cases run in a worker subprocess (edge_runtime.fuzzing.FuzzWorker): Pillow's
decoders are C, so a crash must not take pytest down with it.
EDGEDEPLOY_FUZZ_CASES sets the cases per seed format (default 200).
"""
from __future__ import annotations

import os

import pytest

pytest.importorskip("hypothesis", reason="hypothesis is not installed (the dev extra)")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from edgedeploy.bench.fuzzing import KINDS, FuzzWorker, apply_mutations, seed_images

CASES = int(os.environ.get("EDGEDEPLOY_FUZZ_CASES", "200"))
MUTATIONS = st.lists(st.tuples(st.sampled_from(KINDS), st.floats(0, 1, exclude_max=True), st.integers(0, 65535)),
                     min_size=1, max_size=6)
SEEDS = seed_images()
SEEDS_PER_RUN = ["rgb.jpg", "rgb.png", "exif_rotated.jpg", "palette.png", "gray16.png", "cmyk.jpg", "anim.gif",
                 "rgb.tiff", "rgb.webp", "rgb.bmp"]


@pytest.fixture(scope="module")
def worker(edge_models):
    with FuzzWorker(edge_models / "model_float32.tflite", timeout=60) as w:
        yield w


@pytest.mark.parametrize("seed_name", SEEDS_PER_RUN)
def test_mutated_images_never_crash(worker, seed_name):
    seed = SEEDS[seed_name]
    # The two common formats get the full count; the others a share of it.
    n = CASES if seed_name in ("rgb.jpg", "rgb.png") else max(20, CASES // 4)
    stats: dict[str, int] = {}

    @settings(max_examples=n, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(MUTATIONS)
    def run(mutations):
        result = worker.run("image", apply_mutations(seed, mutations))
        stats[result.outcome] = stats.get(result.outcome, 0) + 1
        assert result.acceptable, f"{result.outcome}: {result.detail}"

    run()
    assert sum(stats.values()) >= n
    print(f"{seed_name}: {stats}")


def test_unmutated_seeds_all_predict(worker):
    for name, data in SEEDS.items():
        assert worker.run("image", data).outcome == "ok", name
