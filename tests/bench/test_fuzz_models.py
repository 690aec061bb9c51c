"""Fuzz: mutated .tflite and .onnx files fed to ImageClassifier never crash or hang the process.

Every case runs in a worker subprocess (edge_runtime.fuzzing.FuzzWorker), so
a segfault in LiteRT or ONNX Runtime is seen as a failed case instead of
killing pytest. The worker loads each file with the subprocess probe OFF,
testing the pure-Python verifiers alone; when a file gets past them and
crashes the runtime (a verifier gap), the same file is re-run with the probe
ON, which is what users get by default: that run must end in a one-line
ModelError. Acceptable outcomes: a prediction, or an EdgeDeployError.

EDGEDEPLOY_FUZZ_CASES sets the cases per target (default 200; CI runs the
default, benchmarks/fuzz.py runs >= 2,000 and writes reports/fuzz.json).
"""
from __future__ import annotations

import os

import pytest

pytest.importorskip("hypothesis", reason="hypothesis is not installed (the dev extra)")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from edgedeploy.bench.fuzzing import KINDS, FuzzWorker, apply_mutations

CASES = int(os.environ.get("EDGEDEPLOY_FUZZ_CASES", "200"))
MUTATIONS = st.lists(st.tuples(st.sampled_from(KINDS), st.floats(0, 1, exclude_max=True), st.integers(0, 65535)),
                     min_size=1, max_size=6)
FUZZ = settings(max_examples=CASES, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

TARGETS = ["fuzz_tiny.tflite", "fuzz_tiny_int8.tflite", "fuzz_tiny.onnx", "model_int8.tflite"]
STATS: dict[str, dict[str, int]] = {}


@pytest.fixture(scope="module")
def worker(edge_models):
    with FuzzWorker(edge_models / "model_float32.tflite", timeout=60) as w:
        yield w


def check_case(worker: FuzzWorker, data: bytes, suffix: str, stats: dict[str, int]) -> None:
    """Run one model case; fail on anything but a prediction or an EdgeDeployError."""
    result = worker.run("model", data, suffix, probe="never")
    stats[result.outcome] = stats.get(result.outcome, 0) + 1
    if result.outcome == "crash":  # past the verifier: the default probe must contain it
        guarded = worker.run("model", data, suffix, probe="always")
        stats["crash_contained_by_probe"] = stats.get("crash_contained_by_probe", 0) + guarded.acceptable
        assert guarded.acceptable, f"the probe did not contain a crash: {guarded}"
        return
    assert result.acceptable, f"{result.outcome}: {result.detail}"


@pytest.mark.parametrize("target", TARGETS)
def test_mutated_models_never_crash_the_process(worker, edge_models, target):
    seed = (edge_models / target).read_bytes()
    suffix = os.path.splitext(target)[1]
    stats = STATS.setdefault(target, {})

    @FUZZ
    @given(MUTATIONS)
    def run(mutations):
        check_case(worker, apply_mutations(seed, mutations), suffix, stats)

    run()
    assert sum(v for k, v in stats.items() if k != "crash_contained_by_probe") >= CASES
    assert stats.get("ok", 0) + stats.get("error", 0) > 0
    print(f"{target}: {stats}")


def test_the_unmutated_seeds_run(worker, edge_models):
    for target in TARGETS:
        data = (edge_models / target).read_bytes()
        assert worker.run("model", data, os.path.splitext(target)[1]).outcome == "ok", target
